"""Site configuration: a TOML file decoded into typed, frozen structs.

Errors name the file, the key and the problem, e.g.
``examples/pilot.toml: assets[1].period_s: Expected `float`, got `str```.

A site file::

    [site]
    name = "pilot"
    speed = 60.0                       # twin seconds per wall second

    [[assets]]
    id = "tank-01"
    kind = "asphalt_tank"
    period_s = 120.0
    initial = { T_bulk = 423.15 }      # state values, SI
    reference = { T_bulk = 433.15 }    # output targets, SI
    [assets.limits.m_oil]
    lower = 0.1
    upper = 10.0
    max_rate = 0.01                    # per second
    safe = 0.1                         # what a trip or a safe-state command writes
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Literal, TypeVar

import msgspec

from engine.history_policy import RollupPolicy, StoragePolicy
from engine.messages import Mode
from engine.passwords import parse_hash
from engine.registers import WordOrder


class ConfigError(ValueError):
    """A site file problem, naming the file and the key."""

    def __init__(self, path: str | Path, key: str, problem: str) -> None:
        self.path, self.key, self.problem = str(path), key, problem
        super().__init__(f"{path}: {key}: {problem}" if key else f"{path}: {problem}")


_T = TypeVar("_T")


class _Strict(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Base of the config Structs. msgspec passes ``frozen`` on to subclasses, but type
    checkers read each class's own keywords, so every subclass repeats ``frozen=True``."""


class SetpointLimit(_Strict, frozen=True):
    """Hard limits the safety policy enforces on one manipulated input.

    Attributes:
        lower: lowest value that may be written, input units.
        upper: highest value that may be written, input units.
        max_rate: largest change per second of twin time, input units per second.
        safe: the value a tripped interlock's ``close`` and a safe-state command drive
            the input to, at once; None means ``lower``. Must lie in [lower, upper].
    """

    lower: float = -math.inf
    upper: float = math.inf
    max_rate: float = math.inf
    safe: float | None = None


def safe_value_problem(signal: str, limit: SetpointLimit) -> str:
    """Why ``limit.safe`` is not a safe value of ``signal`` (it is outside its limits)."""
    safe = math.nan if limit.safe is None else limit.safe
    bound, side = (limit.lower, "below its lower") if not safe >= limit.lower else (
        limit.upper, "above its upper")
    return f"signal {signal!r}: safe value {safe:g} is {side} limit {bound:g}"


class OutputLimit(_Strict, frozen=True):
    """A soft limit on one output over the prediction horizon (backend "fast").

    A violation v >= 0, in spans of the output (see ControllerSettings), costs
    ``penalty`` (v + v^2) per step: the linear part makes the penalty exact (the limit
    holds whenever it can), the quadratic part keeps the problem smooth.

    Attributes:
        lower: lowest value wanted, output units.
        upper: highest value wanted, output units.
        penalty: weight of a violation, dimensionless like the tracking weights.
    """

    lower: float = -math.inf
    upper: float = math.inf
    penalty: float = 1e3


