"""Speaker diarization from local segmentation and voice prints, in the way of pyannote's
speaker-diarization-3.x pipeline, on ONNX Runtime and numpy.

1. Windows of 10 s, every ``window_step_seconds``, go through the segmentation model
   (:mod:`.segmentation`): up to three local speakers per window, overlap included.
2. Each local speaker's speech in a window (where they speak alone, if long enough) gets a
   voice print (:mod:`.voice_encoder`), all of a batch of windows in one encoder call.
3. The voice prints heard long and clean enough are clustered into speakers
   (:mod:`.clustering`); then every window's local speakers go to distinct speakers.
4. Each frame's speakers are the ones with the most votes from the windows that saw it,
   as many as those windows heard at once on average.

Memory stays bounded on long recordings: windows are segmented and voiced in batches,
and what is kept per window is its frames' activity (3 booleans a frame) and up to three
voice prints.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from stenostack.audio.samples import Int16Audio
from stenostack.models.diarization.base import (
    ANY_COUNT,
    Diarization,
    KnownSpeaker,
    SpeakerCount,
    SpeakerDiarizer,
    SpeakerTurn,
    UnusableVoice,
    VoicePrint,
)
from stenostack.models.diarization.clustering import (
    assign_local_speakers,
    centroids,
    cluster_voices,
    match_known,
    unit,
)
from stenostack.models.diarization.segmentation import (
    FRAME_CENTRE_SAMPLES,
    FRAME_STEP_SAMPLES,
    FRAMES_PER_WINDOW,
    LOCAL_SPEAKERS,
    SAMPLE_RATE,
    LocalActivity,
    SpeakerSegmentation,
    WindowPlan,
)
from stenostack.models.diarization.voice_encoder import VoiceEncoder

# A frame's own samples: the FRAME_STEP_SAMPLES around its centre.
FRAME_FIRST_SAMPLE = FRAME_CENTRE_SAMPLES - FRAME_STEP_SAMPLES // 2


@dataclass(frozen=True)
class DiarizationSettings:
    """The pipeline's knobs; the defaults are measured (``benchmarks/diarization.py``)."""

    # Windows overlap by 10 s minus this: more overlap votes more, at a cost in time.
    window_step_seconds: float = 5.0
    # Windows voiced per batch (one voice encoder call), and segmented per call: the
    # segmentation model's activations take about 25 MB a window, so its calls stay small.
    windows_per_batch: int = 16
    windows_per_segmentation_call: int = 4
    # A local speaker heard less than this in a window is ignored there.
    min_voice_seconds: float = 0.2
    # Voice prints of at least this much speech, alone, decide who the speakers are.
    min_clean_seconds: float = 1.0
    # A voice print hears at most this much of a local speaker in a window (the most
    # central): the voice encoder's cost grows with what it hears.
    max_voice_seconds: float = 3.0
    # Voices closer than this (Euclidean, unit vectors) are one speaker.
    cluster_distance: float = 0.8
    # Clusters of fewer voice prints are absorbed by the nearest larger one.
    min_cluster_size: int = 2
    # A speaker is a known one if their voices are at least this alike (cosine).
    known_similarity: float = 0.7
    # A reference clip needs this much speech of one voice.
    min_reference_seconds: float = 1.0
    # Same-speaker turns closer than this are one turn.
    join_gap_seconds: float = 0.1

    def frames(self, seconds: float) -> int:
        return round(seconds * SAMPLE_RATE / FRAME_STEP_SAMPLES)


@dataclass
class _Voices:
    """The voice prints of a recording's local speakers, and whose they are."""

    prints: list[VoicePrint]
    owners: list[tuple[int, int]]  # (window, local speaker)
    clean: list[bool]


