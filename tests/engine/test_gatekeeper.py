"""The gatekeeper without Ray: trips act on measurements, in every mode, across shards;
and the pilot terminal's overfill (issue 9) stopped in lock-step."""

from __future__ import annotations

import math
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import plants
from engine.config import AssetConfig, SetpointLimit, TripInterlock, load_site
from engine.gatekeeper import Gatekeeper
from engine.messages import ExternalWrite, GateRequest, Measurement, Mode, Outcome, Proposal
from engine.metrics import AssetMetrics
from engine.safety import operator_limit
from engine.simulation import SimulatedPlant

PILOT = Path(__file__).resolve().parents[2] / "examples" / "pilot.toml"
RECEIPT = {"receipt": SetpointLimit(lower=0.0, upper=60.0, max_rate=0.1)}


def tank(asset_id: str, mode: Mode = Mode.AUTONOMOUS) -> AssetConfig:
    return AssetConfig(id=asset_id, kind="asphalt_terminal", mode=mode, limits=RECEIPT,
                       max_measurement_age_s=1800.0)


def high_high(asset_id: str, watched: str | None = None) -> TripInterlock:
    return TripInterlock(name=f"{asset_id} high-high level", when=[f"{watched or asset_id}.level"],
                         above=13.3, close=[f"{asset_id}.receipt"])


def request(asset_id: str, t: float, level: float | None = None,
            proposal: dict[str, float] | None = None) -> GateRequest:
    measurement = None if level is None else Measurement(asset_id, t, {"level": level})
    return GateRequest(asset=asset_id, time=t, measurement=measurement, measurement_age=0.0,
                       proposal=None if proposal is None else Proposal(
                           asset=asset_id, time=t, setpoints=proposal, reason="mpc"))


def test_one_batch_closes_an_open_receipt_above_high_high_in_every_mode():
    assets = [tank(mode.value, mode) for mode in Mode]
    keeper = Gatekeeper(assets, [high_high(a.id) for a in assets],
                        {a.id: {"receipt": 60.0} for a in assets}, t0=0.0)
    decisions, changed = keeper.decide_batch(
        [request(a.id, 300.0, level=13.4, proposal={"receipt": 60.0}) for a in assets])
    assert changed == {mode.value for mode in Mode}
    for mode, decision in zip(Mode, decisions, strict=True):
        assert decision.applied == {"receipt": 0.0}, mode
        forced, proposed = decision.records
        assert forced.outcome is Outcome.INTERLOCK
        assert f"interlock '{mode.value} high-high level': {mode.value}.level 13.4 >= 13.3" \
            in forced.reason
        assert proposed.outcome in (Outcome.CLAMPED, Outcome.QUEUED, Outcome.REJECTED)
        assert proposed.applied in (None, 0.0)
    # the trip stands: nothing more is forced, and a proposal cannot reopen the receipt
    again, _ = keeper.decide_batch([request(a.id, 600.0, level=13.5, proposal={"receipt": 30.0})
                                    for a in assets])
    for decision in again:
        assert decision.applied in ({}, {"receipt": 0.0})
        assert [r.outcome for r in decision.records if r.outcome is Outcome.INTERLOCK] == []
    assert keeper.gates["AUTONOMOUS"].last_applied["receipt"].value == 0.0


def test_a_trip_noted_in_one_shard_closes_an_asset_of_another_at_its_next_request():
    """tank-a's receipt closes on tank-b's level; tank-b ticks in another batch (shard)."""
    assets = [tank("tank-a"), tank("tank-b")]
    keeper = Gatekeeper(assets, [high_high("tank-a", watched="tank-b")],
                        {"tank-a": {"receipt": 60.0}, "tank-b": {"receipt": 0.0}}, t0=0.0)
    decisions, changed = keeper.decide_batch([request("tank-b", 300.0, level=13.4)])
    assert decisions[0].applied == {} and changed == {"tank-a", "tank-b"}
    assert keeper.gates["tank-a"].pending  # kept for tank-a, part of its durable state
    assert "pending" in keeper.gates["tank-a"].to_state()
    # tank-b's level falls back before tank-a ticks: the noted trip is still delivered
    keeper.decide_batch([request("tank-b", 400.0, level=13.0)])
    (decision,), _ = keeper.decide_batch([request("tank-a", 450.0, level=5.0)])
    assert decision.applied == {"receipt": 0.0}
    assert decision.records[0].outcome is Outcome.INTERLOCK
    assert "tank-b.level 13.4 >= 13.3 at twin time 300" in decision.records[0].reason
    (decision,), _ = keeper.decide_batch([request("tank-a", 750.0, level=5.0)])
    assert decision.records == []  # delivered once


