"""``twinloop replay``: an asset's recorded history through its twin with a new tuning,
off line, as a CSV, a PNG and a printed comparison.

    twinloop replay --from FILE.parquet|FILE.csv --asset ID [--site SITE]
                    [--tuning TUNING.json] [--backend B] [--horizon N]
                    [--tracking Y=W ...] [--move-suppression U=W ...] [--out PREFIX]

FILE is a ``twinloop history export`` of the asset (raw, every signal it records). The
tuning is the site file's, changed by TUNING.json (a controller tuning as
``PUT /assets/{id}/controller`` takes it, and an ``estimator`` object merged over the
asset's estimator settings) and then by the options. controllers.replay runs it, without
Ray and without any live fleet. Writes PREFIX.csv, one row per recorded tick: ``time_s``
from the first tick, then per state and estimated parameter its recorded estimate, the
replayed one and its std; recorded and replayed NIS and anomaly flags; per writable
signal the recorded requested and applied values and the replayed proposal and what the
safety policy would have let through, each named with its unit. PREFIX.png plots them
(replayed with its one-sigma band against recorded, serve.whatif_cli.plot).
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from serve import whatif_cli

MAX_PLOTTED = 5


def add_parser(commands, default_site: str) -> None:
    replay = commands.add_parser("replay", help="recorded history through the twin with a new "
                                 "tuning, off line, as a PNG plot and a CSV")
    replay.add_argument("--site", default=default_site, help="site file (TOML) of the asset")
    replay.add_argument("--from", dest="source", required=True, metavar="FILE",
                        help="a `twinloop history export` of the asset (.parquet or .csv)")
    replay.add_argument("--asset", required=True, help="asset id")
    replay.add_argument("--tuning", help="JSON file: a controller tuning change (backend, "
                        "horizon, tracking, move_suppression, limits, ...) and 'estimator'")
    replay.add_argument("--backend", help="controller backend")
    replay.add_argument("--horizon", type=int, help="prediction horizon, controller steps")
    replay.add_argument("--tracking", action="append", default=[], metavar="OUTPUT=WEIGHT",
                        help="tracking weight of an output (repeatable)")
    replay.add_argument("--move-suppression", action="append", default=[],
                        metavar="INPUT=WEIGHT", help="move-suppression weight (repeatable)")
    replay.add_argument("--out", help="path prefix of the .png and .csv "
                        "(default: replay_<asset>)")


def run(args: argparse.Namespace, weights) -> int:
    """``weights(pairs, option)`` parses NAME=WEIGHT options (serve.cli)."""
    import plants
    from controllers.replay import read_recording, replay
    from engine.config import load_site

    site = plants.resolve_site(load_site(args.site), args.site)
    asset = next((a for a in site.assets if a.id == args.asset), None)
    if asset is None:
        raise ValueError(f"--asset {args.asset!r}: not an asset of {args.site}; its assets: "
                         f"{', '.join(a.id for a in site.assets)}")
    tuning = _tuning(args, weights)
    result = replay(asset, read_recording(args.source, asset.id), tuning, site.interlocks)
    prefix = Path(args.out or f"replay_{asset.id}")
    csv_path = write_csv(result, prefix.with_name(prefix.name + ".csv"))
    png_path = plot(result, prefix.with_name(prefix.name + ".png"))
    for line in summary_lines(result.summary(), result.units):
        print(line)
    print(f"twinloop replay: wrote {png_path} and {csv_path}")
    return 0


def _tuning(args: argparse.Namespace, weights) -> dict[str, Any]:
    tuning: dict[str, Any] = {}
    if args.tuning:
        try:
            tuning = json.loads(Path(args.tuning).read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise ValueError(f"--tuning {args.tuning!r}: {error}") from None
        if not isinstance(tuning, dict):
            raise ValueError(f"--tuning {args.tuning!r}: must hold a JSON object")
    for field, option in (("tracking", "--tracking"), ("move_suppression", "--move-suppression")):
        given = weights(getattr(args, field), option)
        if given:
            tuning[field] = {**tuning.get(field, {}), **given}
    for field in ("backend", "horizon"):
        if getattr(args, field) is not None:
            tuning[field] = getattr(args, field)
    return tuning


def summary_lines(summary: dict[str, Any], units: dict[str, str]) -> list[str]:
    def value(x: float | None, unit: str) -> str:
        return "n/a" if x is None else f"{x:.4g} {unit}".rstrip()

    lines = [f"{summary['ticks']} ticks; anomalies recorded {summary['anomalies']['recorded']}, "
             f"replayed {summary['anomalies']['replayed']}"]
    lines += [f"  estimate {name}: mean |replayed - recorded| {value(gap, units[name])}"
              for name, gap in summary["estimate_gap"].items()]
    for name, gap in summary["proposal_gap"].items():
        move = summary["move"][name]
        lines.append(f"  setpoint {name}: mean |proposed - requested| "
                     f"{value(gap, units[name])}, |gated - applied| "
                     f"{value(summary['applied_gap'][name], units[name])}; mean move per tick "
                     f"recorded {value(move['recorded'], units[name])}, replayed "
                     f"{value(move['replayed'], units[name])}")
    lines += [f"  recorded KPI {name}: mean {mean:.4g}"
              for name, mean in summary["recorded_kpis"].items()]
    return lines


def _columns(result) -> list[tuple[str, str, str, np.ndarray, np.ndarray | None]]:
    """(name, unit, role, values, std) per CSV column after time_s."""
    columns: list[tuple[str, str, str, np.ndarray, np.ndarray | None]] = []
    for name, replayed in result.replayed_estimate.items():
        unit = result.units[name]
        columns += [(name, unit, "recorded", result.recorded_estimate[name], None),
                    (name, unit, "replayed", replayed, None),
                    (name, unit, "replayed std", result.replayed_std[name], None)]
    columns += [("nis", "1", "recorded", result.recorded_nis, None),
                ("nis", "1", "replayed", result.replayed_nis, None),
                ("anomaly", "", "recorded", result.recorded_anomaly.astype(float), None),
                ("anomaly", "", "replayed", result.replayed_anomaly.astype(float), None)]
    for name in result.proposed:
        unit = result.units[name]
        columns += [(name, unit, role, values[name], None) for role, values in (
            ("requested", result.requested), ("applied", result.applied),
            ("proposed", result.proposed), ("gated", result.gated))]
    return columns


def write_csv(result, path: str | Path) -> Path:
    """The CSV of the module docstring; an empty cell where there is no value."""
    path = Path(path)
    columns = _columns(result)
    header = ["time_s", *(f"{name} {role} [{unit}]".replace(" []", "")
                          for name, unit, role, _, _ in columns)]
    with path.open("w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(header)
        for k, t in enumerate(result.time - result.time[0]):
            writer.writerow([float(t), *("" if not np.isfinite(v[k]) else float(v[k])
                                         for _, _, _, v, _ in columns)])
    return path


def plot(result, path: str | Path) -> Path:
    """PNG: per writable signal the replayed proposal against the recorded request, per
    state the replayed estimate (one-sigma band) against the recorded one, then NIS."""
    def trajectory(unit: str, value: np.ndarray, std: np.ndarray | None = None) -> dict:
        spread = np.zeros_like(value) if std is None else std
        return {"unit": unit, "value": value.tolist(), "lower": (value - spread).tolist(),
                "upper": (value + spread).tolist()}

    replayed, recorded = {}, {}
    for name in result.proposed:
        replayed[name] = trajectory(result.units[name], result.proposed[name])
        recorded[name] = trajectory(result.units[name], result.requested[name])
    for name, values in result.replayed_estimate.items():
        replayed[name] = trajectory(result.units[name], values, result.replayed_std[name])
        recorded[name] = trajectory(result.units[name], result.recorded_estimate[name])
    replayed["nis"] = trajectory("1", result.replayed_nis)
    recorded["nis"] = trajectory("1", result.recorded_nis)
    signals = [*list(replayed)[:MAX_PLOTTED - 1], "nis"]
    figure = {"asset": result.asset, "time": (result.time - result.time[0]).tolist(),
              "scenario": {"trajectories": replayed, "kpis": {"crossings": []}},
              "baseline": {"trajectories": recorded}}
    return whatif_cli.plot(figure, signals, path, labels=("replayed", "recorded"),
                           title=f"{result.asset}: replayed with the new tuning against the "
                           "record", time_label="time from the first tick [h]")
