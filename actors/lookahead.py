"""Lookahead: the what-ifs and forward plans of one site, in a process of their own.

A what-if (controllers.whatif) or a 7-day plan (controllers.planner) is seconds of
numerics; run on an asset shard's threads it would delay that shard's ticks. So the HTTP
API takes a fork of the asset from its shard (actors.asset.HostedAsset.fork: a copy of
the twin's state, the request audited as a read), and hands it here:

    whatif(fork, request)   lock-step simulation of the fork with and without the
                            changes (controllers.whatif.WhatIf), on this actor's thread
    plan(fork, user)        the DRA pipeline's 168-hour plan from the twin's estimate,
                            stored as the asset's next version (engine.plan_store)
    plan_entry(id, version) a stored plan; approve_plan(...) approves one, on record
                            first (the safety actor's audit log)

One numerics thread: requests queue behind each other, never behind a tick. A caller
that goes away (``ray.cancel``) stops its what-if at the next tick of the fork; the
request's own ``timeout_s`` bounds it too. Nothing here writes to an asset.
"""

from __future__ import annotations

import asyncio
import functools
import math
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import msgspec
import numpy as np
import ray

import plants
from controllers.planner import InjectionPlanner, station_maop
from controllers.whatif import Fork, WhatIf, WhatIfRequest
from engine.config import AssetConfig, NominationSettings, SiteConfig, TariffSettings
from engine.gate import own_interlocks
from engine.messages import AuditRecord, Outcome
from engine.plan_store import PlanStore, plans_folder

PLAN_KIND = "dra_pipeline"
"""The kind a forward plan is computed for (DRA injection and pump speeds)."""
HOUR_S = 3600.0
MONDAY_OF_EPOCH_WEEK_H = 72
"""UNIX time 0 is a Thursday 00:00 UTC: 72 hours after that week's Monday 00:00."""
AUDIT_TIMEOUT_S = 5.0


class Lookahead:
    """What-ifs and plans of the site ``site`` (resolved); ``safety`` is its safety actor
    (plan approvals are audited there). Plans are stored under the folder of the site's
    audit database, ``plans/<asset>/``."""

    def __init__(self, site: SiteConfig, safety: Any) -> None:
        self.site = site
        self.safety = safety
        self.whatifs = WhatIf()
        self.store = PlanStore(plans_folder(site.site.audit_db))
        self._planners: dict[tuple[str, bytes], InjectionPlanner] = {}
        self._numerics = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lookahead")

    async def whatif(self, fork: dict[str, Any], request: WhatIfRequest) -> dict[str, Any]:
        """Run the what-if of ``fork`` (HostedAsset.fork's answer); ValueError for a
        change the asset refuses, TimeoutError past ``request.timeout_s``."""
        forked = Fork(**fork, interlocks=own_interlocks(self.site.interlocks,
                                                        fork["asset"].id))
        cancelled = threading.Event()
        try:
            result = await asyncio.get_running_loop().run_in_executor(
                self._numerics, functools.partial(self.whatifs.run, forked, request,
                                                  cancelled.is_set))
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return msgspec.to_builtins(result)

    async def plan(self, fork: dict[str, Any], user: str) -> dict[str, Any]:
        """Plan the next 168 hours of a DRA pipeline from the twin's estimate, store it
        as the asset's next version and return the stored entry. ValueError (naming why)
        for an asset of another kind, one without a tariff or nomination, or a
        nomination the line cannot carry."""
        asset: AssetConfig = fork["asset"]
        if asset.kind != PLAN_KIND:
            raise ValueError(f"asset {asset.id!r} is a {asset.kind}: a forward plan (DRA "
                             f"injection and pump speeds) is computed for {PLAN_KIND} assets")
        tariff, nomination = asset.tariff, asset.nomination
        if tariff is None or nomination is None:
            missing = [name for name, value in (("tariff", tariff), ("nomination", nomination))
                       if value is None]
            raise ValueError(f"asset {asset.id!r} has no {' and no '.join(missing)} in its "
                             "site file: a plan prices electricity and delivers a nomination")
        plan = await asyncio.get_running_loop().run_in_executor(
            self._numerics, self._plan, asset, tariff, nomination, fork)
        return self.store.add(asset.id, plan, created=fork["time"], user=user)

    def _plan(self, asset: AssetConfig, tariff: TariffSettings, nomination: NominationSettings,
              fork: dict[str, Any]) -> dict[str, Any]:
        model = plants.model_of(asset)
        key = (asset.id, msgspec.msgpack.encode((asset.period_s, asset.structure,
                                                 asset.parameters, asset.limits)))
        if key not in self._planners:
            self._planners[key] = InjectionPlanner(model, asset.limits)
        planner = self._planners[key]
        checkpoint = fork["loop"]
        x = np.asarray(checkpoint["estimator"]["x"], float)[:len(model.states)]
        state = np.clip(x, model.states.lower, model.states.upper)
        start = math.floor(fork["time"] / HOUR_S) * HOUR_S
        disturbances = model.disturbances.mapping(checkpoint["d"])
        plan = planner.plan(state, tariff, nomination,
                            station_maop(self.site, asset, model), u0=checkpoint["u"],
                            d=disturbances, start_hour_of_week=hour_of_week(start))
        return {"start": start, "maop": station_maop(self.site, asset, model),
                **msgspec.to_builtins(plan)}

    def plan_entry(self, asset_id: str, version: int | None = None) -> dict[str, Any]:
        """A stored plan (None: the latest); LookupError if there is none."""
        return self.store.get(asset_id, version)

    async def approve_plan(self, asset_id: str, version: int, user: str,
                           time: float) -> dict[str, Any]:
        """Approve stored plan ``version``, on record first (an audit record of ``user``);
        LookupError for an unknown version, ValueError for one approved already,
        RuntimeError if the safety actor does not answer (nothing approved)."""
        entry = self.store.get(asset_id, version)
        if entry["status"] == "approved":
            raise ValueError(f"plan version {version} of {asset_id!r} was approved already "
                             f"by {entry['approved_by']}")
        plan = entry["plan"]
        costs = ", ".join(f"{name} {baseline['cost']:.0f}" if baseline["cost"] is not None
                          else f"{name} infeasible"
                          for name, baseline in plan["baselines"].items())
        record = AuditRecord(
            time=time, asset=asset_id, user=user, source="operator", signal="plan",
            requested=float(version), applied=float(version), outcome=Outcome.ACCEPTED,
            reason=f"plan version {version} approved: cost {plan['cost']:.0f} "
                   f"{plan['currency']} over {len(plan['hours'])} h (baselines: {costs})")
        try:
            await asyncio.wait_for(self.safety.note.remote([record]), AUDIT_TIMEOUT_S)
        except (TimeoutError, ray.exceptions.RayActorError) as error:
            raise RuntimeError(f"safety actor unreachable ({type(error).__name__}): "
                               "the plan was not approved") from None
        return self.store.approve(asset_id, version, user=user, time=time)


def hour_of_week(t: float) -> int:
    """Hour of the week (0 = Monday 00:00-01:00 UTC) of UNIX time ``t``."""
    return int((math.floor(t / HOUR_S) + MONDAY_OF_EPOCH_WEEK_H) % 168)


@ray.remote(num_cpus=0, max_restarts=-1)
class LookaheadActor(Lookahead):
    """Lookahead as a Ray actor; the HTTP API starts one per site on first use."""
