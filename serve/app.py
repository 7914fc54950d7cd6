"""Ray Serve application: the HTTP contract of DESIGN.md over a running fleet.

                                                                            role needed
    GET  /                                  the operator console (serve.console) (none)
    GET  /healthz                           service and fleet health         (none)
    GET  /whoami                            the token's user, role and site  any role
    GET  /assets                            one summary per asset            viewer
    GET  /fleet                             ?offset&limit&q&kind: one page of
                                            summaries, filtered, in id order viewer
    GET  /assets/{id}                       estimate, measurement, setpoints, reference,
                                            controller                       viewer
    GET  /assets/{id}/view                  the kind's operator screen (plants.views):
                                            cards, breakdowns, curves, plan  viewer
    WS   /live                              statuses pushed as assets tick   viewer
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
    GET  /assets/{id}/history               ?signals=a,b&since&until&mode=raw|
                                            interpolated|aggregate&step&format=
                                            json|csv&assets=more,ids (SI)    viewer
    POST /assets/{id}/cards                 a rod pump's surface card (one
                                            stroke); diagnosed and stored    operator
    GET  /assets/{id}/cards                 ?since&until&limit: stored card
                                            pairs (surface, downhole)        viewer
    GET  /alarms                            ?asset&state&priority: alarms not
                                            NORMAL, or those in ``state``     viewer
    GET  /assets/{id}/alarms                every alarm of the asset         viewer
    POST /alarms/{alarm}/acknowledge        {"reason"?}; audited             operator
    POST /alarms/{alarm}/shelve             {"duration_s", "reason"?}        operator
    POST /alarms/{alarm}/unshelve           {"reason"?}                      operator

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
safety actor is unreachable 503 (nothing written). A write refused here (malformed,
an unknown signal, a value outside its bounds: 422) is put on record, outcome
``refused``, with the user and the reason, in batches (actors.refusals; GET .../audit
sends what is pending first). serve.edge authenticates before a
body is read, caps bodies (413), answers malformed requests 422 without echoing them, and
an actor that is restarting or gone 503. Answers and errors are typed (serve.schemas);
OpenAPI at /openapi.json, Swagger UI at /docs (serve.docs, no CDN).

Status reads (``GET /assets/{id}``, ``GET /assets``, ``GET /healthz``) are answered from
the statuses the assets push (serve.status_cache, following the status board), not by a
call into the shard that runs the asset's numerics; the body of ``GET /assets/{id}`` is
the JSON of engine.status.AssetStatus.
"""

import asyncio
import math
import os
from collections.abc import Sequence
from typing import Any, Literal

import msgspec
import ray
from fastapi import (
    Body,
    Depends,
    FastAPI,
    HTTPException,
    Path,
    Query,
    Request,
    Response,
    WebSocket,
    WebSocketDisconnect,
)
from pydantic import BaseModel
from ray import serve

from actors.lookahead import LookaheadActor
from actors.refusals import RefusalRecorder
from controllers.whatif import WhatIfCancelled, WhatIfChanges, WhatIfRequest
from engine.alarm_states import AlarmActionError, AlarmState, Priority
from engine.alarms import AlarmStatus, split_alarm_id
from engine.cards import MAX_CARD_SAMPLES, MIN_CARD_SAMPLES, CardRecord, SurfaceCard, check_card
from engine.clock import ClockSpec
from engine.config import SiteConfig
from engine.history_cards import DEFAULT_LIMIT as DEFAULT_CARDS
from engine.messages import Mode, Outcome
from engine.metrics import render
from engine.status import AssetStatus, encode_json
from engine.status import AssetSummary as SummaryStruct
from plants.views import AssetView
from serve.auth import (
    INVALID_TOKEN,
    Role,
    RoleRequired,
    Token,
    TokenTable,
    caller,
    identify,
    install,
)
from serve.console import install_console
from serve.docs import serve_docs
from serve.edge import install_edge
from serve.schemas import (
    CSV_TEXT,
    HISTORY_CSV_RESPONSE,
    METRICS_RESPONSE,
    PROMETHEUS_TEXT,
    AlarmActionRequest,
    AssetSummary,
    AuditEntry,
    ControllerTuning,
    FleetPage,
    Health,
    HistorySeries,
    Identity,
    ModeAnswer,
    Number,
    PlanAnswer,
    Proposal,
    ReferenceAnswer,
    SafeStateFailure,
    ShelveRequest,
    SignalLimits,
    WhatIfAnswer,
    WhatIfBody,
    WriteAnswer,
    errors,
    install_struct_schemas,
    struct_answer,
)
from serve.status_cache import StatusCache

