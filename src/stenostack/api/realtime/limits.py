"""What one engine allows its realtime sessions: how many at once, how long one may stay
silent, and how many bytes of events may wait for a client that is not reading."""

from __future__ import annotations

from dataclasses import dataclass

from stenostack.config import EngineSettings


@dataclass(frozen=True)
class RealtimeLimits:
    max_sessions: int
    idle_timeout_s: float
    max_pending_event_bytes: int

    @classmethod
    def from_settings(cls, settings: EngineSettings) -> RealtimeLimits:
        return cls(
            max_sessions=settings.realtime_max_sessions,
            idle_timeout_s=settings.realtime_idle_timeout_s,
            max_pending_event_bytes=settings.realtime_max_pending_event_bytes,
        )


class SessionSlots:
    """Counts the sessions open on one engine (used only on its event loop)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.taken = 0

    def take(self) -> bool:
        """Take a slot if one is free."""
        if self.taken >= self.limit:
            return False
        self.taken += 1
        return True

    def give_back(self) -> None:
        self.taken -= 1
