"""Speaker diarization through the API: its errors on conversations with known turns, and its
cost in time and memory next to transcription alone.

Run from the repository root::

    python -m benchmarks.diarization [--model whisper-base|whisper-tiny.en|moonshine-base]
        [--only real|synthetic] [--threads N] [--limit N] [--write DIR] [--no-plain] [--show]

The conversations are ``benchmarks.conversations``': real people's recordings from pinned
PyPI packages (two to four speakers, pauses, short overlaps) and espeak-ng voices. Two fresh
engines serve the model as ``whisper-1`` on this machine's cores, one per mode, and the
official ``openai`` SDK sends each of them every conversation, one request at a time, the
two modes taking turns conversation by conversation (so that other load on the machine
weighs on both alike):

1. **diarized**: ``response_format="diarized_json"``, ``chunking_strategy="auto"``; its
   ``segments`` (start, end, speaker, text) are scored against the reference turns: the
   diarization error rate (``benchmarks.diarization_metrics``: 0.25 s collar either side of
   each reference boundary, overlapped speech scored), whether the speaker count is right,
   and the speaker-attributed word error rate (cpWER);
2. **plain**: ``response_format="verbose_json"`` on an engine started with
   ``--no-diarization``: transcription alone, for its time, its memory and its word error
   rate (speakers aside).

It prints a row per conversation, totals per kind (real, espeak-ng), the wall time of the two
modes side by side and their ratio, and each engine's peak resident memory (VmHWM, with its
child processes) against its memory once ready. The target on the real conversations: a DER
of at most 10 % and the speaker count right on nine in ten.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import jiwer
from openai import OpenAI
from tests.servers import engine_server, openai_client
from tests.speech import compose, wav_bytes
from tests.wer import normalise

from benchmarks.conversations import (
    PEOPLE,
    Conversation,
    describe,
    meeting,
    real_conversations,
    synthetic_conversations,
)
from benchmarks.diarization_metrics import (
    NO_ERRORS,
    CpWer,
    DiarizationErrors,
    cp_wer_errors,
    diarization_errors,
    percent,
    rttm_lines,
    speaker_count,
    words_by_speaker,
)
from benchmarks.pinned_sdists import DEFAULT_CACHE
from benchmarks.throughput import tree_peak_mb

MODELS = ("whisper-base", "whisper-tiny.en", "moonshine-base")
SERVED_AS = "whisper-1"
TARGET_DER = 0.10
TARGET_COUNT_SHARE = 0.9
REQUEST_TIMEOUT_S = 1800.0

Segment = tuple[float, float, str, str]  # start, end, speaker, text


@dataclass
class Heard:
    """One conversation's answer in one mode."""

    conversation: Conversation
    seconds: float
    text: str
    segments: list[Segment] = field(default_factory=list)

    @property
    def hypothesis(self) -> list[tuple[float, float, str]]:
        return [(start, end, speaker) for start, end, speaker, _text in self.segments]

    def errors(self) -> DiarizationErrors:
        c = self.conversation
        return diarization_errors(c.reference, self.hypothesis, duration=c.duration)

    def cp_wer(self) -> CpWer:
        return cp_wer_errors(self.conversation.words, words_by_speaker(self.segments))

    @property
    def count_right(self) -> bool:
        return speaker_count(self.hypothesis) == len(self.conversation.speakers)


@dataclass
class Mode:
    heard: list[Heard]
    ready_mb: float  # peak resident memory once the engine was ready (models loaded)
    peak_mb: float  # after every conversation

    @property
    def seconds(self) -> float:
        return sum(h.seconds for h in self.heard)


