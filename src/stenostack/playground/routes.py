"""The playground's routes: the page at ``/`` and its files under ``/playground/``.

Every asset is a file of this package (no CDN, no build step), so the page works on a
machine with no internet. Both servers mount these routes; the page itself asks for the API
key the server needs, so its routes are open (see :func:`open_paths`).
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

ASSETS = Path(__file__).parent / "assets"
ASSETS_PATH = "/playground"
# A page from an older version must not outlive an upgrade in a browser's cache.
NO_CACHE = {"Cache-Control": "no-cache"}


async def index(_: Request) -> Response:
    return FileResponse(ASSETS / "index.html", headers=NO_CACHE)


def playground_routes() -> list[BaseRoute]:
    return [
        Route("/", index, methods=["GET", "HEAD"]),
        Mount(ASSETS_PATH, StaticFiles(directory=ASSETS), name="playground"),
    ]


def open_paths() -> tuple[str, ...]:
    """The paths a server serves without an API key: the page and each of its files."""
    files = sorted(path for path in ASSETS.rglob("*") if path.is_file())
    return ("/", *(f"{ASSETS_PATH}/{path.relative_to(ASSETS).as_posix()}" for path in files))