class ControllerSettings(_Strict, frozen=True):
    """MPC tuning. The stage cost over the horizon is

        sum_k  sum_y w_y ((y_k - r_y,k) / s_y)^2  +  sum_u w_du ((u_k - u_{k-1}) / s_u)^2
               + sum_v e_v pi_v,k v_k / s_v                        (economic, "fast" only)
               + sum_u w_u ((u_k - r_u,k) / s_u)^2     (input targets, "fast" only)

    with s the span (upper - lower) of each output or input, so weights are
    dimensionless; outputs without a reference are not tracked.

    Only the types are checked here; the values (ranges, signal names, which backend
    fits which plant kind and reads which option) are checked against the asset's model
    by ``controllers.backends.check_settings`` (engine/ does not import controllers/).

    Attributes:
        backend: "do-mpc" (the reference backend, IPOPT), "fast" (CasADi multiple
            shooting, SQP with a line search over a QP solver; see controllers.mpc_fast) or,
            for rod pumps, "fillage-rule" (controllers.fillage).
        horizon: prediction horizon in controller steps (the asset's period).
        tracking: weight w_y per output name; outputs not listed weigh 1.
        move_suppression: weight w_du per input name; inputs not listed weigh 0.1.
        input_tracking: weight w_u per input name on its target r_u,k, where it has one
            (the hourly injections and pump speeds of an approved plan, over the plan's
            hours); inputs not listed weigh 1. "fast" only. A target is a cost, never a
            bound: limits, rate limits and the safety gate apply as without it.
        economic: weight e_v per input or output name of a linear economic cost on its
            value v (positive: a cost such as power bought, negative: a revenue); the
            price profile pi_v,k over the horizon defaults to 1 and is given per step
            (tariffs). "fast" only.
        output_limits: soft limits per output name, see OutputLimit. "fast" only.
        qp_solver: the "fast" backend's QP solver: "qrqp" (CasADi's active-set solver,
            code generation possible), "osqp" or "qpoases".
        real_time_iteration: "fast" only: one SQP iteration per step from the shifted
            previous solution (real-time iteration) instead of iterating to convergence;
            a step without a previous solution still iterates to convergence.
        max_iterations: "fast" only: SQP iterations per step when not in real-time
            iteration mode.
        tolerance: "fast" only: SQP stops when no variable moves more than this, in
            spans of its signal.
        hessian: "fast" only: "gauss-newton" (cheap, for tracking) or "exact" (the
            Lagrangian's, for strongly economic costs on strongly nonlinear models).
        codegen: "fast" only: generate C for the SQP step, compile it with the system C
            compiler into the cache directory and call the compiled code; falls back to
            CasADi's virtual machine, with a warning, if compiling fails.
    """

    backend: str = "do-mpc"
    horizon: int = 20
    tracking: dict[str, float] = {}
    move_suppression: dict[str, float] = {}
    input_tracking: dict[str, float] = {}
    economic: dict[str, float] = {}
    output_limits: dict[str, OutputLimit] = {}
    qp_solver: str = "qrqp"
    real_time_iteration: bool = False
    max_iterations: int = 20
    tolerance: float = 1e-6
    hessian: str = "gauss-newton"
    codegen: bool = False


class EstimatorSettings(_Strict, frozen=True):
    """Kalman filter tuning; standard deviations default to the signals' ``std``.

    Attributes:
        kind: "kf" (linear, on the model linearised at its nominal point), "ekf" or "ukf".
        process_std: per state, std of the process noise per sqrt(second) (Q = std^2 dt).
        measurement_std: per output, std of the measurement noise (R = std^2).
        unfiltered_outputs: outputs the filter does not correct with: KPIs computed from
            other measured outputs (a smelter cell's specific energy and pseudo-resistance
            are its voltage rescaled, a rod pump's Goodman loading its loads), whose
            errors are those outputs' errors again. Filtering them counts one error twice
            and lets a parameter the KPI alone depends on (current efficiency) fail the
            NIS test on every correction. They are still measured and reported.
        initial_std: per state or estimated parameter, std of the initial estimate
            (P0 = std^2); default 1 % of a state's nominal value (10 % of a parameter's),
            at least the process std over one hour.
        estimate_parameters: parameters estimated as augmented random-walk states, each
            with its random-walk std in parameter units per sqrt(second).
        significance: probability that the NIS chi-square test flags a correction of a
            consistent filter as an anomaly (its false-alarm rate).
        persistence_window: the anomaly is persistent (the asset is not healthy) while
            more than ``persistence_fraction`` of the last ``persistence_window``
            corrections were flagged; with significance 0.001 a consistent filter
            flags 6 of 10 with probability about 2e-16.
        persistence_fraction: in [0, 1); 0.5: most of the window.
        compiled: EKF only: run the model's prediction as native code compiled with the
            system C compiler (cached in ``$TWINLOOP_CACHE_DIR``, see
            controllers.casadi_compile; the first build of a model takes seconds).
    """

    kind: str = "ekf"
    process_std: dict[str, float] = {}
    measurement_std: dict[str, float] = {}
    unfiltered_outputs: list[str] = []
    initial_std: dict[str, float] = {}
    estimate_parameters: dict[str, float] = {}
    significance: float = 0.001
    persistence_window: int = 10
    persistence_fraction: float = 0.5
    compiled: bool = False


class SimulationSettings(_Strict, frozen=True):
    """How the simulated plant differs from the twin's model.

    Attributes:
        seed: random seed of the measurement noise.
        noise: multiplier on each output's ``std`` (0 = noiseless).
        mismatch: per parameter, ratio of the true value to the model's value.
        disturbances: true disturbance values where they differ from the model's.
        initial: true initial states where they differ from the twin's initial estimate
            (a worn pump's head factor, a fouled line's friction multiplier).
        drift: per state, a constant rate (state unit per second) added to the true
            state's dynamics: injected degradation, e.g. a head factor that wears.
    """

    seed: int = 0
    noise: float = 1.0
    mismatch: dict[str, float] = {}
    disturbances: dict[str, float] = {}
    initial: dict[str, float] = {}
    drift: dict[str, float] = {}


