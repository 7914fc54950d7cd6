"""The state of one alarm, ISA-18.2 / IEC 62682 / OPC UA Part 9, as plain data.

An alarm's memory is OPC UA Part 9's state variables of a condition (AlarmCondition):
ActiveState (``active``), AckedState (``acked``), ShelvingState (``shelved_until``: timed
shelve), SuppressedState (``suppressed``, by design) and OutOfServiceState
(``out_of_service``). The ISA-18.2 state an operator sees (AlarmState) follows from them
by precedence: out of service over suppressed over shelved over the process states

    active  acked   ->  state
    no      yes         NORMAL          (A)
    yes     no          UNACKNOWLEDGED  (B, annunciated)
    yes     yes         ACKNOWLEDGED    (C)
    no      no          RTNUN           (D, returned to normal unacknowledged)

The transitions (engine.alarms.AlarmSet applies them and emits an AlarmEvent each):

    process activates       A -> B, D -> B          acknowledge     B -> C, D -> A
    process clears          B -> D, C -> A          shelve          A, B, C, D -> E (SHELVED)
    unshelve / expiry       E -> what the process warrants: B if active, else A
    suppression starts      A..E -> F (SUPPRESSED)  suppression ends  F -> B if active, else A
    removed from service    A..F -> G               returned to service  G -> F, or B/A

A hidden alarm (E, F, G) is not annunciated: the process may come and go meanwhile
without an event, and on its return the alarm is unacknowledged exactly when its
condition is active, so nothing that happened while hidden passes unseen. Suppression and
removal from service end a shelve (the operator's shelve does not outlive the design's or
maintenance's decision).
"""

from __future__ import annotations

import enum

import msgspec


class AlarmState(enum.StrEnum):
    """ISA-18.2's alarm states (ANSI/ISA-18.2-2016 figure 5, IEC 62682)."""

    NORMAL = "NORMAL"
    UNACKNOWLEDGED = "UNACKNOWLEDGED"
    ACKNOWLEDGED = "ACKNOWLEDGED"
    RTNUN = "RTNUN"
    SHELVED = "SHELVED"
    SUPPRESSED = "SUPPRESSED"
    OUT_OF_SERVICE = "OUT_OF_SERVICE"


VISIBLE = frozenset({AlarmState.NORMAL, AlarmState.UNACKNOWLEDGED, AlarmState.ACKNOWLEDGED,
                     AlarmState.RTNUN})
"""States in which the alarm is annunciated to the operator (not shelved, suppressed or
out of service)."""


class Priority(enum.StrEnum):
    """Alarm priority, named as ISA-18.2 and EEMUA 191 practice names the levels: most
    alarms LOW, fewer MEDIUM and HIGH, CRITICAL kept for the few that guard against
    serious harm. ``severity`` is the OPC UA Part 9 Severity (1-1000) sent with it."""

    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"
    CRITICAL = "CRITICAL"

    @property
    def severity(self) -> int:
        return {"LOW": 200, "MEDIUM": 500, "HIGH": 700, "CRITICAL": 900}[self.value]


class AlarmEvent(msgspec.Struct, frozen=True):
    """One transition of one alarm, for the audit and every publication.

    ``alarm`` is the alarm's id ``"<asset>:<name>"``; ``time`` twin seconds (UNIX); ``user``
    the operator who acted, or ``"system"`` for the process, suppression and expiry.
    """

    alarm: str
    asset: str
    time: float
    from_state: AlarmState
    to_state: AlarmState
    user: str
    reason: str
    priority: Priority


class AlarmCondition(msgspec.Struct, kw_only=True):
    """The memory of one alarm (plain data: it is what a checkpoint holds).

    Attributes:
        active: ActiveState: the process condition, after deadband and delays.
        acked: AckedState.
        shelved_until: end of a timed shelve, twin seconds; None: not shelved.
        suppressed: SuppressedState (by design).
        out_of_service: OutOfServiceState.
        raw: the condition after the deadband, before the on/off delays.
        pending_since: when ``raw`` began to differ from ``active`` (a delay running).
        value: the last value of the alarm's signal, its SI unit.
        since: time of the alarm's last transition.
    """

    active: bool = False
    acked: bool = True
    shelved_until: float | None = None
    suppressed: bool = False
    out_of_service: bool = False
    raw: bool = False
    pending_since: float | None = None
    value: float | None = None
    since: float | None = None

    @property
    def state(self) -> AlarmState:
        if self.out_of_service:
            return AlarmState.OUT_OF_SERVICE
        if self.suppressed:
            return AlarmState.SUPPRESSED
        if self.shelved_until is not None:
            return AlarmState.SHELVED
        if self.active:
            return AlarmState.ACKNOWLEDGED if self.acked else AlarmState.UNACKNOWLEDGED
        return AlarmState.NORMAL if self.acked else AlarmState.RTNUN

    def reveal(self) -> None:
        """Leaving a hidden state: unacknowledged exactly when the condition is active."""
        if self.state in VISIBLE:
            self.acked = not self.active


class AlarmActionError(ValueError):
    """An operator action the alarm's state does not allow (ack of a NORMAL alarm...)."""