LIVE_HELLO_S = 10.0
"""How long /live waits for the client's token before closing."""
LIVE_FOLLOW_MAX = 1000
"""Assets one /live client may follow at once."""

LOOKAHEAD_GRACE_S = 10.0
"""Wall seconds a what-if may wait beyond its own timeout_s (queued behind another)."""
AUDIT_TIMEOUT_S = 10.0
"""How long GET .../audit waits for the safety actor (restarting, or busy) before 503."""
HISTORY_TIMEOUT_S = 30.0
"""How long GET .../history waits for the historian before 503."""

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
install_console(app)
install_edge(app)
install_struct_schemas(app)


class ModeRequest(BaseModel):
    mode: Mode


class Band(BaseModel):
    """An operator band, inside the signal's engineering limits (signal units)."""

    lower: Number
    upper: Number


ALARM_LIST = struct_answer(list[AlarmStatus], "alarms as the operator sees them "
                           "(engine.alarms.AlarmStatus, ISA-18.2 states)")
ALARM_AFTER_ACTION = struct_answer(AlarmStatus, "the alarm after the action")


def _json(answer: Any) -> Response:
    """An answer encoded by msgspec, as the Structs it comes from (NaN and infinities as
    null), for a route documented by ``struct_answer``."""
    return Response(msgspec.json.encode(answer), media_type="application/json")


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


async def _alarm_conflict(ref):
    """Await an alarm action: a state that does not allow it is 409 (AlarmActionError is
    a ValueError, which _unprocessable would make 422)."""
    try:
        return await ref
    except AlarmActionError as error:
        raise HTTPException(409, _message(error)) from None


