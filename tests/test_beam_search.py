"""Beam search and seeded sampling, through real engines and the official client.

``beam`` serves the bundled models with ``--beam-size 5``; ``greedy`` serves whisper-tiny.en
with ``--beam-size 1``. Sampled decodes (a temperature above 0, or the fallback) draw from
a seed made from the request, so the same request gets the same text alone or batched.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from openai import OpenAI

from tests.servers import RunningServer, engine_server, metric, openai_client
from tests.speech import compose, noise, wav_bytes
from tests.texts import COFFEE_ORDER, MEETING_MOVED, SPANISH
from tests.wer import word_error_rate

# Hard to hear on purpose (fast, noisy): sampled at this temperature, the text varies with
# the draw, so a test that gets the same text twice shows the draw was the same.
HARD = "The quick brown fox jumps over the lazy dog near the riverbank at dawn."
SAMPLING_TEMPERATURE = 0.7
NOISE_LEVEL = 0.05

CLIPS = [
    "Please call me back after lunch.",
    "Turn left at the second traffic light and park behind the bank.",
    "Our quarterly results were better than expected in every region.",
    "She finished the report and sent it to the whole team before noon.",
]


@pytest.fixture(scope="module")
def beam() -> Iterator[RunningServer]:
    with engine_server("--beam-size", "5") as server:
        yield server


@pytest.fixture(scope="module")
def greedy() -> Iterator[RunningServer]:
    with engine_server("--model", "whisper-tiny.en", "--beam-size", "1") as server:
        yield server


def client_of(server: RunningServer) -> OpenAI:
    return openai_client(server.url, timeout=300)


def hard_clip(lead_seconds: float) -> bytes:
    """``HARD``, fast and under noise, after ``lead_seconds`` of quiet."""
    recording = compose([lead_seconds, HARD, 0.3], speed=175)
    noisy = recording.samples + noise(recording.duration, NOISE_LEVEL)[: len(recording.samples)]
    return wav_bytes(np.clip(noisy, -1, 1).astype(np.float32))


def test_beam_search_serves_english_and_spanish(beam: RunningServer) -> None:
    client = client_of(beam)
    english = wav_bytes(compose([0.3, COFFEE_ORDER, 0.3]).samples)
    for model in ("whisper-tiny.en", "whisper-base"):
        text = client.audio.transcriptions.create(model=model, file=("a.wav", english)).text
        assert word_error_rate(COFFEE_ORDER, text) <= 0.1, (model, text)
    spanish = wav_bytes(compose([0.3, SPANISH, 0.3], voice="es").samples)
    result = client.audio.transcriptions.create(
        model="whisper-base", file=("a.wav", spanish), response_format="verbose_json"
    )
    assert result.language == "spanish"
    assert word_error_rate(SPANISH, result.text) <= 0.2, result.text


def test_models_list_the_search_in_force(beam: RunningServer, greedy: RunningServer) -> None:
    for server, size in ((beam, 5), (greedy, 1)):
        card = httpx.get(f"{server.url}/v1/models/whisper-tiny.en", timeout=10).json()
        decoding = card["capabilities"]["decoding"]
        assert decoding == {"beam_size": size, "best_of": 5, "patience": 1.0, "length_penalty": 1.0}


def test_greedy_and_beam_engines_both_hear_the_words(
    beam: RunningServer, greedy: RunningServer
) -> None:
    clip = wav_bytes(compose([0.3, MEETING_MOVED, 0.3]).samples)
    for server in (beam, greedy):
        text = (
            client_of(server)
            .audio.transcriptions.create(model="whisper-tiny.en", file=("a.wav", clip))
            .text
        )
        assert word_error_rate(MEETING_MOVED, text) <= 0.1, text


def test_concurrent_beam_requests_share_decoder_calls(beam: RunningServer) -> None:
    model = "whisper-tiny.en"
    client = client_of(beam)
    clips = [wav_bytes(compose([0.3, text, 0.3]).samples) for text in CLIPS]
    alone = [client.audio.transcriptions.create(model=model, file=("a.wav", c)).text for c in clips]
    calls_before = metric(beam, "stenostack_batch_size_count", model=model, step="Generate")
    decodes_before = metric(beam, "stenostack_batch_size_sum", model=model, step="Generate")
    barrier = threading.Barrier(len(clips))

    def together(wav: bytes) -> str:
        barrier.wait()
        return client.audio.transcriptions.create(model=model, file=("a.wav", wav)).text

    with ThreadPoolExecutor(max_workers=len(clips)) as pool:
        batched = list(pool.map(together, clips))
    calls = metric(beam, "stenostack_batch_size_count", model=model, step="Generate")
    decodes = metric(beam, "stenostack_batch_size_sum", model=model, step="Generate")
    assert decodes - decodes_before >= len(clips)
    # Fewer beam-search calls than windows decoded: requests shared them.
    assert calls - calls_before < decodes - decodes_before, (calls, decodes)
    assert batched == alone
    for reference, text in zip(CLIPS, batched, strict=True):
        assert word_error_rate(reference, text) <= 0.2, text


def test_same_sampled_request_same_text_alone_or_among_others(beam: RunningServer) -> None:
    model = "whisper-tiny.en"
    client = client_of(beam)

    def sampled(wav: bytes) -> str:
        return client.audio.transcriptions.create(
            model=model, file=("a.wav", wav), temperature=SAMPLING_TEMPERATURE
        ).text

    clips = [hard_clip(lead) for lead in (0.3, 0.35, 0.4, 0.45)]
    first = [sampled(wav) for wav in clips]
    again = [sampled(wav) for wav in clips]
    assert again == first
    # Different audio draws differently: the equality above is not sampling that is off.
    assert len(set(first)) > 1, first

    others = [wav_bytes(compose([0.3, text, 0.3]).samples) for text in CLIPS]
    barrier = threading.Barrier(len(clips) + len(others))

    def together(wav: bytes, temperature: float) -> str:
        barrier.wait()
        return client.audio.transcriptions.create(
            model=model, file=("a.wav", wav), temperature=temperature
        ).text

    work = [(wav, SAMPLING_TEMPERATURE) for wav in clips] + [(wav, 0.0) for wav in others]
    with ThreadPoolExecutor(max_workers=len(work)) as pool:
        results = list(pool.map(lambda item: together(*item), work))
    assert results[: len(clips)] == first


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--beam-size", "0", "beam size must be at least 1"),
        ("--best-of", "0", "best-of must be at least 1"),
        ("--patience", "0", "patience must be above 0"),
    ],
)
def test_bad_search_settings_are_refused_at_start(flag: str, value: str, message: str) -> None:
    finished = subprocess.run(
        [sys.executable, "-m", "stenostack", "serve", flag, value],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert finished.returncode == 2
    assert message in finished.stderr, finished.stderr
