"""API keys, shared by engine and router: which key a caller presented, and whether it is one
this server accepts.

A presented key is compared with every configured key, in constant time, and as SHA-256
digests (so neither where a guess first differs nor its length shows in how long a refusal
takes). Callers send the key as ``Authorization: Bearer KEY``; a browser, which cannot set
headers on a WebSocket, may send it as OpenAI's ``openai-insecure-api-key.KEY`` subprotocol.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Collection, Iterable
from pathlib import Path

from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from stenostack.errors import InvalidApiKey
from stenostack.http.refusal import refuse

KEY_SUBPROTOCOL_PREFIX = "openai-insecure-api-key."


def presented_key(connection: HTTPConnection) -> str:
    """The key the caller sent ("" if none)."""
    authorization = connection.headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    for subprotocol in connection.scope.get("subprotocols") or ():
        if subprotocol.startswith(KEY_SUBPROTOCOL_PREFIX):
            return str(subprotocol[len(KEY_SUBPROTOCOL_PREFIX) :])
    return ""


def read_key_file(path: Path) -> list[str]:
    """One key per line; blank lines and lines starting with '#' are skipped."""
    lines = (line.strip() for line in path.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


class ApiKeys:
    """The keys a server accepts; none means the server is open."""

    def __init__(self, keys: Iterable[str]) -> None:
        self._digests = [_digest(key) for key in keys]

    @property
    def required(self) -> bool:
        return bool(self._digests)

    def find(self, key: str) -> int | None:
        """The index of the configured key equal to ``key``, or None (always for "")."""
        if not key:
            return None
        presented = _digest(key)
        found = None
        for index, digest in enumerate(self._digests):  # every key, whichever matches
            if hmac.compare_digest(presented, digest) and found is None:
                found = index
        return found

    def allow(self, connection: HTTPConnection) -> bool:
        """Whether the caller may use what keys protect (always, on an open server)."""
        return not self.required or self.find(presented_key(connection)) is not None


class ApiKeyMiddleware:
    """Refuse every HTTP request and WebSocket handshake without an accepted key (401 with
    ``WWW-Authenticate: Bearer``), except on ``open_paths`` (liveness and readiness probes,
    which cannot send keys)."""

    def __init__(self, app: ASGIApp, keys: ApiKeys, open_paths: Collection[str]) -> None:
        self.app = app
        self.keys = keys
        self.open_paths = frozenset(open_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] not in ("http", "websocket")
            or scope["path"] in self.open_paths
            or self.keys.allow(HTTPConnection(scope))
        ):
            await self.app(scope, receive, send)
            return
        await refuse(scope, receive, send, InvalidApiKey())
