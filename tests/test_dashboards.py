"""The chart's Grafana dashboards against real servers: every series a panel or template
variable queries, and every label it selects or groups by, must be in the ``/metrics`` of a
real engine and of a real router in front of it, after traffic that makes each series exist
(a transcription, a refused request, a backend ejected and one gone silent, a request held
for a model whose engine is scaled to zero)."""

from __future__ import annotations

import asyncio
import copy
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from tests.chart import of_kind, render
from tests.servers import (
    RunningServer,
    app_server,
    engine_server,
    metric,
    openai_client,
    router_server,
    wait_until,
)
from tests.speech import compose, wav_bytes
from tests.texts import COFFEE_ORDER
from tests.wer import word_error_rate

DASHBOARDS = Path(__file__).resolve().parent.parent / "deploy/helm/stenostack/dashboards"
MODEL = "whisper-tiny.en"
SCALED_TO_ZERO = "whisper-small"  # a cold-start model: no engine serves it now
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
# Labels Prometheus itself adds to each target scraped through a ServiceMonitor or PodMonitor.
TARGET_LABELS = frozenset({"namespace", "pod", "service", "container", "endpoint", "job"})
METRIC = re.compile(r"stenostack_[a-z_]+")
SELECTOR = re.compile(r"(stenostack_[a-z_]+)\{([^}]*)\}")
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
LABEL_VALUES = re.compile(r"label_values\((stenostack_[a-z_]+)(?:\{([^}]*)\})?,\s*(\w+)\)")

Exposed = dict[str, frozenset[str]]  # sample name (x_total, x_bucket, ...) -> label names
Dashboard = dict[str, Any]


@dataclass
class Scraped:
    engine: Exposed
    router: Exposed


def exposed(server: RunningServer) -> Exposed:
    labels: dict[str, set[str]] = {}
    for (name, sample_labels), _ in server.metric_samples().items():
        labels.setdefault(name, set()).update(label for label, _ in sample_labels)
    return {name: frozenset(names) for name, names in labels.items()}


def failing_backend(frozen: threading.Event) -> Starlette:
    """A backend that passes the router's health check (its probe is a file named
    healthcheck.wav) but fails live work with 502, so the router retries elsewhere and
    ejects it; while ``frozen`` is set its ``/health`` gives no answer."""

    async def transcribe(request: Request) -> Response:
        if b'filename="healthcheck.wav"' in await request.body():
            return PlainTextResponse("ok")
        return PlainTextResponse("upstream failed", 502)

    async def models(_: Request) -> Response:
        entry = {"id": MODEL, "object": "model", "capabilities": {"transcription": True}}
        return JSONResponse({"object": "list", "data": [entry]})

    async def health(_: Request) -> Response:
        while frozen.is_set():
            await asyncio.sleep(0.1)
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route("/v1/audio/transcriptions", transcribe, methods=["POST"]),
            Route("/v1/models", models),
            Route("/health", health),
            Route("/ready", health),
        ]
    )


@pytest.fixture(scope="module")
def scraped() -> Iterator[Scraped]:
    frozen = threading.Event()
    with (
        engine_server("--model", MODEL) as engine,
        app_server(failing_backend(frozen)) as failing,
        router_server(
            *("--backend", engine.url, "--backend", failing, "--routing", "round_robin"),
            *("--cold-start-model", SCALED_TO_ZERO, "--cold-start-wait-s", "0.5"),
        ) as router,
    ):
        healthy = "stenostack_router_backend_healthy"
        wait_until(lambda: metric(router, healthy, backend=failing) == 1, what="both healthy")
        client = openai_client(router.url, timeout=120)
        clip = ("speech.wav", wav_bytes(compose([0.3, COFFEE_ORDER, 0.3]).samples))
        ejections = "stenostack_router_backend_ejections_total"
        for _ in range(12):  # round robin: each failure on the failing one is retried
            text = client.audio.transcriptions.create(model=MODEL, file=clip).text
            assert word_error_rate(COFFEE_ORDER, text) < 0.3, text
            if metric(router, ejections, backend=failing) > 0:
                break
        assert metric(router, ejections, backend=failing) > 0, router.log()
        refused = httpx.post(
            f"{router.url}/v1/audio/transcriptions",
            files={"file": clip},
            data={"model": MODEL, "language": "klingon"},
            timeout=60,
        )
        assert refused.status_code == 400, refused.text
        held = httpx.post(
            f"{router.url}/v1/audio/transcriptions",
            files={"file": clip},
            data={"model": SCALED_TO_ZERO},
            timeout=60,
        )
        assert held.status_code == 503, held.text  # held for the cold-start wait, then 503
        frozen.set()
        try:
            unresponsive = "stenostack_router_backend_unresponsive_total"
            wait_until(lambda: metric(router, unresponsive, backend=failing) > 0, what="silence")
            yield Scraped(engine=exposed(engine), router=exposed(router))
        finally:
            frozen.clear()  # its pending probes answer, so the backend can stop


def load(name: str) -> Dashboard:
    board: Dashboard = json.loads((DASHBOARDS / name).read_text())
    return board


