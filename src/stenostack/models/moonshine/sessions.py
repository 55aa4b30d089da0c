"""Moonshine's two ONNX graphs on ONNX Runtime: the encoder, and the merged decoder.

The merged decoder holds two branches chosen by ``use_cache_branch``: the first call
(false) takes the start token and computes every layer's key and value cache, for the
decoder's own tokens and for the encoder's output; each later call (true) takes one new
token and the caches, and returns the decoder's caches one token longer. The encoder's
caches are the first call's, used unchanged after (as the reference decoders do). Neither
graph takes an attention mask for the audio (newer exports that take one get a mask of
ones), so every row of one call must have the same length.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

log = logging.getLogger(__name__)

#: The encoder's output for a batch of audio: [rows, positions, model width].
Hidden = npt.NDArray[np.float32]
#: The caches by decoder input name (``past_key_values.{layer}.{decoder|encoder}.{key|value}``).
Cache = dict[str, npt.NDArray[np.float32]]

ENCODER_NAMES = ("encoder_model.ort", "encoder_model.onnx")
DECODER_NAMES = ("decoder_model_merged.ort", "decoder_model_merged.onnx")

_CACHE_INPUT = re.compile(r"past_key_values\.(\d+)\.(decoder|encoder)\.(key|value)")


def model_file(model_dir: Path, names: tuple[str, ...]) -> Path | None:
    """The first of ``names`` present in ``model_dir`` (the compact ``.ort`` first)."""
    return next((model_dir / name for name in names if (model_dir / name).is_file()), None)


def providers_for(device: str) -> list[str]:
    """ONNX Runtime's execution providers for a device; CUDA only where this build has it."""
    if device == "cuda":
        if "CUDAExecutionProvider" in ort.get_available_providers():
            return ["CUDAExecutionProvider", "CPUExecutionProvider"]
        log.warning("onnxruntime offers no CUDAExecutionProvider here: Moonshine runs on the CPU")
    return ["CPUExecutionProvider"]


@dataclass(frozen=True)
class DecoderStep:
    """What one decoder call gives: the last position's logits and the caches to keep."""

    logits: npt.NDArray[np.float32]  # [rows, vocabulary]
    cache: Cache


class MoonshineSessions:
    """One encoder and one decoder session. ``run`` may be called from several threads at
    once: with one thread per call (``threads=1``) each call runs on its caller's thread."""

    def __init__(self, model_dir: Path, providers: list[str], threads: int) -> None:
        encoder_path = model_file(model_dir, ENCODER_NAMES)
        decoder_path = model_file(model_dir, DECODER_NAMES)
        if encoder_path is None or decoder_path is None:
            raise FileNotFoundError(f"'{model_dir}' holds no Moonshine encoder and decoder")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self._encoder = ort.InferenceSession(str(encoder_path), options, providers=providers)
        self._decoder = ort.InferenceSession(str(decoder_path), options, providers=providers)
        self._encoder_inputs = {i.name for i in self._encoder.get_inputs()}
        decoder_inputs = self._decoder.get_inputs()
        self._decoder_input_names = {i.name for i in decoder_inputs}
        cache_inputs = [i for i in decoder_inputs if _CACHE_INPUT.fullmatch(i.name)]
        if not cache_inputs:
            raise ValueError(f"'{decoder_path}' is not a merged decoder: it takes no caches")
        # [rows, heads, length, head width]: an empty cache for the first call.
        _, heads, _, width = cache_inputs[0].shape
        self._empty_cache_shape = (0, int(heads), 0, int(width))
        self.cache_names = tuple(i.name for i in cache_inputs)
        self._decoder_outputs = [o.name for o in self._decoder.get_outputs()]
        # Later calls fetch the logits and the decoder's caches only.
        self._step_outputs = [name for name in self._decoder_outputs if ".encoder." not in name]

    def encode(self, audio: npt.NDArray[np.float32]) -> Hidden:
        """The encoder's output for ``audio`` [rows, samples], floats in [-1, 1)."""
        feeds: dict[str, Any] = {"input_values": audio}
        if "attention_mask" in self._encoder_inputs:
            feeds["attention_mask"] = np.ones(audio.shape, dtype=np.int64)
        hidden: Hidden = self._encoder.run(None, feeds)[0]
        return hidden

    def decode(
        self, tokens: npt.NDArray[np.int64], hidden: Hidden, cache: Cache | None
    ) -> DecoderStep:
        """One decoder call: the first (``cache`` None) on the start tokens [rows, 1], each
        later one on the last tokens and the caches it returned."""
        first = cache is None
        if cache is None:
            empty = np.zeros(self._empty_cache_shape, dtype=np.float32)
            cache = dict.fromkeys(self.cache_names, empty)
        feeds: dict[str, Any] = {
            "input_ids": tokens,
            "encoder_hidden_states": hidden,
            "use_cache_branch": np.array([not first]),
            **cache,
        }
        if "encoder_attention_mask" in self._decoder_input_names:
            feeds["encoder_attention_mask"] = np.ones(hidden.shape[:2], dtype=np.int64)
        names = self._decoder_outputs if first else self._step_outputs
        outputs = dict(zip(names, self._decoder.run(names, feeds), strict=True))
        kept = {
            name: outputs.get(name.replace("past_key_values", "present"), cache[name])
            for name in self.cache_names
        }
        return DecoderStep(outputs["logits"][:, -1, :], kept)
