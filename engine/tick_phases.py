"""Tick phases: where in its period each asset of a real-time site ticks.

An asset's deadlines are ``epoch + phase + k period`` (twin s). With every phase 0 all
assets of one period meet at the same instants: a shard of 500 wells at 120 s then
measures, solves, gates and writes 500 assets at once every two minutes and idles in
between, and an asset of a short period due at that instant (a pump at 10 s) waits for
all of them and misses its next deadline (measured in bench/fleet.py at 1,000 assets:
11 % of the ticks after start-up were overruns, all pumps). Polling systems spread such
load by giving each point an offset in its scan; so does this:

    phase = period * (crc32(key) mod STAGGER_SLOTS) / STAGGER_SLOTS

so the assets of one period fall evenly, by their ids, into STAGGER_SLOTS instants a
period, each still gated as one batch (one decide_batch and one audit commit for the
assets of a shard due then). ``key`` is the asset's id, or for assets that an interlock
ties together (its ``when``, ``hold`` and ``close``, or a count's ``signals``, across
assets) the smallest id of the tied group: tied assets of equal periods keep meeting at
the same instants, so a trip measured on one closes the other's valves in that instant.
crc32, not Python's salted ``hash``: every process, and a restarted shard, computes the
same phases.

Lock-step runs (tests, what-if) keep every phase 0: their instants are run in order as
fast as the machine allows, there is no deadline to miss, and ticks stay on
``epoch + k period``.
"""

from __future__ import annotations

import zlib

from engine.config import CountInterlock, SiteConfig

STAGGER_SLOTS = 10
"""Instants a period over which the assets of one period are spread."""


def tick_phases(site: SiteConfig) -> dict[str, float]:
    """Each asset's phase (twin s, in ``[0, period)``), by asset id."""
    group = {asset.id: asset.id for asset in site.assets}

    def root(asset: str) -> str:
        while group[asset] != asset:
            asset = group[asset]
        return asset

    for lock in site.interlocks:
        signals = lock.signals if isinstance(lock, CountInterlock) else \
            [*lock.when, *lock.hold, *lock.close]
        tied = sorted({root(s.partition(".")[0]) for s in signals
                       if s.partition(".")[0] in group})
        for other in tied[1:]:
            group[other] = tied[0]
    return {asset.id: asset.resolved_period_s()
            * (zlib.crc32(root(asset.id).encode()) % STAGGER_SLOTS) / STAGGER_SLOTS
            for asset in site.assets}
