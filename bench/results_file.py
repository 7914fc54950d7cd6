"""``bench/results.json``: every benchmark's figures under a key of its own."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

RESULTS = Path(__file__).with_name("results.json")


def load(path: Path = RESULTS) -> dict:
    """Every benchmark's figures in ``path`` ({} if there is no file yet)."""
    return json.loads(path.read_text()) if path.exists() else {}


def save(key: str, result: object, path: Path = RESULTS) -> None:
    """Store ``result`` under ``key`` in ``path``, keeping the other benchmarks' keys;
    the file is replaced atomically, so an interrupted run leaves the previous one intact."""
    data = load(path)
    data[key] = result
    with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False) as tmp:
        tmp.write(json.dumps(data, indent=2) + "\n")
    os.replace(tmp.name, path)
