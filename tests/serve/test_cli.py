"""The ``twinloop`` command without Ray: the register map it prints, and its errors."""

from __future__ import annotations

import os

import pytest

from serve.cli import main
from tests.conftest import MQTT_TANK, TWO_TANKS


@pytest.fixture(autouse=True)
def environment():
    """``twinloop demo`` sets Ray's variables (RAY_AUTH_MODE=token, ...) in its process's
    environment before it checks the site; run here, in pytest's process, it must not leave
    them to the embedded Ray a later test starts (its GCS would then want a token)."""
    saved = os.environ.copy()
    yield
    os.environ.clear()
    os.environ.update(saved)


def test_modbus_map_prints_every_register_of_the_site(capsys):
    assert main(["modbus-map", "--site", str(TWO_TANKS)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["asset", "signal", "direction", "table", "address", "type",
                                "unit", "word", "order", "unit", "id", "endpoint"]
    rows = [line.split() for line in lines[1:]]
    assert [(r[0], r[1], r[2], r[4]) for r in rows] == [
        (asset, signal, direction, address)
        for asset in ("tank-01", "tank-02")
        for signal, direction, address in (("sample_time", "timestamp", "0-3"),
                                           ("T_bulk", "measurement", "4-5"),
                                           ("T_return", "measurement", "6-7"),
                                           ("m_oil", "setpoint", "0-1"))]
    assert rows[1][5:] == ["float32", "K", "ABCD", "1", "modbus://127.0.0.1:5020"]
    assert rows[-1][-1] == "modbus://127.0.0.1:5021"


def test_modbus_map_of_a_missing_file_names_it(capsys, tmp_path):
    assert main(["modbus-map", "--site", str(tmp_path / "nowhere.toml")]) == 2
    assert "nowhere.toml: cannot read" in capsys.readouterr().err


def test_demo_refuses_a_bad_broker_before_starting_ray(capsys):
    """A malformed --mqtt, or a site whose assets need MQTT and no broker, is exit 2 with a
    message naming the option, before Ray starts."""
    assert main(["demo", "--site", str(TWO_TANKS), "--mqtt", "bogus://x"]) == 2
    assert "--mqtt: MQTT broker 'bogus://x': expected mqtt://host:port" in capsys.readouterr().err
    assert main(["demo", "--site", str(MQTT_TANK)]) == 2
    assert "take their measurements from MQTT: give a broker" in capsys.readouterr().err


def test_demo_refuses_a_controller_the_asset_cannot_run_before_starting_ray(capsys, tmp_path):
    """A tank on the rod pumps' fillage rule is exit 2 naming the file and the key, from
    the one backend registry, before Ray starts (before: a crash of the asset actor)."""
    site = tmp_path / "site.toml"
    site.write_text('[site]\nname = "t"\n[[assets]]\nid = "tank-01"\nkind = "asphalt_tank"\n'
                    '[assets.controller]\nbackend = "fillage-rule"\n')
    assert main(["demo", "--site", str(site)]) == 2
    assert (f"{site}: assets[0].controller.backend: 'fillage-rule' does not fit plant kind "
            "'asphalt_tank'") in capsys.readouterr().err


def test_site_generate_prints_a_site_that_the_demo_accepts(capsys, tmp_path):
    """`twinloop site generate` prints the generator's file; `twinloop demo --site` loads
    and resolves it: with a malformed --mqtt it stops at the broker check, which comes
    after the site's, before Ray starts."""
    from plants.sitegen import SiteCounts, generate_site

    argv = ["site", "generate", "--wells", "2", "--cells", "1", "--pumps", "1", "--tanks", "1",
            "--terminals", "1", "--pipelines", "1", "--seed", "7", "--name", "gen"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert text == generate_site(SiteCounts(wells=2, cells=1, pumps=1, tanks=1, terminals=1,
                                            pipelines=1), seed=7, name="gen")
    site = tmp_path / "gen.toml"
    site.write_text(text)
    assert main(["demo", "--site", str(site), "--mqtt", "bogus://x"]) == 2
    assert capsys.readouterr().err == (f"twinloop: {site}: --mqtt: MQTT broker 'bogus://x': "
                                       "expected mqtt://host:port\n")


def test_site_generate_refuses_a_negative_count(capsys):
    assert main(["site", "generate", "--pumps", "-2"]) == 2
    assert "pumps: -2 must be a whole number >= 0" in capsys.readouterr().err


def test_history_export_writes_recorded_values_with_their_units(capsys, tmp_path):
    """What a historian recorded (tick records of tank-01 through the writer), exported by
    ``twinloop history export`` to Parquet and CSV, and an unknown asset refused."""
    import pyarrow.csv
    import pyarrow.parquet

    from engine.config import HistorianSettings
    from engine.historian import Historian, open_store
    from engine.history import SeriesSpec, TickRecord
    from engine.history_writer import HistoryWriter
    from engine.messages import Measurement

    store_path = tmp_path / "history.duckdb"
    settings = HistorianSettings(path=str(store_path))
    historian = Historian(open_store(settings), settings)
    historian.store.declare([SeriesSpec("tank-01", "T_bulk", "K")])
    writer = HistoryWriter(historian)
    writer.submit([TickRecord(asset="tank-01", time=1.7e9 + 120.0 * k, measurement=Measurement(
        "tank-01", 1.7e9 + 120.0 * k, {"T_bulk": 420.0 + k})) for k in range(4)])
    assert writer.close(60.0)
    historian.store.close()
    site = tmp_path / "site.toml"
    site.write_text(TWO_TANKS.read_text().replace(
        "[http]", f'[historian]\npath = "{store_path}"\n\n[http]'))

    common = ["history", "export", "--site", str(site), "--signals", "T_bulk",
              "--since", "1.7e9", "--until", "1700001000"]
    parquet, csv_file = tmp_path / "h.parquet", tmp_path / "h.csv"
    assert main([*common, "--assets", "tank-01",
                 "--out", str(parquet)]) == 0
    table = pyarrow.parquet.read_table(parquet).to_pydict()
    assert table["value"] == [420.0, 421.0, 422.0, 423.0] and set(table["unit"]) == {"K"}
    assert "4 rows of 1 series" in capsys.readouterr().out
    assert main([*common, "--assets", "tank-01", "--mode",
                 "aggregate", "--step", "480", "--out", str(csv_file)]) == 0
    rows = pyarrow.csv.read_csv(csv_file).to_pydict()
    assert rows["count"] == [4.0, 0.0, 0.0] and rows["max"][0] == 423.0
    capsys.readouterr()
    assert main([*common, "--assets", "tank-09",
                 "--out", str(parquet)]) == 2
    assert "tank-09" in capsys.readouterr().err
