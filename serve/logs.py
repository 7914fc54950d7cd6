"""Where `twinloop demo` sends log lines: TwinLoop's on the console, everything in a file.

The console shows the demo's own lines (where each service listens, errors of the
command) and WARNING and above of TwinLoop's loggers in the demo process. The log file
(``var/<site>.log`` beside the audit database; its path is in the banner) receives:

- WARNING and above of every Python logger in every Ray worker of the site (asset,
  safety, plant, PLC, MQTT and OPC UA actors, the HTTP replica): refused MQTT payloads and
  PLC writes, refused token files, failed scans, answers of 500. A Ray
  ``worker_process_setup_hook`` adds the handler in each worker; the path travels in the
  job's runtime environment as TWINLOOP_LOG_FILE.
- Ray's own Python log lines of the demo process (``ray``, ``ray.serve``), at INFO.
- What Ray writes to the demo process's standard output and error: its C++ core's
  warning that an actor's constructor arguments live in the object store, which it gives
  for every actor handed another actor's handle (Ray issue 53727), and the raylet's
  messages it forwards to the driver (more workers than CPUs, as one actor per asset
  needs). File descriptors 1 and 2 point at the log file; the demo prints its own lines to
  a copy of the console's standard output, and ``sys.stderr`` stays the console's.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import TextIO

from engine.files import private_file

LOG_FILE_VARIABLE = "TWINLOOP_LOG_FILE"
FORMAT = "%(asctime)s %(levelname)s pid %(process)d %(name)s: %(message)s"
RAY_LOGGERS = ("ray", "ray.serve")


def log_path(audit_db: str | Path, site: str) -> Path:
    """``<folder of the audit database>/<site>.log``, absolute."""
    return Path(audit_db).resolve().parent / f"{site}.log"


def file_handler(path: str | Path, level: int) -> logging.Handler:
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setLevel(level)
    handler.setFormatter(logging.Formatter(FORMAT))
    return handler


def worker_runtime_env(path: Path) -> dict:
    """The ``runtime_env`` of ``ray.init`` that makes every worker log to ``path``."""
    return {"env_vars": {LOG_FILE_VARIABLE: str(path)},
            "worker_process_setup_hook": f"{__name__}.setup_worker_logging"}


def setup_worker_logging() -> None:
    """In a Ray worker: WARNING and above of every logger reaching the root logger go to
    the file named by TWINLOOP_LOG_FILE (nothing if it is unset; on a cluster, each node's
    workers write to that path on their own node)."""
    path = os.environ.get(LOG_FILE_VARIABLE)
    if not path:
        return
    try:  # a worker on another node of a cluster has a folder of its own at that path
        handler = file_handler(private_file(path), logging.WARNING)
    except OSError as error:
        logging.getLogger(__name__).warning("no log file %s in this worker: %s", path, error)
        return
    root = logging.getLogger()
    root.addHandler(handler)
    if root.level > logging.WARNING:
        root.setLevel(logging.WARNING)


def setup_demo_logging(path: Path) -> tuple[logging.Handler, TextIO]:
    """In the demo process: file descriptors 1 and 2 (Ray's C++ core, the raylet messages
    Ray forwards to the driver's ``sys.stdout``) and Ray's Python loggers go to ``path``;
    TwinLoop's WARNING and above go to the console's standard error and to ``path``.
    Returns the file's handler (for ``quiet_ray``) and a stream on the console's standard
    output, for the demo's own lines."""
    private_file(path)
    to_file = file_handler(path, logging.INFO)
    sys.stdout.flush()
    sys.stderr.flush()
    console_out = os.fdopen(os.dup(1), "w", buffering=1)
    sys.stderr = os.fdopen(os.dup(2), "w", buffering=1)  # the command's errors stay visible
    log_fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.WARNING)
    console.setFormatter(logging.Formatter("twinloop: %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(to_file)
    root.addHandler(console)
    root.setLevel(logging.INFO)
    quiet_ray(to_file)
    return to_file, console_out


def quiet_ray(to_file: logging.Handler) -> None:
    """Ray's Python loggers write to ``to_file`` only (Ray and Serve add console handlers
    of their own when they start: call again after each)."""
    for name in RAY_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers = [to_file]
        logger.propagate = False
