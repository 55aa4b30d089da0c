"""Bad input gets a clear 4xx with OpenAI's error body, and the server keeps serving."""

from __future__ import annotations

import json
import select
import socket
import struct
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from openai import BadRequestError, NotFoundError

from tests.servers import RunningServer, engine_server, openai_client
from tests.speech import compose, noise, pyav_encode, wav_bytes

MAX_UPLOAD_MB = 1
MAX_AUDIO_SECONDS = 60


@pytest.fixture(scope="module")
def limited() -> Iterator[RunningServer]:
    """An engine with small limits, so that over-limit input stays small."""
    with engine_server(
        "--model", "whisper-tiny.en",
        "--max-upload-mb", str(MAX_UPLOAD_MB),
        "--max-audio-seconds", str(MAX_AUDIO_SECONDS),
    ) as server:  # fmt: skip
        yield server


@pytest.fixture(scope="module")
def good_wav() -> bytes:
    return wav_bytes(compose([0.2, "Hello, how are you today?", 0.2]).samples)


def post(
    server: RunningServer, files: Any = None, data: Any = None, **kwargs: Any
) -> httpx.Response:
    return httpx.post(
        f"{server.url}/v1/audio/transcriptions", files=files, data=data, timeout=120, **kwargs
    )


def assert_error(
    response: httpx.Response, status: int, param: str | None, code: str | None = None
) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and len(error["message"]) > 10
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    if code is not None:
        assert error["code"] == code
    return dict(error)


