"""The ``twinloop`` command without Ray: the register map it prints, and its errors."""

from __future__ import annotations

from serve.cli import main
from tests.conftest import TWO_TANKS


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