def _names(text: str, what: str) -> list[str]:
    """Comma-separated names; 422 if there are none."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise HTTPException(422, f"{what}: give at least one name, comma-separated")
    return names

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
                 mqtt: Any = None, tokens_file: str | None = None, board: Any = None,
                 clock: ClockSpec | None = None, historian: Any = None,
                 site_config: SiteConfig | None = None) -> None:
        """``site_config``: the resolved site, for what-ifs and plans (actors.lookahead);
        without it they answer 503."""
        self.site = site
        self.site_config = site_config
        self._lookahead: Any = None
        self.assets = assets
        self.safety = safety
        self.mqtt = mqtt
        self.statuses = StatusCache(board, clock)
        self.refusals = RefusalRecorder("http", lambda batch: safety.note_refused.remote(batch))
        app.state.note_refused = self._refused
        self.historian = historian
        install(TokenTable(tokens, tokens_file))
        _replica_grpc_on_loopback()

    def _refused(self, asset_id: str, user: str, subject: str, reason: str,
                 requested: float | None = None) -> None:
        """Put a refused write on record (batched), if ``asset_id`` is an asset."""
        if asset_id in self.assets:
            self.refusals.refused(asset_id, user, subject, reason, requested)

    async def _write(self, asset_id: str, user: str, subject: dict[str, Any] | str, method,
                     *args):
        """Call an asset's write ``method`` with ``args``, awaited like ``_unprocessable``;
        a write the asset refuses (422: unknown signal, value outside its bounds) is put on
        record. ``subject``: the body's {signal: value}, or what the write changes ("mode",
        "controller"). Refusals still pending go on record first, so that the audit keeps
        this edge's order. After a write the next read of the asset asks its shard (the
        client reads its own write)."""
        await self.refusals.flush()
        try:
            answer = await _unprocessable(method.remote(*args))
            self._written(asset_id)
            return answer
        except HTTPException as error:
            if error.status_code == 422:
                names = subject if isinstance(subject, str) else ",".join(subject)
                values = [] if isinstance(subject, str) else list(subject.values())
                requested = values[0] if len(values) == 1 and isinstance(values[0], float | int) \
                    and math.isfinite(values[0]) else None
                self._refused(asset_id, user, names, str(error.detail), requested)
            raise

    def _asset(self, asset_id: str):
        try:
            return self.assets[asset_id]
        except KeyError:
            raise HTTPException(404, f"unknown asset {asset_id!r}") from None

    def _written(self, asset_id: str) -> None:
        self.statuses.written(asset_id)

    async def _summaries(self) -> list[SummaryStruct]:
        """Every asset's summary: pushed where fresh, else asked of its shard."""
        async def one(asset_id: str, handle: Any) -> SummaryStruct:
            status = self.statuses.fresh(asset_id)
            if status is not None:
                return status.summary()
            return msgspec.convert(await handle.summary.remote(), SummaryStruct)

        return list(await asyncio.gather(*(one(i, h) for i, h in self.assets.items())))

    @app.get("/healthz", response_model=Health, responses=errors(503))
    async def healthz(self) -> dict[str, Any]:
        summaries = await self._summaries()
        return {"status": "ok", "site": self.site, "assets": len(summaries),
                "unhealthy": [s.id for s in summaries if not s.healthy]}

    @app.get("/assets", response_model=list[AssetSummary], responses=errors(401, 403, 503))
    async def list_assets(self, user: str = VIEWER) -> Response:
        return Response(encode_json(await self._summaries()), media_type="application/json")

    @app.get("/whoami", response_model=Identity, responses=errors(401))
    async def whoami(self, identity: tuple[str, Role] = Depends(caller)) -> dict[str, str]:
        user, role = identity
        return {"user": user, "role": role.name.lower(), "site": self.site}

    @app.get("/fleet", response_model=FleetPage, responses=errors(401, 403, 422, 503))
    async def fleet(self, offset: int = Query(0, ge=0), limit: int = Query(100, ge=1, le=500),
                    q: str = Query("", max_length=100, description="part of an id or kind"),
                    kind: str = Query("", max_length=100, description="only this kind"),
                    user: str = VIEWER) -> dict[str, Any]:
        """One page of the fleet, in id order, filtered on the server (the console's
        overview scrolls through thousands of assets a page at a time)."""
        summaries = await self._summaries()
        needle = q.strip().lower()
        matching = sorted((s for s in summaries if (not kind or s.kind == kind)
                           and (needle in s.id.lower() or needle in s.kind.lower())),
                          key=lambda s: s.id)
        return {"total": len(matching), "offset": offset,
                "kinds": sorted({s.kind for s in summaries}),
                "items": msgspec.to_builtins(matching[offset:offset + limit])}

    @app.websocket("/live")
    async def live(self, socket: WebSocket) -> None:
        """Statuses pushed as the assets tick (serve.status_cache listeners), for the
        console. The client's first message authenticates, ``{"token": "<bearer token>"}``
        (a browser cannot set headers on a WebSocket; viewer role); then ``{"follow":
        [asset ids]}`` (any time) chooses which assets' statuses it gets, as
        ``{"statuses": [AssetStatus, ...]}`` (the GET /assets/{id} body; the newest of
        each asset that arrived since the last message). A bad token or role gets
        ``{"error": ...}`` and close code 1008."""
        await socket.accept()
        try:
            hello = await asyncio.wait_for(socket.receive_json(), LIVE_HELLO_S)
            identity = identify(str(hello.get("token", ""))) if isinstance(hello, dict) else None
        except (TimeoutError, ValueError, WebSocketDisconnect):
            identity = None
        if identity is None or identity[1] < Role.VIEWER:
            await socket.send_json({"error": INVALID_TOKEN})
            await socket.close(code=1008)
            return
        try:
            feed = self.statuses.listen()
        except LookupError as error:
            await socket.send_json({"error": str(error)})
            await socket.close(code=1011)
            return
        followed: set[str] = set()

        async def choose() -> None:
            while True:
                message = await socket.receive_json()
                if isinstance(message, dict) and isinstance(message.get("follow"), list):
                    followed.clear()
                    followed.update(str(i) for i in message["follow"][:LIVE_FOLLOW_MAX])

        chooser = asyncio.create_task(choose())  # ends when the client goes
        try:
            while True:
                getter = asyncio.ensure_future(feed.get())
                await asyncio.wait({getter, chooser}, return_when=asyncio.FIRST_COMPLETED)
                if chooser.done():
                    getter.cancel()
                    return
                newest = {getter.result().id: getter.result()}
                while not feed.empty():  # arrival order: a later status is a newer one
                    status = feed.get_nowait()
                    newest[status.id] = status
                bodies = [self.statuses.body(s) for s in newest.values() if s.id in followed]
                if bodies:
                    await socket.send_text('{"statuses":['
                                           + ",".join(b.decode() for b in bodies) + "]}")
        except WebSocketDisconnect:
            pass
        finally:
            self.statuses.unlisten(feed)
            chooser.cancel()

    @app.get("/assets/{asset_id}", response_class=Response, response_model=None,
             responses={200: struct_answer(AssetStatus, "everything the twin knows of the "
                                           "asset (engine.status.AssetStatus)"),
                        **errors(401, 403, 404, 422, 503)})
    async def get_asset(self, asset_id: str, user: str = VIEWER) -> Response:
        """The asset's status (engine.status.AssetStatus): as last pushed while fresh,
        else asked of its shard (serve.status_cache)."""
        handle = self._asset(asset_id)
        status = self.statuses.fresh(asset_id)
        if status is None:
            status = self.statuses.read(await handle.status.remote())
        return Response(self.statuses.body(status), media_type="application/json")

    @app.get("/assets/{asset_id}/view", response_class=Response, response_model=None,
             responses={200: struct_answer(AssetView, "the asset's operator screen, by kind "
                                           "(plants.views), at the twin's estimate"),
                        **errors(401, 403, 404, 422, 503)})
    async def get_view(self, asset_id: str, user: str = VIEWER) -> Response:
        encoded = await _unprocessable(self._asset(asset_id).view.remote())
        return Response(encoded, media_type="application/json")

    @app.put("/assets/{asset_id}/reference", response_model=ReferenceAnswer,
             responses=errors(400, 401, 403, 404, 413, 422, 503))
    async def put_reference(
        self, asset_id: str, body: dict[str, Number] = Body(examples=[{"T_bulk": 433.15}]),
        user: str = OPERATOR,
    ) -> dict[str, Any]:
        asset = self._asset(asset_id)
        reference = await self._write(asset_id, user, body, asset.set_reference, body, user)
        return {"reference": reference}

    @app.put("/assets/{asset_id}/mode", response_model=ModeAnswer,
             responses=errors(400, 401, 403, 404, 413, 422, 503))
    async def put_mode(self, asset_id: str, body: ModeRequest = Body(),
                       user: str = OPERATOR) -> dict[str, Any]:
        asset = self._asset(asset_id)
        return {"mode": await self._write(asset_id, user, "mode", asset.set_mode,
                                          body.mode.value, user)}

    @app.put("/assets/{asset_id}/setpoints", response_model=WriteAnswer,
             responses=errors(400, 401, 403, 404, 413, 422, 503))
    async def put_setpoints(
        self, asset_id: str, body: dict[str, Number] = Body(examples=[{"m_oil": 2.0}]),
        user: str = OPERATOR,
    ) -> dict[str, Any]:
        asset = self._asset(asset_id)
        return await self._write(asset_id, user, body, asset.write_setpoints, body, user)

    @app.get("/assets/{asset_id}/limits", response_model=dict[str, SignalLimits],
             responses=errors(401, 403, 404, 422, 503),
             response_model_exclude_unset=True)
    async def get_limits(self, asset_id: str, user: str = VIEWER) -> dict[str, Any]:
        return await _unprocessable(self._asset(asset_id).limits.remote())

    @app.put("/assets/{asset_id}/limits", response_model=dict[str, SignalLimits],
             responses=errors(400, 401, 403, 404, 413, 422, 503),
             response_model_exclude_unset=True)
    async def put_limits(
        self, asset_id: str,
        body: dict[str, Band] = Body(examples=[{"m_oil": {"lower": 0.3, "upper": 6.0}}]),
        user: str = OPERATOR,
    ) -> dict[str, Any]:
        asset = self._asset(asset_id)
        bands = {name: (band.lower, band.upper) for name, band in body.items()}
        return await self._write(asset_id, user, ",".join(bands), asset.set_operator_limits,
                                 bands, user)

    @app.get("/assets/{asset_id}/proposals", response_model=list[Proposal],
             responses=errors(401, 403, 404, 422, 503))
    async def get_proposals(self, asset_id: str, user: str = VIEWER) -> list[dict[str, Any]]:
        return await _unprocessable(self._asset(asset_id).proposals.remote())

    @app.post("/assets/{asset_id}/proposals/{number}/approve", response_model=WriteAnswer,
              responses=errors(401, 403, 404, 413, 422, 503))
    async def approve(self, asset_id: str, number: int = Path(ge=1),
                      user: str = OPERATOR) -> dict[str, Any]:
        asset = self._asset(asset_id)
        answer = await _unprocessable(asset.approve.remote(number, user))
        self._written(asset_id)
        return answer

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
             responses=errors(400, 401, 403, 404, 413, 422, 503))
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
        return await self._write(asset_id, user, "controller", asset.set_controller, body,
                                 user)

    @app.post("/assets/{asset_id}/safe-state", response_model=WriteAnswer,
              responses=errors(401, 403, 404, 413, 422, 503))
    async def safe_state(self, asset_id: str, user: str = OPERATOR) -> dict[str, Any]:
        """Drive every writable signal of the asset to its safe value, in any mode: a
        proposal of source "safe-state", clamped to the engineering limits and audited;
        answers like ``PUT .../setpoints``."""
        asset = self._asset(asset_id)
        answer = await _unprocessable(asset.safe_state.remote(user))
        self._written(asset_id)
        return answer

    @app.post("/safe-state", response_model=dict[str, WriteAnswer | SafeStateFailure],
              responses=errors(401, 403, 413, 503))
    async def site_safe_state(self, user: str = OPERATOR) -> dict[str, Any]:
        """Safe state for every asset of the site; answers per asset id, an asset whose
        safety gate did not answer with ``{"error": ...}`` (nothing written for it)."""
        ids = list(self.assets)
        answers = await asyncio.gather(*(self.assets[i].safe_state.remote(user) for i in ids),
                                       return_exceptions=True)
        for asset_id in ids:
            self._written(asset_id)
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
        await self.refusals.flush()  # the refusals made before this request, on record
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

    # -- history and alarms ----------------------------------------------------------------

    @app.get("/assets/{asset_id}/history", response_model=list[HistorySeries],
             response_model_exclude_unset=True,
             responses={**HISTORY_CSV_RESPONSE, **errors(401, 403, 404, 422, 503)})
    async def get_history(
        self,
        asset_id: str,
        signals: str = Query(description="history signals, comma-separated: 'T_bulk', "
                                         "'estimate.T_bulk', 'applied.m_oil', 'mode', ..."),
        since: float | None = Query(None, description="UNIX s of the twin's clock; default "
                                                      "an hour before until"),
        until: float | None = Query(None, description="UNIX s; default the last recorded "
                                                      "point"),
        mode: Literal["raw", "interpolated", "aggregate"] = "raw",
        step: float = Query(60.0, gt=0, description="s between interpolated values, or per "
                                                    "aggregate interval"),
        format: Literal["json", "csv"] = "json",
        assets: str | None = Query(None, description="more asset ids, comma-separated: one "
                                                     "query over many assets"),
        user: str = VIEWER,
    ) -> Any:
        """Recorded history of the asset's signals (SI, each series with its unit): the
        stored points (raw), values every ``step`` s (interpolated, linear; ``mode`` held),
        or min, max, mean, last, count and time-weighted mean per ``step`` s
        (aggregate). 404: unknown asset, or none recorded; 422: a signal not recorded or
        a bad range; 503: no historian runs, or it does not answer."""
        ids = [asset_id, *(_names(assets, "assets") if assets is not None else [])]
        for identifier in ids:
            self._asset(identifier)
        if self.historian is None:
            raise HTTPException(503, f"site {self.site!r} runs no historian")
        method = self.historian.query_csv if format == "csv" else self.historian.query_json
        ref = method.remote(ids, _names(signals, "signals"), since, until, mode, step)
        try:
            answer = await _unprocessable(asyncio.wait_for(ref, HISTORY_TIMEOUT_S))
        except TimeoutError:
            raise HTTPException(503, "the historian did not answer in time") from None
        if format == "csv":
            return Response(answer, media_type=CSV_TEXT)
        return answer

    @app.post("/assets/{asset_id}/cards", response_class=Response, response_model=None,
              openapi_extra={"requestBody": {"required": True, **struct_answer(
                  SurfaceCard, "one stroke's surface card: position m, load N, sample_time "
                  f"s from time; {MIN_CARD_SAMPLES}..{MAX_CARD_SAMPLES} samples")}},
              responses={200: struct_answer(CardRecord, "the card pair: the surface card and "
                                            "the downhole card diagnosed from it"),
                         **errors(400, 401, 403, 404, 413, 422, 503)})
    async def post_card(self, asset_id: str, request: Request,
                        user: str = OPERATOR) -> Response:
        """Ingest a rod pump's surface card (one stroke): diagnosed to its downhole card by
        the wave equation (Everitt & Jennings), kept as the asset's last card pair and
        stored in the historian. 422 names the field and the bound of a card refused
        (lengths that differ, too few or too many samples, NaN, sample times not
        increasing, a card with no fluid load, an asset that takes no cards); a refused
        card changes nothing and is put on record (outcome ``refused``)."""
        asset = self._asset(asset_id)
        try:
            card = check_card(msgspec.json.decode(await request.body(), type=SurfaceCard))
        except (msgspec.DecodeError, ValueError) as error:
            reason = f"card refused: {error}"
            self._refused(asset_id, user, "card", reason)
            raise HTTPException(422, reason) from None
        record = await self._write(asset_id, user, "card", asset.receive_card, card)
        return Response(msgspec.json.encode(record), media_type="application/json")

    @app.get("/assets/{asset_id}/cards", response_class=Response, response_model=None,
             responses={200: struct_answer(list[CardRecord], "stored card pairs, oldest "
                                           "first"), **errors(401, 403, 404, 422, 503)})
    async def get_cards(
        self, asset_id: str,
        since: float | None = Query(None, description="UNIX s of the twin's clock (stroke "
                                                      "start); default unbounded"),
        until: float | None = Query(None, description="UNIX s; default unbounded"),
        limit: int = Query(DEFAULT_CARDS, description="the newest this many in the range"),
        user: str = VIEWER,
    ) -> Response:
        """The asset's stored card pairs (surface card, downhole card diagnosed from it,
        fillage, fluid pound, SNR confidence; SI) with since <= time <= until, the newest
        ``limit`` of them, oldest first. 404: unknown asset; 422: since after until, or a
        limit outside 1..1000; 503: no historian runs, or it does not answer."""
        self._asset(asset_id)
        if self.historian is None:
            raise HTTPException(503, f"site {self.site!r} runs no historian")
        ref = self.historian.cards.remote(asset_id, since, until, limit)
        try:
            cards = await _unprocessable(asyncio.wait_for(ref, HISTORY_TIMEOUT_S))
        except TimeoutError:
            raise HTTPException(503, "the historian did not answer in time") from None
        return Response(msgspec.json.encode(cards), media_type="application/json")

    @app.get("/alarms", response_class=Response, response_model=None,
             responses={200: ALARM_LIST, **errors(401, 403, 404, 503)})
    async def get_alarms(self, asset: str | None = None, state: AlarmState | None = None,
                         priority: Priority | None = None, user: str = VIEWER) -> Response:
        """Alarms of every asset (or ``asset``) that are not NORMAL (active, awaiting
        acknowledgement, shelved, suppressed or out of service), or those in ``state``;
        of ``priority`` if given."""
        handles = [self._asset(asset)] if asset is not None else list(self.assets.values())
        found = [alarm for alarms in await asyncio.gather(*(h.alarms.remote() for h in handles))
                 for alarm in alarms]
        return _json([a for a in found
                      if (a["state"] != AlarmState.NORMAL if state is None else a["state"] == state)
                      and (priority is None or a["priority"] == priority)])

    @app.get("/assets/{asset_id}/alarms", response_class=Response, response_model=None,
             responses={200: ALARM_LIST, **errors(401, 403, 404, 503)})
    async def get_asset_alarms(self, asset_id: str, user: str = VIEWER) -> Response:
        """Every alarm of the asset, in every state."""
        return _json(await self._asset(asset_id).alarms.remote())

    async def _alarm_action(self, alarm: str, action: str, user: str,
                            duration_s: float | None, reason: str) -> Response:
        try:
            asset_id, name = split_alarm_id(alarm)
        except ValueError as error:
            raise HTTPException(404, str(error)) from None
        ref = self._asset(asset_id).alarm_action.remote(name, action, user, duration_s, reason)
        return _json(await _unprocessable(_alarm_conflict(ref)))

    @app.post("/alarms/{alarm}/acknowledge", response_class=Response, response_model=None,
              responses={200: ALARM_AFTER_ACTION, **errors(400, 401, 403, 404, 409, 413, 422, 503)})
    async def acknowledge_alarm(self, alarm: str,
                                body: AlarmActionRequest | None = None,
                                user: str = OPERATOR) -> Response:
        """Acknowledge ``alarm`` ('<asset>:<name>'): UNACKNOWLEDGED -> ACKNOWLEDGED,
        RTNUN -> NORMAL; in the audit with the user before it counts."""
        return await self._alarm_action(alarm, "acknowledge", user, None,
                                        body.reason if body else "")

    @app.post("/alarms/{alarm}/shelve", response_class=Response, response_model=None,
              responses={200: ALARM_AFTER_ACTION, **errors(400, 401, 403, 404, 409, 413, 422, 503)})
    async def shelve_alarm(self, alarm: str, body: ShelveRequest = Body(
            examples=[{"duration_s": 3600.0, "reason": "sensor maintenance"}]),
            user: str = OPERATOR) -> Response:
        """Shelve ``alarm`` for ``duration_s`` twin seconds (at most its max_shelve_s,
        else 422); it returns by itself when the time is up. Audited with the user."""
        return await self._alarm_action(alarm, "shelve", user, body.duration_s, body.reason)

    @app.post("/alarms/{alarm}/unshelve", response_class=Response, response_model=None,
              responses={200: ALARM_AFTER_ACTION, **errors(400, 401, 403, 404, 409, 413, 422, 503)})
    async def unshelve_alarm(self, alarm: str,
                             body: AlarmActionRequest | None = None,
                             user: str = OPERATOR) -> Response:
        """End the shelve of ``alarm``: it shows what the process warrants. Audited."""
        return await self._alarm_action(alarm, "unshelve", user, None,
                                        body.reason if body else "")


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
              responses=errors(400, 401, 403, 404, 413, 422, 503, 504))
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
        """Approve stored plan ``version``; the approval is audited under the user. The
        plan then drives the asset's controller (its hourly flow and prices as the
        forecast, its injections and pump speeds as input targets, over its hours) until
        a newer approval or its end: the status's ``controller.forecast`` says
        ``plan v<version>``."""
        asset = self._asset(asset_id)
        status = await _unprocessable(asset.status.remote())
        entry = await _unprocessable(self._lookahead_actor().approve_plan.remote(
            asset_id, version, user, status["time"]))
        await _unprocessable(asset.follow_plan.remote(entry))
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
        fleet.board, fleet.clock, fleet.historian, site_config=fleet.site)
    serve.run(api, name="twinloop", route_prefix="/")
    return f"http://{host}:{port}"
