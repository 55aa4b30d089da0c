"""Kubernetes discovery: engine pods found by label selector, with the official client.

The loop is list, then watch from the list's resource version, and list again whenever a
watch ends for any reason: it timed out, the connection broke, or the API server said the
version is gone (410). Every list replaces the whole set of endpoints, so an event missed
while reconnecting can leave neither a ghost nor a missing backend. Only pods that are
running, ready, not being deleted and have an IP are endpoints. The port is the pod's
container port with the configured name (``http`` by default), or the configured number.
What each pod serves is learned from the pod itself (its ``/v1/models``) by the health
checks. The client blocks, so the loop runs on a thread and hands each new set of URLs to
the event loop.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from stenostack.router.settings import KubernetesDiscovery as KubernetesSettings

log = logging.getLogger(__name__)

RETRY_SECONDS = 1.0


def load_client(settings: KubernetesSettings) -> client.CoreV1Api:
    """In a pod: its service account. Elsewhere: the kubeconfig (``KUBECONFIG``)."""
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config(context=settings.context or None)
    return client.CoreV1Api()


def endpoint_url(pod: Any, settings: KubernetesSettings) -> str | None:
    """The pod's backend URL, or None while it should get no traffic."""
    status = pod.status
    if pod.metadata.deletion_timestamp is not None or status is None:
        return None
    if status.phase != "Running" or not status.pod_ip:
        return None
    ready = any(c.type == "Ready" and c.status == "True" for c in status.conditions or [])
    if not ready:
        return None
    port = settings.port
    for container in pod.spec.containers or []:
        for container_port in container.ports or []:
            if container_port.name == settings.port_name:
                port = container_port.container_port
    return f"http://{status.pod_ip}:{port}"


class PodWatcher:
    """Keeps ``on_change`` told of the current endpoint URLs, until stopped."""

    def __init__(
        self,
        settings: KubernetesSettings,
        on_change: Callable[[list[str]], None],
        api: client.CoreV1Api | None = None,
    ) -> None:
        self.settings = settings
        self.on_change = on_change
        self.api = api
        self._stop = threading.Event()
        self._watch: watch.Watch | None = None
        self._thread = threading.Thread(target=self._run, name="k8s-discovery", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._watch is not None:
            self._watch.stop()

    def _run(self) -> None:
        api = self.api or load_client(self.settings)
        while not self._stop.is_set():
            try:
                self._list_then_watch(api)
            except ApiException as exc:
                if exc.status == 410:
                    log.info("pod watch expired (410 Gone); listing again")
                    continue
                log.warning("kubernetes API error: %s; listing again", exc.reason)
            except Exception as exc:  # the connection broke, or the server misbehaved
                log.warning("pod watch failed: %s; listing again", exc)
            self._stop.wait(RETRY_SECONDS)

    def _list_then_watch(self, api: client.CoreV1Api) -> None:
        namespace, selector = self.settings.namespace, self.settings.label_selector
        pods = api.list_namespaced_pod(namespace, label_selector=selector)
        endpoints: dict[str, str] = {}
        for pod in pods.items:
            if url := endpoint_url(pod, self.settings):
                endpoints[_name(pod)] = url
        self._publish(endpoints)
        self._watch = watch.Watch()
        for event in self._watch.stream(
            api.list_namespaced_pod,
            namespace,
            label_selector=selector,
            resource_version=pods.metadata.resource_version if pods.metadata else None,
            timeout_seconds=self.settings.watch_timeout_s,
            allow_watch_bookmarks=True,
        ):
            kind, pod = event["type"], event["object"]
            if kind == "BOOKMARK":
                continue
            name = _name(pod)
            url = endpoint_url(pod, self.settings) if kind != "DELETED" else None
            if url is None:
                changed = endpoints.pop(name, None) is not None
            else:
                changed = endpoints.get(name) != url
                endpoints[name] = url
            if changed:
                self._publish(endpoints)
            if self._stop.is_set():
                return

    def _publish(self, endpoints: dict[str, str]) -> None:
        self.on_change(sorted(set(endpoints.values())))


def _name(pod: Any) -> str:
    return str(pod.metadata.name)
