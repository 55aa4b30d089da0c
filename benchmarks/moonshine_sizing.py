"""The measurements behind Moonshine's defaults: input buckets, piece length, lanes, batches.

Run from the repository root, one part at a time (each prints a Markdown table)::

    python -m benchmarks.moonshine_sizing buckets [--real-dir DIR] [--clips 44]
    python -m benchmarks.moonshine_sizing window [--real-dir DIR] [--minutes 3]
    python -m benchmarks.moonshine_sizing lanes [--clips 16]
    python -m benchmarks.moonshine_sizing batch [--seconds 5]

- ``buckets``: with each piece encoded at its exact length, and padded with zeros to
  buckets of 0.25 to 4 s (``models/moonshine/input_sizing.py``): WER on short clips, the
  time for all the espeak-ng clips submitted at once, and WER and time on a long read;
- ``window``: WER and time on long continuous speech cut into pieces of at most 10 to 30 s
  (``models/moonshine/pieces.py``);
- ``lanes``: concurrent requests through the engine's scheduler with two lanes of one
  thread against one lane of two threads (``models/moonshine/model.py``);
- ``batch``: one encoder call and one decoding loop at growing batch sizes (the batch caps),
  and whether each row's text is the same as alone.

Speech: espeak-ng clips (``benchmarks.workloads``) and real recordings: Beckett (shipped
with moonshine-cpp), John F. Kennedy (``benchmarks.accuracy_vs_faster_whisper``'s pinned
sdist, when cached) and any ``name.wav`` with its transcript in ``name.txt`` in
``--real-dir`` (the figures used pocketsphinx 5.1.1's sdist's LibriVox clips,
``test/data/librivox``). Every file goes the engine's way: decoded, VAD, then the job.
"""

from __future__ import annotations

import argparse
import io
import random
import time
from collections.abc import Callable
from concurrent.futures import wait
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from tests.speech import compose, wav_bytes
from tests.texts import STORY
from tests.wer import error_rate

from benchmarks.accuracy_vs_faster_whisper import DEFAULT_CACHE, real_clips
from benchmarks.workloads import SENTENCES, short_clips
from stenostack.audio.decode import decode_audio
from stenostack.audio.samples import Speech, to_float32
from stenostack.engine.pipeline import prepare_audio
from stenostack.engine.scheduler import BatchScheduler
from stenostack.metrics import EngineMetrics
from stenostack.models.base import TranscriptionOptions
from stenostack.models.moonshine.decoding import RowRequest
from stenostack.models.moonshine.family import MOONSHINE_FAMILY
from stenostack.models.moonshine.input_sizing import BUCKETS, Buckets, uniform
from stenostack.models.moonshine.model import MoonshineModel
from stenostack.models.moonshine.pieces import CUT_SEARCH_SECONDS, MOONSHINE_PIECES
from stenostack.models.moonshine.steps import Decode, Encode
from stenostack.models.moonshine.units import FRAME_SAMPLES, FRAMES_PER_SECOND, SAMPLE_RATE
from stenostack.models.pieces import PieceShape

MAX_AUDIO_SECONDS = 3600
BECKETT = "Ever tried. Ever failed. No matter. Try again. Fail again. Fail better."
OPTIONS = TranscriptionOptions(language="en")


@dataclass
class Clip:
    text: str
    wav: bytes


def real_speech(real_dir: Path | None) -> list[Clip]:
    beckett = base_dir().parent.parent / "test-data"  # moonshine_cpp/models/base-en
    clips = [Clip(BECKETT, (beckett / "beckett.wav").read_bytes())]
    clips += [Clip(clip.text, clip.wav) for clip in real_clips(DEFAULT_CACHE)]
    if real_dir is not None:
        for wav in sorted(real_dir.glob("*.wav")):
            if wav.with_suffix(".txt").is_file() and wav.name not in ("jfk.wav", "beckett.wav"):
                clips.append(Clip(wav.with_suffix(".txt").read_text().strip(), wav.read_bytes()))
    return clips


def synthetic_speech(count: int) -> list[Clip]:
    return [Clip(clip.recording.text, clip.wav) for clip in short_clips(count, seed=1)]