def test_a_stale_level_counts_as_not_measured_and_closes():
    keeper = Gatekeeper([tank("t")], [high_high("t")], {"t": {"receipt": 0.0}}, t0=0.0)
    keeper.decide_batch([request("t", 0.0, level=10.0, proposal={"receipt": 0.1})])
    (decision,), _ = keeper.decide_batch([request("t", 300.0, proposal={"receipt": 30.0})])
    assert decision.applied == {"receipt": 30.0}  # the level is fresh: it may open
    (decision,), _ = keeper.decide_batch([request("t", 2400.0)])  # 2400 s > 1800 s old
    assert decision.applied == {"receipt": 0.0}
    assert "t.level not measured (fail safe)" in decision.records[0].reason


# -- issue 9's overfill: the pilot terminal, lock-step, receipt open at 60 kg/s ----------------

def pilot_terminal() -> tuple[AssetConfig, list[TripInterlock]]:
    """The pilot's terminal and its tank 05 high-high trip, as examples/pilot.toml has them."""
    site = load_site(PILOT)
    locks = [lock for lock in site.interlocks
             if isinstance(lock, TripInterlock) and lock.name == "tank 05 high-high level"]
    site = msgspec.structs.replace(site, assets=[a for a in site.assets if a.id == "terminal"],
                                   interlocks=locks)
    return plants.resolve_site(site, PILOT).assets[0], locks


@pytest.mark.parametrize("mode", list(Mode))
def test_the_terminal_stops_filling_within_one_scan_of_its_high_high_level(mode):
    """Tank 05 (16 m across, 14 m shell) starts at 12.9 m with its receipt open at
    60 kg/s (0.094 m per 300 s scan); its trip is 13.3 m. Before issue 9 it kept filling
    (9.6 m to 16.4 m in 7 h); now the scan that measures 13.3 m closes the receipt."""
    asset, locks = pilot_terminal()
    asset = msgspec.structs.replace(asset, mode=mode)
    model = plants.model_of(asset)
    mass = model.states.nominal[model.states.index("mass_05")] * 12.9 / 8.5  # 8.5 m nominal
    plant = SimulatedPlant("terminal", model, asset.simulation, x0={"mass_05": mass},
                           d={"receipt_05": 60.0}, t0=0.0)
    truth = plant.truth()
    initial = {n: {**truth["inputs"], **truth["disturbances"]}[n] for n in asset.limits}
    keeper = Gatekeeper([asset], locks, {"terminal": initial}, t0=0.0)
    period, masses, levels, records = asset.period_s, [], [], []
    for k in range(1, 13):
        plant.advance_to(k * period)
        measurement = plant.measure()
        (decision,), _ = keeper.decide_batch([GateRequest(
            asset="terminal", time=plant.t, measurement=measurement, measurement_age=0.0,
            proposal=None)])
        plant.apply(decision.applied)
        records += decision.records
        levels.append(measurement.values["level_05"])
        masses.append(plant.truth()["states"]["mass_05"])
    tripped = next(k for k, level in enumerate(levels) if level >= 13.3)
    assert 0 < tripped < len(levels) - 2  # it filled, then tripped inside the run
    assert plant.truth()["disturbances"]["receipt_05"] == 0.0
    assert masses[-1] == pytest.approx(masses[tripped], rel=1e-9)  # not one kg more after
    assert masses[tripped] > masses[tripped - 1] + 0.99 * 60.0 * period  # filling till then
    (forced,) = records  # exactly one write, audited as the interlock's
    assert (forced.outcome, forced.signal, forced.applied) == (Outcome.INTERLOCK, "receipt_05", 0.0)
    assert forced.time == (tripped + 1) * period
    assert forced.reason.startswith(f"interlock 'tank 05 high-high level': terminal.level_05 "
                                    f"{levels[tripped]:.6g} >= 13.3; receipt_05 closed from 60 to")


