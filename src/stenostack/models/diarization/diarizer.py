"""Speaker diarization from local segmentation and voice prints, in the way of pyannote's
speaker-diarization-3.x pipeline, on ONNX Runtime and numpy.

1. Windows of 10 s, every ``window_step_seconds``, go through the segmentation model
   (:mod:`.segmentation`): up to three local speakers per window, overlap included.
2. Each local speaker's speech in a window is cut into stretches of at most 3 s, and each
   stretch gets a voice print (:mod:`.voice_encoder`; from where they speak alone, if that
   is long enough), all of a batch of windows in one encoder call. Stretches, not whole
   local speakers: the segmentation model may hear two alike voices in one window as one.
3. The voice prints heard long and clean enough are clustered into speakers
   (:mod:`.clustering`); then every stretch goes to the speaker its voice is most like.
4. Each frame's speakers are the ones with the most votes from the windows that saw it,
   as many as those windows heard at once on average.

Memory stays bounded on long recordings: windows are segmented and voiced in batches,
and what is kept per window is its frames' activity (3 booleans a frame) and its stretches'
voice prints (a few per window).
"""

from __future__ import annotations

import itertools
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
    Labels,
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
    """The pipeline's knobs. The defaults were chosen with ``python -m
    benchmarks.diarization_settings`` on 36 conversations of six real people (DER of the
    turns, and how often the number of speakers is right): 7.8 % and 32 of 36. Neighbours
    do worse: a cluster distance of 0.75 (0.16, 17 of 36) or 0.83 (0.09, 30 of 36), windows
    every 5 s (0.10, 29 of 36), clean prints from 1 s (0.08, 27 of 36) or 2 s (0.12, 26 of
    36), and stretches of 4-10 s instead of 3 s."""

    # Windows overlap by 10 s minus this: more overlap votes more, at a cost in time.
    window_step_seconds: float = 2.5
    # Windows voiced per batch (one voice encoder call), and segmented per call: the
    # segmentation model's activations take about 25 MB a window, so its calls stay small.
    windows_per_batch: int = 16
    windows_per_segmentation_call: int = 4
    # A local speaker heard less than this in a window is ignored there.
    min_voice_seconds: float = 0.2
    # Voice prints of at least this much speech, alone, decide who the speakers are.
    min_clean_seconds: float = 1.5
    # A local speaker's speech in a window is voiced in stretches of at most this long.
    max_voice_seconds: float = 3.0
    # Voices closer than this on average (Euclidean, unit vectors) are one speaker.
    cluster_distance: float = 0.8
    # Clusters of fewer clean voice prints are absorbed by the nearest larger one.
    min_cluster_size: int = 3
    # At most this many clean prints are clustered (about 20 minutes of speech; their
    # distances take 16 MB).
    max_clustered_prints: int = 2000
    # A speaker is a known one if their voices are at least this alike (cosine).
    known_similarity: float = 0.7
    # A reference clip needs this much speech of one voice.
    min_reference_seconds: float = 1.0
    # A frame has as many speakers as the windows that saw it heard at once, on average,
    # rounded up from this share of one.
    heard_share: float = 0.4
    # Same-speaker turns closer than this are one turn.
    join_gap_seconds: float = 0.1

    def frames(self, seconds: float) -> int:
        return round(seconds * SAMPLE_RATE / FRAME_STEP_SAMPLES)


@dataclass(frozen=True)
class _Stretch:
    """A stretch of one local speaker's speech in a window: frames [first, end)."""

    window: int
    local: int
    first: int
    end: int


@dataclass
class _Voices:
    """The voice prints of a recording's stretches of speech, and whose they are."""

    prints: list[VoicePrint]
    owners: list[_Stretch]
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
        clean = np.flatnonzero(voices.clean)
        if len(clean) == 0:
            clean = np.arange(len(prints))  # nobody heard long alone: go by what there is
        if len(clean) > self.settings.max_clustered_prints:
            # Clustering costs the square of the prints in memory and time: a long
            # recording's are taken evenly through it (every print is still assigned).
            chosen = np.linspace(0, len(clean) - 1, self.settings.max_clustered_prints)
            clean = clean[chosen.round().astype(np.int64)]
        labels = cluster_voices(
            prints[clean], self.settings.cluster_distance, count, self.settings.min_cluster_size
        )
        centres = centroids(prints[clean], labels)
        # Every stretch, clean or not, goes to the speaker whose voice is most like it.
        speaker_of = np.argmax(prints @ centres.T, axis=1)
        turns = self._turns(plan, activity, voices, speaker_of, len(centres))
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
        """Voice prints of the stretches of speech in a batch of windows: each local
        speaker's speech in a window, cut into stretches of at most ``max_voice_seconds``,
        so that a local speaker who is really two people (the segmentation may hear two
        alike voices as one) is two sets of prints."""
        min_frames = self.settings.frames(self.settings.min_voice_seconds)
        clean_frames = self.settings.frames(self.settings.min_clean_seconds)
        max_frames = self.settings.frames(self.settings.max_voice_seconds)
        utterances = []
        for window, piece, frames in zip(windows, cut, activity, strict=True):
            alone = frames & (frames.sum(axis=1, keepdims=True) == 1)
            for local in range(LOCAL_SPEAKERS):
                for first, end in _stretches(frames[:, local], max_frames, min_frames):
                    stretch = np.zeros(FRAMES_PER_WINDOW, dtype=bool)
                    stretch[first:end] = True
                    is_clean = bool(alone[first:end, local].sum() >= clean_frames)
                    chosen = stretch & (alone[:, local] if is_clean else frames[:, local])
                    utterances.append(_frames_audio(piece, chosen))
                    voices.owners.append(_Stretch(window, local, first, end))
                    voices.clean.append(is_clean)
        if utterances:
            voices.prints += list(unit(self._encoder.embed_utterances(utterances)))

    def _turns(
        self,
        plan: WindowPlan,
        activity: LocalActivity,
        voices: _Voices,
        speaker_of: Labels,
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
        for stretch, speaker in zip(voices.owners, speaker_of.tolist(), strict=True):
            start = stretch.window * plan.step_frames + stretch.first
            end = min(stretch.window * plan.step_frames + stretch.end, total)
            if end > start:
                heard = activity[stretch.window, stretch.first : stretch.first + end - start]
                votes[start:end, speaker] += (
                    heard[:, stretch.local] * weight[stretch.first : stretch.first + end - start]
                )
        share = heard_at_once / np.maximum(coverage, 1e-6)
        at_once = np.floor(share + 1 - self.settings.heard_share).astype(np.int64)
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


def _stretches(active: npt.NDArray[np.bool_], longest: int, shortest: int) -> list[tuple[int, int]]:
    """[first, end) frame ranges of ``active`` speech: each run of speech cut into equal
    stretches of at most ``longest`` frames, those with less than ``shortest`` frames of
    speech left out."""
    found = []
    for first, end in _spans(active, 0):
        pieces = -(-(end - first) // longest)
        bounds = np.linspace(first, end, pieces + 1).round().astype(int).tolist()
        found += [(a, b) for a, b in itertools.pairwise(bounds) if active[a:b].sum() >= shortest]
    return found


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


def _frames_audio(
    window: npt.NDArray[np.float32], frames: npt.NDArray[np.bool_]
) -> npt.NDArray[np.float32]:
    """The window's samples in the chosen frames, end to end."""
    mask = np.repeat(frames, FRAME_STEP_SAMPLES)
    mask = np.concatenate([np.zeros(FRAME_FIRST_SAMPLE, dtype=bool), mask])[: len(window)]
    return window[: len(mask)][mask]
