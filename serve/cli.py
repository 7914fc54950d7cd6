"""The ``twinloop`` command line.

    twinloop demo [--site examples/pilot.toml] [--speed X] [--duration S] [--address A]
                  [--host H] [--port P] [--opcua-port P] [--modbus-port P]
                  [--mqtt mqtt://host:port]
    twinloop modbus-map [--site examples/pilot.toml]
    twinloop site generate [--wells N] [--cells N] [--pumps N] [--tanks N] [--terminals N]
                  [--pipelines N] [--seed S] [--name NAME] [--speed X] > site.toml
    twinloop token add --user NAME --role viewer|operator|engineer|admin [--file F]
    twinloop token remove --user NAME [--file F]
    twinloop history export --assets A,B --signals X,Y --out FILE.parquet|FILE.csv
                  [--site F] [--since T] [--until T] [--mode M] [--step S]
    twinloop tune <kind> [--output Y] [--step DY] [--duration S] [--horizon N]
                  [--backend B] [--tracking Y=W ...] [--move-suppression U=W ...]
                  [--noise F] [--out PREFIX]
    twinloop whatif <asset> [--url URL] [--token T] [--duration S] [--set U=V ...]
                  [--disturbance D=V ...] [--reference Y=V ...] [--parameter P=V ...]
                  [--mode M] [--no-controller] [--samples N] [--signal NAME ...]
                  [--out PREFIX]
    twinloop replay --from FILE.parquet|FILE.csv --asset ID [--site F] [--tuning F.json]
                  [--backend B] [--horizon N] [--tracking Y=W ...]
                  [--move-suppression U=W ...] [--out PREFIX]

``demo`` runs a site on an embedded Ray (or on the Ray cluster at ``--address``) with
each simulated plant behind a Modbus TCP PLC simulator, serves the HTTP API, metrics and
the OPC UA server, prints where each service listens, and runs until stopped (Ctrl-C)
or until ``--duration`` wall seconds have passed. SIGINT (Ctrl-C) and SIGTERM stop it
cleanly, exit status 0, also when it was started with SIGINT ignored (in the
background). With ``--mqtt`` it publishes every asset's estimates and setpoints to that
broker and ingests the measurements of assets whose ``measurement_source`` is "mqtt".
The HTTP API accepts the tokens of the site's token file (``http.tokens``) and an admin
token: the value of the environment variable TWINLOOP_ADMIN_TOKEN if set, else a new
one, printed. The demo removes that variable from its environment before Ray starts: no
Ray process or worker inherits it.

``modbus-map`` prints the site's register map. ``site generate`` prints a site file
with that many assets of each kind, their parameters and plant mismatch varied from the
seed (plants.sitegen). ``token add`` generates a bearer token,
prints it once and adds its salted hash to the token file (default ``var/tokens.toml``,
the site files' default ``http.tokens``); ``token remove`` revokes a user's tokens. A
running demo re-reads the file when it changes: both take effect without a restart.
``history export`` writes recorded history of the site's historian (``[historian]``) to
Parquet or CSV, one row per series and time with its unit (engine.historian.export);
it opens the store itself, so a DuckDB file only while no demo writes it (ask a running
demo over HTTP, ``format=csv``), a PostgreSQL server at any time.
``tune`` simulates a closed-loop step response of one plant kind under a tuning, offline
and without Ray (controllers.step_response), and writes PREFIX.png and PREFIX.csv.
``whatif`` asks a running site's HTTP API for a what-if of a live asset
(serve.whatif_cli) and writes PREFIX.png and PREFIX.csv.
``replay`` feeds an asset's exported history back through its twin with a new tuning,
off line and without Ray (controllers.replay, serve.replay_cli), and writes PREFIX.png
and PREFIX.csv comparing recorded and replayed.
"""

from __future__ import annotations