# -- the property: after every batch, nothing a standing trip closes is open -------------------

@settings(max_examples=100, deadline=None, derandomize=True)
@given(steps=st.lists(st.tuples(
    st.lists(st.one_of(st.none(), st.floats(12.0, 14.0), st.just(math.nan)), min_size=3,
             max_size=3),
    st.lists(st.one_of(st.none(), st.floats(-10.0, 100.0)), min_size=3, max_size=3),
    st.lists(st.sampled_from(["controller", "operator", "approval", "safe-state"]), min_size=3,
             max_size=3),
    st.sets(st.integers(0, 2), min_size=1)), min_size=1, max_size=12),
    modes=st.lists(st.sampled_from(list(Mode)), min_size=3, max_size=3))
def test_after_every_batch_no_tripped_receipt_is_open_and_every_value_is_in_its_limits(
        steps, modes):
    """Three tanks in any modes; tank 0's receipt also closes on tank 2's level (another
    shard). Random levels (some missing, some NaN), proposals from every source, batches
    of any subset of the tanks: after each batch every asset in it whose trip stands has
    its receipt at 0, and nothing written ever leaves [0, 60]."""
    assets = [tank(f"t{i}", modes[i]) for i in range(3)]
    locks = [high_high(a.id) for a in assets] + [high_high("t0", watched="t2")]
    keeper = Gatekeeper(assets, locks, {a.id: {"receipt": 60.0} for a in assets}, t0=0.0)
    for k, (levels, values, sources, batch) in enumerate(steps):
        t = 300.0 * (k + 1)
        requests = []
        for i in sorted(batch):
            proposal = None if values[i] is None else Proposal(
                asset=f"t{i}", time=t, setpoints={"receipt": values[i]}, reason="",
                source=sources[i], user="olga")
            measurement = None if levels[i] is None else Measurement(f"t{i}", t,
                                                                     {"level": levels[i]})
            requests.append(GateRequest(asset=f"t{i}", time=t, measurement=measurement,
                                        measurement_age=0.0, proposal=proposal))
        decisions, _ = keeper.decide_batch(requests)
        for decision in decisions:
            assert all(0.0 <= v <= 60.0 for v in decision.applied.values())
        for i in sorted(batch):
            view = keeper.site_view(f"t{i}", t).measured
            watched = [f"t{i}.level"] + (["t2.level"] if i == 0 else [])
            if any(not view.get(w, math.nan) < 13.3 for w in watched):
                assert keeper.gates[f"t{i}"].last_applied["receipt"].value == 0.0, (k, i)


def test_an_interlock_write_is_counted_like_any_decision():
    """The asset counts each record's outcome (twinloop_safety_decisions_total{outcome});
    an INTERLOCK record must have its counter, not raise KeyError in the tick."""
    metrics = AssetMetrics()
    metrics.decisions[Outcome.INTERLOCK.value] += 1
    assert set(metrics.decisions) == {outcome.value for outcome in Outcome}


def test_a_close_without_a_finite_safe_value_is_refused_at_start():
    unbounded = AssetConfig(id="t", kind="asphalt_terminal",
                            limits={"receipt": SetpointLimit(upper=60.0)})
    with pytest.raises(ValueError, match="signal 't.receipt': no finite safe value"):
        Gatekeeper([unbounded], [high_high("t")], {"t": {"receipt": 0.0}}, t0=0.0)


def external(asset_id: str, t: float, value: float, gated: float, since: float) -> GateRequest:
    """A tick at ``t`` that read back ``receipt`` = ``value`` where the gate wrote ``gated``."""
    return GateRequest(asset=asset_id, time=t, measurement=None, measurement_age=0.0,
                       proposal=None, external=[ExternalWrite("receipt", value, gated, since)])


