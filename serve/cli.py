"""The ``twinloop`` command line.

    twinloop demo [--site examples/pilot.toml] [--speed X] [--duration S] [--address A]

runs a site on an embedded Ray (or on the Ray cluster at ``--address``), serves the
HTTP API and metrics, prints where each service listens, and runs until stopped
(Ctrl-C) or until ``--duration`` wall seconds have passed.

    twinloop tune <kind> [--output Y] [--step DY] [--duration S] [--horizon N]
                  [--backend B] [--tracking Y=W ...] [--move-suppression U=W ...]
                  [--noise F] [--out PREFIX]

simulates a closed-loop step response of one plant kind under a tuning, offline and
without Ray (controllers.step_response), and writes PREFIX.png and PREFIX.csv.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path

from engine.config import ConfigError, load_site

DEFAULT_SITE = Path(__file__).resolve().parent.parent / "examples" / "pilot.toml"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="twinloop", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run a site with simulated plants")
    demo.add_argument("--site", default=str(DEFAULT_SITE), help="site file (TOML)")
    demo.add_argument("--speed", type=float, help="twin seconds per wall second "
                      "(default: the site file's site.speed)")
    demo.add_argument("--duration", type=float, help="stop after this many wall seconds")
    demo.add_argument("--address", help="Ray cluster address (default: start an embedded Ray)")
    demo.add_argument("--host", help="HTTP bind address (default: the site file's http.host)")
    demo.add_argument("--port", type=int, help="HTTP port (default: the site file's http.port)")
    tune = commands.add_parser("tune", help="closed-loop step response of a plant kind "
                               "under a tuning, as a PNG plot and a CSV")
    tune.add_argument("kind", help="plant kind (asphalt_tank, centrifugal_pump, ...)")
    tune.add_argument("--output", help="output to step (default: the kind's first reference)")
    tune.add_argument("--step", type=float, help="step size in the output's SI unit "
                      "(default: 2 %% of its span)")
    tune.add_argument("--duration", type=float, help="simulated seconds (default: five "
                      "horizons); the step comes after the first fifth")
    tune.add_argument("--horizon", type=int, help="prediction horizon, controller steps")
    tune.add_argument("--backend", help="controller backend")
    tune.add_argument("--tracking", action="append", default=[], metavar="OUTPUT=WEIGHT",
                      help="tracking weight of an output (repeatable)")
    tune.add_argument("--move-suppression", action="append", default=[],
                      metavar="INPUT=WEIGHT", help="move-suppression weight of an input "
                      "(repeatable)")
    tune.add_argument("--noise", type=float, default=0.0,
                      help="measurement-noise multiplier (default 0: noiseless)")
    tune.add_argument("--out", help="path prefix of the .png and .csv "
                      "(default: step_<kind>_<output>)")
    args = parser.parse_args(argv)
    try:
        if args.command == "tune":
            return run_tune(args)
        return run_demo(args)
    except ConfigError as error:
        print(f"twinloop: {error}", file=sys.stderr)
        return 2
    except ValueError as error:
        print(f"twinloop {args.command}: {error}", file=sys.stderr)
        return 2


def run_tune(args: argparse.Namespace) -> int:
    import plants
    from controllers import step_response as steps

    if args.kind not in plants.BUILDERS:
        raise ValueError(f"unknown plant kind {args.kind!r}; known: {', '.join(plants.BUILDERS)}")
    output = args.output or steps.default_output(args.kind)
    tuning: dict = {"tracking": _weights(args.tracking, "--tracking"),
                    "move_suppression": _weights(args.move_suppression, "--move-suppression")}
    if args.horizon is not None:
        tuning["horizon"] = args.horizon
    if args.backend is not None:
        tuning["backend"] = args.backend
    step = args.step if args.step is not None else steps.default_step(args.kind, output)
    duration = args.duration or steps.default_duration(args.kind, args.horizon)
    response = steps.step_response(args.kind, output, step, duration, tuning, noise=args.noise)
    prefix = Path(args.out or f"step_{args.kind}_{output}")
    csv_path = response.write_csv(prefix.with_name(prefix.name + ".csv"))
    png_path = response.plot(prefix.with_name(prefix.name + ".png"))
    summary = steps.summarise(response)
    unit = response.units[output]
    print(f"twinloop tune: {args.kind} {output} {summary['target'] - step:g} -> "
          f"{summary['target']:g} {unit} at t = {response.step_time:g} s; final "
          f"{summary['final']:.6g} {unit} (error {summary['final_error']:+.3g}), overshoot "
          f"{summary['overshoot']:.3g} {unit}, rise time (90 %) {summary['rise_time_s']:g} s")
    print(f"  plot {png_path}\n  data {csv_path}")
    return 0


def _weights(pairs: list[str], option: str) -> dict[str, float]:
    """["T_bulk=50", ...] -> {"T_bulk": 50.0}; ValueError naming the option otherwise."""
    weights = {}
    for pair in pairs:
        name, _, value = pair.partition("=")
        try:
            weights[name] = float(value)
        except ValueError:
            raise ValueError(f"{option} {pair!r}: expected NAME=WEIGHT") from None
    return weights


def run_demo(args: argparse.Namespace) -> int:
    import plants

    site = plants.resolve_site(load_site(args.site), args.site)
    if args.speed is not None and not args.speed > 0:
        raise ConfigError(args.site, "--speed", f"must be positive, got {args.speed}")
    speed = args.speed or site.site.speed
    host = args.host or site.http.host
    port = args.port or site.http.port

    import ray
    from ray import serve

    from actors import NAMESPACE
    from actors.fleet import build_fleet
    from engine.clock import ClockSpec
    from serve.app import start_http

    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    print(f"twinloop: starting site {site.site.name!r} ({len(site.assets)} assets) "
          f"at {speed:g}x real time", flush=True)
    embedded = {} if args.address else {"_node_ip_address": host}
    ray.init(address=args.address, namespace=NAMESPACE, include_dashboard=False,
             logging_level="WARNING", log_to_driver=False, **embedded)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    fleet = build_fleet(site, ClockSpec(speed=speed))
    try:
        fleet.start()
        url = start_http(fleet, host, port)
        print(f"  HTTP API     {url}/assets   (OpenAPI: {url}/docs)", flush=True)
        print(f"  metrics      {url}/metrics", flush=True)
        print(f"  audit log    {Path(site.site.audit_db).resolve()}", flush=True)
        print("  OPC UA       not yet served (issue 6)", flush=True)
        print("  Modbus TCP   not yet served (issue 6)", flush=True)
        print(f"  Ray          {'cluster ' + args.address if args.address else 'embedded'}",
              flush=True)
        print("Ctrl-C stops." if args.duration is None else f"Stopping in {args.duration:g} s.",
              flush=True)
        try:
            stop.wait(args.duration)
        except KeyboardInterrupt:
            pass
    finally:
        serve.shutdown()
        fleet.shutdown()
        ray.shutdown()
    print("twinloop: stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
