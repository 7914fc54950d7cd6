"""The operator console: a browser application served by the TwinLoop HTTP app itself.

    GET /                         the console (index.html)
    GET /console/<file>           its scripts and style sheet (this package's files)
    GET /console/vendor/plotly.min.js
                                  the charting library, from the installed ``plotly``
                                  package (its bundled, MIT-licensed plotly.min.js)

Nothing is fetched from a CDN and nothing is built at install: the files ship in the
Python package, so the console works on a plant network without internet. The files
hold no data and need no token; every call they make to the API sends the user's bearer
token, and the server enforces each route's role whatever the page shows.
"""

from __future__ import annotations

from pathlib import Path

import plotly
from fastapi import FastAPI
from fastapi.responses import FileResponse

FOLDER = Path(__file__).resolve().parent
FILES = {"index.html": "text/html", "console.css": "text/css",
         **{name: "text/javascript" for name in
            ("console.js", "api.js", "display.js", "live.js", "panels.js", "charts.js")}}
PLOTLY = Path(plotly.__file__).resolve().parent / "package_data" / "plotly.min.js"


def install_console(app: FastAPI) -> None:
    """Add the console's routes to ``app`` (not in its OpenAPI: they are files)."""

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(FOLDER / "index.html", media_type=FILES["index.html"])

    for name, media_type in FILES.items():
        _serve_file(app, f"/console/{name}", FOLDER / name, media_type)
    _serve_file(app, "/console/vendor/plotly.min.js", PLOTLY, "text/javascript")


def _serve_file(app: FastAPI, url: str, path: Path, media_type: str) -> None:
    if not path.is_file():
        raise FileNotFoundError(f"console file missing from the package: {path}")

    @app.get(url, include_in_schema=False)
    async def file() -> FileResponse:
        return FileResponse(path, media_type=media_type,
                            headers={"Cache-Control": "no-cache"})