class AssetModbusSettings(_Strict, frozen=True):
    """Per-asset overrides of the site's Modbus settings (PLCs of different makes).

    Attributes:
        word_order: float word order of this asset's PLC ("ABCD", "CDAB", "BADC", "DCBA").
        unit_id: Modbus unit id this asset's PLC answers for (1-247).
    """

    word_order: WordOrder | None = None
    unit_id: int | None = None


class AlarmSettings(_Strict, frozen=True):
    """One alarm source of an asset (engine.alarms evaluates it; its docstring has the rules).

    Attributes:
        signal: the named value watched: an output (``"T_bulk"``, as measured), a state
            or estimated parameter's estimate (``"estimate.T_bulk"``), or a condition flag
            of engine.alarms.CONDITIONS (``"measurement_stale"``).
        kind: ``"HI"``/``"HIHI"`` (active at or above ``limit``), ``"LO"``/``"LOLO"`` (at
            or below it), or ``"condition"`` (active while the flag is set).
        limit: the alarm limit, the signal's SI unit (limit kinds only).
        deadband: hysteresis, the signal's unit: a HI clears below limit - deadband.
        on_delay_s: twin seconds a condition must hold before the alarm activates.
        off_delay_s: twin seconds it must be gone before the alarm clears.
        priority: ``"LOW"``, ``"MEDIUM"``, ``"HIGH"`` or ``"CRITICAL"``.
        name: unique per asset; default ``"<signal>.<kind>"`` (``"T_bulk.HI"``).
        suppressed_by: condition flags or names of this asset's alarms whose activity
            suppresses this one by design (``"asset_off"``, ``"T_bulk.HIHI"``).
        max_shelve_s: longest an operator may shelve it, twin seconds.
        message: what the operator should know or do.
        enabled: false drops a kind's default of the same name.
    """

    signal: str
    kind: Literal["HI", "HIHI", "LO", "LOLO", "condition"]
    limit: float | None = None
    deadband: float = 0.0
    on_delay_s: float = 0.0
    off_delay_s: float = 0.0
    priority: Literal["LOW", "MEDIUM", "HIGH", "CRITICAL"] = "MEDIUM"
    name: str = ""
    suppressed_by: list[str] = []
    max_shelve_s: float = 8 * 3600.0
    message: str = ""
    enabled: bool = True

    @property
    def tag(self) -> str:
        """The alarm's name within its asset."""
        return self.name or f"{self.signal}.{self.kind}"


HOURS_PER_WEEK = 168


class TariffSettings(_Strict, frozen=True):
    """Electricity price over time: a time-of-use schedule by hour of the week, or an
    hourly series. Prices are in ``currency`` per kWh, never negative.

    Attributes:
        currency: the site's currency, which every cost computed from this tariff is in.
        rates: price per kWh of each named band (``{off_peak = 0.074, on_peak = 0.151}``).
        weekday: 24 band names, Monday to Friday, hour 0 = 00:00-01:00.
        weekend: 24 band names, Saturday and Sunday.
        hourly: price per kWh hour by hour from the plan's start; when given it replaces
            the schedule (``rates``, ``weekday``, ``weekend`` must then be empty).
    """

    currency: str = "USD"
    rates: dict[str, float] = {}
    weekday: list[str] = []
    weekend: list[str] = []
    hourly: list[float] = []

    def __post_init__(self) -> None:
        for name, price in [*self.rates.items(), *enumerate(self.hourly)]:
            field = f"hourly[{name}]" if isinstance(name, int) else f"rates.{name}"
            if not price >= 0:
                raise ValueError(f"{field}: price {price} per kWh is below 0")
        if self.hourly:
            if self.rates or self.weekday or self.weekend:
                raise ValueError("hourly: given with a schedule (rates, weekday, weekend); "
                                 "give one or the other")
            return
        for field, bands in (("weekday", self.weekday), ("weekend", self.weekend)):
            if len(bands) != 24:
                raise ValueError(f"{field}: {len(bands)} hours given, 24 needed")
            unknown = sorted(set(bands) - set(self.rates))
            if unknown:
                raise ValueError(f"{field}: bands {unknown} have no price in rates")

    def prices(self, hours: int, start_hour_of_week: int = 0) -> list[float]:
        """Price per kWh for each of ``hours`` hours from ``start_hour_of_week``
        (0 = Monday 00:00); the weekly schedule repeats, an hourly series must be long
        enough."""
        if self.hourly:
            if len(self.hourly) < hours:
                raise ValueError(f"hourly: {len(self.hourly)} prices for a {hours}-hour plan")
            return list(self.hourly[:hours])
        if not 0 <= start_hour_of_week < HOURS_PER_WEEK:
            raise ValueError(f"start_hour_of_week: {start_hour_of_week} is outside 0..167")
        week = [self.rates[band] for day in range(7)
                for band in (self.weekday if day < 5 else self.weekend)]
        return [week[(start_hour_of_week + k) % HOURS_PER_WEEK] for k in range(hours)]


