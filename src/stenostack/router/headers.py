"""Which headers cross the router, each way.

Hop-by-hop headers belong to one connection and never pass. Upstream, the caller's key is
replaced by the router's own key to the backends (callers never learn it, and backends
never see callers' keys), and the request id and ``x-forwarded-for`` are set. Downstream,
the router's own server sets the request id, date and server headers.
"""

from __future__ import annotations

import aiohttp
from starlette.requests import Request

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


def upstream_request_headers(request: Request, settings: RouterSettings) -> dict[str, str]:
    headers = {
        name: value
        for name, value in request.headers.items()
        if name not in HOP_BY_HOP and name != "authorization"
    }
    if own_key := backend_authorization(settings):
        headers.update(own_key)
    elif "authorization" in request.headers and not settings.api_keys:
        # An open router passes the caller's own key on, for backends that check keys.
        headers["authorization"] = request.headers["authorization"]
    headers["x-request-id"] = request_id(request.scope)
    client = request.client.host if request.client else ""
    previous = request.headers.get("x-forwarded-for")
    headers["x-forwarded-for"] = f"{previous}, {client}" if previous else client
    return headers


def client_response_headers(upstream: aiohttp.ClientResponse) -> dict[str, str]:
    return {
        name: value
        for name, value in upstream.headers.items()
        if name.lower() not in HOP_BY_HOP and name.lower() not in REPLACED_ON_RESPONSE
    }
