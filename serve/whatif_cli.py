"""``twinloop whatif``: a what-if of a live asset over the HTTP API, as a CSV and a PNG.

    twinloop whatif ASSET [--url URL] [--token TOKEN] [--duration S]
                    [--set SIGNAL=V ...] [--disturbance D=V ...] [--reference Y=V ...]
                    [--parameter P=V ...] [--mode MODE] [--no-controller] [--samples N]
                    [--seed N] [--timeout S] [--signal NAME ...] [--out PREFIX]

POSTs ``/assets/ASSET/whatif`` (operator token: ``--token`` or $TWINLOOP_TOKEN) and
writes PREFIX.csv, one row per control period: ``time_s`` then, for every signal, its
scenario value, band (``lower``, ``upper``) and baseline value, named with the unit; and
PREFIX.png: the signals asked for (``--signal``; default those whose limits the scenario
crosses and those it changes, at most MAX_PLOTTED), the scenario with its band against
the baseline, each crossed limit as a line. Prints the KPIs of both runs.
"""

from __future__ import annotations

import argparse
import csv
import os
from pathlib import Path
from typing import Any

TOKEN_VARIABLE = "TWINLOOP_TOKEN"
MAX_PLOTTED = 4


def add_parser(commands) -> None:
    whatif = commands.add_parser("whatif", help="what-if of a live asset over HTTP, as a PNG "
                                 "plot and a CSV")
    whatif.add_argument("asset", help="asset id")
    whatif.add_argument("--url", default="http://127.0.0.1:8000", help="the HTTP API")
    whatif.add_argument("--token", help=f"operator bearer token (default ${TOKEN_VARIABLE})")
    whatif.add_argument("--duration", type=float, default=86400.0,
                        help="twin seconds to look ahead (default 86400)")
    for option, field in (("--set", "setpoints"), ("--disturbance", "disturbances"),
                          ("--reference", "reference"), ("--parameter", "parameters")):
        whatif.add_argument(option, dest=field, action="append", default=[],
                            metavar="NAME=VALUE", help=f"changes.{field} (SI; repeatable)")
    whatif.add_argument("--mode", choices=["OFF", "MANUAL", "ADVISORY", "AUTONOMOUS"])
    whatif.add_argument("--no-controller", action="store_true",
                        help="inputs hold instead of the controller running")
    whatif.add_argument("--samples", type=int, default=1, help="ensemble members (default 1)")
    whatif.add_argument("--seed", type=int, default=0)
    whatif.add_argument("--timeout", type=float, default=30.0, help="wall seconds (default 30)")
    whatif.add_argument("--signal", action="append", default=[], help="signal to plot "
                        "(repeatable)")
    whatif.add_argument("--out", help="path prefix of the .png and .csv "
                        "(default: whatif_<asset>)")


def run(args: argparse.Namespace) -> int:
    import httpx

    token = args.token or os.environ.get(TOKEN_VARIABLE)
    if not token:
        raise ValueError(f"--token: none given and ${TOKEN_VARIABLE} is not set")
    changes: dict[str, Any] = {field: _values(getattr(args, field), field)
                               for field in ("setpoints", "disturbances", "reference",
                                             "parameters")}
    if args.mode:
        changes["mode"] = args.mode
    body = {"duration_s": args.duration, "changes": changes,
            "controller": not args.no_controller, "samples": args.samples,
            "seed": args.seed, "timeout_s": args.timeout}
    reply = httpx.post(f"{args.url.rstrip('/')}/assets/{args.asset}/whatif", json=body,
                       headers={"Authorization": f"Bearer {token}"},
                       timeout=args.timeout + 30.0)
    if reply.status_code != 200:
        raise ValueError(f"{reply.status_code}: {reply.json().get('detail', reply.text)}")
    result = reply.json()
    prefix = args.out or f"whatif_{args.asset}"
    signals = args.signal or plotted(result, changes)
    unknown = sorted(set(signals) - set(result["scenario"]["trajectories"]))
    if unknown:
        raise ValueError(f"--signal: {unknown} are not signals of {args.asset}")
    csv_path = write_csv(result, f"{prefix}.csv")
    png_path = plot(result, signals, f"{prefix}.png")
    for name in ("scenario", "baseline"):
        print(f"{name}: {summary(result[name]['kpis'])}")
    print(f"twinloop whatif: wrote {png_path} and {csv_path} "
          f"({result['compute_time_s']:.2f} s to compute)")
    return 0


