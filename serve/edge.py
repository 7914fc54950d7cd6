"""The HTTP edge: what happens to a request before a route runs, and to errors after.

- Authentication first: a request for anything but the open paths (/healthz, /docs and
  its assets, /openapi.json, the console's files at / and /console/) without a known
  bearer token is answered 401 before its body
  is read, so an anonymous client cannot make the server read or parse a large body. The
  role (403) is checked by the route's dependency (serve.auth.RoleRequired).
- A body larger than MAX_BODY_BYTES is answered 413, by its Content-Length or, without
  one, as soon as more than that has arrived; nothing of it is parsed.
- A malformed request (FastAPI's RequestValidationError) is answered 422 with
  ``{"detail": [{"loc", "msg", "type"}]}`` (serve.schemas.ValidationIssue): the problem
  and where, never the input itself, so a NaN in the body cannot make the answer
  unserialisable (it was a 500) and a large input is not echoed back. A malformed write
  (PUT or POST on an asset) is also put on record, outcome ``refused``, under the
  token's user (``app.state.note_refused``, batched by actors.refusals).
- A method the path does not have is 405 with an ``Allow`` header naming every method
  the path has (Starlette names only those of the first route matching the path: GET on
  a path that has GET and PUT routes).
- An actor that is restarting or gone (Ray's RayActorError, ActorUnavailableError) or
  too slow (TimeoutError) is 503 with the reason; any other unexpected error is 500,
  logged with its traceback, answered with the error's type only.
"""

from __future__ import annotations

import json
import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from ray.exceptions import RayActorError
from starlette.exceptions import HTTPException
from starlette.routing import Match

from serve.auth import INVALID_TOKEN, MISSING_TOKEN, identify

MAX_BODY_BYTES = 1 << 20
"""The largest request body accepted (1 MiB); every body of the API is far smaller."""

OPEN_PATHS = ("/", "/healthz", "/openapi.json", "/docs")
"""Paths that need no token."""
OPEN_PREFIXES = ("/docs/", "/console/")
"""Paths under these need no token: documentation and console files, which hold no data."""

_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
"""The methods a 405's Allow header may name."""

log = logging.getLogger(__name__)


def install_edge(app: FastAPI) -> None:
    """Add the edge's middleware and error handlers to ``app``."""
    app.add_middleware(AuthenticateFirst)
    # Starlette annotates handlers as taking any Exception; FastAPI's documented handlers
    # take the class they are registered for
    app.add_exception_handler(RequestValidationError, _malformed)  # type: ignore[arg-type]
    app.add_exception_handler(405, _method_not_allowed)  # type: ignore[arg-type]
    app.add_exception_handler(RayActorError, _unavailable)
    app.add_exception_handler(TimeoutError, _unavailable)
    app.add_exception_handler(Exception, _internal_error)


class AuthenticateFirst:
    """ASGI middleware: 401 without a known token and 413 for an oversized body, both
    before the application reads the body; the body it accepts is passed on whole."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        if not _is_open(scope["path"]):
            scheme, _, token = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                await _send(send, 401, MISSING_TOKEN, {"www-authenticate": "Bearer"})
                return
            identity = identify(token.strip())
            if identity is None:
                await _send(send, 401, INVALID_TOKEN, {"www-authenticate": "Bearer"})
                return
            scope.setdefault("state", {})["user"] = identity[0]  # request.state.user
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            await _send(send, 413, _too_large(int(declared)))
            return
        body, more, size = [], True, 0
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            body.append(message.get("body", b""))
            size += len(body[-1])
            more = message.get("more_body", False)
            if size > MAX_BODY_BYTES:
                await _send(send, 413, _too_large(size, at_least=more))
                return
        whole = b"".join(body)
        delivered = False

        async def replay():
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": whole, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def _is_open(path: str) -> bool:
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


def _too_large(size: int, at_least: bool = False) -> str:
    return (f"request body of {'more than ' if at_least else ''}{size} bytes is larger than "
            f"the {MAX_BODY_BYTES} bytes accepted")


async def _send(send, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
    body = json.dumps({"detail": detail}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


async def _malformed(request: Request, error: RequestValidationError) -> JSONResponse:
    issues = [{"loc": [str(part) if not isinstance(part, int) else part
                       for part in issue.get("loc", ())],
               "msg": issue.get("msg", ""), "type": issue.get("type", "")}
              for issue in error.errors()]
    note_refused = getattr(request.app.state, "note_refused", None)
    asset = request.path_params.get("asset_id")
    if note_refused is not None and asset is not None and request.method in ("PUT", "POST"):
        fields = [".".join(map(str, issue["loc"][1:])) or "body" for issue in issues]
        note_refused(asset, getattr(request.state, "user", "unknown"),
                     ",".join(dict.fromkeys(fields)),
                     "malformed request: " + "; ".join(
                         f"{'.'.join(map(str, i['loc']))}: {i['msg']}" for i in issues))
    return JSONResponse({"detail": issues}, status_code=422)


async def _method_not_allowed(request: Request, error: HTTPException) -> JSONResponse:
    """405, allowing every method some route of the path answers (RFC 9110 15.5.6)."""
    allowed = [method for method in _METHODS
               if any(route.matches({**request.scope, "method": method})[0] is Match.FULL
                      for route in request.app.routes)]
    return JSONResponse({"detail": error.detail}, status_code=405,
                        headers={"allow": ", ".join(allowed)})


async def _unavailable(request: Request, error: Exception) -> JSONResponse:
    reason = (f"an actor behind {request.url.path} is restarting or gone "
              f"({type(error).__name__}); retry shortly" if isinstance(error, RayActorError)
              else f"{request.url.path}: no answer in time; retry shortly")
    return JSONResponse({"detail": reason}, status_code=503, headers={"retry-after": "2"})


async def _internal_error(request: Request, error: Exception) -> JSONResponse:
    """An error no route expected: its traceback goes to the log (the demo's log file),
    the client gets 500 with the error's type only."""
    log.error("%s %s answered 500", request.method, request.url.path, exc_info=error)
    return JSONResponse({"detail": f"internal error ({type(error).__name__})"}, status_code=500)
