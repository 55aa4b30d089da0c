"""How soon streamed text arrives: uploaded files over SSE, and live audio over the Realtime API.

Run from the repository root:

    python -m benchmarks.streaming_latency --model whisper-tiny.en

It starts one engine with the model and measures, over HTTP and WebSocket on loopback:

1. **A 5-minute file with ``stream=true``**: the time from sending the request to the first
   ``transcript.text.delta`` and to ``transcript.text.done``, beside the same file without
   streaming (the baseline: the whole answer at once), as ratios.
2. **Long files, first words** (``--long-minutes``): synthetic files of that many minutes
   streamed with ``stream=true``; the time to the first ``transcript.text.delta`` with the file
   decoded and searched for speech whole before the model starts (the baseline, with
   ``STENOSTACK_GROWING_SPEECH=0``) and with the speech handed on as it decodes (the
   default), side by side, from one run; each engine's peak memory (RSS) after the requests.
3. **Live audio**: utterances with pauses, sent as 24 kHz PCM16 at real-time pace in 20 ms
   pieces to ``/v1/realtime?intent=transcription`` with the default server VAD (500 ms of
   silence ends a turn). For each utterance: the delay from the moment its last speech
   sample was sent to its ``…transcription.completed`` event, split into turn detection
   (until ``speech_stopped``) and transcription (from there to ``completed``), beside the
   baseline of the same utterance uploaded as a file once it is over.
"""

from __future__ import annotations

import argparse
import base64
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field

import httpx
import numpy as np
from openai import OpenAI
from tests.realtime_client import realtime_session
from tests.servers import engine_server, openai_client, server_process
from tests.speech import RATE, Recording, Utterance, compose, raw_pcm, wav_bytes
from tests.texts import STORY
from tests.wer import word_error_rate

from benchmarks.workloads import long_files
from stenostack.engine.pipeline import GROWING_SPEECH_ENV

PCM_RATE = 24_000
PIECE_SECONDS = 0.02
UTTERANCES = [
    "I would like a large coffee with milk and no sugar.",
    "She finished the report and sent it to the whole team before noon.",
    "The weather will be cold and windy for the rest of the week.",
    "Our quarterly results were better than expected in every region.",
    "The meeting has been moved to Thursday afternoon.",
    "Please call me back after lunch.",
    "Turn left at the second traffic light and park behind the bank.",
    "The children walked to school along the river and counted the boats.",
    "He asked the mayor for a room and a hot meal for the night.",
    "They packed food, warm clothes and a lantern for the journey.",
]


def five_minute_story(seconds: float = 300.0) -> Recording:
    """The story read over and over, cut in a pause after ``seconds`` of audio."""
    parts: list[str | float] = [0.5]
    for index, sentence in enumerate(STORY * 4):
        parts += [sentence, 0.6 + (index % 3) * 0.4]
    story = compose(parts, noise_level=0.002)
    kept = [u for u in story.utterances if u.end <= seconds]
    end = int((kept[-1].end + 0.5) * RATE)
    return Recording(story.samples[:end], kept)


def sse_file(client: OpenAI, model: str, wav: bytes, runs: int) -> None:
    plain, first, done = [], [], []
    for _ in range(runs):
        started = time.perf_counter()
        client.audio.transcriptions.create(model=model, file=("story.wav", wav))
        plain.append(time.perf_counter() - started)
        started = time.perf_counter()
        arrivals = []
        for _event in client.audio.transcriptions.create(
            model=model, file=("story.wav", wav), stream=True
        ):
            arrivals.append(time.perf_counter() - started)
        first.append(arrivals[0])
        done.append(arrivals[-1])
    p, f, d = statistics.median(plain), statistics.median(first), statistics.median(done)
    print(f"\n5-minute file, {model}, median of {runs} runs (seconds)")
    print(
        "| without streaming: whole answer | stream: first delta | stream: done "
        "| first delta / whole answer | done / whole answer |"
    )
    print("|---|---|---|---|---|")
    print(f"| {p:.2f} | {f:.2f} | {d:.2f} | {f / p:.3f} | {d / p:.3f} |")


def long_file(minutes: float) -> bytes:
    """A WAV of ``minutes``: ten minutes of the long-file workload, repeated."""
    piece = long_files(1, minutes=min(minutes, 10.0), seed=3)[0].recording.samples
    repeats = max(round(minutes / (len(piece) / RATE / 60)), 1)
    return wav_bytes(np.concatenate([piece] * repeats))


