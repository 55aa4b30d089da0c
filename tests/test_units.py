"""Pure pieces: subtitle times, timestamp splitting, the model join, sources, the timeline."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from stenostack.api.formats import subtitle_time, to_srt, to_vtt
from stenostack.audio.timeline import SpeechTimeline
from stenostack.models.base import Segment
from stenostack.models.registry import ModelSpec
from stenostack.models.sources import ModelSourceError, join_split_model, resolve_model_dir
from stenostack.models.whisper.decoding import split_by_timestamps

TS = 50364  # <|0.00|> in Whisper's multilingual vocabulary


def ts(seconds: float) -> int:
    return TS + round(seconds / 0.02)


def test_subtitle_times_round_and_carry() -> None:
    assert subtitle_time(11.5404, ",") == "00:00:11,540"
    assert subtitle_time(59.9996, ".") == "00:01:00.000"
    assert subtitle_time(3723.25, ",") == "01:02:03,250"
    assert subtitle_time(-0.01, ".") == "00:00:00.000"


def segment(start: float, end: float, text: str) -> Segment:
    return Segment(0, 0, start, end, text, [1], 0.0, -0.1, 1.2, 0.01)


def test_srt_and_vtt_sanitise_cue_text() -> None:
    segments = [segment(0, 1.5, " a --> b & <c>"), segment(1.5, 2, "  "), segment(2, 3.25, " end")]
    assert to_srt(segments) == (
        "1\n00:00:00,000 --> 00:00:01,500\na -> b & <c>\n\n"
        "2\n00:00:02,000 --> 00:00:03,250\nend\n\n"
    )
    assert to_vtt(segments) == (
        "WEBVTT\n\n00:00:00.000 --> 00:00:01.500\na -> b &amp; &lt;c>\n\n"
        "00:00:02.000 --> 00:00:03.250\nend\n\n"
    )


def test_split_closed_segments_resume_at_last_timestamp() -> None:
    tokens = [ts(0), 1, 2, ts(2.5), ts(2.5), 3, 4, ts(5.0), ts(5.0), 5]
    split = split_by_timestamps(tokens, TS, 3000)
    assert [(s.start, s.end, s.tokens) for s in split.segments] == [
        (0, 2.5, [1, 2]),
        (2.5, 5.0, [3, 4]),
    ]
    assert split.advance_frames == 500  # the unfinished "5" is decoded again from 5.00 s


def test_split_single_timestamp_ending_consumes_the_window() -> None:
    tokens = [ts(0), 1, ts(2.0), ts(2.0), 2, ts(4.0)]
    split = split_by_timestamps(tokens, TS, 3000)
    assert [(s.start, s.end) for s in split.segments] == [(0, 2.0), (2.0, 4.0)]
    assert split.advance_frames == 3000


def test_split_without_pairs_is_one_segment_and_never_stalls() -> None:
    split = split_by_timestamps([ts(0), 1, 2, ts(3.0)], TS, 800)
    assert [(s.start, s.end) for s in split.segments] == [(0, 3.0)]
    assert split.advance_frames == 800
    degenerate = split_by_timestamps([ts(0), ts(0), 7], TS, 3000)
    assert degenerate.advance_frames == 3000
    assert split_by_timestamps([], TS, 3000).segments == []


def test_timeline_maps_joined_times_back_to_the_file() -> None:
    timeline = SpeechTimeline([(16_000, 48_000), (160_000, 192_000)], 16_000)
    assert timeline.to_file_time(0.5) == 1.5
    assert timeline.to_file_time(2.5) == 10.5
    assert timeline.to_file_time(2.0, is_end=True) == 3.0  # an end on the seam stays before it
    assert timeline.to_file_time(1.99) == 10.0  # a start just before the seam goes after it
    assert timeline.seams_after_pauses(3.0) == [32_000]
    assert timeline.seams_after_pauses(8.0) == []


def make_parts(tmp_path: Path, content: bytes) -> tuple[list[Path], list[Path], str]:
    half = len(content) // 2
    part1, part2 = tmp_path / "model.bin.part1", tmp_path / "model.bin.part2"
    part1.write_bytes(content[:half])
    part2.write_bytes(content[half:])
    side = []
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        (tmp_path / name).write_text("{}")
        side.append(tmp_path / name)
    return [part1, part2], side, hashlib.sha256(content).hexdigest()


def test_join_split_model(tmp_path: Path) -> None:
    content = bytes(range(256)) * 1000
    parts, side, digest = make_parts(tmp_path, content)
    target = tmp_path / "joined"
    join_split_model(parts, side, target, expected_size=len(content), expected_sha256=digest)
    assert (target / "model.bin").read_bytes() == content
    assert (target / "tokenizer.json").is_file()
    # A second call finds the joined model and does not rewrite it.
    mtime = (target / "model.bin").stat().st_mtime_ns
    join_split_model(parts, side, target, expected_size=len(content), expected_sha256=digest)
    assert (target / "model.bin").stat().st_mtime_ns == mtime


def test_bad_join_leaves_no_model_behind(tmp_path: Path) -> None:
    content = b"x" * 10_000
    parts, side, digest = make_parts(tmp_path, content)
    parts[1].write_bytes(b"corrupted")
    target = tmp_path / "joined"
    with pytest.raises(ModelSourceError, match="damaged"):
        join_split_model(parts, side, target, expected_size=len(content), expected_sha256=digest)
    assert not (target / "model.bin").exists()
    assert [p.name for p in target.iterdir() if p.name.startswith(".model.bin")] == []
    with pytest.raises(ModelSourceError, match="missing"):
        join_split_model(
            [parts[0], tmp_path / "absent"], side, target,
            expected_size=len(content), expected_sha256=digest,
        )  # fmt: skip


def test_model_sources(tmp_path: Path) -> None:
    with pytest.raises(ModelSourceError, match="does not exist"):
        resolve_model_dir(str(tmp_path / "missing"))
    (tmp_path / "config.json").write_text("{}")
    # A directory no family recognises: the error says what each family expects.
    with pytest.raises(ModelSourceError, match=r"holds no model .*model\.bin, config\.json"):
        resolve_model_dir(str(tmp_path))
    assert resolve_model_dir("whisper-tiny.en").joinpath("model.bin").is_file()


def test_model_spec_names() -> None:
    assert ModelSpec.parse("whisper-base") == ModelSpec("whisper-base", "whisper-base")
    assert ModelSpec.parse("small=/models/small") == ModelSpec("small", "/models/small")
    assert ModelSpec.parse("/models/large-v3/") == ModelSpec("large-v3", "/models/large-v3/")
    assert ModelSpec.parse("Systran/faster-whisper-small").name == "faster-whisper-small"