class NominationSettings(_Strict, frozen=True):
    """What the shippers nominated: a volume per day (the hourly flow is then free within
    the day) or an hourly flow profile. Exactly one is given.

    Attributes:
        daily_volume: m^3 delivered on each day from the plan's start; one entry means
            every day; otherwise one per day of the plan.
        hourly_flow: m^3/s hour by hour from the plan's start.
    """

    daily_volume: list[float] = []
    hourly_flow: list[float] = []

    def __post_init__(self) -> None:
        if bool(self.daily_volume) == bool(self.hourly_flow):
            raise ValueError("daily_volume, hourly_flow: give exactly one")
        for field, values in (("daily_volume", self.daily_volume),
                              ("hourly_flow", self.hourly_flow)):
            for k, value in enumerate(values):
                if not value > 0:
                    raise ValueError(f"{field}[{k}]: {value} is not above 0")


class ForecastSettings(_Strict, frozen=True):
    """Series the asset's controller sees over its horizon (engine.forecast), beyond the
    tariff and nomination, which forecast themselves. Each series is piecewise constant:
    value k holds over [start + k step_s, start + (k + 1) step_s), the first value before
    ``start``, the last one after the series ends. Values are inline lists or the path
    of a CSV file (a column named after the signal, header row) or a JSON file
    (``{signal: [...]}`` or a bare list), relative to the working directory.

    Attributes:
        step_s: seconds per value, > 0 (3600: hourly).
        start: twin time (UNIX s) of the first value; None: the start of the step in
            which the asset's loop starts.
        disturbances: per disturbance, its values in the disturbance's unit (an ambient
            temperature forecast in K).
        reference: per output, its target over time in the output's unit; per input,
            its target in the input's unit, tracked with ``input_tracking`` ("fast" only).
        prices: per economic signal (ControllerSettings.economic), the price profile
            that multiplies its economic weight (dimensionless, >= 0).
        tariff_prices: economic signals priced at the asset's tariff (currency/kWh):
            their price profile is the tariff's price each hour.
    """

    step_s: float = 3600.0
    start: float | None = None
    disturbances: dict[str, list[float] | str] = {}
    reference: dict[str, list[float] | str] = {}
    prices: dict[str, list[float] | str] = {}
    tariff_prices: list[str] = []

    def __post_init__(self) -> None:
        if not (math.isfinite(self.step_s) and self.step_s > 0):
            raise ValueError(f"forecast.step_s: {self.step_s} s must be finite and above 0")
        if self.start is not None and not math.isfinite(self.start):
            raise ValueError(f"forecast.start: {self.start} s must be finite")
        for group in ("disturbances", "reference", "prices"):
            for name, values in getattr(self, group).items():
                if isinstance(values, str):
                    continue
                if not values:
                    raise ValueError(f"forecast.{group}.{name}: no values")
                bad = [k for k, value in enumerate(values) if not math.isfinite(value)]
                if bad:
                    raise ValueError(f"forecast.{group}.{name}[{bad[0]}]: "
                                     f"{values[bad[0]]} is not a finite number")


def read_hourly_series(path: str | Path, column: str) -> list[float]:
    """One column of numbers from a CSV file with a header row (``hour,price``) or from a
    JSON file holding ``{column: [...]}`` or a bare list. For ``TariffSettings(hourly=...)``
    and ``NominationSettings(hourly_flow=...)``. Raises ValueError naming file and row."""
    path = Path(path)
    text = path.read_text()
    if path.suffix.lower() == ".json":
        data = msgspec.json.decode(text)
        values = data if isinstance(data, list) else data.get(column) if isinstance(
            data, dict) else None
        if not isinstance(values, list):
            raise ValueError(f"{path}: no list under {column!r}")
        rows = [(f"{column}[{k}]", v) for k, v in enumerate(values)]
    else:
        lines = [line.split(",") for line in text.splitlines() if line.strip()]
        header = [name.strip() for name in lines[0]] if lines else []
        if column not in header:
            raise ValueError(f"{path}: no column {column!r} in header {header}")
        index = header.index(column)
        rows = [(f"row {k + 2}", cells[index].strip() if index < len(cells) else "")
                for k, cells in enumerate(lines[1:])]
    values = []
    for where, value in rows:
        try:
            values.append(float(value))
        except (TypeError, ValueError):
            raise ValueError(f"{path}: {where}: {value!r} is not a number") from None
    return values


