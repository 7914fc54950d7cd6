"""The ``twinloop`` command line.

    twinloop demo [--site examples/pilot.toml] [--speed X] [--duration S] [--address A]
                  [--mqtt mqtt://host:port]
    twinloop modbus-map [--site examples/pilot.toml]

``demo`` runs a site on an embedded Ray (or on the Ray cluster at ``--address``) with
each simulated plant behind a Modbus TCP PLC simulator, serves the HTTP API and metrics,
prints where each service listens, and runs until stopped (Ctrl-C) or until
``--duration`` wall seconds have passed. With ``--mqtt`` it publishes every asset's
estimates and setpoints to that broker and ingests the measurements of assets whose
``measurement_source`` is "mqtt". ``modbus-map`` prints the site's register map.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path

import msgspec

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
    demo.add_argument("--modbus-port", type=int, help="Modbus TCP port of the first asset's PLC; "
                      "asset i listens on this + i (default: the site file's modbus.base_port)")
    registers = commands.add_parser("modbus-map", help="print the site's Modbus register map")
    registers.add_argument("--site", default=str(DEFAULT_SITE), help="site file (TOML)")
    demo.add_argument("--mqtt", metavar="URL", help="MQTT broker, mqtt://host:port "
                      "(default: none)")
    args = parser.parse_args(argv)
    try:
        if args.command == "modbus-map":
            return print_modbus_map(args)
        return run_demo(args)
    except ConfigError as error:
        print(f"twinloop: {error}", file=sys.stderr)
        return 2


def print_modbus_map(args: argparse.Namespace) -> int:
    import plants
    from engine.registers import format_map, site_map

    site = plants.resolve_site(load_site(args.site), args.site)
    models = {asset.id: plants.model_of(asset) for asset in site.assets}
    print(format_map(site_map(site, models)))
    return 0


def run_demo(args: argparse.Namespace) -> int:
    import plants

    site = load_site(args.site)
    if args.modbus_port is not None:
        if not 1 <= args.modbus_port <= 65536 - max(1, len(site.assets)):
            raise ConfigError(args.site, "--modbus-port", f"{args.modbus_port} leaves no port "
                              f"for each of {len(site.assets)} assets")
        site = msgspec.structs.replace(
            site, modbus=msgspec.structs.replace(site.modbus, base_port=args.modbus_port))
    site = plants.resolve_site(site, args.site)
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
    try:
        fleet = build_fleet(site, ClockSpec(speed=speed), modbus=True, mqtt=args.mqtt)
    except ValueError as error:
        raise ConfigError(args.site, "--mqtt", str(error)) from None
    try:
        fleet.start()
        url = start_http(fleet, host, port)
        print(f"  HTTP API     {url}/assets   (OpenAPI: {url}/docs)", flush=True)
        print(f"  metrics      {url}/metrics", flush=True)
        print(f"  audit log    {Path(site.site.audit_db).resolve()}", flush=True)
        print("  OPC UA       not yet served (issue 6)", flush=True)
        if fleet.plcs:
            ports = sorted(plc.port for plc in fleet.plcs.values())
            unit_ids = sorted({plc.unit_id for plc in fleet.plcs.values()})
            span = f"{ports[0]}" if len(ports) == 1 else f"{ports[0]}-{ports[-1]}"
            print(f"  Modbus TCP   {site.modbus.host}:{span}   (one PLC per "
                  f"asset, unit id {', '.join(map(str, unit_ids))}; twinloop modbus-map "
                  "lists the registers)", flush=True)
        if fleet.mqtt is not None:
            connected = ray.get(fleet.mqtt.wait_connected.remote(5.0))
            print(f"  MQTT         {args.mqtt}   (twinloop/{site.site.name}/<asset id>/"
                  "{measurements,estimates,setpoints}"
                  f"{'' if connected else '; broker not reachable yet, retrying'})", flush=True)
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
