"""Messages that cross actor and network boundaries, as msgspec Structs.

Times are UNIX seconds of the twin's clock (float); values are SI, keyed by signal name.
"""

from __future__ import annotations

import enum

import msgspec

from engine.cards import SurfaceCard


class Mode(enum.StrEnum):
    """Operating mode of one asset, enforced by the safety policy.

    OFF: nothing is written. MANUAL: only operator setpoints, still gated.
    ADVISORY: the controller proposes, an operator approves (shadow mode).
    AUTONOMOUS: the controller writes, gated.
    """

    OFF = "OFF"
    MANUAL = "MANUAL"
    ADVISORY = "ADVISORY"
    AUTONOMOUS = "AUTONOMOUS"


class Outcome(enum.StrEnum):
    """What the safety policy did with one requested setpoint; INTERLOCK is a write the
    safety authority forced itself (a tripped interlock driving a signal to its safe value).
    EXTERNAL is a value found in a PLC's output registers that the gate did not write (a
    write around it, source ``plc``); REFUSED a write an edge (HTTP, OPC UA) refused
    before it reached the gate (malformed, unknown signal, outside the signal's bounds)."""

    ACCEPTED = "accepted"
    CLAMPED = "clamped"
    REJECTED = "rejected"
    QUEUED = "queued"
    INTERLOCK = "interlock"
    EXTERNAL = "external"
    REFUSED = "refused"


class Measurement(msgspec.Struct, frozen=True):
    """Plant outputs sampled at ``time``; a rod pump's plant may add the stroke's surface
    ``card`` (engine.cards), which the asset diagnoses and records."""

    asset: str
    time: float
    values: dict[str, float]
    card: SurfaceCard | None = None


class Estimate(msgspec.Struct, frozen=True):
    """State estimate with one-sigma uncertainty, the estimated parameters (if any) with
    theirs, the last innovation's NIS, whether it failed the chi-square test and whether
    most of the last corrections did (``persistent_anomaly``, see engine.loop.AnomalyWindow)."""

    asset: str
    time: float
    values: dict[str, float]
    std: dict[str, float]
    nis: float = 0.0
    parameters: dict[str, float] = {}
    parameter_std: dict[str, float] = {}
    anomaly: bool = False
    persistent_anomaly: bool = False


class Proposal(msgspec.Struct, frozen=True):
    """Setpoints a controller (or an operator) asks to write, with the reason why.

    ``predicted`` maps output names to the predicted trajectory over the horizon.
    ``source`` is ``"controller"``, ``"operator"``, ``"approval"`` (an approved ADVISORY
    proposal) or ``"safe-state"`` (an operator's command driving signals to their safe
    values, in any mode); ``user`` names who asked.
    """

    asset: str
    time: float
    setpoints: dict[str, float]
    reason: str
    source: str = "controller"
    user: str = "controller"
    status: str = "ok"
    solve_time_s: float = 0.0
    predicted: dict[str, list[float]] = {}


class AuditRecord(msgspec.Struct, frozen=True):
    """One decision on one signal: the unit of the audit log."""

    time: float
    asset: str
    user: str
    source: str
    signal: str
    requested: float | None
    applied: float | None
    outcome: Outcome
    reason: str


class Decision(msgspec.Struct, frozen=True):
    """The safety policy's verdict on a whole proposal.

    ``applied`` holds only the setpoints that may be written now (accepted or clamped, and
    the writes of tripped interlocks, which come in every mode); the caller writes them.
    ``interlock_tripped``: a trip interlock holding or closing a signal of the asset is
    tripped at ``time`` (the interlock_tripped alarm of engine.alarm_sources).
    """

    asset: str
    time: float
    mode: Mode
    applied: dict[str, float]
    records: list[AuditRecord]
    interlock_tripped: bool = False

    @property
    def outcome(self) -> Outcome:
        """The most severe outcome among the records."""
        order = [Outcome.ACCEPTED, Outcome.CLAMPED, Outcome.QUEUED, Outcome.REFUSED,
                 Outcome.REJECTED, Outcome.EXTERNAL, Outcome.INTERLOCK]
        return max((r.outcome for r in self.records), key=order.index, default=Outcome.ACCEPTED)


class ExternalWrite(msgspec.Struct, frozen=True):
    """A value read back from a PLC's output register that differs from the last value
    the gate wrote there (by at least the register's resolution, one float32 step): a
    write around the gate.

    ``value`` is what the register holds (SI), ``gated`` the last gated write, ``since``
    the twin time of the last read-back that still held the gated value (the external
    write happened after it).
    """

    signal: str
    value: float
    gated: float
    since: float


class GateRequest(msgspec.Struct, frozen=True):
    """One asset's turn at the safety gate at one tick instant (sent in every mode).

    ``time`` is the tick instant, twin seconds; ``measurement`` the one taken this tick
    (None if nothing new), noted for the interlocks before anything is decided;
    ``measurement_age`` twin seconds since the newest measurement (inf: never measured);
    ``proposal`` what is asked to be written (None: nothing, e.g. OFF or no solve);
    ``external`` the writes around the gate read back from the PLC this tick.
    """

    asset: str
    time: float
    measurement: Measurement | None
    measurement_age: float
    proposal: Proposal | None
    external: list[ExternalWrite] = []


class RefusedWrite(msgspec.Struct, frozen=True):
    """A write an edge refused before it reached the gate (actors.refusals): ``source``
    the edge ("http", "opcua"), ``user`` who asked, ``signal`` what (or the request's
    subject: "mode", "controller"), ``requested`` the value if it was a number, ``reason``
    why. The safety actor stamps it with the asset's twin time and records it with
    outcome ``refused``."""

    asset: str
    user: str
    source: str
    signal: str
    requested: float | None
    reason: str


class Setpoint(msgspec.Struct, frozen=True):
    """Gated setpoints on their way to an output (plant, OPC UA, Modbus, MQTT)."""

    asset: str
    time: float
    values: dict[str, float]


class MeasurementPayload(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One sample as it arrives over MQTT: ``{"ts": 1.7e9, "values": {"T_bulk": 433.1}}``.

    ``ts`` is the sample time (UNIX seconds of the twin's clock), ``values`` maps output
    tags (signal names) to SI values.
    """

    ts: float
    values: dict[str, float]


class EstimatePayload(msgspec.Struct, frozen=True):
    """Published on ``.../estimates``: state values and their one-sigma uncertainty."""

    ts: float
    values: dict[str, float]
    std: dict[str, float]
    nis: float


class SetpointPayload(msgspec.Struct, frozen=True):
    """Published on ``.../setpoints``: setpoints the safety gate let through."""

    ts: float
    values: dict[str, float]
