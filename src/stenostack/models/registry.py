"""The models an engine serves, under their public names, and their loading state."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import ctranslate2

from stenostack.errors import ModelNotFound, ServiceUnavailable
from stenostack.models.base import SpeechToTextModel
from stenostack.models.sources import BUNDLED_MODELS, resolve_model_dir
from stenostack.models.whisper.model import WhisperCT2

log = logging.getLogger(__name__)


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
        if argument in BUNDLED_MODELS:
            return cls(argument, argument)
        return cls(Path(argument.rstrip("/")).name or argument, argument)


@dataclass(frozen=True)
class Placement:
    device: str
    compute_type: str


def choose_placement(device: str = "auto", compute_type: str = "auto") -> Placement:
    """CUDA with float16 when a GPU is present, CPU with int8 otherwise, unless told."""
    if device == "auto":
        device = "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
    if compute_type == "auto":
        compute_type = "float16" if device == "cuda" else "int8"
    return Placement(device, compute_type)


class ModelRegistry:
    """Resolves, loads and looks up models; aliases point at served names."""

    def __init__(
        self,
        specs: list[ModelSpec],
        aliases: dict[str, str],
        placement: Placement,
        cpu_threads: int = 0,
        model_class: type[WhisperCT2] = WhisperCT2,
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
        self.model_class = model_class
        self._dirs: dict[str, Path] = {}
        self._models: dict[str, SpeechToTextModel] = {}
        self._ready = threading.Event()
        self.load_error: str | None = None

    def resolve(self) -> None:
        """Find every model's files (joining, downloading); raises ModelSourceError."""
        for spec in self.specs:
            self._dirs[spec.name] = resolve_model_dir(spec.source)

    def load(self) -> None:
        """Load every model into memory (slow; call off the event loop)."""
        try:
            if not self._dirs:
                self.resolve()
            for spec in self.specs:
                log.info(
                    "loading model %s from %s on %s/%s",
                    spec.name,
                    self._dirs[spec.name],
                    self.placement.device,
                    self.placement.compute_type,
                )
                self._models[spec.name] = self.model_class(
                    self._dirs[spec.name],
                    device=self.placement.device,
                    compute_type=self.placement.compute_type,
                    cpu_threads=self.cpu_threads,
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
