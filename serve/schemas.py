"""Response bodies of the HTTP API (serve.app), as pydantic models for FastAPI's OpenAPI.

Every route declares its 200 body with one of these, or with ``struct_answer`` where the
answer is a msgspec Struct sent as it is (an asset's status, its view, its alarms), and its
error answers with ``errors(...)``; FastAPI checks each pydantic answer against its model
before sending it, and a Struct's schema is the Struct's own, so the document at
/openapi.json is what clients get. Values are SI, each with its unit; times
are UNIX seconds of the twin's clock. Where a number may be absent or unbounded (an
infinite limit, a statistic not computed yet) the actors send ``null``.

Error bodies are ``{"detail": "<message>"}`` (400: a body that is not JSON at all),
except 422: either FastAPI's validation errors (``detail`` a list of ``{loc, msg,
type}``, for a body or parameter of the wrong shape) or a message naming the signal or
field and the bound (``detail`` a string, for a value the asset or the safety actor
refuses).
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict, Field, Strict

from engine.messages import Mode, Outcome

Number = Annotated[float, Strict()]
"""A number in a request body: a JSON number (integer or not); ``true`` or ``"433.5"`` is
a malformed request (422), not 1.0 or 433.5."""


class ErrorMessage(BaseModel):
    """An error answer: what went wrong, in words."""

    detail: str


class ValidationIssue(BaseModel):
    """One problem of a request that does not have the declared shape."""

    loc: list[str | int] = Field(description="where: 'body' or 'query' or 'path', then keys")
    msg: str
    type: str


class Unprocessable(BaseModel):
    """422: a list of validation issues (malformed request), or a message naming the signal
    or field and the bound (a well-formed value the asset or the safety actor refuses)."""

    detail: list[ValidationIssue] | str


_ERRORS: dict[int, tuple[type[BaseModel], str]] = {
    400: (ErrorMessage, "the request body is not JSON: nothing changed"),
    401: (ErrorMessage, "no bearer token, or one the server does not know"),
    403: (ErrorMessage, "the token's role may not make this request"),
    404: (ErrorMessage, "unknown asset (or proposal, or alarm)"),
    409: (ErrorMessage, "the alarm's state does not allow this action (e.g. acknowledging "
                        "an alarm that is NORMAL): nothing changed"),
    413: (ErrorMessage, "request body larger than 1 MiB: not parsed, nothing changed"),
    422: (Unprocessable, ("malformed request, or a value outside its signal's bounds: "
                          "nothing changed")),
    503: (ErrorMessage, ("an actor is restarting or unreachable (a write: nothing was "
                         "written); retry shortly")),
    504: (ErrorMessage, "the computation did not finish within its time bound: stopped"),
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a route that can answer these error ``codes``."""
    return {code: {"model": _ERRORS[code][0], "description": _ERRORS[code][1]}
            for code in codes}


class Health(BaseModel):
    status: str = Field(description="'ok' while the service runs")
    site: str
    assets: int
    unhealthy: list[str] = Field(description="ids of the assets that are not healthy")


class AssetSummary(BaseModel):
    id: str
    kind: str
    mode: Mode
    healthy: bool
    built_at: float | None = Field(None, description="wall-clock UNIX time of the asset's "
                                   "latest status, s; null before its first")
    alarms: dict[str, int] = Field(default={}, description="annunciated alarms "
                                   "(unacknowledged, acknowledged, returned unacknowledged) "
                                   "by priority; priorities with none left out")


class Identity(BaseModel):
    """Who the bearer token is: the user, the role, and the site it reaches."""

    user: str
    role: str = Field(description="viewer | operator | engineer | admin")
    site: str


class FleetPage(BaseModel):
    """One page of the fleet overview: ``total`` assets match the filter; ``items`` are
    those from ``offset`` on, in id order; ``kinds`` every kind of the site."""

    total: int
    offset: int
    kinds: list[str]
    items: list[AssetSummary]


class ReferenceAnswer(BaseModel):
    reference: dict[str, float] = Field(description="every output target now in force")


class ModeAnswer(BaseModel):
    mode: Mode


class RecordSummary(BaseModel):
    signal: str
    outcome: Outcome
    reason: str


class WriteAnswer(BaseModel):
    """What the safety gate did with a write (operator setpoints, an approval)."""

    applied: dict[str, float] = Field(description="what was written to the plant")
    time: float
    mode: Mode
    revision: int
    records: list[RecordSummary] = Field(description="one audit record per signal")


class SafeStateFailure(BaseModel):
    """An asset of a site-wide safe-state command whose safety gate did not answer:
    nothing was written for it."""

    error: str


class SignalLimits(BaseModel):
    lower: float | None = Field(description="engineering lower limit; null: unbounded")
    upper: float | None = Field(description="engineering upper limit; null: unbounded")
    max_rate: float | None = Field(description="largest change per second; null: no limit")
    operator_lower: float | None = Field(None, description="operator band; absent if none")
    operator_upper: float | None = Field(None, description="operator band; absent if none")
    safe: float = Field(description="the value a trip or a safe-state command writes")


