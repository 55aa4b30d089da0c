"""Callers: API keys, and optional per-key rate limits in requests and audio minutes.

Keys are matched in constant time (:class:`~stenostack.http.auth.ApiKeys`, shared with the
engine). Limits are token buckets: a key may use its whole allowance at once, and it
refills evenly (requests per minute, audio minutes per hour).
Audio is estimated from the upload's declared size, as for least-load routing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from stenostack.errors import InvalidApiKey
from stenostack.http.auth import ApiKeys
from stenostack.router.errors import RateLimited


@dataclass(frozen=True)
class CallerKey:
    key: str
    requests_per_minute: float | None = None
    audio_minutes_per_hour: float | None = None

    @classmethod
    def parse(cls, entry: Any) -> CallerKey:
        """A key from the config: a string, or a mapping with ``key`` and its limits."""
        if isinstance(entry, str):
            return cls(entry)
        if isinstance(entry, dict) and isinstance(entry.get("key"), str):
            return cls(
                entry["key"],
                entry.get("requests_per_minute"),
                entry.get("audio_minutes_per_hour"),
            )
        raise ValueError("each api_keys entry must be a string or a mapping with a 'key'")


class TokenBucket:
    def __init__(self, capacity: float, per_second: float) -> None:
        self.capacity = capacity
        self.per_second = per_second
        self.tokens = capacity
        self.updated = time.monotonic()

    def wait_for(self, amount: float) -> float:
        """0 if ``amount`` can be taken now (and take it), else the seconds until it can."""
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.per_second)
        self.updated = now
        needed = min(amount, self.capacity)  # one request bigger than the bucket waits for all
        if self.tokens >= needed:
            self.tokens -= needed
            return 0.0
        return (needed - self.tokens) / self.per_second


class Callers:
    def __init__(self, entries: list[Any]) -> None:
        self.keys = [CallerKey.parse(entry) for entry in entries]
        self._matcher = ApiKeys(key.key for key in self.keys)
        self._requests = {
            k.key: TokenBucket(k.requests_per_minute, k.requests_per_minute / 60)
            for k in self.keys
            if k.requests_per_minute
        }
        self._audio = {
            k.key: TokenBucket(k.audio_minutes_per_hour * 60, k.audio_minutes_per_hour / 60)
            for k in self.keys
            if k.audio_minutes_per_hour
        }

    @property
    def required(self) -> bool:
        return self._matcher.required

    def authenticate(self, presented: str) -> CallerKey | None:
        """The caller's key (None when no keys are configured); raises InvalidApiKey."""
        if not self.required:
            return None
        found = self._matcher.find(presented)
        if found is None:
            raise InvalidApiKey()
        return self.keys[found]

    def admit(self, caller: CallerKey | None, audio_s: float) -> None:
        """Count one request (and its audio) against the caller's limits, or refuse it."""
        if caller is None:
            return
        bucket = self._requests.get(caller.key)
        if bucket is not None and (wait := bucket.wait_for(1)):
            raise RateLimited(f"{caller.requests_per_minute:g} requests per minute", wait)
        audio = self._audio.get(caller.key)
        if audio is not None and audio_s and (wait := audio.wait_for(audio_s)):
            raise RateLimited(f"{caller.audio_minutes_per_hour:g} audio minutes per hour", wait)