STALE_AFTER_PERIODS = 10
"""Default watchdog threshold in control periods: a controller write made on a measurement
older than this is refused (long enough for a PLC scanned in wall time at a demo's 600x)."""


class AssetConfig(_Strict, frozen=True):
    """One asset of a site. Values are SI, keyed by signal name.

    ``period_s``, ``controller`` and ``estimator`` left out take the plant kind's
    defaults; ``reference`` and ``limits`` are merged over the kind's defaults, ``alarms``
    too, by name (engine.alarm_sources.merge_alarm_settings).
    ``max_measurement_age_s``, the safety watchdog's threshold (twin seconds), defaults
    to STALE_AFTER_PERIODS control periods; ``inf`` switches the watchdog off.
    ``tariff`` and ``nomination`` are what a forward plan (controllers.planner) prices
    and delivers; an asset without them has no plan. They, and ``forecast``'s series,
    reach the controller over its horizon too (engine.forecast).
    """

    id: str
    kind: str
    period_s: float | None = None
    mode: Mode = Mode.AUTONOMOUS
    max_measurement_age_s: float | None = None
    structure: dict[str, Any] = {}
    parameters: dict[str, float] = {}
    initial: dict[str, float] = {}
    inputs: dict[str, float] = {}
    disturbances: dict[str, float] = {}
    reference: dict[str, float] = {}
    limits: dict[str, SetpointLimit] = {}
    controller: ControllerSettings | None = None
    estimator: EstimatorSettings | None = None
    simulation: SimulationSettings = SimulationSettings()
    modbus: AssetModbusSettings = AssetModbusSettings()
    measurement_source: Literal["plant", "mqtt"] = "plant"
    alarms: list[AlarmSettings] = []
    tariff: TariffSettings | None = None
    nomination: NominationSettings | None = None
    forecast: ForecastSettings | None = None

    # The settings plants.resolve_site fills in from the kind's defaults; a host that runs
    # the asset reads them through these, which fail on an unresolved config.

    def resolved_period_s(self) -> float:
        """Control period, s."""
        return float(self._resolved("period_s", self.period_s))

    def resolved_controller(self) -> ControllerSettings:
        return self._resolved("controller", self.controller)

    def resolved_estimator(self) -> EstimatorSettings:
        return self._resolved("estimator", self.estimator)

    def _resolved(self, field: str, value: _T | None) -> _T:
        if value is None:
            raise ValueError(f"asset {self.id!r} is not resolved: {field} is unset "
                             "(plants.resolve_site fills it in)")
        return value


class SiteSettings(_Strict, frozen=True):
    """Attributes:
    name: site name, used in actor names (``safety:<name>``) and topics.
    speed: twin seconds per wall second for the real-time clock.
    audit_db: path of the SQLite audit database (relative to the working directory).
    """

    name: str
    speed: float = 1.0
    audit_db: str = "var/audit.db"


class HttpSettings(_Strict, frozen=True):
    """Attributes:
    host: bind address of the HTTP API (loopback unless configured otherwise).
    port: TCP port.
    tokens: path of the bearer-token file (see serve.auth), relative to the working
        directory; a missing file means no tokens beyond the demo's admin token.
    """

    host: str = "127.0.0.1"
    port: int = 8000
    tokens: str = "var/tokens.toml"


class TripInterlock(_Strict, frozen=True, tag_field="kind", tag="trip"):
    """A high trip on measured outputs of any asset of the site.

    While any signal of ``when`` was last measured at or above ``above`` (or has not
    been measured yet, or measured NaN: fail safe), each input of ``hold`` may not be
    written above its last applied value, and each input of ``close`` only at or below
    its safe value (SetpointLimit.safe). The trip acts on the measurement that trips it:
    an input of ``close`` above its safe value is written to it at once, in every mode,
    without waiting for its rate limit (engine.safety.trip_writes).
    Signals are named ``"<asset id>.<signal>"``.

    Attributes:
        name: shown in every decision it changes.
        when: measured outputs, e.g. ``["dra-line.discharge_pressure_1", ...]``.
        above: trip value, in the outputs' unit (Pa for a pipeline MAOP).
        hold: inputs that may not rise while tripped.
        close: inputs driven to their safe value while tripped.
    """

    name: str
    when: list[str]
    above: float
    hold: list[str] = []
    close: list[str] = []