def first_delta(client: OpenAI, model: str, wav: bytes) -> float:
    """Seconds from sending a streamed request to its first delta (the rest is dropped)."""
    started = time.perf_counter()
    stream = client.audio.transcriptions.create(model=model, file=("long.wav", wav), stream=True)
    try:
        for _event in stream:
            return time.perf_counter() - started
    finally:
        stream.response.close()  # the engine cancels the rest
    raise RuntimeError("the stream ended without a delta")


def peak_rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def long_first_words(model: str, minutes: list[float], runs: int) -> None:
    """First delta of long files, the whole-file path against the growing one."""
    files = {m: long_file(m) for m in minutes}
    longest = max(len(wav) for wav in files.values()) / 2 / RATE
    firsts: dict[tuple[str, float], float] = {}
    peaks: dict[str, float] = {}
    for path, growing in (("whole file first", "0"), ("as it decodes", "1")):
        command = [sys.executable, "-m", "stenostack", "serve", "--log-level", "warning"]
        command += ["--model", model, "--max-audio-seconds", str(int(longest) + 60)]
        command += ["--max-queued-audio-seconds", str(int(longest) * 4)]
        with server_process(command, env={GROWING_SPEECH_ENV: growing}) as server:
            client = openai_client(server.url, timeout=600)
            warm = long_file(0.1)
            client.audio.transcriptions.create(model=model, file=("w.wav", warm))
            for m in minutes:
                times = [first_delta(client, model, files[m]) for _ in range(runs)]
                firsts[(path, m)] = statistics.median(times)
            peaks[path] = peak_rss_mib(server.process.pid)
    print(f"\nLong files, {model}: first delta, median of {runs} (seconds)")
    print("| minutes | whole file first (baseline) | as it decodes | as it decodes / baseline |")
    print("|---|---|---|---|")
    for m in minutes:
        base, new = firsts[("whole file first", m)], firsts[("as it decodes", m)]
        print(f"| {m:g} | {base:.2f} | {new:.2f} | {new / base:.3f} |")
    print(
        f"peak engine memory (MiB): whole file first {peaks['whole file first']:.0f}, "
        f"as it decodes {peaks['as it decodes']:.0f}"
    )


def speech_end(recording: Recording, utterance: Utterance) -> float:
    """When the utterance's last audible sample is (espeak ends its clips with silence)."""
    start, end = int(utterance.start * RATE), int(utterance.end * RATE)
    loud = np.nonzero(np.abs(recording.samples[start:end]) > 0.02)[0]
    return (start + int(loud[-1])) / RATE


@dataclass
class LiveFigures:
    """Per utterance, in seconds: end of speech to ``speech_stopped`` (turn detection), from
    there to ``completed`` (transcription), and in all; start of speech to the turn's first
    ``delta`` (with interim results, while it is still being spoken); the baseline of the
    utterance uploaded once over; and each turn's WER."""

    detection: list[float] = field(default_factory=list)
    transcription: list[float] = field(default_factory=list)
    total: list[float] = field(default_factory=list)
    first_delta: list[float] = field(default_factory=list)
    deltas_before_stop: int = 0
    baseline: list[float] = field(default_factory=list)
    errors: list[float] = field(default_factory=list)


