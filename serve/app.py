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
    POST /assets/{id}/whatif                a fork run ahead with changes,
                                            against its baseline (read only) operator
    POST /assets/{id}/plan                  the DRA line's 168-hour plan,
                                            stored as the next version       operator
    GET  /assets/{id}/plan                  ?version; default the latest     viewer
    POST /assets/{id}/plan/{v}/approve      approve version v (audited)      operator

Every route but /healthz needs ``Authorization: Bearer <token>`` (serve.auth): 401
without a valid token, 403 without the role; the token's user is recorded with every
write. Unknown assets and proposals answer 404; unknown signals and values outside
their bounds 422 with a message naming the signal and the bound; a write while the
safety actor is unreachable 503 (nothing written). serve.edge authenticates before a
body is read, caps bodies (413), answers malformed requests 422 without echoing them, and
an actor that is restarting or gone 503. Answers and errors are typed (serve.schemas);
OpenAPI at /openapi.json, Swagger UI at /docs (serve.docs, no CDN).
"""

import asyncio
import os
from collections.abc import Sequence
from typing import Any

import msgspec
import ray
from fastapi import Body, Depends, FastAPI, HTTPException, Path, Query, Response
from pydantic import BaseModel
from ray import serve

from actors.lookahead import LookaheadActor
from controllers.whatif import WhatIfCancelled, WhatIfChanges, WhatIfRequest
from engine.config import SiteConfig
from engine.messages import Mode, Outcome
from engine.metrics import render
from serve.auth import Role, RoleRequired, Token, TokenTable, install
from serve.docs import serve_docs
from serve.edge import install_edge
from serve.schemas import (
    METRICS_RESPONSE,
    PROMETHEUS_TEXT,
    AssetStatus,
    AssetSummary,
    AuditEntry,
    ControllerTuning,
    Health,
    ModeAnswer,
    Number,
    PlanAnswer,
    Proposal,
    ReferenceAnswer,
    SafeStateFailure,
    SignalLimits,
    WhatIfAnswer,
    WhatIfBody,
    WriteAnswer,
    errors,
)

LOOKAHEAD_GRACE_S = 10.0
"""Wall seconds a what-if may wait beyond its own timeout_s (queued behind another)."""
AUDIT_TIMEOUT_S = 10.0
"""How long GET .../audit waits for the safety actor (restarting, or busy) before 503."""

VIEWER = Depends(RoleRequired(Role.VIEWER))
OPERATOR = Depends(RoleRequired(Role.OPERATOR))
ENGINEER = Depends(RoleRequired(Role.ENGINEER))

app = FastAPI(
    title="TwinLoop",
    description="Digital twins of industrial assets: estimates, setpoints, safety audit. "
                "Values are SI, each with its unit; times are UNIX seconds of the twin's clock.",
    version="0.1.0",
    docs_url=None,   # served by serve.docs from the installed Swagger UI, not a CDN
    redoc_url=None,
)
serve_docs(app)
install_edge(app)


class ModeRequest(BaseModel):
    mode: Mode


class Band(BaseModel):
    """An operator band, inside the signal's engineering limits (signal units)."""

    lower: Number
    upper: Number


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


def _plan_answer(entry: dict[str, Any]) -> dict[str, Any]:
    """A stored plan entry (engine.plan_store) as one flat answer."""
    return {**{k: v for k, v in entry.items() if k != "plan"}, **entry["plan"]}


def _message(error: Exception) -> str:
    cause = getattr(error, "cause", error)
    return str(cause.args[0]) if cause.args else str(cause)


def _replica_grpc_on_loopback() -> None:
    """Make this Serve replica's inter-deployment gRPC server listen on loopback.

    Ray Serve 2.60 starts that server in every replica, after the deployment's
    constructor, on ``[::]:0``: every interface, with no setting to change it (Ray PR
    64623 adds a port range, not an address). TwinLoop sends no request through it (Serve
    uses it only with RAY_SERVE_USE_GRPC_BY_DEFAULT=1, which the demo does not set; Serve's
    gRPC proxy, on the other hand, starts only with servicer functions, and has none), and
    callers reach a replica at its node's address. So on a node whose address is
    loopback (the embedded Ray of a demo on a loopback HTTP host) the server binds
    127.0.0.1 instead; on a cluster node it is left as Ray made it. This replaces the
    name replica.py imported from ``ray._common.tls_utils``, in this process only;
    tests/serve/test_demo_process.py fails if a Ray upgrade moves it."""
    import ipaddress

    import ray
    from ray.serve._private import replica

    if not ipaddress.ip_address(ray.util.get_node_ip_address()).is_loopback:
        return
    add_port = replica.add_port_to_grpc_server

    def on_loopback(server, address: str) -> int:
        return add_port(server, address.replace("[::]:", "127.0.0.1:", 1))

    replica.add_port_to_grpc_server = on_loopback
