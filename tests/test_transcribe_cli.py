"""``stenostack transcribe`` and ``stenostack models``, run as the real command on real
speech: in process, through a running engine and through a router, on a terminal (tmux) and
through pipes, and interrupted with Ctrl-C.

The engine the server-mode tests use is a default one (diarization loaded): the command in
process sets the process up as ``serve`` does (``serving.prepare_process``: one BLAS thread,
whatever is loaded), so both compute exactly the same and their files are compared byte for
byte.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.servers import (
    RunningServer,
    app_server,
    engine_server,
    free_port,
    openai_client,
    router_server,
)
from tests.speech import compose, sox_encode, wav_bytes
from tests.texts import COFFEE_ORDER, MEETING_MOVED, STORY
from tests.wer import word_error_rate

MODEL = "whisper-tiny.en"
# Both clips are short, clean synthetic speech; tiny.en gets them (almost) word for word.
MAX_WER = 0.2
CLI_TIMEOUT_S = 240
TMUX = "/usr/bin/tmux"  # installed for the checks (scripts/), like espeak-ng and sox
# What a terminal's control sequences and a bar's carriage returns look like.
CONTROL = re.compile(r"[\r\x1b]")


@dataclass(frozen=True)
class Inputs:
    """The test files' bytes, made once: two good clips and one that is not audio."""

    coffee_wav: bytes
    meeting_ogg: bytes
    story_wav: bytes  # a minute and more of speech, for progress and Ctrl-C

    def write(self, directory: Path) -> Path:
        """``a.wav``, ``sub/b.ogg`` and ``bad.wav`` (text) under ``directory``."""
        (directory / "sub").mkdir(parents=True, exist_ok=True)
        (directory / "a.wav").write_bytes(self.coffee_wav)
        (directory / "sub" / "b.ogg").write_bytes(self.meeting_ogg)
        (directory / "bad.wav").write_text("This is a text file, not audio.\n")
        return directory


@pytest.fixture(scope="module")
def inputs() -> Inputs:
    story: list[str | float] = []
    for sentence in STORY[:12]:
        story += [sentence, 0.8]
    return Inputs(
        coffee_wav=wav_bytes(compose([0.3, COFFEE_ORDER, 0.3]).samples),
        meeting_ogg=sox_encode(compose([0.3, MEETING_MOVED, 0.3]).samples, "ogg"),
        story_wav=wav_bytes(compose([0.3, *story]).samples),
    )


@pytest.fixture(scope="module")
def engine() -> Iterator[RunningServer]:
    """One tiny.en engine for the module, otherwise as ``serve`` starts by default."""
    with engine_server("--model", MODEL) as server:
        yield server


