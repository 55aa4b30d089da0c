"""Which headers cross the router, each way.

Hop-by-hop headers belong to one connection and never pass. Upstream, the caller's key is
replaced by the router's own key to the backends (callers never learn it, and backends
never see callers' keys), and the request id and ``x-forwarded-for`` are set. Downstream,
the router's own server sets the request id, date and server headers.
"""

from __future__ import annotations

import aiohttp
from starlette.requests import HTTPConnection, Request

from stenostack.http.request_id import request_id
from stenostack.router.settings import RouterSettings

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
    }
)
REPLACED_ON_RESPONSE = frozenset({"x-request-id", "date", "server"})


def backend_authorization(settings: RouterSettings) -> dict[str, str]:
    """The router's own key to the backends, as a header (none when it has no key). Read
    per request and per health check: a reloaded config may change it."""
    key = settings.backend_api_key
    return {"authorization": f"Bearer {key}"} if key else {}


def upstream_authorization(caller: HTTPConnection, settings: RouterSettings) -> dict[str, str]:
    """The key a backend gets: the router's own; without one, an open router passes the
    caller's own key on, for backends that check keys."""
    if own_key := backend_authorization(settings):
        return own_key
    if "authorization" in caller.headers and not settings.api_keys:
        return {"authorization": caller.headers["authorization"]}
    return {}


def forwarded_for(caller: HTTPConnection) -> str:
    """``x-forwarded-for`` upstream: the caller's own chain, and the caller."""
    client = caller.client.host if caller.client else ""
    previous = caller.headers.get("x-forwarded-for")
    return f"{previous}, {client}" if previous else client


def upstream_request_headers(request: Request, settings: RouterSettings) -> dict[str, str]:
    headers = {
        name: value
        for name, value in request.headers.items()
        if name not in HOP_BY_HOP and name != "authorization"
    }
    headers.update(upstream_authorization(request, settings))
    headers["x-request-id"] = request_id(request.scope)
    headers["x-forwarded-for"] = forwarded_for(request)
    return headers


def client_response_headers(upstream: aiohttp.ClientResponse) -> dict[str, str]:
    return {
        name: value
        for name, value in upstream.headers.items()
        if name.lower() not in HOP_BY_HOP and name.lower() not in REPLACED_ON_RESPONSE
    }
