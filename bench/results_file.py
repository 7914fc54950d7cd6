"""``bench/results.json``: every benchmark's figures under a key of its own."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

RESULTS = Path(__file__).with_name("results.json")


def save(key: str, result: dict) -> None:
    """Store ``result`` under ``key``, keeping the other benchmarks' keys; the file is
    replaced atomically, so an interrupted run leaves the previous one intact."""
    data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    data[key] = result
    with tempfile.NamedTemporaryFile("w", dir=RESULTS.parent, suffix=".tmp", delete=False) as tmp:
        tmp.write(json.dumps(data, indent=2) + "\n")
    os.replace(tmp.name, RESULTS)