class Proposal(BaseModel):
    """A controller proposal queued in ADVISORY mode for an operator."""

    n: int
    time: float
    setpoints: dict[str, float]
    reason: str
    status: str
    measurement_age: float | None = Field(description="age of the measurement it was made "
                                                      "on, twin seconds; null: none yet")


class TuningLimit(BaseModel):
    lower: float | None
    upper: float | None
    max_rate: float | None
    unit: str
    engineering_lower: float | None
    engineering_upper: float | None


class ControllerTuning(BaseModel):
    """The controller's tuning; the backend's further settings (economic weights, input
    tracking weights, output limits, QP solver, iterations, tolerance, code generation)
    come alongside."""

    model_config = ConfigDict(extra="allow")

    backend: str
    horizon: int
    tracking: dict[str, float]
    move_suppression: dict[str, float]
    limits: dict[str, TuningLimit]
    backends: list[str] = Field(description="the backends this asset may use")


class AuditEntry(BaseModel):
    time: float
    user: str
    source: str
    signal: str
    requested: float | None
    applied: float | None
    outcome: Outcome
    reason: str


PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"

METRICS_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"description": "Prometheus text exposition format 0.0.4",
          "content": {PROMETHEUS_TEXT: {"schema": {"type": "string"}}}},
}


_STRUCT_SCHEMAS: dict[str, Any] = {}
"""JSON schemas of the msgspec Structs that answers are encoded from, by name."""


def struct_answer(answer_type: Any, description: str) -> dict[str, Any]:
    """The ``responses={200: ...}`` entry of a route whose body is ``answer_type`` (a
    msgspec Struct or union of them) encoded by msgspec: its schema from msgspec, so the
    document cannot drift from the Struct. ``install_struct_schemas`` adds the Structs'
    components to the app's OpenAPI."""
    (schema,), components = msgspec.json.schema_components(
        [answer_type], ref_template="#/components/schemas/{name}")
    _STRUCT_SCHEMAS.update(components)
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def install_struct_schemas(app: FastAPI) -> None:
    """Make ``app``'s OpenAPI carry the components of every ``struct_answer``."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(title=app.title, version=app.version,
                                   description=app.description, routes=app.routes)
            schemas = document.setdefault("components", {}).setdefault("schemas", {})
            clash = sorted(name for name in set(schemas) & set(_STRUCT_SCHEMAS)
                           if not _same_enum(schemas[name], _STRUCT_SCHEMAS[name]))
            if clash:
                raise ValueError(f"OpenAPI components defined twice: {clash}")
            schemas.update({name: schema for name, schema in _STRUCT_SCHEMAS.items()
                            if name not in schemas})
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _same_enum(pydantic_schema: dict[str, Any], struct_schema: dict[str, Any]) -> bool:
    """Both schemas describe one enum (engine.messages.Mode, say, in a pydantic body and
    in a Struct) by the same values: one component serves both."""
    values = pydantic_schema.get("enum"), struct_schema.get("enum")
    return None not in values and sorted(values[0]) == sorted(values[1])  # type: ignore[arg-type]
# -- history and alarms (engine.historian, engine.alarms) -----------------------------------

CSV_TEXT = "text/csv"


class HistorySeries(BaseModel):
    """One recorded series over the queried range. ``time`` is UNIX seconds of the twin's
    clock: point times (raw), interpolation times, or interval starts (aggregate). Raw
    answers carry ``value`` and ``std`` (one sigma, estimates only); interpolated ones
    ``value``; aggregate ones ``min``, ``max``, ``mean``, ``last``, ``count`` and
    ``twmean`` (time-weighted mean) per interval. Every value is in ``unit`` (SI); null
    where there is none (no std, an empty interval, outside the recorded points)."""

    asset: str
    signal: str = Field(description="'<output>', 'estimate.<state>', 'parameter.<name>', "
                                    "'nis', 'requested.<input>', 'applied.<input>', "
                                    "'reference.<output>', 'mode' (0 OFF, 1 MANUAL, "
                                    "2 ADVISORY, 3 AUTONOMOUS)")
    unit: str
    mode: str = Field(description="'recorded', 'interpolated' or 'aggregate'")
    source: str = Field(description="'raw', or 'rollup:<interval s>' for an aggregate "
                                    "computed from stored rollups")
    time: list[float]
    value: list[float | None] | None = None
    std: list[float | None] | None = None
    min: list[float | None] | None = None
    max: list[float | None] | None = None
    mean: list[float | None] | None = None
    last: list[float | None] | None = None
    count: list[float | None] | None = None
    twmean: list[float | None] | None = None


HISTORY_CSV_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"description": "JSON (format=json), or CSV (format=csv): a header row, then one "
                         "row per series and time: asset, signal, unit, mode, time and the "
                         "mode's columns",
          "content": {CSV_TEXT: {"schema": {"type": "string"}}}},
}


class AlarmActionRequest(BaseModel):
    """Why the operator acts (optional; recorded in the audit)."""

    reason: str = ""


class ShelveRequest(AlarmActionRequest):
    """Shelve for ``duration_s`` twin seconds, at most the alarm's ``max_shelve_s``."""

    duration_s: Annotated[float, Strict(), Field(gt=0)]


