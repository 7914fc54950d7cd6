"""/docs: Swagger UI from the installed package swagger-ui-bundle-v2, not from a CDN.

FastAPI's own /docs page loads Swagger UI's script and style sheet from a CDN, so on a
plant network without internet it stays blank. Here the page references only this
server: ``/docs/assets/swagger-ui-bundle.js``, ``/docs/assets/swagger-ui.css`` and the
favicon, served from the package's copy of swagger-ui-dist.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse
from swagger_ui_bundle import swagger_ui_path

ASSETS = "/docs/assets"
_FILES = ("swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png")


def serve_docs(app: FastAPI) -> None:
    """Add ``GET /docs`` and ``GET /docs/assets/<file>`` to ``app`` (not in its OpenAPI)."""
    folder = Path(swagger_ui_path)
    openapi_url = app.openapi_url
    if openapi_url is None:
        raise ValueError("serve_docs: the app serves no OpenAPI schema (openapi_url is None)")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url, title=f"{app.title} - API",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon-32x32.png")

    for name in _FILES:
        _serve_file(app, f"{ASSETS}/{name}", folder / name)


def _serve_file(app: FastAPI, url: str, path: Path) -> None:
    @app.get(url, include_in_schema=False)
    async def asset() -> FileResponse:
        return FileResponse(path)
