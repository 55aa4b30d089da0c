from __future__ import annotations

from collections.abc import Iterator

import pytest
from openai import OpenAI

from tests.servers import RunningServer, engine_server, openai_client
from tests.speech import compose, wav_bytes
from tests.texts import COFFEE_ORDER


@pytest.fixture(scope="session")
def engine() -> Iterator[RunningServer]:
    """One engine with the bundled default models, shared by the whole session."""
    with engine_server() as server:
        yield server


@pytest.fixture(scope="session")
def client(engine: RunningServer) -> OpenAI:
    return openai_client(engine.url, timeout=300)


@pytest.fixture(scope="module")
def clip() -> bytes:
    """About three seconds of ``COFFEE_ORDER``, spoken (a module may define its own clip)."""
    return wav_bytes(compose([0.3, COFFEE_ORDER, 0.3]).samples)


@pytest.fixture(scope="module")
def engines() -> Iterator[list[RunningServer]]:
    """Two whisper-tiny.en engines, for a module's routers to front."""
    model = "whisper-tiny.en"
    with engine_server("--model", model) as first, engine_server("--model", model) as second:
        yield [first, second]


@pytest.fixture(autouse=True)
def _engine_still_serving(request: pytest.FixtureRequest) -> Iterator[None]:
    """After every test that used the shared engine, it must still be alive and ready."""
    yield
    if "engine" in request.fixturenames:
        server: RunningServer = request.getfixturevalue("engine")
        assert server.process.poll() is None, f"engine died:\n{server.log()}"
