"""Choosing a backend among those that serve a model: round robin, least load, affinity.

Least load (the default) compares audio seconds queued and running, so a two-hour file and
a two-second clip do not count alike. Session affinity hashes a caller-chosen header onto a
consistent-hash ring, so a session keeps its backend while the set of backends changes
little.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import itertools
from collections.abc import Sequence

from stenostack.router.backend import Backend
from stenostack.router.settings import RoutingPolicy

VIRTUAL_NODES = 100  # points per backend on the affinity ring


def _hash(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


class Balancer:
    def __init__(self, policy: RoutingPolicy) -> None:
        self.policy = policy
        self._turn = itertools.count()

    def order(self, candidates: Sequence[Backend], affinity_key: str | None) -> list[Backend]:
        """Every candidate, best first (the rest are the failover order)."""
        if not candidates:
            return []
        if self.policy == "session_affinity" and affinity_key:
            return _ring_order(candidates, affinity_key)
        if self.policy == "round_robin" or self.policy == "session_affinity":
            start = next(self._turn) % len(candidates)
            return [*candidates[start:], *candidates[:start]]
        # Least load; equal loads are broken by requests in flight, then in turn.
        start = next(self._turn)
        count = len(candidates)
        ranked = sorted(
            (b.load(), b.inflight_requests, (index - start) % count, index)
            for index, b in enumerate(candidates)
        )
        return [candidates[rank[-1]] for rank in ranked]


@functools.lru_cache(maxsize=64)
def _ring(urls: tuple[str, ...]) -> list[tuple[int, str]]:
    """The hash ring of a set of backends: built once per set, not per request."""
    return sorted((_hash(f"{url}#{index}"), url) for url in urls for index in range(VIRTUAL_NODES))


def _ring_order(candidates: Sequence[Backend], key: str) -> list[Backend]:
    by_url = {backend.url: backend for backend in candidates}
    ring = _ring(tuple(sorted(by_url)))
    position = bisect.bisect(ring, (_hash(key), ""))
    ordered: list[Backend] = []
    for offset in range(len(ring)):
        url = ring[(position + offset) % len(ring)][1]
        if by_url[url] not in ordered:
            ordered.append(by_url[url])
            if len(ordered) == len(candidates):
                break
    return ordered