def _values(pairs: list[str], field: str) -> dict[str, float]:
    values = {}
    for pair in pairs:
        name, _, value = pair.partition("=")
        try:
            values[name] = float(value)
        except ValueError:
            raise ValueError(f"changes.{field} {pair!r}: expected NAME=VALUE") from None
    return values


def plotted(result: dict[str, Any], changes: dict[str, Any]) -> list[str]:
    """The signals whose limits the scenario crosses, then those it changes."""
    names = [c["signal"] for c in result["scenario"]["kpis"]["crossings"]]
    names += [n for field in ("setpoints", "disturbances", "reference")
              for n in changes.get(field, {})]
    known = result["scenario"]["trajectories"]
    names = [n for n in dict.fromkeys(names) if n in known]
    return names[:MAX_PLOTTED] or list(known)[:1]


def summary(kpis: dict[str, Any]) -> str:
    parts = []
    if kpis["energy"]["value"] is not None:
        parts.append(f"energy {kpis['energy']['value'] / 3.6e9:.3g} MWh")
    if kpis["cost"]["value"] is not None:
        parts.append(f"cost {kpis['cost']['value']:.2f} {kpis['currency'] or ''}".rstrip())
    first = kpis["first_crossing_s"]
    parts.append("no limit crossed" if first is None else
                 f"first limit crossed after {first / 3600:.2f} h: "
                 + ", ".join(f"{c['limit']} at {c['first_time_s'] / 3600:.2f} h"
                             for c in kpis["crossings"] if c["first_time_s"] is not None))
    return "; ".join(parts)


def write_csv(result: dict[str, Any], path: str | Path) -> Path:
    path = Path(path)
    scenario, baseline = (result[run]["trajectories"] for run in ("scenario", "baseline"))
    header, columns = ["time_s"], [result["time"]]
    for name, trajectory in scenario.items():
        unit = trajectory["unit"]
        header += [f"{name} [{unit}]", f"{name} lower [{unit}]", f"{name} upper [{unit}]",
                   f"{name} baseline [{unit}]"]
        columns += [trajectory["value"], trajectory["lower"], trajectory["upper"],
                    baseline[name]["value"]]
    with path.open("w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(header)
        writer.writerows(zip(*columns, strict=True))
    return path


def plot(result: dict[str, Any], signals: list[str], path: str | Path,
         labels: tuple[str, str] = ("scenario", "baseline"), title: str | None = None,
         time_label: str = "time from now [h]") -> Path:
    """PNG: per signal, the ``scenario`` run with its band against the ``baseline`` run
    (named ``labels``), and the scenario's crossed limits; time in hours."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    path = Path(path)
    hours = [t / 3600.0 for t in result["time"]]
    figure, axes = pyplot.subplots(len(signals), 1, sharex=True, squeeze=False,
                                   figsize=(8, 2.6 * len(signals)))
    for axis, name in zip(axes[:, 0], signals, strict=True):
        scenario = result["scenario"]["trajectories"][name]
        baseline = result["baseline"]["trajectories"][name]
        axis.fill_between(hours, scenario["lower"], scenario["upper"], alpha=0.25,
                          label=f"{labels[0]} band")
        axis.plot(hours, scenario["value"], label=labels[0])
        axis.plot(hours, baseline["value"], linestyle="--", label=labels[1])
        for crossing in result["scenario"]["kpis"]["crossings"]:
            if crossing["signal"] == name:
                axis.axhline(crossing["bound"], color="red", linewidth=0.8, linestyle=":",
                             label=crossing["limit"])
        axis.set_ylabel(f"{name} [{scenario['unit']}]")
        axis.grid(True, alpha=0.3)
        axis.legend(loc="best", fontsize="small")
    axes[0, 0].set_title(title or f"{result['asset']}: what-if against its baseline")
    axes[-1, 0].set_xlabel(time_label)
    figure.tight_layout()
    figure.savefig(path, format="png", dpi=100)
    pyplot.close(figure)
    return path
