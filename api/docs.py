"""Swagger UI (/docs) and ReDoc (/redoc) served from the installed package, not from a CDN.

FastAPI's own docs pages load their scripts, styles, favicon and fonts from public CDNs, so on a
network without internet they stay blank. Here the assets come from the ``fastapi-offline``
package (Swagger UI 5 and ReDoc 2, vendored) and are mounted under ``/static/docs``. Like the
OpenAPI document, the pages and assets are public: no request signature.
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

ASSETS = Path(fastapi_offline.__file__).resolve().parent / "static"
STATIC_PREFIX = "/static/docs"
#: ReDoc's side menu shows a logo fetched from Redocly's CDN; the pages must not reach out.
_REDOC_LOGO = b"https://cdn.redoc.ly/redoc/logo-mini.svg"
_REDOC_SCRIPT = "redoc.offline.js"


def mount_docs(app: FastAPI) -> None:
    """Add /docs, /redoc and their assets to an app created with ``docs_url=redoc_url=None``."""
    if app.docs_url is not None or app.redoc_url is not None:
        raise ValueError("create the app with docs_url=None and redoc_url=None")
    openapi_url = app.openapi_url or "/openapi.json"
    # An empty data: URL fails to load at once, and ReDoc then hides the logo.
    redoc_script = (ASSETS / "redoc.standalone.js").read_bytes().replace(_REDOC_LOGO, b"data:,")

    def prefix(request: Request) -> str:
        return str(request.scope.get("root_path", "")).rstrip("/")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = prefix(request)
        return get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{STATIC_PREFIX}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{STATIC_PREFIX}/swagger-ui.css",
            swagger_favicon_url=f"{root}{STATIC_PREFIX}/favicon.png",
            # Never send the document to swagger.io's online validator.
            swagger_ui_parameters={**(app.swagger_ui_parameters or {}), "validatorUrl": "none"},
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = prefix(request)
        return get_redoc_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{STATIC_PREFIX}/{_REDOC_SCRIPT}",
            redoc_favicon_url=f"{root}{STATIC_PREFIX}/favicon.png",
            with_google_fonts=False,
        )

    @app.get(f"{STATIC_PREFIX}/{_REDOC_SCRIPT}", include_in_schema=False)
    async def redoc_script_file() -> Response:
        return Response(
            redoc_script,
            media_type="text/javascript",
            headers={"Cache-Control": "public, max-age=86400"},
        )

    app.mount(STATIC_PREFIX, StaticFiles(directory=ASSETS), name="docs-assets")
