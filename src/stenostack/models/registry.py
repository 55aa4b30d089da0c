"""The models an engine serves, under their public names, and their loading state.

Resolving a model's source says which family its files are (families are plug-ins,
:mod:`stenostack.models.families`); that family's loader (a
:class:`~stenostack.models.base.ModelFactory`) loads them.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import ctranslate2

from stenostack.errors import ModelNotFound, ServiceUnavailable
from stenostack.models.base import DecodingSettings, ModelFactory, Placement, SpeechToTextModel
from stenostack.models.families import bundled_models, family_named
from stenostack.models.sources import OPENAI_DEFAULT_MODEL, ModelFiles, resolve_model

log = logging.getLogger(__name__)

# The beam size when none is given, per device. CPU: greedy, measured (README, "Decoding"):
# beam 5 is more accurate but serves 0.6-0.86x the short clips and a tenth of the live turns
# of 64 flooding sessions (tests/test_fairness.py: 0.1 against 1.3 turns/s), so it is the
# caller's trade to make. CUDA: faster-whisper's default, not measured here.
DEFAULT_BEAM_SIZE = {"cpu": 1, "cuda": 5}


@dataclass(frozen=True)
class ModelSpec:
    """A model to serve: its public name and where its weights are."""

    name: str
    source: str

    @classmethod
    def parse(cls, argument: str) -> ModelSpec:
        """``NAME=SOURCE`` or just ``SOURCE`` (named after the directory or hub id)."""
        name, separator, source = argument.partition("=")
        if separator and name and source:
            return cls(name.strip(), source.strip())
        if argument in bundled_models():
            return cls(argument, argument)
        return cls(Path(argument.rstrip("/")).name or argument, argument)


def choose_placement(device: str = "auto", compute_type: str = "auto") -> Placement:
    """CUDA with float16 when a GPU is present, CPU with int8 otherwise, unless told."""
    if device == "auto":
        device = "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
    if compute_type == "auto":
        compute_type = "float16" if device == "cuda" else "int8"
    return Placement(device, compute_type)


def choose_decoding(
    placement: Placement,
    beam_size: int | None = None,
    best_of: int = 5,
    patience: float = 1.0,
    length_penalty: float = 1.0,
) -> DecodingSettings:
    """The search settings, with the device's beam size unless one is given; raises
    ValueError on a value out of range."""
    if beam_size is None:
        beam_size = DEFAULT_BEAM_SIZE[placement.device]
    return DecodingSettings(beam_size, best_of, patience, length_penalty)


class ModelRegistry:
    """Resolves, loads and looks up models; aliases point at served names.

    ``load_model``, when given, loads every model in place of its family's loader (the
    tests serve an instrumented model this way).
    """

    def __init__(
        self,
        specs: list[ModelSpec],
        aliases: dict[str, str],
        placement: Placement,
        cpu_threads: int = 0,
        load_model: ModelFactory | None = None,
        decoding: DecodingSettings | None = None,
    ) -> None:
        self.specs = specs
        names = {spec.name for spec in specs}
        # An alias is kept only when it names no served model and points at one.
        self.aliases = {
            alias: target
            for alias, target in aliases.items()
            if alias not in names and target in names
        }
        self.placement = placement
        self.cpu_threads = cpu_threads
        self.decoding = decoding or choose_decoding(placement)
        self.load_model = load_model
        self._files: dict[str, ModelFiles] = {}
        self._models: dict[str, SpeechToTextModel] = {}
        self._ready = threading.Event()
        self.load_error: str | None = None

    def resolve(self) -> None:
        """Find every model's files (joining, downloading); raises ModelSourceError."""
        for spec in self.specs:
            self._files[spec.name] = resolve_model(spec.source)

    def load(self) -> None:
        """Load every model into memory (slow; call off the event loop)."""
        try:
            if not self._files:
                self.resolve()
            for spec in self.specs:
                files = self._files[spec.name]
                log.info(
                    "loading model %s from %s on %s/%s (%s)",
                    spec.name,
                    files.directory,
                    self.placement.device,
                    self.placement.compute_type,
                    self.decoding,
                )
                load = self.load_model or family_named(files.family).load
                self._models[spec.name] = load(
                    files.directory, self.placement, self.cpu_threads, self.decoding
                )
        except Exception as exc:
            self.load_error = f"{type(exc).__name__}: {exc}"
            raise
        self._ready.set()

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def served_names(self) -> list[str]:
        return [spec.name for spec in self.specs] + list(self.aliases)

    def default_name(self) -> str:
        """The served name a request without a model gets: OpenAI's default when it is
        served, else the first model."""
        names = self.served_names()
        return OPENAI_DEFAULT_MODEL if OPENAI_DEFAULT_MODEL in names else names[0]

    def root_name(self, name: str) -> str:
        """The served model a public name refers to; raises ModelNotFound."""
        root = self.aliases.get(name, name)
        if root not in {spec.name for spec in self.specs}:
            raise ModelNotFound(name, self.served_names())
        return root

    def get(self, name: str) -> SpeechToTextModel:
        root = self.root_name(name)
        if not self.ready:
            raise ServiceUnavailable("The models are still loading; retry shortly.")
        return self._models[root]

    def loaded(self) -> dict[str, SpeechToTextModel]:
        return dict(self._models) if self.ready else {}