def live_turns(
    server_url: str, client: OpenAI, model: str, transcription: dict[str, object] | None = None
) -> LiveFigures:
    """Send ``UTTERANCES`` at real-time pace to one realtime session whose transcription
    settings are ``{"model": model, **transcription}``; time every turn."""
    parts: list[str | float] = [0.5]
    for text in UTTERANCES:
        parts += [text, 1.5]
    recording = compose(parts, noise_level=0.002)
    pcm = raw_pcm(recording.samples, rate=PCM_RATE)
    piece = int(PCM_RATE * PIECE_SECONDS) * 2
    sent_at: dict[int, float] = {}  # byte offset -> wall time it was sent

    with realtime_session(server_url) as session:
        session.recv()
        settings = {"model": model, **(transcription or {})}
        session.send(
            "session.update",
            session={"type": "transcription", "audio": {"input": {"transcription": settings}}},
        )
        updated = session.recv()
        assert updated["type"] == "session.updated", updated

        def pace() -> None:
            started = time.perf_counter()
            for index, offset in enumerate(range(0, len(pcm), piece)):
                time.sleep(max(started + index * PIECE_SECONDS - time.perf_counter(), 0))
                audio = base64.b64encode(pcm[offset : offset + piece]).decode()
                session.send("input_audio_buffer.append", audio=audio)
                sent_at[offset + piece] = time.perf_counter()

        sender = threading.Thread(target=pace)
        sender.start()
        arrivals: dict[tuple[str, str], float] = {}  # the first of each kind per item
        completed: dict[str, str] = {}
        while len(completed) < len(UTTERANCES):
            event = session.recv(timeout=60)
            if "item_id" in event:
                arrivals.setdefault((event["type"], event["item_id"]), time.perf_counter())
            if event["type"].endswith("transcription.completed"):
                completed[event["item_id"]] = event["transcript"]
        sender.join()
    items = [item for kind, item in arrivals if kind == "input_audio_buffer.committed"]
    items.sort(key=lambda item: arrivals[("input_audio_buffer.committed", item)])

    def wall_time_of(seconds: float) -> float:
        offset = int(seconds * PCM_RATE) * 2
        return sent_at[min(o for o in sent_at if o >= offset)]

    figures = LiveFigures()
    for item, utterance in zip(items, recording.utterances, strict=True):
        spoken = wall_time_of(speech_end(recording, utterance))
        started = wall_time_of(utterance.start)
        stopped = arrivals[("input_audio_buffer.speech_stopped", item)]
        done = arrivals[("conversation.item.input_audio_transcription.completed", item)]
        delta = arrivals.get(("conversation.item.input_audio_transcription.delta", item), done)
        figures.detection.append(stopped - spoken)
        figures.transcription.append(done - stopped)
        figures.total.append(done - spoken)
        figures.first_delta.append(delta - started)
        figures.deltas_before_stop += delta < stopped
        figures.errors.append(word_error_rate(utterance.text, completed[item]))
        clip = recording.samples[
            int(utterance.start * RATE) : int(utterance.end * RATE) + RATE // 4
        ]
        upload_started = time.perf_counter()
        client.audio.transcriptions.create(model=model, file=("clip.wav", wav_bytes(clip)))
        figures.baseline.append(time.perf_counter() - upload_started)
    return figures


def ms(values: list[float]) -> str:
    """Median / p95 in milliseconds."""
    ordered = sorted(values)
    p95 = ordered[min(int(0.95 * len(ordered)), len(ordered) - 1)]
    return f"{statistics.median(values) * 1000:.0f} / {p95 * 1000:.0f}"


def live_audio(server_url: str, client: OpenAI, model: str) -> None:
    figures = live_turns(server_url, client, model)
    print(
        f"\nLive audio, {model}: {len(figures.total)} utterances at real-time pace, server "
        "VAD silence 500 ms, median / p95 (ms)"
    )
    print(
        "| end of speech -> speech_stopped | speech_stopped -> completed "
        "| end of speech -> completed | baseline: upload the utterance once over "
        "| transcription / baseline | WER |"
    )
    print("|---|---|---|---|---|---|")
    ratio = statistics.median(figures.transcription) / statistics.median(figures.baseline)
    print(
        f"| {ms(figures.detection)} | {ms(figures.transcription)} | {ms(figures.total)} "
        f"| {ms(figures.baseline)} | {ratio:.2f} | {statistics.mean(figures.errors):.3f} |"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="whisper-tiny.en")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--long-minutes",
        type=float,
        nargs="*",
        default=[],
        help="only measure the first words of long files of these lengths (e.g. 10 60)",
    )
    args = parser.parse_args()
    if args.long_minutes:
        long_first_words(args.model, args.long_minutes, args.runs)
        return 0
    story = five_minute_story()
    print(f"5-minute file: {story.duration:.0f} s of audio")
    wav = wav_bytes(story.samples)
    with engine_server("--model", args.model) as server:
        client = openai_client(server.url, timeout=600)
        client.audio.transcriptions.create(
            model=args.model, file=("w.wav", wav_bytes(story.samples[: 5 * RATE]))
        )
        sse_file(client, args.model, wav, args.runs)
        live_audio(server.url, client, args.model)
        httpx.get(f"{server.url}/health")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