import argparse
import functools
import ipaddress
import os
import secrets
import signal
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from engine.config import ConfigError, HistorianSettings, HttpSettings, load_site
from serve import replay_cli, whatif_cli

ADMIN_TOKEN_VARIABLE = "TWINLOOP_ADMIN_TOKEN"

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
    demo.add_argument("--opcua-port", type=int,
                      help="OPC UA port (default: the site file's opcua.port, 4840)")
    demo.add_argument("--modbus-port", type=int, help="Modbus TCP port of the first asset's PLC; "
                      "asset i listens on this + i (default: the site file's modbus.base_port)")
    demo.add_argument("--mqtt", metavar="URL", help="MQTT broker, mqtt://host:port "
                      "(default: none)")
    registers = commands.add_parser("modbus-map", help="print the site's Modbus register map")
    registers.add_argument("--site", default=str(DEFAULT_SITE), help="site file (TOML)")
    _add_site_parser(commands)
    token_actions = commands.add_parser("token", help="manage bearer tokens").add_subparsers(
        dest="action", required=True)
    token = token_actions.add_parser("add", help="generate a token, store its hash")
    token.add_argument("--user", required=True, help="name recorded in the audit log")
    token.add_argument("--role", required=True,
                       choices=["viewer", "operator", "engineer", "admin"])
    token.add_argument("--file", default=HttpSettings().tokens, help="token file (TOML)")
    revoke = token_actions.add_parser("remove", help="revoke every token of a user")
    revoke.add_argument("--user", required=True, help="whose tokens to revoke")
    revoke.add_argument("--file", default=HttpSettings().tokens, help="token file (TOML)")
    _add_history_parser(commands)
    tune = commands.add_parser("tune", help="closed-loop step response of a plant kind "
                               "under a tuning, as a PNG plot and a CSV")
    tune.add_argument("kind", help="plant kind (asphalt_tank, centrifugal_pump, ...)")
    tune.add_argument("--output", help="output to step (default: the kind's first reference)")
    tune.add_argument("--step", type=float, help="step size in the output's SI unit "
                      "(default: 2 %% of its span)")
    tune.add_argument("--duration", type=float, help="simulated seconds (default: five "
                      "horizons); the step comes after the first fifth")
    tune.add_argument("--horizon", type=int, help="prediction horizon, controller steps")
    tune.add_argument("--backend", help="controller backend (default: the kind's); one that "
                      "does not fit the kind is refused, naming those that do")
    tune.add_argument("--tracking", action="append", default=[], metavar="OUTPUT=WEIGHT",
                      help="tracking weight of an output (repeatable)")
    tune.add_argument("--move-suppression", action="append", default=[],
                      metavar="INPUT=WEIGHT", help="move-suppression weight of an input "
                      "(repeatable)")
    tune.add_argument("--noise", type=float, default=0.0,
                      help="measurement-noise multiplier (default 0: noiseless)")
    tune.add_argument("--out", help="path prefix of the .png and .csv "
                      "(default: step_<kind>_<output>)")
    whatif_cli.add_parser(commands)
    replay_cli.add_parser(commands, str(DEFAULT_SITE))
    args = parser.parse_args(argv)
    try:
        if args.command == "token":
            return add_token(args) if args.action == "add" else remove_token(args)
        if args.command == "modbus-map":
            return print_modbus_map(args)
        if args.command == "tune":
            return run_tune(args)
        if args.command == "site":
            return generate_site(args)
        if args.command == "history":
            return export_history(args)
        if args.command == "whatif":
            return whatif_cli.run(args)
        if args.command == "replay":
            return replay_cli.run(args, _weights)
        return run_demo(args)
    except ConfigError as error:
        print(f"twinloop: {error}", file=sys.stderr)
        return 2
    except ValueError as error:
        print(f"twinloop {args.command}: {error}", file=sys.stderr)
        return 2