def stenostack(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The real command, with pipes for its output (so stderr is not a terminal)."""
    return subprocess.run(
        [sys.executable, "-m", "stenostack", *args],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        cwd=cwd,
    )


def srt_text(srt: str) -> str:
    """The words of an SRT file: every cue's text, without numbers and timings."""
    lines = [line for line in srt.splitlines() if line and "-->" not in line]
    return " ".join(line for line in lines if not line.isdigit())


def check_directory_outputs(directory: Path, result: subprocess.CompletedProcess[str]) -> None:
    """What a run over ``Inputs.write``'s directory must leave: both clips' subtitles with
    their words, the bad file named with the decoder's message and nothing written for it,
    exit status 1, one plain line per file and no leftovers."""
    assert result.returncode == 1, result.stderr
    assert word_error_rate(COFFEE_ORDER, srt_text((directory / "a.srt").read_text())) <= MAX_WER
    meeting = (directory / "sub" / "b.srt").read_text()
    assert word_error_rate(MEETING_MOVED, srt_text(meeting)) <= MAX_WER
    assert meeting.startswith("1\n00:00:0")
    assert not (directory / "bad.srt").exists()
    lines = result.stderr.splitlines()
    bad = [line for line in lines if "bad.wav" in line]
    assert len(bad) == 1 and "bad.wav: error:" in bad[0], result.stderr
    assert "could not be read as audio" in bad[0]
    coffee = re.escape(str(directory / "a.wav"))
    assert any(
        re.fullmatch(rf"{coffee} -> .*a\.srt \(4\.6 s audio in \d+\.\d s\)", line) for line in lines
    )
    assert sum(" -> " in line for line in lines) == 2, result.stderr
    assert "2 transcribed, 0 skipped, 1 failed" in lines[-1]
    assert not CONTROL.search(result.stderr), repr(result.stderr)
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert not list(directory.rglob("*.part")), "a temporary file was left behind"


@pytest.fixture(scope="module")
def in_process(inputs: Inputs, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The directory after one in-process run over it (checked by the first test)."""
    directory = inputs.write(tmp_path_factory.mktemp("in-process"))
    result = stenostack("transcribe", str(directory), "--model", MODEL)
    check_directory_outputs(directory, result)
    return directory


def test_a_directory_in_process_writes_subtitles_and_names_the_bad_file(in_process: Path) -> None:
    # The fixture ran it and checked it; here: exactly the expected files, no more.
    written = sorted(str(p.relative_to(in_process)) for p in in_process.rglob("*.srt"))
    assert written == ["a.srt", "sub/b.srt"]


def test_through_a_server_and_a_router_the_files_are_the_same(
    inputs: Inputs, engine: RunningServer, in_process: Path, tmp_path: Path
) -> None:
    through_engine = inputs.write(tmp_path / "engine")
    result = stenostack("transcribe", str(through_engine), "--model", MODEL, "--server", engine.url)
    check_directory_outputs(through_engine, result)
    for name in ("a.srt", "sub/b.srt"):
        assert (through_engine / name).read_text() == (in_process / name).read_text(), name

    # The server's own SRT for the same file, through the official SDK: the same bytes.
    client = openai_client(engine.url)
    served = client.audio.transcriptions.create(
        model=MODEL, file=("a.wav", inputs.coffee_wav), response_format="srt"
    )
    assert served == (in_process / "a.srt").read_text()

    with router_server("--backend", engine.url) as router:
        through_router = inputs.write(tmp_path / "router")
        result = stenostack(
            "transcribe", str(through_router), "--model", MODEL, "--server", router.url
        )
        check_directory_outputs(through_router, result)
        for name in ("a.srt", "sub/b.srt"):
            assert (through_router / name).read_text() == (in_process / name).read_text()


def older_server(engine_url: str) -> Starlette:
    """A fake, named as one: an OpenAI-compatible server that does not stream
    ``verbose_json`` (an older stenostack, or another server behind a router) and is busy at
    first, in front of the real engine. It refuses ``stream=true`` with a 400 naming
    ``stream``, answers its first transcription 429 with ``Retry-After: 0``, and hands every
    other request to the engine as it came."""
    posts = 0

    async def models(_: Request) -> Response:
        async with httpx.AsyncClient() as client:
            answer = await client.get(f"{engine_url}/v1/models")
        return Response(answer.content, answer.status_code, media_type="application/json")

    async def transcriptions(request: Request) -> Response:
        nonlocal posts
        form = await request.form()
        if form.get("stream") == "true":
            refusal = {"message": "stream=true is not supported here.", "param": "stream"}
            return JSONResponse({"error": {**refusal, "type": "invalid_request_error"}}, 400)
        posts += 1
        if posts == 1:
            busy = {"message": "Busy.", "type": "server_error", "code": "engine_overloaded"}
            return JSONResponse({"error": busy}, 429, headers={"Retry-After": "0"})
        upload = form["file"]
        assert isinstance(upload, UploadFile)
        fields: dict[str, list[str]] = {}
        for name, value in form.multi_items():
            if isinstance(value, str):
                fields.setdefault(name, []).append(value)
        async with httpx.AsyncClient(timeout=120) as client:
            answer = await client.post(
                f"{engine_url}/v1/audio/transcriptions",
                data=fields,
                files={"file": (upload.filename or "audio", await upload.read())},
            )
        return Response(answer.content, answer.status_code, media_type="application/json")

    async def ready(_: Request) -> Response:
        return Response("ok")

    return Starlette(
        routes=[
            Route("/ready", ready),
            Route("/v1/models", models),
            Route("/v1/audio/transcriptions", transcriptions, methods=["POST"]),
        ]
    )


def test_a_server_that_does_not_stream_and_is_busy_at_first(
    inputs: Inputs, engine: RunningServer, in_process: Path, tmp_path: Path
) -> None:
    """Asked again without ``stream`` after its refusal, and again after its 429: the same
    subtitles as in process."""
    (tmp_path / "a.wav").write_bytes(inputs.coffee_wav)
    with app_server(older_server(engine.url)) as url:
        result = stenostack(
            "transcribe", str(tmp_path / "a.wav"), "--model", MODEL, "--server", url
        )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "a.srt").read_text() == (in_process / "a.srt").read_text()


def test_an_existing_output_is_kept_unless_overwrite(
    inputs: Inputs, engine: RunningServer, tmp_path: Path
) -> None:
    (tmp_path / "a.wav").write_bytes(inputs.coffee_wav)
    output = tmp_path / "a.srt"
    output.write_text("mine\n")
    before = output.stat().st_mtime_ns
    args = ("transcribe", str(tmp_path), "--model", MODEL, "--server", engine.url)

    kept = stenostack(*args)
    assert kept.returncode == 0, kept.stderr
    assert output.read_text() == "mine\n" and output.stat().st_mtime_ns == before
    assert f"{tmp_path / 'a.wav'}: skipped: {output} exists" in kept.stderr
    assert "0 transcribed, 1 skipped, 0 failed" in kept.stderr

    replaced = stenostack(*args, "--overwrite")
    assert replaced.returncode == 0, replaced.stderr
    assert word_error_rate(COFFEE_ORDER, srt_text(output.read_text())) <= MAX_WER
    assert "1 transcribed, 0 skipped, 0 failed" in replaced.stderr


def test_output_dir_mirrors_the_layout(
    inputs: Inputs, engine: RunningServer, tmp_path: Path
) -> None:
    source = tmp_path / "source"
    for folder in ("x", "y"):  # two a.wav: they must not land on one output
        (source / folder).mkdir(parents=True)
        (source / folder / "a.wav").write_bytes(inputs.coffee_wav)
    (source / "y" / "b.ogg").write_bytes(inputs.meeting_ogg)
    # Hidden files and folders are not searched (macOS leaves "._" files beside each one).
    (source / "x" / "._a.wav").write_bytes(b"\0\5\26\7")
    (source / ".cache").mkdir()
    (source / ".cache" / "c.wav").write_bytes(inputs.coffee_wav)
    out = tmp_path / "out"
    result = stenostack(
        "transcribe", str(source), "--model", MODEL, "--server", engine.url,
        "--output-dir", str(out), "--format", "vtt",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert written == ["x/a.vtt", "y/a.vtt", "y/b.vtt"]
    assert not list(source.rglob("*.vtt"))
    assert (out / "x" / "a.vtt").read_text() == (out / "y" / "a.vtt").read_text()


@pytest.mark.parametrize("where", ["in process", "server"])
def test_each_format_is_valid(
    where: str, inputs: Inputs, engine: RunningServer, tmp_path: Path
) -> None:
    (tmp_path / "a.wav").write_bytes(inputs.coffee_wav)
    server = ("--server", engine.url) if where == "server" else ()
    outputs: dict[str, str] = {}
    for fmt in ("vtt", "txt", "json", "verbose_json"):
        out = tmp_path / fmt
        extra = ("--word-timestamps",) if fmt == "verbose_json" else ()
        result = stenostack(
            "transcribe", str(tmp_path / "a.wav"), "--model", MODEL, *server,
            "--format", fmt, "--output-dir", str(out), *extra,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        (written,) = list(out.iterdir())
        outputs[fmt] = written.read_text()
        assert written.name == ("a.json" if fmt in ("json", "verbose_json") else f"a.{fmt}")

    vtt = outputs["vtt"]
    assert vtt.startswith("WEBVTT\n\n00:00:00.000 --> 00:00:0")
    assert word_error_rate(COFFEE_ORDER, srt_text(vtt.removeprefix("WEBVTT"))) <= MAX_WER
    text = outputs["txt"]
    assert text.endswith("\n") and word_error_rate(COFFEE_ORDER, text) <= MAX_WER
    assert json.loads(outputs["json"]) == {"text": text.removesuffix("\n")}
    verbose = json.loads(outputs["verbose_json"])
    assert verbose["task"] == "transcribe" and verbose["language"] == "english"
    assert verbose["text"] == text.removesuffix("\n")
    assert 4.0 < verbose["duration"] < 5.0
    words = verbose["words"]
    assert [w["word"].strip(".").lower() for w in words][:3] == ["i", "would", "like"]
    assert all(0 <= w["start"] <= w["end"] <= verbose["duration"] for w in words)
    assert len(verbose["segments"]) >= 1 and verbose["usage"]["seconds"] == 5


def test_in_process_and_server_write_the_same_verbose_json(
    inputs: Inputs, engine: RunningServer, tmp_path: Path
) -> None:
    (tmp_path / "a.wav").write_bytes(inputs.coffee_wav)
    bodies: list[str] = []
    for server in ((), ("--server", engine.url)):
        out = tmp_path / str(len(bodies))
        result = stenostack(
            "transcribe", str(tmp_path / "a.wav"), "--model", MODEL, *server,
            "--format", "verbose_json", "--word-timestamps", "--output-dir", str(out),
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        bodies.append((out / "a.json").read_text())
    assert bodies[0] == bodies[1]


class Tmux:
    """A detached tmux session on a private server, running one command in a 120x30 pane
    that stays open after it ends (so its last screen can be read)."""

    def __init__(self, command: list[str], cwd: Path) -> None:
        # Its own server, on a socket of its own (removed with it), never the user's.
        self._directory = Path(tempfile.mkdtemp(prefix="stenostack-tmux-"))
        self._socket = str(self._directory / "socket")
        line = f"cd {shlex.quote(str(cwd))} && {shlex.join(command)}; echo EXIT=$?; sleep 600"
        self._tmux("new-session", "-d", "-x", "120", "-y", "30", line)

    def _tmux(self, *args: str) -> str:
        return subprocess.run(
            [TMUX, "-S", self._socket, *args], check=True, capture_output=True, text=True
        ).stdout

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p")

    def close(self) -> None:
        subprocess.run([TMUX, "-S", self._socket, "kill-server"], capture_output=True)
        shutil.rmtree(self._directory, ignore_errors=True)


@contextmanager
def tmux(command: list[str], cwd: Path) -> Iterator[Tmux]:
    session = Tmux(command, cwd)
    try:
        yield session
    finally:
        session.close()


# A bar: "<name> <pct>%|<bar>| <done>/<total> s [...]".
BAR = re.compile(r"(\S+)\s+(\d+)%\|.*\|\s+([\d.]+)/([\d.]+) s")


def test_progress_bars_on_a_terminal(inputs: Inputs, tmp_path: Path) -> None:
    (tmp_path / "a.wav").write_bytes(inputs.coffee_wav)
    (tmp_path / "story.wav").write_bytes(inputs.story_wav)
    command = [sys.executable, "-m", "stenostack", "transcribe", "a.wav", "story.wav"]
    story_states: set[tuple[int, float]] = set()  # (percent, seconds done) seen on its bar
    overall_states: set[int] = set()
    with tmux([*command, "--model", MODEL], tmp_path) as session:
        deadline = time.monotonic() + CLI_TIMEOUT_S
        screen = ""
        while "EXIT=" not in screen:
            assert time.monotonic() < deadline, f"no end in sight:\n{screen}"
            screen = session.screen()
            for name, percent, done, _ in BAR.findall(screen):
                if name == "story.wav":
                    story_states.add((int(percent), float(done)))
                elif name == "files":  # "all 2 files"
                    overall_states.add(int(percent))
            time.sleep(0.1)
    # The story's bar was seen growing before it finished (its bar is gone once it is
    # done), and the bar over all files too.
    assert len(story_states) >= 2 and max(story_states)[0] > 0, (story_states, screen)
    assert all(percent < 100 for percent, _ in story_states)
    assert len({p for p in overall_states if p < 100}) >= 2, overall_states
    # The last screen: each file's line, the overall bar at 100 %, the summary, status 0.
    assert "a.wav -> a.srt (4.6 s audio in" in screen, screen
    assert re.search(r"story\.wav -> story\.srt \(\d+\.\d s audio in", screen), screen
    assert re.search(r"all 2 files\s+100%\|", screen), screen
    assert "2 transcribed, 0 skipped, 0 failed" in screen and "EXIT=0" in screen
    assert "Traceback" not in screen
    assert (
        word_error_rate(" ".join(STORY[:12]), srt_text((tmp_path / "story.srt").read_text())) < 0.3
    )


def test_without_a_terminal_one_plain_line_per_file(
    inputs: Inputs, engine: RunningServer, tmp_path: Path
) -> None:
    (tmp_path / "a.wav").write_bytes(inputs.coffee_wav)
    (tmp_path / "b.ogg").write_bytes(inputs.meeting_ogg)
    result = stenostack("transcribe", str(tmp_path), "--model", MODEL, "--server", engine.url)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 3, result.stderr  # two files and the summary
    assert re.fullmatch(
        rf"{re.escape(str(tmp_path / 'a.wav'))} -> .*a\.srt \(4\.6 s audio in \d+\.\d s\)", lines[0]
    )
    assert lines[1].startswith(f"{tmp_path / 'b.ogg'} -> ")
    assert not CONTROL.search(result.stderr), repr(result.stderr)


@pytest.mark.parametrize("where", ["in process", "server"])
def test_ctrl_c_abandons_the_file_in_progress_and_keeps_the_rest(
    where: str, inputs: Inputs, engine: RunningServer, tmp_path: Path
) -> None:
    (tmp_path / "1.wav").write_bytes(inputs.coffee_wav)
    (tmp_path / "2.wav").write_bytes(inputs.story_wav)
    (tmp_path / "3.wav").write_bytes(inputs.coffee_wav)
    server = ("--server", engine.url) if where == "server" else ()
    process = subprocess.Popen(
        [sys.executable, "-m", "stenostack", "transcribe", "1.wav", "2.wav", "3.wav",
         "--model", MODEL, *server],
        cwd=tmp_path, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    assert process.stderr is not None
    lines: list[str] = []
    first_done = threading.Event()

    def read() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            lines.append(line)
            if line.startswith("1.wav -> "):
                first_done.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert first_done.wait(CLI_TIMEOUT_S), "".join(lines)
        time.sleep(1.5)  # well into the minute-long second file
        assert not (tmp_path / "2.srt").exists(), "the second file ended too soon to interrupt"
        os.killpg(process.pid, signal.SIGINT)
        status = process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    reader.join(timeout=10)
    stderr = "".join(lines)
    assert status == 130, stderr
    assert (tmp_path / "1.srt").is_file()
    assert not (tmp_path / "2.srt").exists() and not (tmp_path / "3.srt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["1.srt", "1.wav", "2.wav", "3.wav"]
    assert "Traceback" not in stderr
    assert "interrupted: 1 transcribed, 0 skipped, 0 failed" in stderr
    assert "2.wav abandoned, nothing written for it" in stderr


def test_models_lists_the_bundled_names_and_a_servers(engine: RunningServer) -> None:
    local = stenostack("models")
    assert local.returncode == 0, local.stderr
    rows = {line.split()[0]: line for line in local.stdout.splitlines()[1:]}
    assert {"whisper-base", "whisper-tiny.en", "moonshine-base", "whisper-1"} <= set(rows)
    assert "whisper-ct2" in rows["whisper-tiny.en"] and "moonshine-onnx" in rows["moonshine-base"]
    assert "alias of whisper-base" in rows["whisper-1"]

    served = stenostack("models", "--server", engine.url)
    assert served.returncode == 0, served.stderr
    assert [line.split()[0] for line in served.stdout.splitlines()[1:]] == [MODEL]


def test_usage_errors_are_clear(engine: RunningServer, tmp_path: Path) -> None:
    missing = stenostack("transcribe", str(tmp_path / "nowhere.wav"))
    assert missing.returncode == 2
    assert f"{tmp_path / 'nowhere.wav'}: no such file or directory" in missing.stderr

    (tmp_path / "notes.txt").write_text("not audio, and not named as audio")
    nothing = stenostack("transcribe", str(tmp_path))
    assert nothing.returncode == 2
    assert "no audio or video files found in" in nothing.stderr

    (tmp_path / "a.wav").write_bytes(b"RIFF")
    closed = f"http://127.0.0.1:{free_port()}"
    unreachable = stenostack("transcribe", str(tmp_path / "a.wav"), "--server", closed)
    assert unreachable.returncode == 2
    assert f"cannot reach the server at {closed}" in unreachable.stderr
    listing = stenostack("models", "--server", closed)
    assert listing.returncode == 2 and f"cannot reach the server at {closed}" in listing.stderr

    unserved = stenostack("transcribe", str(tmp_path / "a.wav"), "--server", engine.url)
    assert unserved.returncode == 2  # the default model, whisper-1, is not served there
    assert f"does not serve 'whisper-1'; it serves: {MODEL}" in unserved.stderr

    (tmp_path / "a.mp3").write_bytes(b"ID3")
    clash = stenostack("transcribe", str(tmp_path))
    assert clash.returncode == 2
    assert f"{tmp_path / 'a.mp3'} and {tmp_path / 'a.wav'} would both be written to" in clash.stderr

    bad_flag = stenostack("transcribe", str(tmp_path / "a.wav"), "--format", "docx")
    assert bad_flag.returncode == 2 and "invalid choice: 'docx'" in bad_flag.stderr
    for result in (missing, nothing, unreachable, listing, unserved, clash, bad_flag):
        assert "Traceback" not in result.stderr
    assert not (tmp_path / "a.srt").exists()