def run_modes(
    model: str, threads: int, conversations: Sequence[Conversation], plain: bool
) -> tuple[Mode, Mode | None]:
    """Two fresh engines serving ``model`` as whisper-1, one with diarization and one without
    (``--no-diarization``, unless ``plain`` is off), hear every conversation one at a time:
    the two modes take turns, conversation by conversation (which goes first alternates),
    so that other load on the machine weighs on both alike. Each engine's memory is its own."""
    args = ["--model", f"{SERVED_AS}={model}", "--cpu-threads", str(threads)]
    with contextlib.ExitStack() as stack:
        diarizing = stack.enter_context(engine_server(*args))
        servers = {True: diarizing}
        if plain:
            servers[False] = stack.enter_context(engine_server(*args, "--no-diarization"))
        clients = {
            mode: openai_client(s.url, timeout=REQUEST_TIMEOUT_S) for mode, s in servers.items()
        }
        ready_mb = {mode: tree_peak_mb(s.process.pid) for mode, s in servers.items()}
        warm_up = wav_bytes(
            compose([0.3, "Please send me the report before the end of the week.", 0.3]).samples
        )
        for mode, client in clients.items():
            hear(client, "warm-up", warm_up, mode)
        heard: dict[bool, list[Heard]] = {mode: [] for mode in servers}
        for index, conversation in enumerate(conversations):
            wav = conversation.wav()
            for mode in sorted(servers, reverse=index % 2 == 0):
                started = time.perf_counter()
                text, segments = hear(clients[mode], conversation.name, wav, mode)
                seconds = time.perf_counter() - started
                heard[mode].append(Heard(conversation, seconds, text, segments))
        modes = {
            mode: Mode(heard[mode], ready_mb[mode], tree_peak_mb(s.process.pid))
            for mode, s in servers.items()
        }
    return modes[True], modes.get(False)


def hear(client: OpenAI, name: str, wav: bytes, diarize: bool) -> tuple[str, list[Segment]]:
    """The text, and with ``diarize`` the speakers' segments, of one upload."""
    upload = (f"{name}.wav", wav)
    if diarize:
        diarized = client.audio.transcriptions.create(
            model=SERVED_AS,
            file=upload,
            response_format="diarized_json",
            chunking_strategy="auto",
        )
        segments = [(s.start, s.end, s.speaker, s.text) for s in diarized.segments]
        return diarized.text, segments
    verbose = client.audio.transcriptions.create(
        model=SERVED_AS, file=upload, response_format="verbose_json"
    )
    return verbose.text, []


