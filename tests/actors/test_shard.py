"""An asset shard without Ray: its assets' ticks meet the real safety authority in one
call per tick instant, and every asset is at the gate every tick, in every mode."""

from __future__ import annotations

import asyncio

import msgspec

import plants
from actors.fleet import initial_outputs
from actors.plant import HostedPlant
from actors.safety import SafetyAuthority
from actors.shard import Shard
from engine.clock import ClockSpec
from engine.config import load_site
from engine.messages import MeasurementPayload, Mode
from engine.tick_phases import tick_phases
from tests.conftest import TWO_TANKS

EPOCH = 1.7e9


class InProcess:
    """An object called like an actor (``handle.method.remote(...)`` is awaitable), every
    call recorded: the real component, in this process."""

    def __init__(self, target) -> None:
        self.target = target
        self.calls: list[tuple[str, tuple]] = []

    def __getattr__(self, method: str):
        if method.startswith("_"):
            raise AttributeError(method)
        return _Call(self, method)


class _Call:
    def __init__(self, handle: InProcess, method: str) -> None:
        self.handle, self.method = handle, method

    def remote(self, *args, **kwargs):
        self.handle.calls.append((self.method, args))
        future = asyncio.get_running_loop().create_future()
        try:
            future.set_result(getattr(self.handle.target, self.method)(*args, **kwargs))
        except Exception as error:
            future.set_exception(error)
        return future


def two_tanks_over_mqtt(tmp_path):
    """tank-01 every 120 s, tank-02 every 240 s and OFF; both measured over MQTT (no
    plant behind them: the test hands each one measurement)."""
    site = load_site(TWO_TANKS)
    first, second = site.assets
    assets = [msgspec.structs.replace(first, measurement_source="mqtt"),
              msgspec.structs.replace(second, measurement_source="mqtt", period_s=240.0,
                                      mode=Mode.OFF)]
    site = msgspec.structs.replace(
        site, assets=assets,
        site=msgspec.structs.replace(site.site, audit_db=str(tmp_path / "audit.db")))
    return plants.resolve_site(site, TWO_TANKS)


def test_assets_due_at_one_instant_go_to_the_gate_in_one_call(tmp_path):
    site = two_tanks_over_mqtt(tmp_path)

    async def run() -> InProcess:
        safety = InProcess(SafetyAuthority(
            site, {a.id: initial_outputs(a) for a in site.assets}, EPOCH))
        shard = Shard("shard:0", site.assets, ClockSpec(lockstep=True, epoch=EPOCH), safety,
                      plants={}, plcs={})
        for asset in site.assets:
            sample = MeasurementPayload(ts=EPOCH, values={"T_bulk": asset.initial["T_bulk"]})
            await shard.ingest(asset.id, msgspec.msgpack.encode([sample]))
        await shard.run_for(480.0)
        return safety

    safety = asyncio.run(run())
    batches = [args[0] for method, args in safety.calls if method == "decide_batch"]
    assert [[r.asset for r in batch] for batch in batches] == [
        ["tank-01"], ["tank-01", "tank-02"], ["tank-01"], ["tank-01", "tank-02"]]
    assert [batch[0].time - EPOCH for batch in batches] == [120.0, 240.0, 360.0, 480.0]
    off = [request for batch in batches for request in batch if request.asset == "tank-02"]
    assert off[0].measurement is not None  # the OFF asset's measurement reaches the gate
    assert all(request.proposal is None for request in off)
    on = [request for batch in batches for request in batch if request.asset == "tank-01"]
    assert all(request.proposal is not None for request in on)
    records = safety.target.audit_records("tank-01", limit=100)
    assert [r["time"] - EPOCH for r in records if r["signal"] == "m_oil"] == [
        120.0, 240.0, 360.0, 480.0]


def test_in_real_time_at_high_speed_a_plant_that_matches_its_model_raises_no_anomaly(
        tmp_path):
    """tank-01 with no mismatch (the plant is the twin's model, noise included) on a
    real-time clock at 1200x, its plant in this process. Each write reaches the plant
    after the measurement, the EKF and MPC steps and the gate: tens of wall ms, tens of
    twin seconds at this speed, while the tank heats to its reference and the controller
    moves m_oil at its rate limit. An estimate that predicts as if the new flow had
    reached the plant at the tick's time fails the NIS test after most of those moves
    (significance 0.001: a consistent filter flags one correction in a thousand)."""
    site = load_site(TWO_TANKS)
    tank = site.assets[0]
    tank = msgspec.structs.replace(
        tank, simulation=msgspec.structs.replace(tank.simulation, mismatch={}))
    site = plants.resolve_site(msgspec.structs.replace(
        site, assets=[tank],
        site=msgspec.structs.replace(site.site, audit_db=str(tmp_path / "audit.db"))),
        TWO_TANKS)
    tank = site.assets[0]
    corrections = 40

    async def run() -> tuple[int, int]:
        clock = ClockSpec(speed=1200.0)
        safety = InProcess(SafetyAuthority(site, {tank.id: initial_outputs(tank)},
                                           clock.epoch))
        plant = InProcess(HostedPlant(tank, clock, None, scan_period_s=0.05))
        shard = Shard("shard:0", [tank], clock, safety, plants={tank.id: plant}, plcs={})
        await shard.start()
        asset = shard.assets[tank.id]
        while asset.metrics.ticks < corrections:  # as long as the machine needs
            await asyncio.sleep(0.1)
        await shard.stop()
        async with asset.lock:  # the tick under way, if any, completes
            return asset.metrics.anomalies, asset.metrics.ticks

    anomalies, ticks = asyncio.run(asyncio.wait_for(run(), 600.0))
    assert ticks >= corrections
    assert anomalies <= 1, f"{anomalies} of {ticks} corrections flagged as anomalies"


def test_in_real_time_the_assets_of_one_period_tick_at_their_own_phases(tmp_path):
    """Six tanks of one period in one shard, in real time at 2400x (120 s in 50 ms):
    each is gated at epoch + its phase + k period (engine.tick_phases), so the shard's
    instants hold a few of them, not all six at once (with every phase 0 the six met in
    every batch, and a 600-well shard gated all its wells together)."""
    base = two_tanks_over_mqtt(tmp_path)
    tank = msgspec.structs.replace(base.assets[0], mode=Mode.OFF)
    site = msgspec.structs.replace(base, assets=[
        msgspec.structs.replace(tank, id=f"tank-{n:02d}") for n in range(1, 7)])
    phases = tick_phases(site)
    period = tank.resolved_period_s()

    clock = ClockSpec(speed=2400.0)

    async def run() -> InProcess:
        safety = InProcess(SafetyAuthority(
            site, {a.id: initial_outputs(a) for a in site.assets}, clock.epoch))
        shard = Shard("shard:0", site.assets, clock, safety, plants={}, plcs={},
                      phases=phases)
        await shard.start()
        while min(a.metrics.ticks for a in shard.assets.values()) < 3:
            await asyncio.sleep(0.05)
        await shard.stop()
        return safety

    safety = asyncio.run(asyncio.wait_for(run(), 300.0))
    batches = [args[0] for method, args in safety.calls if method == "decide_batch"]
    assert len(set(phases.values())) > 1
    for batch in batches:
        for request in batch:
            k = (request.time - clock.epoch - phases[request.asset]) / period
            assert abs(k - round(k)) < 1e-6, (request.asset, k)
        assert len({phases[request.asset] for request in batch}) == 1
    assert max(len(batch) for batch in batches) < len(site.assets)
