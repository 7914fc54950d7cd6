"""Ray Serve application: the HTTP contract of DESIGN.md over a running fleet.

                                                                            role needed
    GET  /healthz                           service and fleet health         (none)
    GET  /assets                            one summary per asset            viewer
    GET  /assets/{id}                       estimate, measurement, setpoints, reference,
                                            controller                       viewer
    PUT  /assets/{id}/reference             {output: target}  (SI)           operator
    PUT  /assets/{id}/mode                  {"mode": "OFF" | "MANUAL" | "ADVISORY" |
                                             "AUTONOMOUS"}                   operator
    PUT  /assets/{id}/setpoints             {signal: value}   gated          operator
    GET  /assets/{id}/limits                engineering and operator limits  viewer
    PUT  /assets/{id}/limits                {signal: {"lower", "upper"}}     operator
    GET  /assets/{id}/proposals             ADVISORY proposals with reasons  viewer
    POST /assets/{id}/proposals/{n}/approve write it, gated again now        operator
    POST /assets/{id}/proposals/{n}/reject  drop it                          operator
    GET  /assets/{id}/controller            tuning: backend, horizon, weights,
                                            limits, backends                 viewer
    PUT  /assets/{id}/controller            a partial tuning; rebuilt live,
                                            or 422 and unchanged             engineer
    POST /assets/{id}/safe-state            every writable signal to its safe
                                            value, gated, any mode           operator
    POST /safe-state                        the same for every asset         operator
    GET  /assets/{id}/audit                 ?since&until&outcome&limit       viewer
    GET  /metrics                           Prometheus exposition            viewer

Every route but /healthz needs ``Authorization: Bearer <token>`` (serve.auth): 401
without a valid token, 403 without the role; the token's user is recorded with every
write. Unknown assets and proposals answer 404; unknown signals and values outside
their bounds 422 with a message naming the signal and the bound; a write while the
safety actor is unreachable 503 (nothing written). OpenAPI at /docs.
"""

import asyncio
from typing import Any

from fastapi import Body, Depends, FastAPI, HTTPException, Path, Query, Response
from pydantic import BaseModel
from ray import serve

from engine.messages import Mode, Outcome
from engine.metrics import render
from serve.auth import Role, RoleRequired, TokenTable, install

VIEWER = Depends(RoleRequired(Role.VIEWER))
OPERATOR = Depends(RoleRequired(Role.OPERATOR))
ENGINEER = Depends(RoleRequired(Role.ENGINEER))

app = FastAPI(
    title="TwinLoop",
    description="Digital twins of industrial assets: estimates, setpoints, safety audit. "
                "Values are SI, each with its unit; times are UNIX seconds of the twin's clock.",
    version="0.1.0",
)


class ModeRequest(BaseModel):
    mode: Mode


class Band(BaseModel):
    """An operator band, inside the signal's engineering limits (signal units)."""

    lower: float
    upper: float


async def _unprocessable(ref):
    """Await an actor call: its ValueError becomes 422 and its LookupError 404, with the
    actor's own message; its RuntimeError (safety unreachable, nothing written) 503."""
    try:
        return await ref
    except ValueError as error:
        raise HTTPException(422, _message(error)) from None
    except LookupError as error:
        raise HTTPException(404, _message(error)) from None
    except RuntimeError as error:
        raise HTTPException(503, _message(error)) from None


def _message(error: Exception) -> str:
    cause = getattr(error, "cause", error)
    return str(cause.args[0]) if cause.args else str(cause)
# Defined before the deployment: @serve.ingress captures the module namespace when applied.


