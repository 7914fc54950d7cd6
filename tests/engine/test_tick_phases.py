"""Tick phases (engine.tick_phases): a real-time site's assets of one period spread over
STAGGER_SLOTS instants a period, interlock-tied assets together."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import msgspec

import plants
from engine.config import TripInterlock, load_site, parse_site
from engine.tick_phases import STAGGER_SLOTS, tick_phases
from plants.sitegen import SiteCounts, generate_site

PILOT = Path(__file__).resolve().parents[2] / "examples" / "pilot.toml"


def test_a_field_of_600_wells_ticks_in_ten_instants_of_similar_size():
    site = plants.resolve_site(parse_site(generate_site(
        SiteCounts(wells=600, cells=0, pumps=0, tanks=0, terminals=0, pipelines=0),
        seed=7, name="field", speed=1.0)))
    phases = tick_phases(site)
    period = site.assets[0].resolved_period_s()
    slots = Counter(phases.values())
    assert sorted(slots) == [period * k / STAGGER_SLOTS for k in range(STAGGER_SLOTS)]
    assert max(slots.values()) <= 1.5 * 600 / STAGGER_SLOTS  # none takes a crowd
    assert tick_phases(site) == phases  # the same in every process: crc32, not hash()


def test_assets_an_interlock_ties_share_their_phase():
    site = plants.resolve_site(load_site(PILOT), PILOT)
    alone = tick_phases(site)
    assert alone["pump-01"] != alone["pump-03"]  # 3 s and 9 s into their 30 s period
    tie = TripInterlock(name="station 1 discharge", when=["pump-01.p_discharge"],
                        above=7.0e6, close=["pump-03.speed"])
    tied = tick_phases(msgspec.structs.replace(site, interlocks=[*site.interlocks, tie]))
    assert tied["pump-01"] == tied["pump-03"]
    assert all(tied[a] == alone[a] for a in alone if a not in ("pump-01", "pump-03"))
    assert all(0 <= tied[a.id] < a.resolved_period_s() for a in site.assets)
