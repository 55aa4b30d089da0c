"""Moonshine on ONNX Runtime: English speech to text, batched across requests.

The speech is cut at pauses into pieces of at most one window (:mod:`.pieces`), each heard
whole: encoded once, at its length rounded up to a bucket (:mod:`.input_sizing`), then
decoded token by token (:mod:`.decoding`). Pieces run side by side
(:mod:`stenostack.models.side_by_side`) and their text is handed on in order
(:mod:`stenostack.models.assembly`), one segment per piece. Every model call is a step
(:mod:`.steps`) that the engine batches with other requests' steps of the same shape.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np

from stenostack.audio.samples import Speech
from stenostack.models.assembly import TranscriptAssembly, WindowResult
from stenostack.models.base import (
    AudioConfig,
    Capabilities,
    DecodingSettings,
    DeltaSink,
    ModelStep,
    Placement,
    Segment,
    TokenLogprob,
    TranscriptionJob,
    TranscriptionOptions,
)
from stenostack.models.compression import compression_ratio
from stenostack.models.moonshine.decoding import Decoded, RowRequest, holds_words, token_limit
from stenostack.models.moonshine.input_sizing import BUCKETS, Buckets, input_samples
from stenostack.models.moonshine.pieces import MOONSHINE_PIECES
from stenostack.models.moonshine.sessions import MoonshineSessions, providers_for
from stenostack.models.moonshine.steps import BatchCaps, Decode, Encode, MoonshineStepRunner
from stenostack.models.moonshine.tokenizer import BinTokenizer
from stenostack.models.moonshine.units import (
    FRAME_SAMPLES,
    FRAMES_PER_SECOND,
    POSITIONS_PER_SECOND,
    SAMPLE_RATE,
    encoder_positions,
)
from stenostack.models.pieces import Piece, PiecePlan, PieceShape
from stenostack.models.piecewise import PiecewiseModel
from stenostack.models.seeds import derive_seed
from stenostack.models.side_by_side import PieceJob, side_by_side

# The reference transcribes no less than this (moonshine-onnx's ``assert_audio_size``);
# a shorter piece (the tail of a cut) holds no word.
MIN_PIECE_SAMPLES = SAMPLE_RATE // 10
# The most pieces of one file decoded side by side: their steps share calls.
PIECES_SIDE_BY_SIDE = 16

# CPU threads are split into this many lanes, each running its own batch, once there are
# at least two (``python -m benchmarks.moonshine_sizing lanes``, 2 cores shared with other
# work): 44 espeak-ng clips submitted at once took 9.2 and 10.6 s on two lanes of one
# thread against 9.9 and 12.6 s on one lane of two. A request alone is the other way round
# (a clip 0.46 against 0.37 s, a 2-minute file 10.6 against 8.7 s): one lane idles.
CPU_LANES = 2

# Batch caps on a CPU (``benchmarks.moonshine_sizing batch``, one thread, pieces of 5 s):
# the encoder gains little from batching (0.080 s a row alone, 0.072 at 8, 0.077 at 16,
# 0.102 at 32; at 30 s, 0.65 s alone and 0.74 a row at 4 and 8), so a call takes up to 8 rows
# and 40 s of audio. Decoding gains much: per 5 s row 0.78 s alone, 0.37 at 4, 0.23 at 8,
# 0.13 at 16, 0.10 at 32; per 30 s row 4.2 s alone, 1.1 at 8, 0.8 at 16. Its memory grows
# with rows times encoder positions (peak +0.47 GB for one 30 s row, most of it the 8-bit
# weights widened at each call; +0.73 GB for 8, +0.97 GB for 16), so a call takes up to 32
# rows and 8 rows of 30 s. Every row's text was the same as alone at every size.
CPU_CAPS = BatchCaps(
    encode_rows=8,
    encode_samples=40 * SAMPLE_RATE,
    decode_rows=32,
    decode_positions=8 * encoder_positions(30 * SAMPLE_RATE),
)
# Not measured: a GPU is taken to gain from larger batches, as it does for Whisper.
GPU_CAPS = BatchCaps(
    encode_rows=32,
    encode_samples=32 * 30 * SAMPLE_RATE,
    decode_rows=64,
    decode_positions=64 * encoder_positions(30 * SAMPLE_RATE),
)


class MoonshineModel(PiecewiseModel):
    """Moonshine (Useful Sensors, MIT licence) from its ONNX files, on CPU or CUDA.

    English only. Moonshine takes no prompt: a request's ``prompt`` is ignored. Temperature
    0 decodes greedily, as the reference does, whatever the server's beam size; above 0
    each piece samples at that temperature from a seed made of its audio and the request,
    so the same request gives the same text. Word timestamps are refused (400 naming
    ``timestamp_granularities[]``); a segment is a piece, timed on the speech.
    """

    capabilities = Capabilities(
        translation=False,
        language_detection=False,
        word_timestamps=False,
        segment_timestamps=True,
        logprobs=True,
    )
    # A live turn's re-runs are cheap: a pass costs in proportion to its audio (rounded up
    # to a bucket, see .input_sizing), where Whisper pads every pass to 30 s.
    interim_results_by_default = True

    def __init__(
        self,
        model_dir: Path,
        *,
        device: str = "cpu",
        cpu_threads: int = 0,
        pieces: PieceShape = MOONSHINE_PIECES,
        buckets: Buckets = BUCKETS,
        lanes: int | None = None,
    ) -> None:
        """``pieces``, ``buckets`` and ``lanes`` are for the benchmarks that chose their
        defaults (``benchmarks.moonshine_sizing``)."""
        self.model_dir = model_dir
        self.device = device
        self.supported_languages = {"en": "english"}
        self.audio_config = AudioConfig(
            sample_rate=SAMPLE_RATE,
            max_clip_seconds=pieces.window * pieces.unit / SAMPLE_RATE,
            frames_per_second=FRAMES_PER_SECOND,
        )
        self._pieces = pieces
        self._buckets = buckets
        threads = cpu_threads or len(os.sched_getaffinity(0))
        providers = providers_for(device)
        on_cpu = providers[0] == "CPUExecutionProvider"  # also where CUDA was not to be had
        if lanes is None:
            lanes = CPU_LANES if on_cpu and threads >= CPU_LANES else 1
        self.lanes = lanes
        self._tokenizer = BinTokenizer.from_file(model_dir / "tokenizer.bin")
        sessions = MoonshineSessions(model_dir, providers, max(threads // self.lanes, 1))
        self._runner = MoonshineStepRunner(
            sessions, self._tokenizer.vocab_size, CPU_CAPS if on_cpu else GPU_CAPS
        )

    @classmethod
    def load(
        cls,
        model_dir: Path,
        placement: Placement,
        cpu_threads: int,
        decoding: DecodingSettings,
    ) -> Self:
        """The registry's loader: ``compute_type`` and ``decoding`` do not apply (the files
        fix the weights' type, and Moonshine decodes greedily)."""
        return cls(model_dir, device=placement.device, cpu_threads=cpu_threads)

    # -- the model interface -------------------------------------------------------------

    def run_batch(self, steps: Sequence[ModelStep]) -> list[Any]:
        return self._runner.run(steps)

    def max_batch_size(self, step: ModelStep) -> int:
        return self._runner.max_batch_size(step)

    # -- one job -------------------------------------------------------------------------

    def _transcription(
        self,
        speech_until: Callable[[int], Speech],
        is_final: Callable[[int], bool],
        options: TranscriptionOptions,
        on_delta: DeltaSink | None,
    ) -> TranscriptionJob:
        """The job; ``speech_until(end)`` is the speech with at least its first ``end``
        samples final, ``is_final(end)`` whether it would return at once."""
        plan = PiecePlan(
            speech_until, is_final, self._pieces, keep_breaks=options.segment_timestamps
        )
        transcript = TranscriptAssembly("en", options, on_delta, POSITIONS_PER_SECOND)

        def next_piece(wait: bool, index: int) -> PieceJob | None:
            piece = plan.next(wait)
            if piece is None:
                return None
            return self._piece(piece, options, functools.partial(transcript.add_window, index))

        yield from side_by_side(next_piece, transcript.finish, PIECES_SIDE_BY_SIDE)
        whole = speech_until(np.iinfo(np.int64).max)
        return transcript.result(len(whole.samples) / SAMPLE_RATE, 0)

    def _piece(
        self, piece: Piece, options: TranscriptionOptions, emit: Callable[[WindowResult], None]
    ) -> PieceJob:
        """One piece: encoded, decoded, handed to ``emit`` as one segment."""
        audio = piece.speech.samples[piece.start * FRAME_SAMPLES : piece.end * FRAME_SAMPLES]
        if len(audio) < MIN_PIECE_SAMPLES:
            return
        # What a sampled piece draws from: the same for the same audio, place and request.
        seed = derive_seed(
            audio.tobytes(), piece.start.to_bytes(8, "little"), repr(options.temperature).encode()
        )
        row = RowRequest(token_limit(len(audio)), options.temperature, seed)
        encoded = yield Encode(audio, input_samples(len(audio), self._buckets))
        decoded: Decoded = yield Decode(encoded, row)
        if not decoded.tokens:
            # Moonshine may end a piece of speech before its first word: decode it again
            # without that choice, and keep the words if they are words (see .decoding).
            retry: Decoded = yield Decode(encoded, dataclasses.replace(row, may_end_first=False))
            if holds_words(retry, len(audio)):
                decoded = retry
        emit(self._result(piece, decoded, options.temperature))

    def _result(self, piece: Piece, decoded: Decoded, temperature: float) -> WindowResult:
        text = self._tokenizer.decode(decoded.tokens)
        if not text:
            return WindowResult([], [])
        scores = decoded.logprobs
        if decoded.end_logprob is not None:
            scores = [*scores, decoded.end_logprob]
        segment = Segment(
            id=0,
            seek=piece.start,
            start=round(piece.start / FRAMES_PER_SECOND, 3),
            end=round(piece.end / FRAMES_PER_SECOND, 3),
            text=" " + text,
            tokens=list(decoded.tokens),
            temperature=temperature,
            avg_logprob=sum(scores) / len(scores),
            compression_ratio=compression_ratio(text),
            no_speech_prob=0.0,
        )
        logprobs = [
            TokenLogprob(
                self._tokenizer.token_text(token),
                logprob,
                list(self._tokenizer.token_bytes(token)),
            )
            for token, logprob in zip(decoded.tokens, decoded.logprobs, strict=True)
        ]
        return WindowResult([segment], logprobs)
