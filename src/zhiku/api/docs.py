"""``/docs``: Swagger UI from files on this server, never from a CDN (the origin holds API keys, so it runs only
scripts it serves itself). Its files come from the ``swagger-ui-bundle-v2`` package; the page and the script
that starts it are zhiku's own (``web/static/docs.html``, ``docs.js``), so the strict CSP needs no inline script.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from fastapi import FastAPI, HTTPException
from fastapi.responses import FileResponse

from zhiku.web import STATIC_DIR

#: The Swagger UI files /docs loads, by the name they are served under (``/docs/<name>``).
ASSETS = ("swagger-ui.css", "swagger-ui-bundle.js", "favicon-32x32.png")


def swagger_ui_dir() -> Path:
    """The folder of Swagger UI's dist files inside the installed ``swagger-ui-bundle-v2`` package."""
    return Path(str(importlib.import_module("swagger_ui_bundle").swagger_ui_path))


def install_docs(app: FastAPI) -> None:
    """Serve ``/docs`` (the create_app's ``docs_url`` and ``redoc_url`` must be ``None``)."""
    folder = swagger_ui_dir()

    @app.get("/docs", include_in_schema=False)
    async def docs() -> FileResponse:
        return FileResponse(STATIC_DIR / "docs.html", headers={"Cache-Control": "no-cache"})

    @app.get("/docs/{name}", include_in_schema=False)
    async def docs_asset(name: str) -> FileResponse:
        if name not in ASSETS:
            raise HTTPException(status_code=404)
        return FileResponse(folder / name, headers={"Cache-Control": "public, max-age=86400"})
