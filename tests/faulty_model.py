"""The one instrumented model of the suite: real Whisper whose decoding fails on cue.

Nothing in a healthy engine fails on demand, so the tests of failures after work has
started (an error inside an event stream, a realtime turn that cannot be transcribed) serve
this model from a real uvicorn server and drive it over HTTP and WebSocket.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from stenostack.api.app import create_app
from stenostack.config import EngineSettings
from stenostack.models.base import ModelStep
from stenostack.models.registry import ModelRegistry, ModelSpec, choose_placement
from stenostack.models.whisper.model import WhisperCT2
from stenostack.models.whisper.steps import Generate
from tests.servers import app_server


class FailsEverySecondDecode(WhisperCT2):
    """The real model, except that every second decoding batch fails, as a broken GPU would."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.decoding_batches = 0

    def run_batch(self, steps: Sequence[ModelStep]) -> list[Any]:
        if isinstance(steps[0], Generate):
            self.decoding_batches += 1
            if self.decoding_batches % 2 == 0:
                raise RuntimeError("CUDA error: an illegal memory access was encountered")
        return super().run_batch(steps)


@contextmanager
def failing_engine() -> Iterator[str]:
    """An engine serving whisper-tiny.en as :class:`FailsEverySecondDecode`; yields its URL."""
    settings = EngineSettings(models=["whisper-tiny.en"])
    registry = ModelRegistry(
        [ModelSpec.parse("whisper-tiny.en")],
        {},
        choose_placement("cpu", "int8"),
        load_model=FailsEverySecondDecode.load,
    )
    with app_server(create_app(settings, registry)) as url:
        yield url
