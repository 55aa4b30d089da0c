"""Kubernetes discovery: the router, using the official client unmodified, follows pods of
a FAKE API server (see ``fake_kubernetes.py``) to real engines on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fake_kubernetes import FakeKubernetes, fake_kubernetes
from tests.servers import RunningServer, openai_client, router_server, wait_until
from tests.speech import compose, wav_bytes
from tests.wer import word_error_rate

MODEL = "whisper-tiny.en"
TEXT = "The meeting has been moved to Thursday afternoon."
ENGINE = {"app": "engine"}
OTHER = {"app": "something-else"}


@pytest.fixture
def cluster(
    tmp_path: Path, engines: list[RunningServer]
) -> Iterator[tuple[FakeKubernetes, RunningServer]]:
    config = tmp_path / "router.yaml"
    config.write_text(
        "health: {interval_s: 0.5}\n"
        "kubernetes: {enabled: true, label_selector: app=engine, watch_timeout_s: 60}\n"
    )
    with (
        fake_kubernetes(tmp_path) as (fake, kubeconfig),
        router_server(
            "--config", str(config), env={"KUBECONFIG": str(kubeconfig)}, ready_status=503
        ) as router,
    ):
        yield fake, router


def routed_to(router: RunningServer) -> list[str]:
    """The backends the router would send a request to now."""
    body = httpx.get(f"{router.url}/ready", timeout=5).json()
    return sorted(body["backends"])


def expect(router: RunningServer, urls: list[str], what: str) -> None:
    wait_until(lambda: routed_to(router) == sorted(urls), timeout=10, what=what)


def test_pods_come_and_go_through_ready_unready_delete_and_broken_watches(
    cluster: tuple[FakeKubernetes, RunningServer], engines: list[RunningServer]
) -> None:
    fake, router = cluster
    first, second = (engine.url for engine in engines)
    wait_until(lambda: fake.watches >= 1, what="the router to watch pods")
    assert routed_to(router) == []

    fake.add_pod("engine-a", first, ready=False, labels=ENGINE)
    fake.add_pod("unrelated", second, ready=True, labels=OTHER)  # another app's pod
    fake.set_ready("engine-a", True)
    expect(router, [first], "a pod that turned ready")
    clip = wav_bytes(compose([0.3, TEXT, 0.3]).samples)
    client = openai_client(router.url)
    text = client.audio.transcriptions.create(model=MODEL, file=("a.wav", clip)).text
    assert word_error_rate(TEXT, text) <= 0.2
    assert [m.id for m in client.models.list().data] == [MODEL]  # learned from the pod

    fake.add_pod("engine-b", second, ready=True, labels=ENGINE)
    expect(router, [first, second], "a second ready pod")
    fake.set_ready("engine-a", False)
    expect(router, [second], "a pod that turned unready")

    # The watch drops mid-stream and, while it is down, a pod goes: the next list sees it.
    lists = fake.lists
    fake.break_watches()
    fake.delete_pod("engine-b")
    expect(router, [], "a pod deleted while the watch was broken")
    assert fake.lists > lists

    # The history expires (410 Gone) with changes the router never saw as events.
    fake.set_ready("engine-a", True)
    expect(router, [first], "the pod ready again")
    lists = fake.lists
    fake.expire_history()
    fake.add_pod("engine-c", second, ready=True, labels=ENGINE)
    fake.delete_pod("engine-a")
    expect(router, [second], "the state after 410 Gone")
    assert fake.lists > lists
    text = client.audio.transcriptions.create(model=MODEL, file=("a.wav", clip)).text
    assert word_error_rate(TEXT, text) <= 0.2