def speech_of(wav: bytes, options: TranscriptionOptions = OPTIONS) -> Speech | None:
    audio = decode_audio(io.BytesIO(wav), SAMPLE_RATE, MAX_AUDIO_SECONDS)
    prepared = prepare_audio(audio, options)
    return None if prepared.is_silent else prepared.speech


def wer(model: MoonshineModel, clips: list[Clip], options: TranscriptionOptions = OPTIONS) -> float:
    texts = []
    for clip in clips:
        speech = speech_of(clip.wav, options)
        texts.append("" if speech is None else model.transcribe(speech, options).text)
    return 100 * error_rate("en", [clip.text for clip in clips], texts)


def base_dir() -> Path:
    return MOONSHINE_FAMILY.bundled["moonshine-base"]()


def load(
    pieces: PieceShape = MOONSHINE_PIECES, buckets: Buckets = BUCKETS, lanes: int = 2
) -> MoonshineModel:
    """moonshine-base on 2 threads, with the defaults unless given."""
    return MoonshineModel(base_dir(), cpu_threads=2, pieces=pieces, buckets=buckets, lanes=lanes)


# -- the parts -----------------------------------------------------------------------------


def buckets(args: argparse.Namespace) -> None:
    real, synthetic = real_speech(args.real_dir), synthetic_speech(args.clips)
    long_file = continuous(STORY + SENTENCES, args.minutes, seed=0)
    speeches = [s for clip in synthetic if (s := speech_of(clip.wav)) is not None]
    print(f"| bucket | real WER ({len(real)} clips) | espeak-ng WER ({len(synthetic)} clips) "
          f"| {len(speeches)} clips at once, s | {args.minutes} min file WER | s |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    rules = [("exact", uniform(1))]
    rules += [(f"{s} s", uniform(round(s * SAMPLE_RATE))) for s in (0.25, 0.5, 1, 2, 4)]
    rules += [("1, 2, 4 s", BUCKETS)]
    for label, buckets in rules:
        if args.only and label not in args.only:
            continue
        model = load(buckets=buckets)
        real_wer, synthetic_wer = wer(model, real), wer(model, synthetic)
        together = min(concurrent(model, speeches) for _ in range(args.runs))
        started = time.perf_counter()
        long_wer = wer(model, [long_file])
        print(f"| {label} | {real_wer:.2f} % | {synthetic_wer:.2f} % | {together:.2f} "
              f"| {long_wer:.2f} % | {time.perf_counter() - started:.1f} |")  # fmt: skip


def continuous(sentences: list[str], minutes: float, seed: int) -> Clip:
    """Read speech with only short pauses between sentences: no break cuts it."""
    rng = random.Random(seed)
    parts: list[str | float] = [0.3]
    while sum(p if isinstance(p, float) else len(p) / 14 for p in parts) < minutes * 60:
        parts += [rng.choice(sentences), rng.choice((0.3, 0.5, 0.8))]
    recording = compose(parts, noise_level=0.002)
    return Clip(recording.text, wav_bytes(recording.samples))


def joined(clips: list[Clip]) -> Clip:
    """Real clips end to end, with 0.3 s of silence between them."""
    gap = np.zeros(int(0.3 * SAMPLE_RATE), dtype=np.float32)
    audio: list[npt.NDArray[np.float32]] = []
    for clip in clips:
        decoded = decode_audio(io.BytesIO(clip.wav), SAMPLE_RATE, MAX_AUDIO_SECONDS)
        audio += [to_float32(decoded.samples), gap]
    return Clip(" ".join(clip.text for clip in clips), wav_bytes(np.concatenate(audio)))


def window(args: argparse.Namespace) -> None:
    files = {
        "espeak-ng": continuous(STORY + SENTENCES, args.minutes, seed=0),
        "real, joined": joined(real_speech(args.real_dir)),
    }
    text_only = TranscriptionOptions(language="en", segment_timestamps=False)
    print("| window | " + " | ".join(f"{name} WER | s" for name in files) + " |")
    print("|---|" + "---|---|" * len(files))
    for seconds in (10, 15, 20, 25, 30):
        shape = PieceShape(
            window=seconds * FRAMES_PER_SECOND,
            cut_search=min(CUT_SEARCH_SECONDS, seconds // 2) * FRAMES_PER_SECOND,
            unit=FRAME_SAMPLES,
            sample_rate=SAMPLE_RATE,
        )
        model = load(pieces=shape)
        cells = []
        for clip in files.values():
            started = time.perf_counter()
            rate = wer(model, [clip], text_only)
            cells.append(f"{rate:.2f} % | {time.perf_counter() - started:.1f}")
        print(f"| {seconds} s | " + " | ".join(cells) + " |")


def concurrent(model: MoonshineModel, speeches: list[Speech]) -> float:
    scheduler = BatchScheduler("moonshine", model, EngineMetrics(), gather_window_s=0.01)
    try:
        started = time.perf_counter()
        tickets = [scheduler.submit(model.start_transcription(s, OPTIONS)) for s in speeches]
        wait([ticket.future for ticket in tickets])
        return time.perf_counter() - started
    finally:
        scheduler.close()


def lanes(args: argparse.Namespace) -> None:
    speeches = [s for c in synthetic_speech(args.clips) if (s := speech_of(c.wav)) is not None]
    audio_s = sum(len(s.samples) for s in speeches) / SAMPLE_RATE
    long_clip = continuous(STORY, 2.0, seed=1)
    long_speech = speech_of(long_clip.wav)
    assert long_speech is not None
    print(f"| lanes x threads | {len(speeches)} clips at once | one clip alone | 2 min file |")
    print("|---|---|---|---|")
    for count in (2, 1):
        model = load(lanes=count)
        model.transcribe(speeches[0], OPTIONS)  # warm
        together = min(concurrent(model, speeches) for _ in range(args.runs))
        alone = min(timed(model.transcribe, speeches[0], OPTIONS) for _ in range(3))
        whole = min(concurrent(model, [long_speech]) for _ in range(args.runs))
        print(f"| {count} x {2 // count} | {together:.2f} s ({audio_s / together:.1f} audio s/s)"
              f" | {alone:.2f} s | {whole:.2f} s |")  # fmt: skip


def batch(args: argparse.Namespace) -> None:
    model = load()
    samples = int(args.seconds * SAMPLE_RATE)
    pieces = []
    for clip in synthetic_speech(64):
        speech = speech_of(clip.wav)
        if speech is not None and len(speech.samples) >= samples:
            pieces.append(speech.samples[:samples])
    pieces = pieces[:32]
    row = RowRequest(max_new_tokens=64, temperature=0.0, seed=0)
    alone = [
        model.run_batch([Decode(model.run_batch([Encode(p, samples)])[0], row)])[0].tokens
        for p in pieces
    ]
    print(f"{len(pieces)} pieces of {args.seconds} s")
    print("| rows | encode s | decode s | per row s | texts as alone |")
    print("|---|---|---|---|---|")
    for rows in (1, 2, 4, 8, 16, 32):
        chosen = [pieces[i % len(pieces)] for i in range(rows)]
        encodes = [Encode(p, samples) for p in chosen]
        encoded = model.run_batch(encodes)
        encode_s = min(timed(model.run_batch, encodes) for _ in range(2))
        started = time.perf_counter()
        decoded = model.run_batch([Decode(e, row) for e in encoded])
        decode_s = time.perf_counter() - started
        same = sum(d.tokens == alone[i % len(pieces)] for i, d in enumerate(decoded))
        print(f"| {rows} | {encode_s:.3f} | {decode_s:.3f} | {(encode_s + decode_s) / rows:.3f}"
              f" | {same}/{rows} |")  # fmt: skip


def timed(run: Callable[..., object], *args: object) -> float:
    started = time.perf_counter()
    run(*args)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("part", choices=("buckets", "window", "lanes", "batch"))
    parser.add_argument("--real-dir", type=Path, help="name.wav with name.txt: more real speech")
    parser.add_argument("--clips", type=int, default=44, help="espeak-ng clips")
    parser.add_argument("--minutes", type=float, default=3.0, help="of continuous speech")
    parser.add_argument("--seconds", type=float, default=5.0, help="piece length for batch")
    parser.add_argument("--runs", type=int, default=2, help="best of, for times")
    parser.add_argument("--only", nargs="+", help="buckets: only these rules, by label")
    args = parser.parse_args()
    {"buckets": buckets, "window": window, "lanes": lanes, "batch": batch}[args.part](args)


if __name__ == "__main__":
    main()