def word_error_rate(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Errors over words across ``references``, normalised as the tests do."""
    rate: float = jiwer.wer(
        [normalise(text) for text in references],
        [normalise(text) or "<empty>" for text in hypotheses],
    )
    return rate


def report(diarized: Mode, plain: Mode | None) -> None:
    plain_by_name = {h.conversation.name: h for h in plain.heard} if plain else {}
    print(
        "\n| conversation | speakers | audio s | overlap s | DER | missed | false alarm "
        "| confusion | speakers heard | cpWER | WER plain | diarized s | plain s | ratio |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for heard in diarized.heard:
        c = heard.conversation
        errors, cp = heard.errors(), heard.cp_wer()
        alone = plain_by_name.get(c.name)
        wer = percent(word_error_rate([c.text], [alone.text])) if alone else "-"
        plain_s = f"{alone.seconds:.1f}" if alone else "-"
        ratio = f"{heard.seconds / alone.seconds:.2f}x" if alone and alone.seconds else "-"
        heard_count = speaker_count(heard.hypothesis)
        mark = "" if heard.count_right else " ✗"
        language = "" if c.languages == ("en",) else f" ({'+'.join(c.languages)})"
        print(
            f"| {c.name}{language} | {len(c.speakers)} | {c.duration:.1f} "
            f"| {sum(e - s for s, e in c.overlaps):.1f} | {percent(errors.rate)} "
            f"| {' | '.join(percent(share) for share in errors.shares)} "
            f"| {heard_count}{mark} | {percent(cp.rate)} "
            f"| {wer} | {heard.seconds:.1f} | {plain_s} | {ratio} |"
        )
    print()
    for real in (True, False):
        group = [h for h in diarized.heard if h.conversation.real == real]
        if not group:
            continue
        summarise("real people" if real else "espeak-ng voices", group, plain_by_name)
    print("\nmemory (MB, peak resident incl. children: once ready -> after all conversations)")
    print(f"  diarized: {diarized.ready_mb:7.0f} -> {diarized.peak_mb:7.0f}")
    if plain:
        print(f"  plain:    {plain.ready_mb:7.0f} -> {plain.peak_mb:7.0f}")
        print(
            f"  diarized / plain: {diarized.peak_mb / plain.peak_mb:.2f}x peak "
            f"(+{diarized.peak_mb - plain.peak_mb:.0f} MB)"
        )


def summarise(kind: str, group: list[Heard], plain_by_name: dict[str, Heard]) -> None:
    errors = sum((h.errors() for h in group), NO_ERRORS)
    english = [h for h in group if h.conversation.languages == ("en",)]
    cp = sum((h.cp_wer() for h in english), CpWer(0, 0, {}))
    right = sum(h.count_right for h in group)
    audio = sum(h.conversation.duration for h in group)
    seconds = sum(h.seconds for h in group)
    alone = [
        plain_by_name[h.conversation.name] for h in group if h.conversation.name in plain_by_name
    ]
    print(f"{kind}: {len(group)} conversations, {audio:.0f} s of audio")
    print(f"  {errors.breakdown()}, collar 0.25 s, overlap scored")
    print(f"  speaker count right: {right} of {len(group)}")
    print(f"  cpWER {percent(cp.rate)} over {len(english)} all-English conversations")
    if alone:
        plain_seconds = sum(h.seconds for h in alone)
        wer = word_error_rate([h.conversation.text for h in alone], [h.text for h in alone])
        print(
            f"  time: diarized {seconds:.1f} s ({audio / seconds:.1f}x real time), plain "
            f"{plain_seconds:.1f} s ({audio / plain_seconds:.1f}x real time): "
            f"{seconds / plain_seconds:.2f}x; plain WER {percent(wer)}"
        )
    else:
        print(f"  time: diarized {seconds:.1f} s ({audio / seconds:.1f}x real time)")
    if kind == "real people":
        der_ok = errors.rate <= TARGET_DER
        count_ok = right >= TARGET_COUNT_SHARE * len(group)
        print(
            f"  target DER <= {percent(TARGET_DER).strip()}: {'met' if der_ok else 'MISSED'}; "
            f"count right on 9 in 10: {'met' if count_ok else 'MISSED'}"
        )


def write(directory: Path, conversations: Sequence[Conversation], diarized: Mode | None) -> None:
    """Each conversation's WAV and reference RTTM, and the engine's turns as NAME.hyp.rttm."""
    for conversation in conversations:
        conversation.write(directory)
    for heard in diarized.heard if diarized else []:
        lines = rttm_lines(heard.hypothesis, heard.conversation.name)
        (directory / f"{heard.conversation.name}.hyp.rttm").write_text(
            "".join(f"{line}\n" for line in lines)
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=MODELS, default="whisper-base")
    parser.add_argument("--only", choices=["real", "synthetic"], help="one kind of conversation")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="for real speech")
    parser.add_argument("--write", type=Path, metavar="DIR", help="WAV and RTTM files here")
    parser.add_argument("--limit", type=int, help="only the first N conversations of each kind")
    parser.add_argument("--no-plain", action="store_true", help="skip transcription alone")
    parser.add_argument("--show", action="store_true", help="print every segment heard")
    parser.add_argument(
        "--meeting-minutes",
        type=float,
        help="instead, one long meeting of this many minutes: the real conversations one "
        "after another, again and again (for time and memory on long recordings)",
    )
    args = parser.parse_args()
    conversations: list[Conversation] = []
    if args.meeting_minutes:
        conversations = [meeting(real_conversations(args.cache), args.meeting_minutes)]
    if args.only != "synthetic" and not args.meeting_minutes:
        conversations += real_conversations(args.cache)[: args.limit]
    if args.only != "real" and not args.meeting_minutes:
        conversations += synthetic_conversations()[: args.limit]
    print(f"model {args.model} (served as {SERVED_AS}), {args.threads} threads, {Path.cwd()}")
    real_people = {who for c in conversations if c.real for who in c.speakers}
    for who in sorted(real_people):
        print(f"  {who}: {PEOPLE[who]}")
    for conversation in conversations:
        print("  " + describe(conversation))
    if args.write:
        write(args.write, conversations, None)
    diarized, plain = run_modes(args.model, args.threads, conversations, not args.no_plain)
    if args.show:
        for heard in diarized.heard:
            print(f"\n{heard.conversation.name}")
            for start, end, speaker, text in heard.segments:
                print(f"  {start:6.2f} {end:6.2f} {speaker}: {text}")
    if args.write:
        write(args.write, conversations, diarized)
    report(diarized, plain)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