class CountInterlock(_Strict, frozen=True, tag_field="kind", tag="max_active"):
    """At most ``max_active`` of ``signals`` above ``active_above`` at once.

    A write that would make one more signal active than allowed is rejected; the
    signal keeps its last applied value. Signals are ``"<asset id>.<input>"``.

    Attributes:
        name: shown in every decision it refuses.
        signals: writable signals counted, e.g. the loading pumps' draws.
        max_active: largest number active at once.
        active_above: a signal counts as active above this value, its unit.
    """

    name: str
    signals: list[str]
    max_active: int
    active_above: float = 0.0


Interlock = TripInterlock | CountInterlock


OPCUA_SECURITY = ("none", "Basic256Sha256_SignAndEncrypt")
OPCUA_ROLES = ("viewer", "operator")
"""Roles of OPC UA users: a viewer reads and subscribes; an operator also writes
setpoints and acknowledges alarms."""
"""Security modes of the OPC UA server: ``none`` (anonymous, unencrypted: loopback
demos) or ``Basic256Sha256_SignAndEncrypt`` (signed and encrypted channel, username and
password required; the None endpoint is not offered)."""


class OpcUaSettings(_Strict, frozen=True):
    """The OPC UA server, served at ``opc.tcp://<host>:<port>/<path>``.

    Attributes:
        enabled: serve OPC UA from ``twinloop demo``.
        host: bind address.
        port: TCP port (0 is not allowed: clients need a known address).
        path: endpoint path.
        security: one of :data:`OPCUA_SECURITY`.
        users: username -> password hash (``engine.passwords.hash_password``), required
            when ``security`` is not ``none``.
        roles: username -> one of :data:`OPCUA_ROLES`; a user not named is an operator,
            as are anonymous sessions (security ``none``).
        certificate_dir: where the server's key and self-signed certificate are
            generated at start (relative to the working directory).
        refresh_s: wall seconds between polls of every asset's status; between polls
            the assets push their status after each tick and each operator action.
    """

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 4840
    path: str = "twinloop"
    security: str = "none"
    users: dict[str, str] = {}
    roles: dict[str, str] = {}
    certificate_dir: str = "var/opcua"
    refresh_s: float = 1.0

    @property
    def url(self) -> str:
        return f"opc.tcp://{self.host}:{self.port}/{self.path}"


class ModbusSettings(_Strict, frozen=True):
    """The simulated plants' PLCs (Modbus TCP servers) and the twin's Modbus clients.

    Attributes:
        host: address every PLC simulator binds to and the twin connects to.
        base_port: TCP port of the first asset's PLC; asset i (0-based, in site-file
            order) listens on ``base_port + i``.
        unit_id: unit id each PLC answers for (1-247), unless the asset overrides it.
        word_order: float word order, unless the asset overrides it (see engine.registers).
        scan_period_s: wall seconds between PLC scans (sample the plant into the input
            registers) in real time, at most; a PLC scans at least four times per control
            period of its asset however fast the clock runs. In lock-step the PLC scans
            when the plant advances.
        timeout_s: wall seconds the twin waits for a connection or a reply.
        retry_initial_s: first delay before reconnecting after a lost connection, wall s;
            doubled after each failed attempt, up to ``retry_max_s``.
        retry_max_s: cap of the reconnection delay, wall s.
    """

    host: str = "127.0.0.1"
    base_port: int = 5020
    unit_id: int = 1
    word_order: WordOrder = "ABCD"
    scan_period_s: float = 0.25
    timeout_s: float = 1.0
    retry_initial_s: float = 0.5
    retry_max_s: float = 30.0


