"""PolicyGate: one asset's safety gate in memory, for a ControlLoop run in one process.

For everything that runs a loop without Ray: ``twinloop tune`` (step responses), what-if
runs, benchmarks and tests. It is the safety authority's own policy and memory
(engine.gatekeeper.Gatekeeper: mode, limits, rate limits from the last applied values,
the watchdog, trips acting on the measurement), for one asset, without the durable
audit: ``gate(request) -> Decision``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from engine.config import AssetConfig, CountInterlock, Interlock, TripInterlock
from engine.gatekeeper import Gatekeeper
from engine.messages import Decision, GateRequest


class PolicyGate:
    """Decides one asset's GateRequests as the safety actor would, in memory.

    Args:
        asset: the resolved asset (its mode, limits and watchdog threshold).
        initial: the value each writable signal holds at ``t0`` (twin s), the start of
            the rate limit.
        interlocks: trips and counts over this asset's signals, if any.
    """

    def __init__(self, asset: AssetConfig, initial: Mapping[str, float], t0: float = 0.0,
                 interlocks: Sequence[Interlock] = ()) -> None:
        self.keeper = Gatekeeper([asset], interlocks, {asset.id: initial}, t0)

    def __call__(self, request: GateRequest) -> Decision:
        decisions, _ = self.keeper.decide_batch([request])
        return decisions[0]


def own_interlocks(interlocks: Sequence[Interlock], asset_id: str) -> list[Interlock]:
    """The interlocks over this asset's signals only: those a PolicyGate of the asset can
    judge (one watching another asset's measurement cannot be judged without it)."""
    def own(keys: list[str]) -> bool:
        return all(key.partition(".")[0] == asset_id for key in keys)

    return [lock for lock in interlocks
            if (isinstance(lock, TripInterlock) and own([*lock.when, *lock.hold, *lock.close]))
            or (isinstance(lock, CountInterlock) and own(lock.signals))]