class SegmentationDiarizer(SpeakerDiarizer):
    """segmentation-3.0 for who speaks when in each window, voice prints to link windows."""

    sample_rate = SAMPLE_RATE

    def __init__(
        self,
        segmentation: SpeakerSegmentation,
        encoder: VoiceEncoder,
        settings: DiarizationSettings = DiarizationSettings(),
    ) -> None:
        self._segmentation = segmentation
        self._encoder = encoder
        self.settings = settings

    def voice_print(self, samples: Int16Audio) -> VoicePrint:
        plan = WindowPlan(len(samples), self.settings.frames(self.settings.window_step_seconds))
        best: npt.NDArray[np.float32] | None = None
        for window in range(plan.count):
            piece = plan.cut(samples, window)
            activity = self._segmentation.run(piece[None])[0]
            alone = activity & (activity.sum(axis=1, keepdims=True) == 1)
            main = int(np.argmax(alone.sum(axis=0)))
            speech = _frames_audio(piece, alone[:, main])
            if best is None or len(speech) > len(best):
                best = speech
        if best is None or len(best) < self.settings.min_reference_seconds * SAMPLE_RATE:
            raise UnusableVoice(
                f"it holds less than {self.settings.min_reference_seconds:g} s of one voice"
            )
        voice: VoicePrint = unit(self._encoder.embed_utterances([best]))[0]
        return voice

    def diarize(
        self,
        samples: Int16Audio,
        count: SpeakerCount = ANY_COUNT,
        known: Sequence[KnownSpeaker] = (),
        stop: threading.Event | None = None,
    ) -> Diarization:
        if len(samples) == 0:
            return Diarization([])
        plan = WindowPlan(len(samples), self.settings.frames(self.settings.window_step_seconds))
        activity = np.zeros((plan.count, FRAMES_PER_WINDOW, LOCAL_SPEAKERS), dtype=bool)
        voices = _Voices([], [], [])
        per_call = self.settings.windows_per_segmentation_call
        for windows in _batches(plan.count, self.settings.windows_per_batch):
            if stop is not None and stop.is_set():
                return Diarization([])
            cut = np.stack([plan.cut(samples, window) for window in windows])
            for first in range(0, len(windows), per_call):
                called = windows[first : first + per_call]
                activity[called] = self._segmentation.run(cut[first : first + per_call])
            self._voice(windows, cut, activity[windows], voices)
        if not voices.prints:
            return Diarization([])
        prints = np.stack(voices.prints)
        clean = np.array(voices.clean)
        if not clean.any():
            clean[:] = True  # nobody heard long alone: go by what there is
        labels = cluster_voices(
            prints[clean], self.settings.cluster_distance, count, self.settings.min_cluster_size
        )
        centres = centroids(prints[clean], labels)
        speaker_of = self._assign(voices.owners, prints @ centres.T)
        turns = self._turns(plan, activity, speaker_of, len(centres))
        names = {}
        if known:
            matches = match_known(
                centres, np.stack([k.voice for k in known]), self.settings.known_similarity
            )
            names = {speaker: known[index].name for speaker, index in matches.items()}
        return Diarization(turns, names)

    def _voice(
        self,
        windows: list[int],
        cut: npt.NDArray[np.float32],
        activity: LocalActivity,
        voices: _Voices,
    ) -> None:
        """Voice prints of the local speakers heard long enough in a batch of windows."""
        min_frames = self.settings.frames(self.settings.min_voice_seconds)
        clean_frames = self.settings.frames(self.settings.min_clean_seconds)
        max_frames = self.settings.frames(self.settings.max_voice_seconds)
        utterances = []
        for window, piece, frames in zip(windows, cut, activity, strict=True):
            alone = frames & (frames.sum(axis=1, keepdims=True) == 1)
            for local in range(LOCAL_SPEAKERS):
                if frames[:, local].sum() < min_frames:
                    continue
                is_clean = bool(alone[:, local].sum() >= clean_frames)
                chosen = alone[:, local] if is_clean else frames[:, local]
                chosen = _most_central(chosen, max_frames)
                utterances.append(_frames_audio(piece, chosen))
                voices.owners.append((window, local))
                voices.clean.append(is_clean)
        if utterances:
            voices.prints += list(unit(self._encoder.embed_utterances(utterances)))

    @staticmethod
    def _assign(
        owners: list[tuple[int, int]], similarity: npt.NDArray[np.float32]
    ) -> dict[tuple[int, int], int]:
        """(window, local speaker) -> speaker, distinct within each window."""
        by_window: dict[int, list[int]] = {}
        for row, (window, _) in enumerate(owners):
            by_window.setdefault(window, []).append(row)
        speaker_of = {}
        for rows in by_window.values():
            for row, speaker in zip(rows, assign_local_speakers(similarity[rows]), strict=True):
                speaker_of[owners[row]] = int(speaker)
        return speaker_of

    def _turns(
        self,
        plan: WindowPlan,
        activity: LocalActivity,
        speaker_of: dict[tuple[int, int], int],
        speakers: int,
    ) -> list[SpeakerTurn]:
        """Each frame's speakers by the windows' votes, as turns in time order."""
        total = plan.total_frames
        votes = np.zeros((total, speakers), dtype=np.float32)
        heard_at_once = np.zeros(total, dtype=np.float32)
        coverage = np.zeros(total, dtype=np.float32)
        # A window's middle is surer than its edges, which hear half a context.
        weight = np.hamming(FRAMES_PER_WINDOW).astype(np.float32)
        for window in range(plan.count):
            first = window * plan.step_frames
            frames = min(FRAMES_PER_WINDOW, total - first)
            if frames <= 0:
                break
            local = activity[window, :frames]
            coverage[first : first + frames] += weight[:frames]
            heard_at_once[first : first + frames] += local.sum(axis=1) * weight[:frames]
            for speaker_index in range(LOCAL_SPEAKERS):
                speaker = speaker_of.get((window, speaker_index))
                if speaker is not None:
                    votes[first : first + frames, speaker] += (
                        local[:, speaker_index] * weight[:frames]
                    )
        at_once = np.rint(heard_at_once / np.maximum(coverage, 1e-6)).astype(np.int64)
        ranked = np.argsort(-votes, axis=1)
        rank_of = np.argsort(ranked, axis=1)
        speaking = (rank_of < at_once[:, None]) & (votes > 0)
        return self._runs(speaking, plan.samples)

    def _runs(self, speaking: npt.NDArray[np.bool_], samples: int) -> list[SpeakerTurn]:
        join_frames = self.settings.frames(self.settings.join_gap_seconds)
        end_seconds = samples / SAMPLE_RATE
        turns = []
        for speaker in range(speaking.shape[1]):
            for first, last in _spans(speaking[:, speaker], join_frames):
                start = (first * FRAME_STEP_SAMPLES + FRAME_FIRST_SAMPLE) / SAMPLE_RATE
                end = (last * FRAME_STEP_SAMPLES + FRAME_FIRST_SAMPLE) / SAMPLE_RATE
                turns.append(SpeakerTurn(round(start, 3), round(min(end, end_seconds), 3), speaker))
        turns.sort(key=lambda turn: (turn.start, turn.end))
        return turns