class HistorianSettings(_Strict, frozen=True):
    """The historian (engine.historian): where history is stored and what is kept.

    Attributes:
        backend: "duckdb" (embedded, one file at ``path``) or "postgres" (at ``dsn``).
        path: the DuckDB file, relative to the working directory.
        dsn: libpq connection string of the PostgreSQL database, e.g.
            ``"host=127.0.0.1 port=5432 dbname=twinloop user=twinloop"``.
        queue_batches: tick batches the writer queues before it drops (and counts).
        default: storage policy of signals not in ``signals`` (default: keep all).
        signals: storage policy per history signal name or glob (``"estimate.*"``).
        raw_retention_s: raw points kept this long (never before they are rolled up).
        rollups: rollup intervals and their retention.
    """

    backend: Literal["duckdb", "postgres"] = "duckdb"
    path: str = "var/history.duckdb"
    dsn: str = ""
    queue_batches: int = 1000
    default: StoragePolicy = StoragePolicy()
    signals: dict[str, StoragePolicy] = {}
    raw_retention_s: float = math.inf
    rollups: list[RollupPolicy] = msgspec.field(default_factory=lambda: [
        RollupPolicy(interval_s=60.0), RollupPolicy(interval_s=3600.0)])


class FleetSettings(_Strict, frozen=True):
    """How a site's assets are packed into processes (actors.fleet).

    Attributes:
        assets_per_shard: assets hosted by one asset shard (one Ray actor, one process;
            their simulated plants share one plant shard beside it). None: the fleet
            size spread over the cluster's CPUs, ceil(assets / CPUs).
    """

    assets_per_shard: int | None = None


class SiteConfig(_Strict, frozen=True):
    site: SiteSettings
    fleet: FleetSettings = FleetSettings()
    http: HttpSettings = HttpSettings()
    opcua: OpcUaSettings = OpcUaSettings()
    modbus: ModbusSettings = ModbusSettings()
    assets: list[AssetConfig] = []
    interlocks: list[Interlock] = []
    historian: HistorianSettings = HistorianSettings()


class PlantDefaults(_Strict, frozen=True):
    """What a plant module recommends for an asset of its kind, before site overrides.
    ``alarms`` are the kind's own; every asset also gets engine.alarm_sources.standard_alarms."""

    period_s: float
    reference: dict[str, float] = {}
    limits: dict[str, SetpointLimit] = {}
    controller: ControllerSettings = ControllerSettings()
    estimator: EstimatorSettings = EstimatorSettings()
    alarms: list[AlarmSettings] = []