def _add_site_parser(commands) -> None:
    from plants.sitegen import COUNTS

    generate = commands.add_parser("site", help="site files").add_subparsers(
        dest="action", required=True).add_parser(
        "generate", help="print a site file with many assets of every kind, varied from a seed")
    for field, (kind, prefix, digits) in COUNTS.items():
        generate.add_argument(f"--{field}", type=int, default=0, metavar="N",
                              help=f"number of {kind} assets ({prefix}-{1:0{digits}d}, ...; "
                              "default 0: none)")
    generate.add_argument("--seed", type=int, default=0, help="seed of the variation "
                          "(default 0); the same seed gives the same file")
    generate.add_argument("--name", default="field", help="site name (default field)")
    generate.add_argument("--speed", type=float, default=60.0,
                          help="twin seconds per wall second (default 60)")


def _add_history_parser(commands) -> None:
    export = commands.add_parser("history", help="the historian's records").add_subparsers(
        dest="action", required=True).add_parser(
        "export", help="write recorded history to Parquet or CSV")
    export.add_argument("--site", default=str(DEFAULT_SITE), help="site file (TOML)")
    export.add_argument("--assets", required=True, help="asset ids, comma-separated")
    export.add_argument("--signals", required=True, help="history signals, comma-separated "
                        "(T_bulk, estimate.T_bulk, applied.m_oil, mode, ...)")
    export.add_argument("--since", type=float, help="UNIX s of the twin's clock (default: an "
                        "hour before --until)")
    export.add_argument("--until", type=float, help="UNIX s (default: the last recorded point)")
    export.add_argument("--mode", default="raw", choices=["raw", "interpolated", "aggregate"])
    export.add_argument("--step", type=float, default=60.0,
                        help="s between values (interpolated) or per interval (aggregate)")
    export.add_argument("--out", required=True, help="FILE.parquet or FILE.csv")


def export_history(args: argparse.Namespace) -> int:
    from actors.historian import query_history
    from engine.historian import Historian, export, open_store

    site = load_site(args.site)
    settings = site.historian
    historian = Historian(open_store(settings), settings)
    try:
        assets, signals = ([n.strip() for n in text.split(",") if n.strip()]
                           for text in (args.assets, args.signals))
        answer = query_history(historian, assets, signals, args.since, args.until, args.mode,
                               args.step)
        rows = export(answer, args.out)
    except LookupError as error:
        raise ValueError(error.args[0]) from None
    finally:
        historian.store.close()
    print(f"twinloop history export: {rows} rows of {len(answer)} series to {args.out}")
    return 0


def generate_site(args: argparse.Namespace) -> int:
    from plants.sitegen import COUNTS, SiteCounts
    from plants.sitegen import generate_site as generate

    counts = SiteCounts(**{field: getattr(args, field) for field in COUNTS})
    sys.stdout.write(generate(counts, seed=args.seed, name=args.name, speed=args.speed))
    return 0


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


def add_token(args: argparse.Namespace) -> int:
    from serve.auth import add_token as add

    token = add(args.file, args.user, args.role)
    print(f"twinloop: added a {args.role} token for {args.user} to {args.file} (hash only); "
          "the token, shown once:")
    print(token)
    return 0


def remove_token(args: argparse.Namespace) -> int:
    from serve.auth import remove_tokens

    removed = remove_tokens(args.file, args.user)
    print(f"twinloop: revoked {removed} token(s) of {args.user} in {args.file}")
    return 0


def print_modbus_map(args: argparse.Namespace) -> int:
    import plants
    from engine.registers import format_map, site_map

    site = plants.resolve_site(load_site(args.site), args.site)
    models = {asset.id: plants.model_of(asset) for asset in site.assets}
    card_points = {asset.id: plants.card_points_of(asset) for asset in site.assets}
    print(format_map(site_map(site, models, card_points)))
    return 0