def test_a_write_around_the_gate_is_recorded_and_held_outside_autonomous():
    """MANUAL, ADVISORY and OFF: the external value is on record (source plc, outcome
    external), nothing is written back, and it becomes the last applied value (the rate
    limit and the count interlocks start from what the plant runs on)."""
    modes = [Mode.MANUAL, Mode.ADVISORY, Mode.OFF]
    assets = [tank(mode.value, mode) for mode in modes]
    keeper = Gatekeeper(assets, [], {a.id: {"receipt": 10.0} for a in assets}, t0=0.0)
    decisions, _ = keeper.decide_batch([external(a.id, 300.0, 45.0, 10.0, 0.0) for a in assets])
    for mode, decision in zip(modes, decisions, strict=True):
        [record] = decision.records
        assert record.outcome is Outcome.EXTERNAL and record.source == "plc"
        assert record.applied == 45.0 and record.time == 300.0
        assert f"{mode.value}: held, not overwritten" in record.reason
        assert decision.applied == {}
        assert keeper.gates[mode.value].last_applied["receipt"].value == 45.0


def test_in_autonomous_the_gate_takes_its_value_back_at_the_rate_limit_inside_the_limits():
    """Receipt 0.1 m3/s per s: an external 45 where the gate wrote 10, read back 300 s
    after the last good read-back, goes back 30 at most (to 15); an external value
    above the 60 upper limit comes back inside them at once."""
    keeper = Gatekeeper([tank("t")], [], {"t": {"receipt": 10.0}}, t0=0.0)
    [decision], _ = keeper.decide_batch([external("t", 300.0, 45.0, 10.0, 0.0)])
    seen, back = decision.records
    assert seen.outcome is Outcome.EXTERNAL and "writes its own value back" in seen.reason
    assert back.source == "restore" and back.outcome is Outcome.CLAMPED
    assert back.applied == pytest.approx(15.0) and "rate limit" in back.reason
    assert decision.applied == {"receipt": pytest.approx(15.0)}

    keeper = Gatekeeper([tank("t")], [], {"t": {"receipt": 10.0}}, t0=0.0)
    [decision], _ = keeper.decide_batch([external("t", 300.0, 1e4, 10.0, 0.0)])
    assert decision.applied == {"receipt": 60.0}


def test_a_nan_read_back_is_on_record_but_never_taken_as_a_value():
    """A register read back as NaN (a real PLC need not refuse one): recorded with no
    applied value; the last applied value stays the gate's, and AUTONOMOUS writes it back
    at once (no move from a value that is not one)."""
    keeper = Gatekeeper([tank("m", Mode.MANUAL), tank("a")], [],
                        {"m": {"receipt": 10.0}, "a": {"receipt": 10.0}}, t0=0.0)
    held, back = keeper.decide_batch([external("m", 300.0, math.nan, 10.0, 0.0),
                                      external("a", 300.0, math.nan, 10.0, 0.0)])[0]
    assert held.records[0].applied is None and held.applied == {}
    assert keeper.gates["m"].last_applied["receipt"].value == 10.0
    assert back.applied == {"receipt": 10.0}


def test_an_operator_band_the_site_file_no_longer_allows_is_skipped_on_restore_not_a_crash():
    """The receipt had an operator band [10, 50]; the site file then narrows its
    engineering limits to [0, 40]: the restored gate drops the band, says why, and keeps
    the rest (mode, last applied value); the file's narrower limits hold."""
    keeper = Gatekeeper([tank("tank-a", Mode.MANUAL)], [], {"tank-a": {"receipt": 20.0}}, 0.0)
    keeper.gates["tank-a"].operator_limits = {
        "receipt": operator_limit("receipt", 10.0, 50.0, RECEIPT["receipt"])}
    state = keeper.gates["tank-a"].to_state()
    narrower = msgspec.structs.replace(
        tank("tank-a"), limits={"receipt": SetpointLimit(lower=0.0, upper=40.0, max_rate=0.1)})
    again = Gatekeeper([narrower], [], {"tank-a": {"receipt": 0.0}}, 0.0).gates["tank-a"]
    skipped = again.restore(state)
    assert again.operator_limits == {}
    assert again.limits["receipt"].upper == 40.0
    assert len(skipped) == 1 and "above the engineering upper limit 40" in skipped[0]
    assert (again.mode, again.last_applied["receipt"].value) == (Mode.MANUAL, 20.0)