@serve.deployment(num_replicas=1, ray_actor_options={"num_cpus": 0})
@serve.ingress(app)
class TwinLoopAPI:
    """Routes HTTP requests to the assets (per-asset handles onto their shards,
    actors.directory) and the safety actor of one site."""

    def __init__(self, site: str, assets: dict[str, Any], safety: Any, tokens: list,
                 mqtt: Any = None) -> None:
        self.site = site
        self.assets = assets
        self.safety = safety
        self.mqtt = mqtt
        install(TokenTable(tokens))

    def _asset(self, asset_id: str):
        try:
            return self.assets[asset_id]
        except KeyError:
            raise HTTPException(404, f"unknown asset {asset_id!r}") from None

    @app.get("/healthz")
    async def healthz(self) -> dict[str, Any]:
        summaries = await asyncio.gather(*(a.summary.remote() for a in self.assets.values()))
        return {"status": "ok", "site": self.site, "assets": len(summaries),
                "unhealthy": [s["id"] for s in summaries if not s["healthy"]]}

    @app.get("/assets")
    async def list_assets(self, user: str = VIEWER) -> list[dict[str, Any]]:
        return list(await asyncio.gather(*(a.summary.remote() for a in self.assets.values())))

    @app.get("/assets/{asset_id}")
    async def get_asset(self, asset_id: str, user: str = VIEWER) -> dict[str, Any]:
        return await self._asset(asset_id).status.remote()

    @app.put("/assets/{asset_id}/reference")
    async def put_reference(
        self, asset_id: str, body: dict[str, float] = Body(examples=[{"T_bulk": 433.15}]),
        user: str = OPERATOR,
    ) -> dict[str, Any]:
        asset = self._asset(asset_id)
        reference = await _unprocessable(asset.set_reference.remote(body, user))
        return {"reference": reference}

    @app.put("/assets/{asset_id}/mode")
    async def put_mode(self, asset_id: str, body: ModeRequest = Body(),
                       user: str = OPERATOR) -> dict[str, Any]:
        asset = self._asset(asset_id)
        return {"mode": await _unprocessable(asset.set_mode.remote(body.mode.value, user))}

    @app.put("/assets/{asset_id}/setpoints")
    async def put_setpoints(
        self, asset_id: str, body: dict[str, float] = Body(examples=[{"m_oil": 2.0}]),
        user: str = OPERATOR,
    ) -> dict[str, Any]:
        asset = self._asset(asset_id)
        return await _unprocessable(asset.write_setpoints.remote(body, user))

    @app.get("/assets/{asset_id}/limits")
    async def get_limits(self, asset_id: str, user: str = VIEWER) -> dict[str, Any]:
        return await self._asset(asset_id).limits.remote()

    @app.put("/assets/{asset_id}/limits")
    async def put_limits(
        self, asset_id: str,
        body: dict[str, Band] = Body(examples=[{"m_oil": {"lower": 0.3, "upper": 6.0}}]),
        user: str = OPERATOR,
    ) -> dict[str, Any]:
        asset = self._asset(asset_id)
        bands = {name: (band.lower, band.upper) for name, band in body.items()}
        return await _unprocessable(asset.set_operator_limits.remote(bands, user))

    @app.get("/assets/{asset_id}/proposals")
    async def get_proposals(self, asset_id: str, user: str = VIEWER) -> list[dict[str, Any]]:
        return await self._asset(asset_id).proposals.remote()

    @app.post("/assets/{asset_id}/proposals/{number}/approve")
    async def approve(self, asset_id: str, number: int = Path(ge=1),
                      user: str = OPERATOR) -> dict[str, Any]:
        asset = self._asset(asset_id)
        return await _unprocessable(asset.approve.remote(number, user))

    @app.post("/assets/{asset_id}/proposals/{number}/reject")
    async def reject(self, asset_id: str, number: int = Path(ge=1),
                     user: str = OPERATOR) -> dict[str, Any]:
        asset = self._asset(asset_id)
        return await _unprocessable(asset.reject.remote(number, user))

    @app.get("/assets/{asset_id}/controller")
    async def get_controller(self, asset_id: str, user: str = VIEWER) -> dict[str, Any]:
        return await self._asset(asset_id).controller_tuning.remote()

    @app.put("/assets/{asset_id}/controller")
    async def put_controller(
        self, asset_id: str,
        body: dict[str, Any] = Body(examples=[{
            "horizon": 20, "tracking": {"T_bulk": 50.0}, "move_suppression": {"m_oil": 0.2},
            "limits": {"m_oil": {"upper": 8.0, "max_rate": 0.01}}}]),
        user: str = ENGINEER,
    ) -> dict[str, Any]:
        """Retune the controller without restarting the asset (see controllers.tuning);
        an invalid tuning is 422 naming the field and the bound, and the old one keeps
        running."""
        asset = self._asset(asset_id)
        return await _unprocessable(asset.set_controller.remote(body, user))

    @app.post("/assets/{asset_id}/safe-state")
    async def safe_state(self, asset_id: str, user: str = OPERATOR) -> dict[str, Any]:
        """Drive every writable signal of the asset to its safe value, in any mode: a
        proposal of source "safe-state", clamped to the engineering limits and audited;
        answers like ``PUT .../setpoints``."""
        asset = self._asset(asset_id)
        return await _unprocessable(asset.safe_state.remote(user))

    @app.post("/safe-state")
    async def site_safe_state(self, user: str = OPERATOR) -> dict[str, Any]:
        """Safe state for every asset of the site; answers per asset id, an asset whose
        safety gate did not answer with ``{"error": ...}`` (nothing written for it)."""
        ids = list(self.assets)
        answers = await asyncio.gather(*(self.assets[i].safe_state.remote(user) for i in ids),
                                       return_exceptions=True)
        return {i: {"error": _message(a)} if isinstance(a, Exception) else a
                for i, a in zip(ids, answers)}

    @app.get("/assets/{asset_id}/audit")
    async def get_audit(
        self,
        asset_id: str,
        since: float | None = None,
        until: float | None = None,
        outcome: Outcome | None = None,
        limit: int = Query(1000, ge=1, le=100_000),
        user: str = VIEWER,
    ) -> list[dict[str, Any]]:
        self._asset(asset_id)
        return await self.safety.audit_records.remote(
            asset_id, since, until, None if outcome is None else outcome.value, limit)

    @app.get("/metrics")
    async def metrics(self, user: str = VIEWER) -> Response:
        snapshots = await asyncio.gather(*(a.metrics_snapshot.remote() for a in self.assets.values()))
        mqtt = None if self.mqtt is None else await self.mqtt.metrics_snapshot.remote()
        return Response(render(snapshots, mqtt),
                        media_type="text/plain; version=0.0.4; charset=utf-8")


def start_http(fleet, host: str = "127.0.0.1", port: int = 8000, tokens: list = ()) -> str:
    """Start Ray Serve on ``host:port`` and deploy the API over ``fleet``, accepting the
    bearer ``tokens`` (serve.auth.Token, hashed); returns its URL."""
    serve.start(http_options={"host": host, "port": port})
    serve.run(TwinLoopAPI.bind(fleet.site.site.name, fleet.assets, fleet.safety, list(tokens),
                               fleet.mqtt),
              name="twinloop", route_prefix="/")
    return f"http://{host}:{port}"
