"""What serves transcriptions, built from :class:`EngineSettings`: the process's settings,
the model registry and the engine. ``stenostack serve`` serves them over HTTP and
``stenostack transcribe`` runs them in its own process, so both build them here."""

from __future__ import annotations

from stenostack.config import EngineSettings
from stenostack.engine.diarization_lane import DiarizationLane
from stenostack.engine.engine import Engine, EngineLimits
from stenostack.engine.memory import limit_malloc_arenas
from stenostack.metrics import EngineMetrics
from stenostack.models.families import FamilyError
from stenostack.models.registry import (
    ModelRegistry,
    ModelSpec,
    choose_decoding,
    choose_placement,
)
from stenostack.models.sources import ModelSourceError


class SetupError(Exception):
    """What was asked cannot be set up (a bad model source or decoding setting); its
    message is one line for the user."""


def prepare_process() -> None:
    """Process-wide settings, before any model loads.

    Two malloc arenas keep a long file's peak memory far lower (``engine/memory.py``). One
    BLAS thread: the voice encoder's many small matrix products run 3-4 times slower when
    BLAS threads fight the speech model for the cores, and with the same setting whether
    diarization is loaded or not, Whisper's features (a BLAS product) round the same way, so
    every way of running gives the same numbers.
    """
    from threadpoolctl import threadpool_limits

    limit_malloc_arenas()
    threadpool_limits(limits=1, user_api="blas")


def build_registry(settings: EngineSettings) -> ModelRegistry:
    """The models ``settings`` ask for, resolved (files found, joined or downloaded) but not
    loaded, on the placement and with the decoding they ask for. Raises
    :class:`SetupError`."""
    try:
        specs = [ModelSpec.parse(argument) for argument in settings.models]
    except FamilyError as exc:
        raise SetupError(str(exc)) from exc
    names = [spec.name for spec in specs]
    if len(set(names)) != len(names):
        raise SetupError(f"two models share a name: {names}")
    placement = choose_placement(settings.device, settings.compute_type)
    try:
        decoding = choose_decoding(
            placement,
            settings.beam_size,
            settings.best_of,
            settings.patience,
            settings.length_penalty,
        )
    except ValueError as exc:
        raise SetupError(str(exc)) from exc
    registry = ModelRegistry(
        specs, settings.aliases, placement, settings.cpu_threads, decoding=decoding
    )
    try:
        registry.resolve()
    except (ModelSourceError, FamilyError) as exc:
        raise SetupError(str(exc)) from exc
    return registry


def build_engine(settings: EngineSettings, registry: ModelRegistry) -> Engine:
    """The engine over ``registry``, with its metrics, limits and diarization lane (loaded
    by whoever starts the engine, or disabled as ``settings`` say)."""
    metrics = EngineMetrics()
    limits = EngineLimits(
        max_audio_seconds=settings.max_audio_seconds,
        max_queued_audio_seconds=settings.max_queued_audio_seconds,
        gather_window_s=settings.batch_gather_ms / 1000,
    )
    diarization = DiarizationLane(metrics, settings.diarization_dir, settings.diarization_threads)
    if not settings.diarization:
        diarization.disable("it was turned off (--no-diarization)")
    return Engine(registry, metrics, limits, diarization)
