"""A FAKE Kubernetes API server: pods only, listed and watched as the real one serves them.

No Kubernetes API server can run here, so this stand-in speaks the parts of its protocol
that pod discovery uses, unmodified clients included: ``GET /api/v1/namespaces/{ns}/pods``
with ``labelSelector`` (equality terms) returns a ``PodList`` with a ``resourceVersion``;
with ``watch=true`` it streams newline-delimited ``{"type", "object"}`` events after the
given ``resourceVersion`` until ``timeoutSeconds``, and answers a version it no longer
keeps with an ``ERROR`` event holding a 410 ``Status``, as the real server does. Tests
change pods through its methods, and can break every open watch mid-stream or expire the
history, to see that discovery recovers.
"""

from __future__ import annotations

import asyncio
import copy
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.servers import app_server

Pod = dict[str, Any]


class WatchBroken(Exception):
    """Raised inside a watch stream so the connection drops without a clean end."""


class FakeKubernetes:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.version = 1000
        self.pods: dict[str, Pod] = {}
        self.events: list[tuple[int, str, Pod]] = []
        self.oldest_kept = 0  # watches from before this version get 410 Gone
        self._breaks = 0
        self._expiries = 0
        self.lists = 0
        self.watches = 0
        self.app = Starlette(
            routes=[
                Route("/api/v1/namespaces/{namespace}/pods", self._pods),
                Route("/healthz", lambda _: Response("ok")),
            ]
        )

    # -- what tests do --------------------------------------------------------------------

    def add_pod(self, name: str, url: str, *, ready: bool, labels: dict[str, str]) -> None:
        host, port = url.removeprefix("http://").split(":")
        pod: Pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": "default",
                "uid": f"uid-{name}",
                "labels": labels,
            },
            "spec": {
                "containers": [
                    {
                        "name": "engine",
                        "image": "stenostack",
                        "ports": [{"name": "http", "containerPort": int(port), "protocol": "TCP"}],
                    }
                ]
            },
            "status": {"phase": "Running", "podIP": host, "conditions": []},
        }
        self._set_ready(pod, ready)
        self._change("ADDED", pod)

    def set_ready(self, name: str, ready: bool) -> None:
        with self._lock:
            pod = copy.deepcopy(self.pods[name])
        self._set_ready(pod, ready)
        self._change("MODIFIED", pod)

    def delete_pod(self, name: str) -> None:
        with self._lock:
            pod = copy.deepcopy(self.pods[name])
        self._change("DELETED", pod)

    def break_watches(self) -> None:
        """Every open watch connection drops mid-stream."""
        with self._lock:
            self._breaks += 1

    def expire_history(self) -> None:
        """Open watches end with 410 Gone, and no watch may resume from before now."""
        with self._lock:
            self._expiries += 1
            self.oldest_kept = self.version + 1

    # -- the API --------------------------------------------------------------------------

    @staticmethod
    def _set_ready(pod: Pod, ready: bool) -> None:
        pod["status"]["conditions"] = [{"type": "Ready", "status": "True" if ready else "False"}]

    def _change(self, kind: str, pod: Pod) -> None:
        with self._lock:
            self.version += 1
            pod["metadata"]["resourceVersion"] = str(self.version)
            name = pod["metadata"]["name"]
            if kind == "DELETED":
                self.pods.pop(name)
            else:
                self.pods[name] = pod
            self.events.append((self.version, kind, copy.deepcopy(pod)))

    @staticmethod
    def _matches(pod: Pod, selector: str) -> bool:
        labels = pod["metadata"].get("labels", {})
        terms = [term.split("=", 1) for term in selector.split(",") if term]
        return all(labels.get(key.strip()) == value.strip() for key, value in terms)

    async def _pods(self, request: Request) -> Response:
        selector = request.query_params.get("labelSelector", "")
        if request.query_params.get("watch") in ("true", "1"):
            since = int(request.query_params.get("resourceVersion") or 0)
            timeout = float(request.query_params.get("timeoutSeconds") or 300)
            return StreamingResponse(
                self._watch(selector, since, timeout), media_type="application/json"
            )
        with self._lock:
            self.lists += 1
            items = [copy.deepcopy(p) for p in self.pods.values() if self._matches(p, selector)]
            version = self.version
        return JSONResponse(
            {
                "apiVersion": "v1",
                "kind": "PodList",
                "metadata": {"resourceVersion": str(version)},
                "items": items,
            }
        )

    async def _watch(self, selector: str, since: int, timeout: float) -> AsyncIterator[bytes]:
        with self._lock:
            self.watches += 1
            breaks, expiries = self._breaks, self._expiries
            gone = since < self.oldest_kept
        if gone:
            yield _line(_gone_event())
            return
        deadline = time.monotonic() + timeout
        sent = since
        while time.monotonic() < deadline:
            with self._lock:
                if self._breaks != breaks:
                    raise WatchBroken("connection dropped")
                if self._expiries != expiries:
                    expired = True
                else:
                    expired = False
                    fresh = [e for e in self.events if e[0] > sent]
            if expired:
                yield _line(_gone_event())
                return
            for version, kind, pod in fresh:
                sent = version
                if self._matches(pod, selector):
                    yield _line({"type": kind, "object": pod})
            await asyncio.sleep(0.02)


def _line(event: dict[str, Any]) -> bytes:
    return json.dumps(event).encode() + b"\n"


def _gone_event() -> dict[str, Any]:
    status = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
              "message": "too old resource version", "reason": "Expired", "code": 410}  # fmt: skip
    return {"type": "ERROR", "object": status}


@contextmanager
def fake_kubernetes(directory: Path) -> Iterator[tuple[FakeKubernetes, Path]]:
    """The fake API server on a free port, and a kubeconfig file that points at it."""
    fake = FakeKubernetes()
    with app_server(fake.app, ready_path="/healthz") as url:
        kubeconfig = directory / "kubeconfig"
        kubeconfig.write_text(
            "apiVersion: v1\nkind: Config\n"
            f"clusters: [{{name: fake, cluster: {{server: '{url}'}}}}]\n"
            "users: [{name: fake, user: {token: fake-token}}]\n"
            "contexts: [{name: fake, context: {cluster: fake, user: fake, namespace: default}}]\n"
            "current-context: fake\n"
        )
        yield fake, kubeconfig