def run_demo(args: argparse.Namespace) -> int:
    import plants
    from controllers.backends import check_controllers

    site = load_site(args.site)
    if args.modbus_port is not None:
        if not 1 <= args.modbus_port <= 65536 - max(1, len(site.assets)):
            raise ConfigError(args.site, "--modbus-port", f"{args.modbus_port} leaves no port "
                              f"for each of {len(site.assets)} assets")
        site = msgspec.structs.replace(
            site, modbus=msgspec.structs.replace(site.modbus, base_port=args.modbus_port))
    site = plants.resolve_site(site, args.site)
    check_controllers(site, args.site)
    if args.speed is not None and not args.speed > 0:
        raise ConfigError(args.site, "--speed", f"must be positive, got {args.speed}")
    speed = args.speed or site.site.speed
    host = args.host or site.http.host
    port = args.port or site.http.port
    if args.opcua_port is not None:
        if not 0 < args.opcua_port < 65536:
            raise ConfigError(args.site, "--opcua-port",
                              f"must be in 1..65535, got {args.opcua_port}")
        site = msgspec.structs.replace(
            site, opcua=msgspec.structs.replace(site.opcua, port=args.opcua_port))
    if not args.address and _is_loopback(host):
        # Ray turns 127.0.0.1 into the machine's address and then binds its GCS, raylet
        # and worker ports to every interface; on a single node this setting (Ray's
        # default on macOS and Windows) keeps the node address, and every port, on
        # loopback. Read when Ray is imported.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    if not args.address:
        # Ray enables token authentication by default and warns on every start unless the
        # mode is set: set it to what it is (a cluster keeps the mode its nodes run with).
        os.environ.setdefault("RAY_AUTH_MODE", "token")
        # The raylet starts one idle worker per CPU for the first driver, for tasks; the
        # demo runs actors only, each in a worker of its own, so those idle workers would
        # stay idle: 80 MB resident each (bench/pilot_memory.py). Read by the raylet.
        os.environ.setdefault("RAY_prestart_worker_first_driver", "0")

    import ray
    from ray import serve

    from actors import NAMESPACE
    from actors.fleet import build_fleet, check_mqtt
    from engine.clock import ClockSpec
    from serve.app import start_http
    from serve.auth import Token, hash_token, load_tokens
    from serve.logs import log_path, quiet_ray, setup_demo_logging, worker_runtime_env

    try:  # before Ray starts: a bad broker is a configuration error, not a crash
        check_mqtt(site, args.mqtt)
    except ValueError as error:
        raise ConfigError(args.site, "--mqtt", str(error)) from None
    admin, generated = admin_token(os.environ)
    # The token reaches the HTTP replica as its hash (start_http's argument), never through
    # the environment that Ray's processes and every worker inherit.
    os.environ.pop(ADMIN_TOKEN_VARIABLE, None)
    file_tokens = load_tokens(site.http.tokens)  # a bad file stops the demo here, not later

    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    print(f"twinloop: starting site {site.site.name!r} ({len(site.assets)} assets) "
          f"at {speed:g}x real time", flush=True)
    log_file = log_path(site.site.audit_db, site.site.name)
    ray_log, console = setup_demo_logging(log_file)
    say = functools.partial(print, file=console, flush=True)
    embedded: dict[str, Any] = {} if args.address else {"_node_ip_address": host}
    ray.init(address=args.address or "local", namespace=NAMESPACE, include_dashboard=False,
             configure_logging=False, log_to_driver=False,
             runtime_env=worker_runtime_env(log_file), **embedded)
    stop = threading.Event()
    for number in (signal.SIGINT, signal.SIGTERM):  # after ray.init, which sets its own
        signal.signal(number, lambda *_: stop.set())
    fleet = build_fleet(site, ClockSpec(speed=speed), modbus=True, mqtt=args.mqtt,
                        history=True)
    try:
        fleet.start()
        url = start_http(fleet, host, port, [Token("admin", "admin", hash_token(admin))],
                         site.http.tokens)
        quiet_ray(ray_log)  # Serve adds a console handler of its own when it starts
        say(f"  console      {url}/   (sign in with a token below)")
        say(f"  HTTP API     {url}/assets   (OpenAPI: {url}/docs)")
        say(f"  metrics      {url}/metrics")
        if generated:
            say(f"  admin token  {admin}   (generated; set {ADMIN_TOKEN_VARIABLE} to choose "
                "one)")
        else:
            say(f"  admin token  from {ADMIN_TOKEN_VARIABLE}")
        say(f"  tokens file  {Path(site.http.tokens).resolve()} "
            f"({len(file_tokens)} token(s), re-read on change; `twinloop token add` adds "
            "one)")
        say(f"  audit log    {Path(site.site.audit_db).resolve()}")
        say(f"  history      {_history_place(site.historian)}   "
            "(GET /assets/<id>/history; alarms: GET /alarms)")
        for line in fleet.restore_report:  # decided before, no longer in the site file
            say(f"  not restored {line}")
        say(f"  OPC UA       {_serve_opcua(fleet)}")
        if fleet.plcs:
            ports = sorted(plc.port for plc in fleet.plcs.values())
            unit_ids = sorted({plc.unit_id for plc in fleet.plcs.values()})
            span = f"{ports[0]}" if len(ports) == 1 else f"{ports[0]}-{ports[-1]}"
            say(f"  Modbus TCP   {site.modbus.host}:{span}   (one PLC per "
                f"asset, unit id {', '.join(map(str, unit_ids))}; twinloop modbus-map "
                "lists the registers)")
        if fleet.mqtt is not None:
            connected = ray.get(fleet.mqtt.wait_connected.remote(5.0))
            say(f"  MQTT         {args.mqtt}   (twinloop/{site.site.name}/<asset id>/"
                "{measurements,estimates,setpoints}"
                f"{'' if connected else '; broker not reachable yet, retrying'})")
        say(f"  Ray          {'cluster ' + args.address if args.address else 'embedded'}; "
            f"{len(fleet.shards)} asset shard(s), {len(fleet.plant_shards)} plant shard(s)")
        say(f"  log file     {log_file}   (errors of every actor, Ray's own lines)")
        say("Ctrl-C stops." if args.duration is None else f"Stopping in {args.duration:g} s.")
        stop.wait(args.duration)
    finally:
        if args.address:  # an embedded Ray takes Serve down with it, and quietly
            serve.shutdown()
        fleet.shutdown()
        ray.shutdown()
    say("twinloop: stopped")
    return 0


