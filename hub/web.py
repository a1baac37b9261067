"""The browser board: the page, its modules and the npm packages it imports.

The files live in the top-level `web/` folder (plain ES modules and an import map,
no build step); its npm packages are installed by the Makefile into
`web/node_modules`, and only the folders the page imports are served from there.
"""

from __future__ import annotations

import logging
from pathlib import Path

from aiohttp import web

from hub.config import Settings
from hub.demo import DEMO_USERS

log = logging.getLogger(__name__)

WEB_ROOT = Path(__file__).resolve().parents[1] / "web"
# url prefix -> folder under web/node_modules the page may import from
_VENDOR = {"socket.io-client": "socket.io-client/dist"}


def routes(settings: Settings, root: Path = WEB_ROOT) -> list[web.AbstractRouteDef]:
    """The page at `/`, its modules at `/static/`, its packages at `/vendor/`."""
    packages = {name: root / "node_modules" / folder for name, folder in _VENDOR.items()}
    missing = [name for name, folder in packages.items() if not folder.is_dir()]
    if missing:
        log.warning(
            "the board's npm packages are not installed; run `make run` (npm ci --prefix web)",
            extra={"missing": missing},
        )
    index = root / "index.html"

    async def page(request: web.Request) -> web.FileResponse:
        return web.FileResponse(index, headers={"Cache-Control": "no-cache"})

    async def client_config(request: web.Request) -> web.Response:
        """What the page needs before login; the demo logins only in development."""
        demo = [{"email": e, "name": n, "password": p} for e, n, p in DEMO_USERS]
        return web.json_response(
            {"dev": settings.is_dev, "demo_users": demo if settings.is_dev else []}
        )

    table = [
        web.get("/", page),
        web.get("/api/client-config", client_config),
        web.static("/static", root / "src"),
    ]
    for name, folder in packages.items():
        if folder.is_dir():
            table.append(web.static(f"/vendor/{name}", folder))
    return table
