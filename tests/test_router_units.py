"""The router's pieces on their own: balancing, reading ahead in a form, replaying a body,
reloading settings."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest

from stenostack.errors import ClientDisconnected
from stenostack.router.backend import Backend
from stenostack.router.balancer import Balancer
from stenostack.router.body import ReplayBudget, RequestBody
from stenostack.router.settings import OutlierEjection, RouterSettings
from tests.multipart import multipart


def backends(*loads: float) -> list[Backend]:
    result = []
    for index, load in enumerate(loads):
        backend = Backend(f"http://b{index}", healthy=True)
        backend.begin_request(load)
        result.append(backend)
    return result


def test_least_load_counts_audio_seconds_not_requests() -> None:
    pool = backends(7200.0, 2.0, 30.0)  # one two-hour file vs a clip vs a short file
    pool[1].begin_request(2.0)  # two requests in flight, still the lightest in audio
    assert [b.url for b in Balancer("least_load").order(pool, None)] == [
        "http://b1", "http://b2", "http://b0",
    ]  # fmt: skip


def test_least_load_adds_what_the_engine_reports_from_other_callers() -> None:
    pool = backends(10.0, 10.0)
    pool[0].reported_queued_audio_s = 500.0  # another router's work
    pool[0].inflight_at_report_s = 10.0
    assert Balancer("least_load").order(pool, None)[0].url == "http://b1"


def test_round_robin_takes_turns() -> None:
    pool = backends(0, 0, 0)
    balancer = Balancer("round_robin")
    firsts = Counter(balancer.order(pool, None)[0].url for _ in range(30))
    assert set(firsts.values()) == {10}


def test_affinity_keeps_a_session_on_its_backend_when_others_leave() -> None:
    pool = backends(0, 0, 0, 0)
    balancer = Balancer("session_affinity")
    chosen = {f"session-{i}": balancer.order(pool, f"session-{i}")[0].url for i in range(200)}
    assert len(set(chosen.values())) == 4  # spread over all
    remaining = [b for b in pool if b.url != "http://b3"]
    moved = [s for s, url in chosen.items() if url != "http://b3" and
             balancer.order(remaining, s)[0].url != url]  # fmt: skip
    assert moved == []  # only sessions of the removed backend move


def test_ejection_grows_and_a_leaving_backend_returns_at_its_first_answer() -> None:
    policy = OutlierEjection(consecutive_failures=3, base_ejection_s=2.0, max_ejection_s=5.0)
    backend = Backend("http://b", healthy=True)
    assert not backend.record_failure(policy) and not backend.record_failure(policy)
    assert backend.record_failure(policy) and not backend.available()
    first_ejection_ends = backend.ejected_until
    backend.ejected_until = 0.0
    for _ in range(3):
        backend.record_failure(policy)
    assert backend.ejections_in_a_row == 2
    assert backend.ejected_until - first_ejection_ends > 1.0  # twice as long: 4 s against 2 s
    backend.ejected_until = 0.0
    # Refusing connections, however often, is no ejection: the first answer brings it back.
    for _ in range(10):
        backend.mark_leaving()
    assert not backend.available()
    assert backend.mark_serving() and backend.available()


def feed(chunks: list[bytes]) -> Any:
    messages = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
        for i, c in enumerate(chunks)
    ]

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        return {"type": "http.disconnect"}

    return receive


def split(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


async def collect(body: RequestBody) -> bytes:
    return b"".join([chunk async for chunk in body.chunks()])


@pytest.mark.parametrize("model_first", [True, False])
def test_reading_ahead_to_the_model_keeps_the_body_whole(model_first: bool) -> None:
    parts: list[tuple[str, str | tuple[str, bytes]]] = [
        ("file", ("a.wav", bytes(range(256)) * 400)),
        ("language", "en"),
    ]
    parts.insert(0 if model_first else 2, ("model", "whisper-x"))
    data, content_type = multipart(parts)
    boundary = content_type.split("boundary=")[1].encode()
    body = RequestBody(feed(split(data, 1000)), max_bytes=10**7, replay_limit=10**6)

    async def run() -> tuple[dict[str, str], bytes, bytes]:
        fields = await body.read_form_head(boundary, "model")
        return fields, await collect(body), await collect(body)  # sent twice: a retry

    fields, first, again = asyncio.run(run())
    assert fields["model"] == "whisper-x"
    assert first == data and again == data
    assert body.spooled is not model_first  # a temp file only when the file came first
    body.close()


def test_a_body_past_the_replay_buffer_cannot_be_sent_again() -> None:
    data = b"x" * 50_000
    body = RequestBody(feed(split(data, 1000)), max_bytes=10**6, replay_limit=10_000)
    assert asyncio.run(collect(body)) == data
    assert not body.replayable


def test_a_client_leaving_mid_upload_is_noticed() -> None:
    messages = [{"type": "http.request", "body": b"abc", "more_body": True}]

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    body = RequestBody(receive, max_bytes=10**6, replay_limit=10**6)
    with pytest.raises(ClientDisconnected):
        asyncio.run(collect(body))


def test_a_reload_takes_the_live_settings_and_names_those_that_wait_for_a_restart() -> None:
    settings = RouterSettings(port=8080, routing="least_load", affinity_header="x-session-id")
    fresh = RouterSettings(port=9090, routing="round_robin", affinity_header="x-user")
    fresh.kubernetes.enabled = True
    assert settings.take_live(fresh) == ["port", "kubernetes"]
    assert (settings.routing, settings.affinity_header) == ("round_robin", "x-user")
    assert (settings.port, settings.kubernetes.enabled) == (8080, False)


def test_a_smaller_replay_budget_leaves_requests_what_they_hold() -> None:
    budget = ReplayBudget(100)
    assert budget.take(60)
    budget.resize(50)
    assert not budget.take(1)  # 60 held, 50 allowed: nothing more until they give back
    budget.give(60)
    assert budget.available == 50 and budget.take(50)