def panels(board: Dashboard) -> Iterator[dict[str, Any]]:
    """Every panel that is not a row, collapsed rows' panels included."""
    for panel in board["panels"]:
        if panel["type"] == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def expression_problems(expr: str, metrics: Exposed, variables: set[str]) -> list[str]:
    names = set(METRIC.findall(expr))
    found = [f"{expr!r}: names no stenostack metric"] if not names else []
    found += [f"{expr!r}: {name} is not exposed" for name in sorted(names - metrics.keys())]
    known = names & metrics.keys()
    for match in SELECTOR.finditer(expr):
        matchers = re.sub(r'"[^"]*"', '""', match.group(2))
        for label in re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", matchers):
            found += label_problems(expr, label, {match.group(1)} & known, metrics)
    for match in GROUPING.finditer(expr):
        for label in filter(None, (part.strip() for part in match.group(1).split(","))):
            found += label_problems(expr, label, known, metrics)
    undefined = {v for v in re.findall(r"\$(\w+)", expr) if not v.startswith("__")} - variables
    found += [f"{expr!r}: ${name} is no template variable" for name in sorted(undefined)]
    return found


def label_problems(expr: str, label: str, names: set[str], metrics: Exposed) -> list[str]:
    if label in TARGET_LABELS:
        return []
    return [
        f"{expr!r}: {name} has no label {label}" for name in names if label not in metrics[name]
    ]


def dashboard_problems(board: Dashboard, metrics: Exposed) -> list[str]:
    """What keeps ``board`` from loading through Grafana's sidecar or from showing data."""
    found = [f"no {key}" for key in ("uid", "title") if not board.get(key)]
    if board.get("id") is not None:
        found.append("an id is set: Grafana assigns its own")
    variables = {v["name"]: v for v in board["templating"]["list"]}
    source = variables.get("datasource", {})
    if (source.get("type"), source.get("query")) != ("datasource", "prometheus"):
        found.append("no Prometheus datasource variable named datasource")
    for name, variable in variables.items():
        if variable["type"] != "query":
            continue
        if variable.get("datasource") != DATASOURCE:
            found.append(f"variable {name}: datasource is not ${{datasource}}")
        query = LABEL_VALUES.fullmatch(variable["query"])
        if query is None:
            found.append(f"variable {name}: {variable['query']!r} is no label_values query")
            continue
        found += expression_problems(variable["query"], metrics, set(variables))
        found += label_problems(variable["query"], query.group(3), {query.group(1)}, metrics)
    listed = list(panels(board))
    if not listed:
        found.append("no panels")
    for panel in listed:
        where = f"panel {panel.get('title')!r}"
        if panel.get("datasource") != DATASOURCE:
            found.append(f"{where}: datasource is not ${{datasource}}")
        if not panel.get("targets"):
            found.append(f"{where}: no queries")
        for target in panel.get("targets", []):
            if target.get("datasource") != DATASOURCE:
                found.append(f"{where}: a query's datasource is not ${{datasource}}")
            found += [
                f"{where}: {problem}"
                for problem in expression_problems(target.get("expr", ""), metrics, set(variables))
            ]
    return found


@pytest.mark.parametrize("name", ["engine", "router"])
def test_every_query_names_series_and_labels_the_server_exposes(
    scraped: Scraped, name: str
) -> None:
    board = load(f"{name}.json")
    assert dashboard_problems(board, getattr(scraped, name)) == []
    assert board["schemaVersion"] >= 36


def test_a_missing_metric_or_label_is_found(scraped: Scraped) -> None:
    board = copy.deepcopy(load("engine.json"))
    first, second = list(panels(board))[:2]
    first["targets"][0]["expr"] = "sum(rate(stenostack_no_such_metric_total[5m]))"
    second["targets"][0]["expr"] = "sum by (no_such_label) (stenostack_queued_audio_seconds)"
    del board["templating"]["list"][0]
    problems = dashboard_problems(board, scraped.engine)
    assert any("stenostack_no_such_metric_total is not exposed" in p for p in problems)
    assert any("has no label no_such_label" in p for p in problems)
    assert any("no Prometheus datasource variable" in p for p in problems)


def test_the_folder_holds_exactly_the_checked_dashboards_with_unique_uids() -> None:
    files = sorted(path.name for path in DASHBOARDS.iterdir())
    assert files == ["engine.json", "router.json"]  # the ConfigMap ships every file here
    boards = [load(name) for name in files]
    assert len({b["uid"] for b in boards}) == len({b["title"] for b in boards}) == len(boards)
    assert all(len(b["uid"]) <= 40 for b in boards)  # Grafana's limit
    assert sum((DASHBOARDS / name).stat().st_size for name in files) < 1024 * 1024  # ConfigMap


def test_the_autoscalers_queries_name_series_and_labels_the_servers_expose(
    scraped: Scraped,
) -> None:
    """KEDA's queries and the HPA's metric in the autoscaling example: a name or label the
    servers do not expose would leave the autoscaler reading nothing, and never scaling."""
    manifests = render("autoscaling-monitoring-values.yaml")
    queries = [
        trigger["metadata"]["query"]
        for scaler in of_kind(manifests, "ScaledObject")
        for trigger in scaler["spec"]["triggers"]
    ]
    assert len(queries) >= 3  # two engines' queues and one wake-up from zero
    problems = []
    for query in queries:
        router_query = "stenostack_router_" in query
        metrics = scraped.router if router_query else scraped.engine
        problems += expression_problems(query, metrics, set())
    for hpa in of_kind(manifests, "HorizontalPodAutoscaler"):
        for entry in hpa["spec"]["metrics"]:
            name = entry["pods"]["metric"]["name"]
            if name not in scraped.engine:
                problems.append(f"HPA {hpa['metadata']['name']}: {name} is not exposed")
    assert problems == []
