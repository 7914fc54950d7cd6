"""``twinloop tune``: a closed-loop step response written as a PNG plot and a CSV."""

from __future__ import annotations

import csv

import pytest

from serve.cli import main


def test_tune_writes_a_png_and_a_csv_that_settles_at_the_step_target(tmp_path, capsys):
    """Asphalt tank, T_bulk stepped +2 K (433.15 -> 435.15 K) after 1.2 h of 6 h with a
    15-step horizon: the PNG is a real PNG image (signature and IHDR size 800 x 600), the
    CSV has one row per 120 s period with named, unit-tagged columns, the reference
    steps to 435.15 K, and the true T_bulk ends within 0.1 K (5 % of the step) of it."""
    prefix = tmp_path / "tank"
    code = main(["tune", "asphalt_tank", "--step", "2", "--duration", "21600",
                 "--horizon", "15", "--tracking", "T_bulk=100", "--out", str(prefix)])
    assert code == 0
    png = (tmp_path / "tank.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR"
    assert (int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")) == (800, 600)
    with (tmp_path / "tank.csv").open() as stream:
        rows = list(csv.reader(stream))
    assert rows[0][:3] == ["time_s", "reference_T_bulk [K]", "T_bulk [K]"]
    assert "m_oil [kg/s]" in rows[0]
    assert len(rows) == 1 + 21600 // 120 + 1
    first, last = [float(v) for v in rows[1][:3]], [float(v) for v in rows[-1][:3]]
    assert first[1] == pytest.approx(433.15) and last[1] == pytest.approx(435.15)
    assert last[2] == pytest.approx(435.15, abs=0.1)
    assert "final" in capsys.readouterr().out


def test_tune_runs_the_fast_backend(tmp_path, capsys):
    """``--backend fast`` (refused as an unknown backend before the registry): the tank's
    T_bulk, stepped +2 K, ends within 0.1 K of its target after 6 h on the fast MPC."""
    prefix = tmp_path / "tank"
    code = main(["tune", "asphalt_tank", "--backend", "fast", "--step", "2", "--duration",
                 "21600", "--horizon", "15", "--out", str(prefix)])
    assert code == 0, capsys.readouterr().err
    with (tmp_path / "tank.csv").open() as stream:
        last = list(csv.reader(stream))[-1]
    assert float(last[2]) == pytest.approx(float(last[1]), abs=0.1)


@pytest.mark.parametrize(("argv", "message"), [
    (["tune", "teapot"], "unknown plant kind 'teapot'"),
    (["tune", "asphalt_tank", "--output", "T_top"], "unknown output 'T_top'"),
    (["tune", "asphalt_tank", "--horizon", "0"], "horizon: 0 is outside [1, 500]"),
    (["tune", "asphalt_tank", "--tracking", "T_bulk"], "--tracking 'T_bulk': expected NAME=WEIGHT"),
    (["tune", "asphalt_tank", "--step", "100"], "above its upper bound 473.15 K"),
    (["tune", "asphalt_tank", "--backend", "fillage-rule"],
     ("backend: 'fillage-rule' does not fit plant kind 'asphalt_tank' (it fits rod_pump); "
      "backends for asphalt_tank: do-mpc, fast")),
])
def test_tune_refuses_bad_options_naming_them(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err