def _batches(count: int, size: int) -> Iterator[list[int]]:
    for first in range(0, count, size):
        yield list(range(first, min(first + size, count)))


def _spans(active: npt.NDArray[np.bool_], join_frames: int) -> list[tuple[int, int]]:
    """[first, end) frame ranges where ``active``, gaps of up to ``join_frames`` joined."""
    edges = np.diff(np.concatenate([[0], active.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    spans: list[tuple[int, int]] = []
    for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
        if spans and start - spans[-1][1] <= join_frames:
            spans[-1] = (spans[-1][0], end)
        else:
            spans.append((start, end))
    return spans


def _most_central(frames: npt.NDArray[np.bool_], most: int) -> npt.NDArray[np.bool_]:
    """Of the chosen frames, the ``most`` nearest the window's middle."""
    chosen = np.flatnonzero(frames)
    if len(chosen) <= most:
        return frames
    nearest = chosen[np.argsort(np.abs(chosen - len(frames) // 2), kind="stable")[:most]]
    central = np.zeros_like(frames)
    central[nearest] = True
    return central


def _frames_audio(
    window: npt.NDArray[np.float32], frames: npt.NDArray[np.bool_]
) -> npt.NDArray[np.float32]:
    """The window's samples in the chosen frames, end to end."""
    mask = np.repeat(frames, FRAME_STEP_SAMPLES)
    mask = np.concatenate([np.zeros(FRAME_FIRST_SAMPLE, dtype=bool), mask])[: len(window)]
    return window[: len(mask)][mask]
