"""Ray Serve application: the HTTP contract of DESIGN.md over a running fleet.

    GET  /healthz                  service and fleet health
    GET  /assets                   one summary per asset
    GET  /assets/{id}              estimate, measurement, setpoints, reference, controller
    PUT  /assets/{id}/reference    {output: target}        (SI)
    PUT  /assets/{id}/mode         {"mode": "OFF" | "MANUAL" | "ADVISORY" | "AUTONOMOUS"}
    PUT  /assets/{id}/setpoints    {input: value}          operator setpoints, gated
    GET  /assets/{id}/controller   tuning: backend, horizon, weights, limits, backends
    PUT  /assets/{id}/controller   a partial tuning; rebuilt live, or 422 and unchanged
    GET  /assets/{id}/audit        ?since&until&outcome&limit
    GET  /metrics                  Prometheus exposition for the whole fleet

Unknown assets answer 404; unknown signals and values outside their bounds 422 with a
message naming the signal and the bound. OpenAPI at /docs.
"""

import asyncio
from typing import Any

from fastapi import Body, FastAPI, HTTPException, Query, Response
from pydantic import BaseModel
from ray import serve

from engine.messages import Mode, Outcome
from engine.metrics import render

HTTP_USER = "http"
"""User recorded for HTTP writes until bearer-token authentication names the caller."""

app = FastAPI(
    title="TwinLoop",
    description="Digital twins of industrial assets: estimates, setpoints, safety audit. "
                "Values are SI, each with its unit; times are UNIX seconds of the twin's clock.",
    version="0.1.0",
)


class ModeRequest(BaseModel):
    mode: Mode


async def _unprocessable(ref):
    """Await an actor call; its ValueError becomes 422 with the actor's own message."""
    try:
        return await ref
    except ValueError as error:
        raise HTTPException(422, str(getattr(error, "cause", error))) from None
# Defined before the deployment: @serve.ingress captures the module namespace when applied.


@serve.deployment(num_replicas=1, ray_actor_options={"num_cpus": 0})
@serve.ingress(app)
class TwinLoopAPI:
    """Routes HTTP requests to the asset actors and the safety actor of one site."""

    def __init__(self, site: str, assets: dict[str, Any], safety: Any) -> None:
        self.site = site
        self.assets = assets
        self.safety = safety

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
    async def list_assets(self) -> list[dict[str, Any]]:
        return list(await asyncio.gather(*(a.summary.remote() for a in self.assets.values())))

    @app.get("/assets/{asset_id}")
    async def get_asset(self, asset_id: str) -> dict[str, Any]:
        return await self._asset(asset_id).status.remote()

    @app.put("/assets/{asset_id}/reference")
    async def put_reference(
        self, asset_id: str, body: dict[str, float] = Body(examples=[{"T_bulk": 433.15}])
    ) -> dict[str, Any]:
        asset = self._asset(asset_id)
        reference = await _unprocessable(asset.set_reference.remote(body, HTTP_USER))
        return {"reference": reference}

    @app.put("/assets/{asset_id}/mode")
    async def put_mode(self, asset_id: str, body: ModeRequest = Body()) -> dict[str, Any]:
        asset = self._asset(asset_id)
        return {"mode": await asset.set_mode.remote(body.mode.value, HTTP_USER)}

    @app.put("/assets/{asset_id}/setpoints")
    async def put_setpoints(
        self, asset_id: str, body: dict[str, float] = Body(examples=[{"m_oil": 2.0}])
    ) -> dict[str, Any]:
        asset = self._asset(asset_id)
        return await _unprocessable(asset.write_setpoints.remote(body, HTTP_USER))

    @app.get("/assets/{asset_id}/controller")
    async def get_controller(self, asset_id: str) -> dict[str, Any]:
        return await self._asset(asset_id).controller_tuning.remote()

    @app.put("/assets/{asset_id}/controller")
    async def put_controller(
        self, asset_id: str,
        body: dict[str, Any] = Body(examples=[{
            "horizon": 20, "tracking": {"T_bulk": 50.0}, "move_suppression": {"m_oil": 0.2},
            "limits": {"m_oil": {"upper": 8.0, "max_rate": 0.01}}}]),
    ) -> dict[str, Any]:
        """Retune the controller without restarting the asset (see controllers.tuning);
        an invalid tuning is 422 naming the field and the bound, and the old one keeps
        running."""
        asset = self._asset(asset_id)
        return await _unprocessable(asset.set_controller.remote(body, HTTP_USER))

    @app.get("/assets/{asset_id}/audit")
    async def get_audit(
        self,
        asset_id: str,
        since: float | None = None,
        until: float | None = None,
        outcome: Outcome | None = None,
        limit: int = Query(1000, ge=1, le=100_000),
    ) -> list[dict[str, Any]]:
        self._asset(asset_id)
        return await self.safety.audit_records.remote(
            asset_id, since, until, None if outcome is None else outcome.value, limit)

    @app.get("/metrics")
    async def metrics(self) -> Response:
        snapshots = await asyncio.gather(*(a.metrics_snapshot.remote() for a in self.assets.values()))
        return Response(render(snapshots), media_type="text/plain; version=0.0.4; charset=utf-8")


def start_http(fleet, host: str = "127.0.0.1", port: int = 8000) -> str:
    """Start Ray Serve on ``host:port`` and deploy the API over ``fleet``; returns its URL."""
    serve.start(http_options={"host": host, "port": port})
    serve.run(TwinLoopAPI.bind(fleet.site.site.name, fleet.assets, fleet.safety),
              name="twinloop", route_prefix="/")
    return f"http://{host}:{port}"