def load_site(path: str | Path) -> SiteConfig:
    """Read and type-check a site file. Raises ConfigError naming file, key and problem."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise ConfigError(path, "", f"cannot read: {error.strerror}") from None
    return parse_site(raw, path)


def parse_site(raw: bytes | str, path: str | Path = "<site>") -> SiteConfig:
    try:
        site = msgspec.toml.decode(raw, type=SiteConfig)
    except msgspec.ValidationError as error:
        raise ConfigError(path, *_split_validation(str(error))) from None
    except msgspec.DecodeError as error:
        raise ConfigError(path, "", f"not valid TOML: {error}") from None
    _check_site(site, path)
    return site


def _check_estimator(settings: EstimatorSettings, path: str | Path, key: str) -> None:
    """The estimator settings that need no model to check."""
    if not 0 < settings.significance < 1:
        raise ConfigError(path, f"{key}.significance",
                          f"must be in (0, 1), got {settings.significance}")
    if settings.persistence_window < 1:
        raise ConfigError(path, f"{key}.persistence_window",
                          f"must be at least 1, got {settings.persistence_window}")
    if not 0 <= settings.persistence_fraction < 1:
        raise ConfigError(path, f"{key}.persistence_fraction",
                          f"must be in [0, 1), got {settings.persistence_fraction}")


def _split_validation(message: str) -> tuple[str, str]:
    """msgspec says 'Expected `float`, got `str` - at `$.assets[0].period_s`'."""
    match = re.match(r"(?s)(.*) - at `\$\.?(.*)`$", message)
    if not match:
        return "", message
    problem, key = match.groups()
    return key, problem


def _check_site(site: SiteConfig, path: str | Path) -> None:
    if not site.site.speed > 0:
        raise ConfigError(path, "site.speed", f"must be positive, got {site.site.speed}")
    _check_opcua(site.opcua, path)
    if site.historian.backend == "postgres" and not site.historian.dsn:
        raise ConfigError(path, "historian.dsn", "the postgres backend needs a connection string")
    per_shard = site.fleet.assets_per_shard
    if per_shard is not None and not per_shard >= 1:
        raise ConfigError(path, "fleet.assets_per_shard", f"must be at least 1, got {per_shard}")
    modbus = site.modbus
    for key, value in (("scan_period_s", modbus.scan_period_s), ("timeout_s", modbus.timeout_s),
                       ("retry_initial_s", modbus.retry_initial_s)):
        if not value > 0:
            raise ConfigError(path, f"modbus.{key}", f"must be positive, got {value}")
    if not modbus.retry_max_s >= modbus.retry_initial_s:
        raise ConfigError(path, "modbus.retry_max_s",
                          f"{modbus.retry_max_s} is below retry_initial_s {modbus.retry_initial_s}")
    if not 1 <= modbus.base_port <= 65536 - max(1, len(site.assets)):
        raise ConfigError(path, "modbus.base_port",
                          f"{modbus.base_port} leaves no port for each of "
                          f"{len(site.assets)} assets")
    seen: set[str] = set()
    for i, asset in enumerate(site.assets):
        key = f"assets[{i}]"
        if asset.id in seen:
            raise ConfigError(path, f"{key}.id", f"asset id {asset.id!r} is used twice")
        seen.add(asset.id)
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", asset.id):
            raise ConfigError(path, f"{key}.id",
                              f"{asset.id!r} must be letters, digits, '-', '_', '.'")
        if asset.period_s is not None and not asset.period_s > 0:
            raise ConfigError(path, f"{key}.period_s", f"must be positive, got {asset.period_s}")
        if asset.max_measurement_age_s is not None and not asset.max_measurement_age_s > 0:
            raise ConfigError(path, f"{key}.max_measurement_age_s",
                              f"must be positive (inf: no watchdog), got "
                              f"{asset.max_measurement_age_s}")
        if asset.estimator is not None:
            _check_estimator(asset.estimator, path, f"{key}.estimator")
        unit_id = asset.modbus.unit_id or modbus.unit_id
        if not 1 <= unit_id <= 247:
            raise ConfigError(path, f"{key}.modbus.unit_id" if asset.modbus.unit_id else
                              "modbus.unit_id", f"must be in 1..247, got {unit_id}")
        for name, limit in asset.limits.items():
            if not limit.lower <= limit.upper:
                raise ConfigError(path, f"{key}.limits.{name}",
                                  f"lower {limit.lower} is above upper {limit.upper}")
            if not limit.max_rate > 0:
                raise ConfigError(path, f"{key}.limits.{name}.max_rate",
                                  f"must be positive, got {limit.max_rate}")
            if limit.safe is not None and not limit.lower <= limit.safe <= limit.upper:
                raise ConfigError(path, f"{key}.limits.{name}.safe",
                                  safe_value_problem(name, limit))
    for i, interlock in enumerate(site.interlocks):
        key = f"interlocks[{i}]"
        names = interlock.when + interlock.hold + interlock.close \
            if isinstance(interlock, TripInterlock) else interlock.signals
        for name in names:
            if name.partition(".")[0] not in seen or not name.partition(".")[2]:
                raise ConfigError(path, f"{key}.{name}", "not '<asset id>.<signal>' of an asset "
                                  f"of this site; assets: {', '.join(sorted(seen))}")
        if isinstance(interlock, CountInterlock) and interlock.max_active < 0:
            raise ConfigError(path, f"{key}.max_active",
                              f"must be at least 0, got {interlock.max_active}")


def _check_opcua(opcua: OpcUaSettings, path: str | Path) -> None:
    if opcua.security not in OPCUA_SECURITY:
        raise ConfigError(path, "opcua.security",
                          f"{opcua.security!r} is not one of {', '.join(OPCUA_SECURITY)}")
    if not 0 < opcua.port < 65536:
        raise ConfigError(path, "opcua.port", f"must be in 1..65535, got {opcua.port}")
    if not opcua.refresh_s > 0:
        raise ConfigError(path, "opcua.refresh_s", f"must be positive, got {opcua.refresh_s}")
    if opcua.security != "none" and not opcua.users:
        raise ConfigError(path, "opcua.users",
                          f"security {opcua.security} needs at least one user (username = hash)")
    for user, hashed in opcua.users.items():
        try:
            parse_hash(hashed)
        except ValueError as error:
            raise ConfigError(path, f"opcua.users.{user}", str(error)) from None
    for user, role in opcua.roles.items():
        if user not in opcua.users:
            raise ConfigError(path, f"opcua.roles.{user}", f"{user!r} is not in opcua.users")
        if role not in OPCUA_ROLES:
            raise ConfigError(path, f"opcua.roles.{user}",
                              f"{role!r} is not one of {', '.join(OPCUA_ROLES)}")
