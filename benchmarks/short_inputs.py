"""Short inputs against full padding: the same engine code, words and time, side by side.

Run from the repository root: ``python -m benchmarks.short_inputs [--clips 109]``. For each
bundled model it transcribes the same short clips (2-10 s, espeak-ng) twice in process, one
request at a time: with encoder inputs sized to each window (``InputSizing.ALWAYS``; not
the default, see ``stenostack.models.whisper.input_sizing``) and with every
window padded to 30 s, as Whisper was trained. It prints the word error rate and time of
both, the speed-up, and how many windows looped on a short input and were padded instead.
"""

from __future__ import annotations

import argparse
import io
import time

import jiwer
from tests.wer import normalise

from benchmarks.workloads import short_clips
from stenostack.audio.decode import decode_audio
from stenostack.engine.pipeline import prepare_audio
from stenostack.models.base import TranscriptionOptions
from stenostack.models.sources import resolve_model_dir
from stenostack.models.whisper.input_sizing import InputSizing
from stenostack.models.whisper.model import WhisperCT2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=int, default=109)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    clips = short_clips(args.clips, seed=1)
    references = [normalise(clip.recording.text) for clip in clips]
    options = TranscriptionOptions(language="en")
    seconds = sum(clip.duration for clip in clips)
    print(f"{len(clips)} clips, {seconds:.0f} s of audio, one request at a time, int8 on CPU")
    print(f"{'model':<16} {'inputs':<12} {'WER':>6} {'time s':>7} {'padded':>7}")
    for name in ("whisper-tiny.en", "whisper-base"):
        times = {}
        for short_inputs in (False, True):
            sizing = InputSizing.ALWAYS if short_inputs else InputSizing.NEVER
            model = WhisperCT2(
                resolve_model_dir(name), cpu_threads=args.threads, input_sizing=sizing
            )
            rate = model.audio_config.sample_rate
            prepared = [
                prepare_audio(decode_audio(io.BytesIO(c.wav), rate, 600), options) for c in clips
            ]
            model.transcribe(prepared[0].speech, options)  # warm up
            started = time.perf_counter()
            texts = [model.transcribe(p.speech, options).text for p in prepared]
            elapsed = time.perf_counter() - started
            times[short_inputs] = elapsed
            error_rate = jiwer.wer(references, [normalise(t) or "<empty>" for t in texts])
            label = "sized" if short_inputs else "padded 30 s"
            print(f"{name:<16} {label:<12} {error_rate:6.3f} {elapsed:7.2f} "
                  f"{model.padded_after_loop:7d}")  # fmt: skip
        print(f"{name:<16} speed-up of sized inputs: {times[False] / times[True]:.2f}x")


if __name__ == "__main__":
    main()
