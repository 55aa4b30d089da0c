"""Resemblyzer's voice encoder in numpy: a 256-number speaker embedding per utterance.

Resemblyzer 0.1.4 (Apache-2.0) runs a 3-layer LSTM over 40-channel mel spectrograms of 1.6 s
partial utterances, takes the last layer's final hidden state through a linear layer and a
ReLU, and L2-normalises it; an utterance's embedding is the renormalised mean over its
partials. This module reproduces that from the weights in its ``pretrained.pt``, with neither
torch nor librosa: the mel spectrogram and the LSTM are written out here.

Unlike Resemblyzer's ``preprocess_wav`` nothing is trimmed by voice activity detection: the
caller hands in speech only. Volume is normalised the same way (raised to -30 dBFS, never
lowered).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from stenostack.models.diarization.legacy_torch import read_legacy_torch_file

SAMPLE_RATE = 16_000

# Resemblyzer's hparams, each named once with its unit.
MEL_WINDOW_MS = 25
MEL_STEP_MS = 10
MEL_CHANNELS = 40
PARTIAL_FRAMES = 160  # mel frames in a partial utterance: 1.6 s
PARTIALS_PER_SECOND = 1.3  # embed_utterance's default rate: a partial starts every 77 frames
MIN_LAST_PARTIAL_COVERAGE = 0.75  # keep a last partial only if this much of it is audio
TARGET_LEVEL_DBFS = -30.0

HIDDEN_SIZE = 256
EMBEDDING_SIZE = 256
LSTM_LAYERS = 3

N_FFT = SAMPLE_RATE * MEL_WINDOW_MS // 1000  # 400 samples
HOP_SAMPLES = SAMPLE_RATE * MEL_STEP_MS // 1000  # 160 samples
PARTIAL_STEP_FRAMES = round(SAMPLE_RATE / PARTIALS_PER_SECOND / HOP_SAMPLES)  # 77 frames

# The LSTM's per-step matmuls are only efficient with many rows, but its precomputed input
# projection costs (time steps x batch x 4 x hidden) floats: 128 partials keep that near 84 MB.
MAX_PARTIALS_PER_BATCH = 128

_FRAMES_PER_BLOCK = 2048  # mel frames computed at once: about 7 MB of float64 spectrum

Float32Array = NDArray[np.float32]


def slaney_hz_to_mel(hz: NDArray[np.float64]) -> NDArray[np.float64]:
    """Slaney's mel scale (librosa's default, ``htk=False``): linear below 1 kHz, 200/3 Hz a
    mel, then logarithmic with 27 mels per factor 6.4."""
    linear = hz / (200.0 / 3.0)
    log_step = math.log(6.4) / 27.0
    logarithmic = 15.0 + np.log(np.maximum(hz, 1000.0) / 1000.0) / log_step
    return np.where(hz >= 1000.0, logarithmic, linear)


def slaney_mel_to_hz(mel: NDArray[np.float64]) -> NDArray[np.float64]:
    """The inverse of ``slaney_hz_to_mel``."""
    linear = mel * (200.0 / 3.0)
    log_step = math.log(6.4) / 27.0
    logarithmic = 1000.0 * np.exp(log_step * (np.maximum(mel, 15.0) - 15.0))
    return np.where(mel >= 15.0, logarithmic, linear)


def mel_filterbank(
    sample_rate: int = SAMPLE_RATE, n_fft: int = N_FFT, n_mels: int = MEL_CHANNELS
) -> NDArray[np.float64]:
    """Triangular filters of shape (n_mels, 1 + n_fft // 2), as librosa's ``filters.mel``
    with its defaults: Slaney mel scale from 0 Hz to Nyquist, each triangle scaled to unit
    area in Hz (``norm="slaney"``)."""
    bin_hz = np.linspace(0.0, sample_rate / 2, 1 + n_fft // 2)
    # n_mels + 2 points evenly spaced in mels: filter i rises from edge i, peaks at i + 1
    # and falls to i + 2.
    top = slaney_hz_to_mel(np.array([sample_rate / 2]))[0]
    edges_hz = slaney_mel_to_hz(np.linspace(0.0, top, n_mels + 2))
    lower, centre, upper = edges_hz[:-2, None], edges_hz[1:-1, None], edges_hz[2:, None]
    rising = (bin_hz - lower) / (centre - lower)
    falling = (upper - bin_hz) / (upper - centre)
    triangles = np.maximum(0.0, np.minimum(rising, falling))
    # Slaney's normalisation: height 2 / width, so wide high filters do not outweigh low ones.
    return triangles * (2.0 / (upper - lower))


_MEL_FILTERS = mel_filterbank()
# Periodic Hann (scipy's get_window("hann", N, fftbins=True), librosa's window): 400 points
# of a 401-point window's period, not the symmetric np.hanning.
_WINDOW = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(N_FFT) / N_FFT)


def mel_spectrogram(wav: Float32Array) -> Float32Array:
    """The power mel spectrogram Resemblyzer feeds its encoder, shape (frames, 40), no log.

    As librosa's ``feature.melspectrogram(y=wav, sr=16000, n_fft=400, hop_length=160,
    n_mels=40)``: frames centred on every 160th sample (``center=True``), |STFT|^2 through a
    periodic Hann window, then the Slaney filterbank. The ends are padded with zeros: librosa
    0.9.0 changed the default ``pad_mode`` from "reflect" to "constant", and Resemblyzer 0.1.4
    requires librosa >= 0.9.1, so zeros are what it computes with today (the model was trained
    with older librosa's reflection; only the two frames at each end differ).
    """
    padded = np.pad(wav, N_FFT // 2)
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP_SAMPLES]
    mel = np.empty((len(frames), MEL_CHANNELS), dtype=np.float32)
    # In blocks: windowed frames overlap 2.5 times and are float64, so a long utterance done
    # at once would briefly take over ten times its own size in frames and spectrum.
    for start in range(0, len(frames), _FRAMES_PER_BLOCK):
        spectrum = np.fft.rfft(frames[start : start + _FRAMES_PER_BLOCK] * _WINDOW, axis=1)
        power = spectrum.real**2 + spectrum.imag**2
        mel[start : start + _FRAMES_PER_BLOCK] = power @ _MEL_FILTERS.T
    return mel


def partial_starts(n_samples: int) -> list[int]:
    """First mel frame of each partial of an utterance of ``n_samples``, as Resemblyzer's
    ``compute_partial_slices`` with the default rate and ``min_coverage=0.75``: a partial
    every 77 frames until the utterance is covered, the last one dropped if less than 75 %
    of it is audio (unless it is the only one). Partial i spans frames
    ``[start, start + 160)`` and samples ``[start * 160, (start + 160) * 160)``."""
    n_frames = math.ceil((n_samples + 1) / HOP_SAMPLES)
    steps = max(1, n_frames - PARTIAL_FRAMES + PARTIAL_STEP_FRAMES + 1)
    starts = list(range(0, steps, PARTIAL_STEP_FRAMES))
    last_audio = n_samples - starts[-1] * HOP_SAMPLES
    if last_audio / (PARTIAL_FRAMES * HOP_SAMPLES) < MIN_LAST_PARTIAL_COVERAGE and len(starts) > 1:
        starts.pop()
    return starts


def normalise_volume(wav: Float32Array) -> Float32Array:
    """Raise quiet audio to -30 dBFS RMS; louder audio is left alone (``increase_only``)."""
    rms = float(np.sqrt(np.mean(np.square(wav, dtype=np.float64))))
    if rms == 0.0:  # silence: Resemblyzer would divide by zero; nothing to scale
        return wav
    gain = 10.0 ** (TARGET_LEVEL_DBFS / 20.0) / rms
    return wav if gain <= 1.0 else (wav * np.float32(gain)).astype(np.float32, copy=False)


def _utterance_partials(wav: Float32Array) -> Float32Array:
    """The mel spectrograms of an utterance's partials, shape (partials, 160, 40)."""
    starts = partial_starts(len(wav))
    end_sample = (starts[-1] + PARTIAL_FRAMES) * HOP_SAMPLES
    # Zero-padded up to the last partial's end, as embed_utterance pads its waveform.
    if end_sample > len(wav):
        wav = np.pad(wav, (0, end_sample - len(wav)))
    mel = mel_spectrogram(wav)
    return np.stack([mel[start : start + PARTIAL_FRAMES] for start in starts])


def _sigmoid_inplace(x: Float32Array) -> None:
    # 1 / (1 + exp(-x)) overflows exp for x below about -88 in float32; this form cannot.
    np.multiply(x, 0.5, out=x)
    np.tanh(x, out=x)
    np.multiply(x, 0.5, out=x)
    np.add(x, 0.5, out=x)


class _LstmLayer:
    """One LSTM layer's weights, gates reordered from torch's (i, f, g, o) to (i, f, o, g) so
    that one sigmoid covers the first three quarters and one tanh the last."""

    def __init__(self, w_ih: Float32Array, w_hh: Float32Array, bias: Float32Array) -> None:
        h = HIDDEN_SIZE
        order = np.r_[0 : 2 * h, 3 * h : 4 * h, 2 * h : 3 * h]
        # Transposed once here so each step is a plain (batch, in) @ (in, 4h) matmul.
        self.w_ih_t = np.ascontiguousarray(w_ih[order].T)
        self.w_hh_t = np.ascontiguousarray(w_hh[order].T)
        self.bias = np.ascontiguousarray(bias[order])

    def project(self, x: Float32Array) -> Float32Array:
        """The input's share of every gate at every step, (time, batch, 4 x hidden), of input
        (time, batch, in): one large matmul, as only the recurrent share must go step by
        step."""
        steps, batch, _ = x.shape
        projected = x.reshape(steps * batch, -1) @ self.w_ih_t
        projected += self.bias
        return projected.reshape(steps, batch, 4 * HIDDEN_SIZE)

    def recur(self, projected: Float32Array, all_steps: bool) -> Float32Array:
        """Hidden states (time, batch, hidden) from ``project``'s output; with ``all_steps``
        false only the last step's, (1, batch, hidden), which is all the top layer needs."""
        steps, batch, _ = projected.shape
        h = HIDDEN_SIZE
        hidden = np.empty((steps if all_steps else 1, batch, h), dtype=np.float32)
        previous = np.zeros((batch, h), dtype=np.float32)
        cell = np.zeros((batch, h), dtype=np.float32)
        gates = np.empty((batch, 4 * h), dtype=np.float32)
        scratch = np.empty((batch, h), dtype=np.float32)
        for t in range(steps):
            np.matmul(previous, self.w_hh_t, out=gates)
            gates += projected[t]
            _sigmoid_inplace(gates[:, : 3 * h])
            np.tanh(gates[:, 3 * h :], out=gates[:, 3 * h :])
            input_gate, forget_gate = gates[:, :h], gates[:, h : 2 * h]
            output_gate, candidate = gates[:, 2 * h : 3 * h], gates[:, 3 * h :]
            cell *= forget_gate
            np.multiply(input_gate, candidate, out=scratch)
            cell += scratch
            np.tanh(cell, out=scratch)
            out = hidden[t if all_steps else 0]
            np.multiply(output_gate, scratch, out=out)
            previous = out
        return hidden


def _l2_normalised(x: Float32Array) -> Float32Array:
    norms: Float32Array = np.linalg.norm(x, axis=-1, keepdims=True)
    # An all-zero row (every ReLU output off) stays zero instead of becoming NaN.
    return (x / np.maximum(norms, np.finfo(np.float32).tiny)).astype(np.float32)


class VoiceEncoder:
    """Speaker embeddings of 16 kHz speech: similar voices give a high cosine similarity."""

    def __init__(self, model_state: Mapping[str, NDArray[Any]]) -> None:
        """From Resemblyzer's ``model_state``: ``lstm.{weight,bias}_{ih,hh}_l{0,1,2}`` and
        ``linear.{weight,bias}``; other entries are ignored."""

        def weight(name: str, shape: tuple[int, ...]) -> Float32Array:
            if name not in model_state:
                raise ValueError(f"the voice encoder's weights lack {name}")
            array = np.asarray(model_state[name], dtype=np.float32)
            if array.shape != shape:
                raise ValueError(f"{name} has shape {array.shape}, expected {shape}")
            return array

        gates = 4 * HIDDEN_SIZE
        self._layers = [
            _LstmLayer(
                weight(f"lstm.weight_ih_l{n}", (gates, MEL_CHANNELS if n == 0 else HIDDEN_SIZE)),
                weight(f"lstm.weight_hh_l{n}", (gates, HIDDEN_SIZE)),
                # torch keeps two biases that are only ever added: one is enough here.
                weight(f"lstm.bias_ih_l{n}", (gates,)) + weight(f"lstm.bias_hh_l{n}", (gates,)),
            )
            for n in range(LSTM_LAYERS)
        ]
        linear = weight("linear.weight", (EMBEDDING_SIZE, HIDDEN_SIZE))
        self._linear_t = np.ascontiguousarray(linear.T)
        self._linear_bias = weight("linear.bias", (EMBEDDING_SIZE,))

    @classmethod
    def load(cls, weights: Path) -> VoiceEncoder:
        """From Resemblyzer's ``pretrained.pt`` (a legacy torch file, read without torch)."""
        checkpoint = read_legacy_torch_file(weights)
        model_state = checkpoint.get("model_state")
        if not isinstance(model_state, dict):
            raise ValueError(f"{weights} has no model_state: not Resemblyzer's weights")
        return cls(model_state)

    def embed_partials(self, mels: Float32Array) -> Float32Array:
        """L2-normalised embeddings (n, 256) of partial mel spectrograms (n, 160, 40)."""
        # Time-major, so that each step's rows are contiguous for its matmul.
        x = np.ascontiguousarray(mels.transpose(1, 0, 2), dtype=np.float32)
        for n, layer in enumerate(self._layers):
            projected = layer.project(x)
            del x  # freed before the next hidden states are allocated: a lower peak
            x = layer.recur(projected, all_steps=n < len(self._layers) - 1)
            del projected
        raw = np.maximum(x[-1] @ self._linear_t + self._linear_bias, 0.0)
        return _l2_normalised(raw)

    def embed_utterances(self, utterances: Sequence[Float32Array]) -> Float32Array:
        """One L2-normalised embedding per utterance, shape (len(utterances), 256).

        Each utterance is float32 mono speech at 16 kHz in [-1, 1], silences already cut. Its
        embedding is the renormalised mean of its partials' embeddings; the partials of all
        utterances run through the LSTM together, in batches of up to 128.
        """
        wavs = [np.asarray(utterance, dtype=np.float32) for utterance in utterances]
        for index, wav in enumerate(wavs):
            if wav.ndim != 1 or wav.size == 0:
                raise ValueError(f"utterance {index} is not a non-empty mono waveform")
        sums = np.zeros((len(wavs), EMBEDDING_SIZE), dtype=np.float32)
        for mels, owners in _partial_batches(wavs, MAX_PARTIALS_PER_BATCH):
            np.add.at(sums, owners, self.embed_partials(mels))
        # The mean's direction is the sum's: renormalising makes the division unnecessary.
        return _l2_normalised(sums)


def _partial_batches(
    wavs: Sequence[Float32Array], size: int
) -> Iterator[tuple[Float32Array, NDArray[np.intp]]]:
    """The partials of all utterances in batches of ``size`` (the last may be smaller), each
    with the index of the utterance each partial belongs to. Built as they are consumed, so
    that at most one utterance's and one batch's mel spectrograms are held at a time."""
    pending: list[Float32Array] = []
    owners: list[int] = []
    for index, wav in enumerate(wavs):
        mels = _utterance_partials(normalise_volume(wav))
        pending.append(mels)
        owners += [index] * len(mels)
        if len(owners) >= size:
            joined = np.concatenate(pending)
            full = len(joined) // size * size
            for start in range(0, full, size):
                yield joined[start : start + size], np.array(owners[start : start + size])
            # A copy, so that the joined array is freed rather than kept alive by a view.
            pending, owners = [joined[full:].copy()], owners[full:]
    if owners:
        yield np.concatenate(pending), np.array(owners)