# Defined before the deployment: @serve.ingress captures the module namespace when applied.


@serve.deployment(num_replicas=1, ray_actor_options={"num_cpus": 0})
@serve.ingress(app)
class TwinLoopAPI:
    """Routes HTTP requests to the assets (per-asset handles onto their shards,
    actors.directory) and the safety actor of one site."""

    def __init__(self, site: str, assets: dict[str, Any], safety: Any, tokens: list,
                 mqtt: Any = None, tokens_file: str | None = None,
                 site_config: SiteConfig | None = None) -> None:
        """``site_config``: the resolved site, for what-ifs and plans (actors.lookahead);
        without it they answer 503."""
        self.site = site
        self.site_config = site_config
        self._lookahead: Any = None
        self.assets = assets
        self.safety = safety
        self.mqtt = mqtt
        install(TokenTable(tokens, tokens_file))
        _replica_grpc_on_loopback()

    def _asset(self, asset_id: str):
        try:
            return self.assets[asset_id]
        except KeyError:
            raise HTTPException(404, f"unknown asset {asset_id!r}") from None

    @app.get("/healthz", response_model=Health, responses=errors(503))
    async def healthz(self) -> dict[str, Any]:
        summaries = await asyncio.gather(*(a.summary.remote() for a in self.assets.values()))
        return {"status": "ok", "site": self.site, "assets": len(summaries),
                "unhealthy": [s["id"] for s in summaries if not s["healthy"]]}

    @app.get("/assets", response_model=list[AssetSummary], responses=errors(401, 403, 503))
    async def list_assets(self, user: str = VIEWER) -> list[dict[str, Any]]:
        return list(await asyncio.gather(*(a.summary.remote() for a in self.assets.values())))

    @app.get("/assets/{asset_id}", response_model=AssetStatus,
             responses=errors(401, 403, 404, 422, 503))
    async def get_asset(self, asset_id: str, user: str = VIEWER) -> dict[str, Any]:
        return await self._asset(asset_id).status.remote()

    @app.put("/assets/{asset_id}/reference", response_model=ReferenceAnswer,
             responses=errors(401, 403, 404, 413, 422, 503))
    async def put_reference(
        self, asset_id: str, body: dict[str, Number] = Body(examples=[{"T_bulk": 433.15}]),
        user: str = OPERATOR,
    ) -> dict[str, Any]:
        asset = self._asset(asset_id)
        reference = await _unprocessable(asset.set_reference.remote(body, user))
        return {"reference": reference}

    @app.put("/assets/{asset_id}/mode", response_model=ModeAnswer,
             responses=errors(401, 403, 404, 413, 422, 503))
    async def put_mode(self, asset_id: str, body: ModeRequest = Body(),
                       user: str = OPERATOR) -> dict[str, Any]:
        asset = self._asset(asset_id)
        return {"mode": await _unprocessable(asset.set_mode.remote(body.mode.value, user))}

    @app.put("/assets/{asset_id}/setpoints", response_model=WriteAnswer,
             responses=errors(401, 403, 404, 413, 422, 503))
    async def put_setpoints(
        self, asset_id: str, body: dict[str, Number] = Body(examples=[{"m_oil": 2.0}]),
        user: str = OPERATOR,
    ) -> dict[str, Any]:
        asset = self._asset(asset_id)
        return await _unprocessable(asset.write_setpoints.remote(body, user))

    @app.get("/assets/{asset_id}/limits", response_model=dict[str, SignalLimits],
             responses=errors(401, 403, 404, 422, 503),
             response_model_exclude_unset=True)
    async def get_limits(self, asset_id: str, user: str = VIEWER) -> dict[str, Any]:
        return await _unprocessable(self._asset(asset_id).limits.remote())

    @app.put("/assets/{asset_id}/limits", response_model=dict[str, SignalLimits],
             responses=errors(401, 403, 404, 413, 422, 503),
             response_model_exclude_unset=True)
    async def put_limits(
        self, asset_id: str,
        body: dict[str, Band] = Body(examples=[{"m_oil": {"lower": 0.3, "upper": 6.0}}]),
        user: str = OPERATOR,
    ) -> dict[str, Any]:
        asset = self._asset(asset_id)
        bands = {name: (band.lower, band.upper) for name, band in body.items()}
        return await _unprocessable(asset.set_operator_limits.remote(bands, user))

    @app.get("/assets/{asset_id}/proposals", response_model=list[Proposal],
             responses=errors(401, 403, 404, 422, 503))
    async def get_proposals(self, asset_id: str, user: str = VIEWER) -> list[dict[str, Any]]:
        return await _unprocessable(self._asset(asset_id).proposals.remote())

    @app.post("/assets/{asset_id}/proposals/{number}/approve", response_model=WriteAnswer,
              responses=errors(401, 403, 404, 413, 422, 503))
    async def approve(self, asset_id: str, number: int = Path(ge=1),
                      user: str = OPERATOR) -> dict[str, Any]:
        asset = self._asset(asset_id)
        return await _unprocessable(asset.approve.remote(number, user))

    @app.post("/assets/{asset_id}/proposals/{number}/reject", response_model=Proposal,
              responses=errors(401, 403, 404, 413, 422, 503))
    async def reject(self, asset_id: str, number: int = Path(ge=1),
                     user: str = OPERATOR) -> dict[str, Any]:
        asset = self._asset(asset_id)
        return await _unprocessable(asset.reject.remote(number, user))

    @app.get("/assets/{asset_id}/controller", response_model=ControllerTuning,
             responses=errors(401, 403, 404, 422, 503))
    async def get_controller(self, asset_id: str, user: str = VIEWER) -> dict[str, Any]:
        return await self._asset(asset_id).controller_tuning.remote()

    @app.put("/assets/{asset_id}/controller", response_model=ControllerTuning,
             responses=errors(401, 403, 404, 413, 422, 503))
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

    @app.post("/assets/{asset_id}/safe-state", response_model=WriteAnswer,
              responses=errors(401, 403, 404, 413, 422, 503))
    async def safe_state(self, asset_id: str, user: str = OPERATOR) -> dict[str, Any]:
        """Drive every writable signal of the asset to its safe value, in any mode: a
        proposal of source "safe-state", clamped to the engineering limits and audited;
        answers like ``PUT .../setpoints``."""
        asset = self._asset(asset_id)
        return await _unprocessable(asset.safe_state.remote(user))

    @app.post("/safe-state", response_model=dict[str, WriteAnswer | SafeStateFailure],
              responses=errors(401, 403, 413, 503))
    async def site_safe_state(self, user: str = OPERATOR) -> dict[str, Any]:
        """Safe state for every asset of the site; answers per asset id, an asset whose
        safety gate did not answer with ``{"error": ...}`` (nothing written for it)."""
        ids = list(self.assets)
        answers = await asyncio.gather(*(self.assets[i].safe_state.remote(user) for i in ids),
                                       return_exceptions=True)
        return {i: {"error": _message(a)} if isinstance(a, Exception) else a
                for i, a in zip(ids, answers, strict=True)}

    @app.get("/assets/{asset_id}/audit", response_model=list[AuditEntry],
             responses=errors(401, 403, 404, 422, 503))
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
        return await asyncio.wait_for(self.safety.audit_records.remote(
            asset_id, since, until, None if outcome is None else outcome.value, limit),
            AUDIT_TIMEOUT_S)

    @app.get("/metrics", response_class=Response, response_model=None,
             responses={**METRICS_RESPONSE, **errors(401, 403, 503)})
    async def metrics(self, user: str = VIEWER) -> Response:
        snapshots = await asyncio.gather(
            *(a.metrics_snapshot.remote() for a in self.assets.values()))
        mqtt = None if self.mqtt is None else await self.mqtt.metrics_snapshot.remote()
        return Response(render(snapshots, mqtt), media_type=PROMETHEUS_TEXT)


    # -- what-if and forward plans (actors.lookahead): numerics off every asset's tick ----

    def _lookahead_actor(self):
        """The site's Lookahead actor, started on first use."""
        if self.site_config is None:
            raise HTTPException(503, "what-ifs and plans need the site configuration")
        if self._lookahead is None:
            self._lookahead = LookaheadActor.remote(  # type: ignore[attr-defined]
                self.site_config, self.safety)
        return self._lookahead

    @app.post("/assets/{asset_id}/whatif", response_model=WhatIfAnswer,
              responses=errors(401, 403, 404, 413, 422, 503, 504))
    async def whatif(
        self, asset_id: str,
        body: WhatIfBody = Body(examples=[{
            "duration_s": 86400.0, "changes": {"setpoints": {"receipt_01": 40.0}},
            "controller": True, "samples": 1}]),
        user: str = OPERATOR,
    ) -> dict[str, Any]:
        """Fork the asset's twin (its estimate and covariance, inputs, reference,
        controller) and run it ahead ``duration_s`` with ``changes`` and without, in
        lock-step on the same models and safety policy, in a process of its own: the
        live asset, its plant and its audit are not touched (the request is audited as a
        read). Bounded by ``timeout_s`` (504), stopped when the client goes away."""
        asset = self._asset(asset_id)
        try:
            request = WhatIfRequest(
                duration_s=body.duration_s, changes=WhatIfChanges(**body.changes.model_dump()),
                controller=body.controller, samples=body.samples, seed=body.seed,
                timeout_s=body.timeout_s)
        except ValueError as error:
            raise HTTPException(422, _message(error)) from None
        what = (f"whatif {request.duration_s:g} s, changes "
                f"{msgspec.json.encode(request.changes).decode()}, "
                f"controller {request.controller}, samples {request.samples}")
        fork = await _unprocessable(asset.fork.remote(user, what))
        ref = self._lookahead_actor().whatif.remote(fork, request)
        try:
            return await asyncio.wait_for(_unprocessable(ref),
                                          request.timeout_s + LOOKAHEAD_GRACE_S)
        except (TimeoutError, ray.exceptions.RayTaskError) as error:
            ray.cancel(ref)
            if isinstance(error, ray.exceptions.RayTaskError) and not isinstance(
                    error.cause, (TimeoutError, WhatIfCancelled)):
                raise
            raise HTTPException(504, f"what-if of {asset_id} not done within timeout_s "
                                     f"{request.timeout_s:g} s: stopped") from None
        except asyncio.CancelledError:
            ray.cancel(ref)
            raise

    @app.post("/assets/{asset_id}/plan", response_model=PlanAnswer,
              responses=errors(401, 403, 404, 413, 422, 503))
    async def post_plan(self, asset_id: str, user: str = OPERATOR) -> dict[str, Any]:
        """Compute the DRA pipeline's 168-hour plan from the twin's estimate (injection
        per skid and speed per pump, hour by hour, cheapest at the site's tariff, meeting
        the nomination under MAOP) with its baselines, and store it as the next version.
        An asset of another kind is 422."""
        asset = self._asset(asset_id)
        fork = await _unprocessable(asset.fork.remote(user, "plan 168 h"))
        entry = await _unprocessable(self._lookahead_actor().plan.remote(fork, user))
        return _plan_answer(entry)

    @app.get("/assets/{asset_id}/plan", response_model=PlanAnswer,
             responses=errors(401, 403, 404, 422, 503))
    async def get_plan(self, asset_id: str, version: int | None = Query(None, ge=1),
                       user: str = VIEWER) -> dict[str, Any]:
        """A stored plan: ``version``, default the latest; 404 if there is none."""
        self._asset(asset_id)
        entry = await _unprocessable(
            self._lookahead_actor().plan_entry.remote(asset_id, version))
        return _plan_answer(entry)

    @app.post("/assets/{asset_id}/plan/{version}/approve", response_model=PlanAnswer,
              responses=errors(401, 403, 404, 413, 422, 503))
    async def approve_plan(self, asset_id: str, version: int = Path(ge=1),
                           user: str = OPERATOR) -> dict[str, Any]:
        """Approve stored plan ``version``; the approval is audited under the user."""
        asset = self._asset(asset_id)
        status = await _unprocessable(asset.status.remote())
        entry = await _unprocessable(self._lookahead_actor().approve_plan.remote(
            asset_id, version, user, status["time"]))
        return _plan_answer(entry)

def start_http(fleet, host: str = "127.0.0.1", port: int = 8000, tokens: Sequence[Token] = (),
               tokens_file: str | os.PathLike | None = None) -> str:
    """Start Ray Serve on ``host:port`` and deploy the API over ``fleet``, accepting the
    bearer ``tokens`` (serve.auth.Token, hashed) and those of ``tokens_file``, re-read
    whenever it changes (serve.auth.TokenTable); returns its URL."""
    serve.start(http_options={"host": host, "port": port})
    file = None if tokens_file is None else os.path.abspath(tokens_file)
    # mypy does not apply class decorators: serve.deployment made TwinLoopAPI a Deployment
    api = TwinLoopAPI.bind(  # type: ignore[attr-defined]
        fleet.site.site.name, fleet.assets, fleet.safety, list(tokens), fleet.mqtt, file,
        site_config=fleet.site)
    serve.run(api, name="twinloop", route_prefix="/")
    return f"http://{host}:{port}"
