"""KPIs and pump health in a running fleet: a centrifugal pump whose simulated impeller wears
(its true head factor falls 3.5e-5 per second, the 5 % limit in 24 min) and a rod pump, in
lock-step on the session's Ray, both OFF (the twin estimates, writes nothing), every tick
recorded in a real DuckDB file. Reads the status the shard builds, the Struct that
GET /assets/{id} sends."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

EVERY_KIND = Path(__file__).resolve().parents[1] / "sites" / "every_kind.toml"
EPOCH = 1.7e9
PUMP_PERIOD_S = 10.0
WEAR_RATE = 3.5e-5
"""Head factor lost per second by the simulated pump: 5 % (its head_loss limit) in 24 min."""
SNAPSHOTS_S = (500.0, 900.0, 1300.0)
"""Twin seconds from the start at which the statuses are read: 50, 90 and 130 pump ticks."""
WELL_PERIOD_S = 120.0


@pytest.fixture(scope="module")
def run(ray_session, tmp_path_factory):
    """The fleet's statuses of pump-01 and well-01 at each of SNAPSHOTS_S, and the fleet."""
    import ray

    import plants
    from actors.fleet import build_fleet
    from engine.clock import ClockSpec
    from engine.config import load_site
    from engine.messages import Mode

    site = load_site(EVERY_KIND)
    var = tmp_path_factory.mktemp("var")
    assets = {a.id: a for a in site.assets}
    # OFF, nothing is proposed: the cheapest controllers to build
    pump = msgspec.structs.replace(
        assets["pump-01"], mode=Mode.OFF, period_s=PUMP_PERIOD_S,
        controller=msgspec.structs.replace(plants.defaults_of("centrifugal_pump").controller,
                                           backend="fast", horizon=3),
        simulation=msgspec.structs.replace(assets["pump-01"].simulation, initial={},
                                           drift={"head_factor": -WEAR_RATE}))
    well = msgspec.structs.replace(
        assets["well-01"], mode=Mode.OFF, period_s=WELL_PERIOD_S,
        controller=msgspec.structs.replace(plants.defaults_of("rod_pump").controller,
                                           backend="fillage-rule"))
    site = msgspec.structs.replace(
        site, assets=[pump, well],
        site=msgspec.structs.replace(site.site, audit_db=str(var / "audit.db")),
        historian=msgspec.structs.replace(site.historian, path=str(var / "history.duckdb")))
    fleet = build_fleet(plants.resolve_site(site, EVERY_KIND),
                        ClockSpec(lockstep=True, epoch=EPOCH), namespace="test-kpis-health",
                        history=True)
    try:
        statuses, done = [], 0.0
        for at in SNAPSHOTS_S:
            fleet.run_for(at - done)
            done = at
            statuses.append({i: ray.get(fleet.assets[i].status.remote())
                             for i in ("pump-01", "well-01")})
        assert ray.get(fleet.historian.flush.remote(60.0))
        yield statuses, fleet
    finally:
        fleet.shutdown()


def history(fleet, asset: str, signals: list[str]) -> dict[str, dict]:
    import ray

    answer = ray.get(fleet.historian.query_json.remote([asset], signals, EPOCH, None))
    return {series["signal"]: series for series in answer}


def test_the_worn_pumps_remaining_life_falls_as_its_wear_grows(run):
    """At 500, 900 and 1300 s the head factor is the limiting signal and the median
    remaining life falls each time, by roughly the 400 s elapsed, inside its 10-90 % band;
    the health index falls with it."""
    statuses, _ = run
    healths = [s["pump-01"]["health"] for s in statuses]
    lives = [h["remaining_life_s"] for h in healths]
    for health in healths:
        assert health["limiting_signal"] == "head_factor", health["reason"]
        assert health["remaining_life_low_s"] <= health["remaining_life_s"] \
            <= health["remaining_life_high_s"]
    assert lives[0] > lives[1] > lives[2] > 0
    for earlier, later in zip(lives, lives[1:], strict=False):
        assert earlier - later == pytest.approx(400.0, rel=0.6)
    indices = [h["health_index"] for h in healths]
    assert indices[0] > indices[1] > indices[2]
    assert {s["signal"] for s in healths[-1]["signals"]} == {
        "head_factor", "efficiency_factor", "oil_rise", "vibration"}


def test_a_pump_whose_health_falls_below_its_threshold_raises_the_health_alarm(run):
    """The health_index alarm (LO 0.25) is clear while the health index is above it and
    raised, unacknowledged, once it is below."""
    statuses, _ = run
    first, last = (next(a for a in s["pump-01"]["alarms"] if a["name"] == "health_index")
                   for s in (statuses[0], statuses[-1]))
    assert statuses[0]["pump-01"]["health"]["health_index"] > 0.3
    assert not first["active"] and first["state"] == "NORMAL"
    assert statuses[-1]["pump-01"]["health"]["health_index"] < 0.25
    assert last["active"] and last["state"] == "UNACKNOWLEDGED"
    assert last["value"] == pytest.approx(statuses[-1]["pump-01"]["kpis"]["health_index"]["value"])


def test_every_ticks_kpis_are_in_the_history_with_their_units(run):
    """The pump records its efficiency, wear, specific energy, health index and remaining
    life, the rod pump its fillage and Goodman loading, at every tick; the last of each is
    what the status shows."""
    statuses, fleet = run
    for asset, names, ticks in (
            ("pump-01", ["efficiency", "head_loss", "specific_energy", "health_index",
                         "remaining_life"], SNAPSHOTS_S[-1] / PUMP_PERIOD_S),
            ("well-01", ["fillage", "goodman_loading"], SNAPSHOTS_S[-1] // WELL_PERIOD_S)):
        status = statuses[-1][asset]
        series = history(fleet, asset, [f"kpi.{name}" for name in names])
        for name in names:
            recorded, shown = series[f"kpi.{name}"], status["kpis"][name]
            assert recorded["unit"] == shown["unit"]
            assert recorded["value"][-1] == pytest.approx(shown["value"])
        assert len(series[f"kpi.{names[0]}"]["time"]) == ticks == status["ticks"]
    kpis = statuses[-1]["well-01"]["kpis"]
    assert kpis["fillage"]["unit"] == "1" and 0 < kpis["fillage"]["value"] <= 1
    assert 0 < kpis["goodman_loading"]["value"] < 1.5
    wear = history(fleet, "pump-01", ["kpi.head_loss"])["kpi.head_loss"]["value"]
    assert wear[-1] > wear[0] + 0.03  # the estimated wear grows with the injected one