def admin_token(environ: Mapping[str, str]) -> tuple[str, bool]:
    """The demo's admin token: TWINLOOP_ADMIN_TOKEN if set and not empty, else a new
    random one (256 bits); and whether it was generated."""
    given = environ.get(ADMIN_TOKEN_VARIABLE, "")
    return (given, False) if given else (secrets.token_urlsafe(32), True)


def _history_place(settings: HistorianSettings) -> str:
    """Where the historian stores: the DuckDB file, or the PostgreSQL server (its DSN
    without a password)."""
    if settings.backend == "postgres":
        shown = " ".join(p for p in settings.dsn.split() if not p.startswith("password="))
        return f"PostgreSQL {shown}"
    return f"{Path(settings.path).resolve()} (DuckDB)"


def _serve_opcua(fleet) -> str:
    """Start the site's OPC UA server; the line the demo prints for it."""
    settings = fleet.site.opcua
    if not settings.enabled:
        return "off (site file: [opcua] enabled = false)"
    url = fleet.serve_opcua()
    if settings.security == "none":
        return f"{url}   (security None, anonymous)"
    return (f"{url}   (security {settings.security}, users: {', '.join(settings.users)}; "
            f"server certificate in {Path(settings.certificate_dir).resolve()})")


def _is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


if __name__ == "__main__":
    sys.exit(main())
