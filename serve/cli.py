"""The ``twinloop`` command line.

    twinloop demo [--site examples/pilot.toml] [--speed X] [--duration S] [--address A]

runs a site on an embedded Ray (or on the Ray cluster at ``--address``), serves the
HTTP API and metrics, prints where each service listens, and runs until stopped
(Ctrl-C) or until ``--duration`` wall seconds have passed. The HTTP API accepts the
tokens of the site's token file (``http.tokens``) and an admin token: the value of
the environment variable TWINLOOP_ADMIN_TOKEN if set, else a new one, printed.

    twinloop token add --user NAME --role viewer|operator|engineer|admin [--file F]

generates a bearer token, prints it once and appends its salted hash to the token
file (default ``var/tokens.toml``, the site files' default ``http.tokens``).
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import secrets
import signal
import sys
import threading
from collections.abc import Mapping
from pathlib import Path

from engine.config import ConfigError, HttpSettings, load_site

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
    token = commands.add_parser("token", help="manage bearer tokens").add_subparsers(
        dest="action", required=True).add_parser("add", help="generate a token, store its hash")
    token.add_argument("--user", required=True, help="name recorded in the audit log")
    token.add_argument("--role", required=True,
                       choices=["viewer", "operator", "engineer", "admin"])
    token.add_argument("--file", default=HttpSettings().tokens, help="token file (TOML)")
    args = parser.parse_args(argv)
    try:
        if args.command == "token":
            return add_token(args)
        return run_demo(args)
    except (ConfigError, ValueError) as error:
        print(f"twinloop: {error}", file=sys.stderr)
        return 2


def add_token(args: argparse.Namespace) -> int:
    from serve.auth import add_token as add

    token = add(args.file, args.user, args.role)
    print(f"twinloop: added a {args.role} token for {args.user} to {args.file} (hash only); "
          "the token, shown once:")
    print(token)
    return 0


def run_demo(args: argparse.Namespace) -> int:
    import plants

    site = plants.resolve_site(load_site(args.site), args.site)
    if args.speed is not None and not args.speed > 0:
        raise ConfigError(args.site, "--speed", f"must be positive, got {args.speed}")
    speed = args.speed or site.site.speed
    host = args.host or site.http.host
    port = args.port or site.http.port
    if not args.address and _is_loopback(host):
        # Ray turns 127.0.0.1 into the machine's address and then binds its GCS, raylet
        # and worker ports to every interface; on a single node this setting (Ray's
        # default on macOS and Windows) keeps the node address, and every port, on
        # loopback. Read when Ray is imported.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

    import ray
    from ray import serve

    from actors import NAMESPACE
    from actors.fleet import build_fleet
    from engine.clock import ClockSpec
    from serve.app import start_http
    from serve.auth import Token, hash_token, load_tokens

    admin, generated = admin_token(os.environ)
    tokens = [*load_tokens(site.http.tokens), Token("admin", "admin", hash_token(admin))]

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
        url = start_http(fleet, host, port, tokens)
        print(f"  HTTP API     {url}/assets   (OpenAPI: {url}/docs)", flush=True)
        print(f"  metrics      {url}/metrics", flush=True)
        if generated:
            print(f"  admin token  {admin}   (generated; set {ADMIN_TOKEN_VARIABLE} to choose "
                  "one)", flush=True)
        else:
            print(f"  admin token  from {ADMIN_TOKEN_VARIABLE}", flush=True)
        print(f"  tokens file  {Path(site.http.tokens).resolve()} "
              f"({len(tokens) - 1} token(s); `twinloop token add` adds one)", flush=True)
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


def admin_token(environ: Mapping[str, str]) -> tuple[str, bool]:
    """The demo's admin token: TWINLOOP_ADMIN_TOKEN if set and not empty, else a new
    random one (256 bits); and whether it was generated."""
    given = environ.get(ADMIN_TOKEN_VARIABLE, "")
    return (given, False) if given else (secrets.token_urlsafe(32), True)


def _is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


if __name__ == "__main__":
    sys.exit(main())
