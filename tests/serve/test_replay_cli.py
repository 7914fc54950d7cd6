"""``twinloop replay`` end to end, without Ray: a recorded run of tank-01 exported as the
historian exports it, replayed with a new tuning to a CSV and a PNG."""

from __future__ import annotations

import csv
import json

import pyarrow.compute as pc
import pyarrow.parquet
import pytest

from serve.cli import main
from tests.conftest import TWO_TANKS
from tests.controllers.test_replay import PERIODS, record, tank


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    path = tmp_path_factory.mktemp("replay_cli") / "history.parquet"
    record(tank(), path)
    return path


def test_replay_writes_the_comparison_and_prints_its_summary(capsys, tmp_path, history):
    tuning = tmp_path / "tuning.json"
    tuning.write_text(json.dumps({"backend": "fast", "horizon": 10,
                                  "move_suppression": {"m_oil": 10.0}}))
    prefix = tmp_path / "out" / "tank"
    prefix.parent.mkdir()
    assert main(["replay", "--site", str(TWO_TANKS), "--from", str(history), "--asset",
                 "tank-01", "--tuning", str(tuning), "--tracking", "T_bulk=100",
                 "--out", str(prefix)]) == 0
    out = capsys.readouterr().out
    assert f"{PERIODS} ticks; anomalies recorded 0, replayed 0" in out
    assert "estimate T_bulk: mean |replayed - recorded| 0 K" in out
    assert "setpoint m_oil: mean |proposed - requested|" in out
    with (tmp_path / "out" / "tank.csv").open() as stream:
        rows = list(csv.DictReader(stream))
    assert len(rows) == PERIODS
    assert float(rows[0]["time_s"]) == 0.0 and float(rows[-1]["time_s"]) == 120.0 * (PERIODS - 1)
    assert float(rows[3]["T_bulk replayed [K]"]) == pytest.approx(
        float(rows[3]["T_bulk recorded [K]"]))
    first = rows[0]
    assert 0 < float(first["m_oil proposed [kg/s]"]) < float(first["m_oil requested [kg/s]"])
    assert {"nis recorded [1]", "anomaly replayed", "m_oil gated [kg/s]",
            "parameter.k_foul replayed std [1]"} <= set(first)
    assert (tmp_path / "out" / "tank.png").read_bytes()[:4] == b"\x89PNG"


def test_replay_refuses_an_unknown_asset_and_a_missing_output(capsys, tmp_path, history):
    common = ["replay", "--site", str(TWO_TANKS), "--backend", "fast", "--horizon", "10",
              "--out", str(tmp_path / "r")]
    assert main([*common, "--from", str(history), "--asset", "tank-09"]) == 2
    assert "--asset 'tank-09': not an asset of" in capsys.readouterr().err
    assert main([*common, "--from", str(history), "--asset", "tank-02"]) == 2
    assert "no history of asset 'tank-02'; it holds tank-01" in capsys.readouterr().err
    table = pyarrow.parquet.read_table(history)
    pyarrow.parquet.write_table(table.filter(pc.not_equal(table["signal"], "T_bulk")),
                                tmp_path / "partial.parquet")
    assert main([*common, "--from", str(tmp_path / "partial.parquet"), "--asset",
                 "tank-01"]) == 2
    assert "measured output(s) T_bulk not recorded" in capsys.readouterr().err
    assert not (tmp_path / "r.csv").exists()