def wav_header(rate: int, channels: int = 1, bits: int = 16, frames: int = 1600) -> bytes:
    block = channels * bits // 8
    data = b"\x00\x01" * (frames * block // 2)
    fmt = struct.pack("<HHIIHH", 1, channels, rate, (rate * block) % 2**32, block, bits)
    return (
        b"RIFF"
        + struct.pack("<I", 36 + len(data))
        + b"WAVEfmt "
        + struct.pack("<I", 16)
        + fmt
        + b"data"
        + struct.pack("<I", len(data))
        + data
    )


BAD_FILES = {
    "empty": (b"", "empty_file"),
    "text-not-audio": (b"this is plainly not audio, just some text\n" * 50, "invalid_audio"),
    "random-bytes": (np.random.default_rng(1).bytes(20_000), "invalid_audio"),
    "header-only-wav": (wav_header(16_000, frames=0), "empty_audio"),
    "cut-wav-header": (wav_header(16_000)[:30], "invalid_audio"),
    "rate-1hz": (wav_header(1), "unsupported_sample_rate"),
    "rate-4ghz": (wav_header(4_000_000_000), None),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_unusable_files(limited: RunningServer, case: str) -> None:
    content, code = BAD_FILES[case]
    response = post(
        limited, files={"file": ("upload.wav", content)}, data={"model": "whisper-tiny.en"}
    )
    assert_error(response, 400, "file", code)


def test_truncated_mp4(limited: RunningServer) -> None:
    """An MP4 cut before its index cannot be read: a 400, not a crash or a hang."""
    mp4 = pyav_encode(compose(["Hello there."]).samples, "mp4", "aac")
    response = post(
        limited,
        files={"file": ("clip.mp4", mp4[: len(mp4) // 2])},
        data={"model": "whisper-tiny.en"},
    )
    assert_error(response, 400, "file")


def test_upload_over_the_size_limit_by_content_length(limited: RunningServer) -> None:
    big = b"\x00" * (MAX_UPLOAD_MB * 1_000_000 + 1000)
    response = post(limited, files={"file": ("big.wav", big)}, data={"model": "whisper-tiny.en"})
    assert_error(response, 413, "file", "file_too_large")


def test_upload_over_the_size_limit_while_streaming(limited: RunningServer) -> None:
    """A chunked upload (no Content-Length) is answered 413 once it passes the limit,
    long before the client has sent it all."""
    host, port = limited.url.removeprefix("http://").split(":")
    boundary = "stenostackboundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="model"\r\n\r\n'
        f"whisper-tiny.en\r\n--{boundary}\r\nContent-Disposition: form-data; "
        f'name="file"; filename="big.wav"\r\n\r\n'
    ).encode()
    chunk = b"\x01" * 65536
    total_to_send = 200 * 1024 * 1024
    sent = 0
    reply = b""
    with socket.create_connection((host, int(port)), timeout=30) as connection:
        connection.sendall(
            b"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
            + f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n".encode()
            + f"{len(head):x}\r\n".encode()
            + head
            + b"\r\n"
        )
        try:
            while sent < total_to_send:
                if select.select([connection], [], [], 0)[0]:
                    break  # the server has answered
                connection.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server closed the upload after answering
        while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
            data = connection.recv(65536)
            if not data:
                break
            reply += data
    status_line, _, rest = reply.partition(b"\r\n")
    assert b" 413 " in status_line, reply[:500]
    body = json.loads(rest.split(b"\r\n\r\n", 1)[1])
    assert body["error"]["code"] == "file_too_large" and body["error"]["param"] == "file"
    assert sent < total_to_send / 4, f"the server kept reading: {sent} bytes sent"


def test_audio_over_the_duration_limit(limited: RunningServer) -> None:
    long_noise = wav_bytes(
        noise(MAX_AUDIO_SECONDS + 10), rate=16_000, extra=("-r", "8000", "-b", "8")
    )
    assert len(long_noise) < MAX_UPLOAD_MB * 1_000_000
    response = post(
        limited, files={"file": ("long.wav", long_noise)}, data={"model": "whisper-tiny.en"}
    )
    assert_error(response, 400, "file", "audio_too_long")


@pytest.mark.parametrize(
    ("fields", "param", "code"),
    [
        ({"model": "no-such-model"}, "model", "model_not_found"),
        ({"model": "whisper-tiny.en", "language": "klingon"}, "language", "unsupported_language"),
        ({"model": "whisper-tiny.en", "response_format": "docx"}, "response_format", "unsupported_response_format"),
        ({"model": "whisper-tiny.en", "response_format": "vtt", "stream": "true"}, "stream", "unsupported_parameter"),
        ({"model": "whisper-tiny.en", "temperature": "hot"}, "temperature", None),
        ({"model": "whisper-tiny.en", "temperature": "1.5"}, "temperature", None),
        ({"model": "whisper-tiny.en", "temperature": "nan"}, "temperature", None),
        ({"model": "whisper-tiny.en", "timestamp_granularities[]": "word"}, "timestamp_granularities[]", None),
        ({"model": "whisper-tiny.en", "response_format": "verbose_json", "timestamp_granularities[]": "phoneme"}, "timestamp_granularities[]", None),
        ({"model": "whisper-tiny.en", "include[]": "logprobs", "response_format": "srt"}, "include[]", None),
        ({"model": "whisper-tiny.en", "stream": "maybe"}, "stream", None),
        ({"model": "whisper-tiny.en", "chunking_strategy": "sometimes"}, "chunking_strategy", None),
        ({"model": "whisper-tiny.en", "chunking_strategy[type]": "server_vad", "chunking_strategy[threshold]": "7"}, "chunking_strategy", None),
        ({}, "model", None),
    ],
)  # fmt: skip
def test_bad_parameters(
    limited: RunningServer, good_wav: bytes, fields: dict[str, str], param: str, code: str | None
) -> None:
    response = post(limited, files={"file": ("a.wav", good_wav)}, data=fields)
    status = 404 if code == "model_not_found" else 400
    assert_error(response, status, param, code)


def test_missing_file_and_file_as_text(limited: RunningServer) -> None:
    assert_error(post(limited, files={"model": (None, "whisper-tiny.en")}), 400, "file")
    assert_error(
        post(limited, files={"model": (None, "whisper-tiny.en"), "file": (None, "abc")}),
        400,
        "file",
    )


def test_not_multipart(limited: RunningServer) -> None:
    response = post(limited, json={"model": "whisper-tiny.en", "file": "abc"})
    assert_error(response, 400, None, "invalid_content_type")
    garbled = post(
        limited,
        content=b"--x\r\ngarbage",
        headers={"content-type": "multipart/form-data; boundary=x"},
    )
    assert_error(garbled, 400, "file")  # no part could be read, so no file


def test_unknown_path_and_method(limited: RunningServer) -> None:
    missing = httpx.get(f"{limited.url}/v1/audio/nothing", timeout=10)
    assert missing.status_code == 404 and set(missing.json()["error"]) == {
        "message",
        "type",
        "param",
        "code",
    }
    wrong = httpx.get(f"{limited.url}/v1/audio/transcriptions", timeout=10)
    assert wrong.status_code == 405 and "error" in wrong.json()


def test_sdk_sees_typed_errors(limited: RunningServer, good_wav: bytes) -> None:
    with openai_client(limited.url) as client:
        with pytest.raises(NotFoundError) as not_found:
            client.audio.transcriptions.create(model="gpt-4o-transcribe", file=("a.wav", good_wav))
        assert not_found.value.code == "model_not_found" and not_found.value.param == "model"
        with pytest.raises(BadRequestError) as bad:
            client.audio.transcriptions.create(model="whisper-tiny.en", file=("a.wav", b""))
        assert bad.value.code == "empty_file"


def test_still_serving_after_bad_input(limited: RunningServer, good_wav: bytes) -> None:
    response = post(limited, files={"file": ("a.wav", good_wav)}, data={"model": "whisper-tiny.en"})
    assert response.status_code == 200, response.text
    assert "how are you" in response.json()["text"].lower()
    assert limited.process.poll() is None
    assert "Traceback" not in limited.log()