# -- what-if and plans (issue 14): POST /assets/{id}/whatif, /assets/{id}/plan -----------

class WhatIfChangesBody(BaseModel):
    """What a what-if changes at its start, SI, by signal name."""

    model_config = ConfigDict(extra="forbid")

    reference: dict[str, Number] = Field(default={}, description="output targets")
    disturbances: dict[str, Number] = Field(default={}, description="disturbances (an inflow)")
    setpoints: dict[str, Number] = Field(default={}, description="writable signals, gated")
    parameters: dict[str, Number] = Field(default={}, description="the plant's true parameters")
    mode: Mode | None = Field(default=None, description="the asset's mode; null: its mode now")


class WhatIfBody(BaseModel):
    """A what-if of a live asset (controllers.whatif)."""

    model_config = ConfigDict(extra="forbid")

    duration_s: Number = Field(description="twin seconds to look ahead, at most 7 days")
    changes: WhatIfChangesBody = WhatIfChangesBody()
    controller: Annotated[bool, Strict()] = Field(
        default=True, description="the controller runs in the fork; false: inputs hold")
    samples: Annotated[int, Strict()] = Field(
        default=1, description="ensemble members drawn from the estimate's uncertainty, 1-200")
    seed: Annotated[int, Strict()] = Field(default=0, description="seed of the draws")
    timeout_s: Number = Field(default=30.0, description="wall seconds it may take, at most 300")


class WhatIfTrajectory(BaseModel):
    unit: str
    value: list[float] = Field(description="the central member (the estimate itself)")
    lower: list[float] = Field(description="5th percentile over the members")
    upper: list[float] = Field(description="95th percentile over the members")


class WhatIfFigure(BaseModel):
    unit: str
    value: float | None = Field(description="central member; null: not defined here")
    lower: float | None
    upper: float | None


class WhatIfCrossing(BaseModel):
    limit: str = Field(description="alarm tag, interlock name, output_limits.* or bounds.*")
    kind: str = Field(description="alarm | constraint | interlock")
    signal: str
    side: str = Field(description="above | below")
    bound: float
    first_time_s: float | None = Field(description="s from the start to the central "
                                                   "member's crossing; null: it stays inside")
    earliest_s: float = Field(description="earliest crossing over the members, s")
    probability: float = Field(description="fraction of the members crossing")


class WhatIfKpis(BaseModel):
    energy: WhatIfFigure = Field(description="integral of the power outputs, J")
    cost: WhatIfFigure = Field(description="integral of the cost rate, currency")
    currency: str | None
    crossings: list[WhatIfCrossing]
    first_crossing_s: float | None = Field(description="first time any limit is crossed")


class WhatIfRunAnswer(BaseModel):
    trajectories: dict[str, WhatIfTrajectory] = Field(
        description="every output, input and writable disturbance, one value per time")
    kpis: WhatIfKpis


class WhatIfAnswer(BaseModel):
    """A what-if and its no-change baseline from the same state."""

    asset: str
    start: float = Field(description="twin time of the fork")
    period_s: float
    time: list[float] = Field(description="seconds from start, one per control period")
    samples: int
    controller: bool
    scenario: WhatIfRunAnswer
    baseline: WhatIfRunAnswer
    compute_time_s: float


class PlanHourAnswer(BaseModel):
    hour: int
    electricity_price: float = Field(description="currency per kWh")
    flow: float = Field(description="m^3/s")
    dra_injection: list[float] = Field(description="each skid's injection, L/h")
    pump_speed: list[float] = Field(description="each station's speed relative to rated")
    discharge_pressure: list[float] = Field(description="each station's, Pa")
    station_power: list[float] = Field(description="each station's, W")
    cost: float = Field(description="electricity plus DRA this hour, currency")


class PlanBaselineAnswer(BaseModel):
    feasible: bool
    cost: float | None = Field(description="currency; null when infeasible")
    dra_injection: float = Field(description="every skid's fixed rate, L/h")
    reason: str
    hours: list[PlanHourAnswer]


class PlanAnswer(BaseModel):
    """A stored 168-hour plan of a DRA pipeline (controllers.planner), by version."""

    version: int
    asset: str
    created: float = Field(description="twin time of the estimate it starts from")
    user: str
    status: str = Field(description="proposed | approved")
    approved_by: str | None
    approved_at: float | None
    start: float = Field(description="twin time of its first hour")
    start_hour_of_week: int = Field(description="0 = Monday 00:00 UTC")
    currency: str
    hours: list[PlanHourAnswer]
    cost: float
    energy_cost: float
    dra_cost: float
    delivered_volume: list[float] = Field(description="m^3 per day")
    baselines: dict[str, PlanBaselineAnswer] = Field(description="constant_dra and no_dra")
    maop: list[float] = Field(description="each station's discharge pressure bound, Pa")
    solver_status: str
    iterations: int
    compute_time_s: float
