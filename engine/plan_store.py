"""Stored forward plans: versioned, durable, approvable (issue 14 item 3).

One folder per asset under ``root`` (the site's ``var/`` folder: ``<audit_db's
folder>/plans/<asset>/``, ``plans_folder``), one JSON file per version, ``v000001.json`` upwards:

    {"version", "asset", "created" (twin s), "user", "status": "proposed" | "approved",
     "approved_by", "approved_at" (twin s), "plan": {...the plan itself...}}

A file is written to a temporary name, synced, and renamed over its final name (the
folder synced after): a crash leaves the previous content or the new one, never a torn
file. Versions are never removed; approving one rewrites its file with its status. The
approved plan of an asset is its highest approved version; the shard hosting the asset
follows it again whenever it builds the asset (actors.asset.HostedAsset.restore_plan).
Plain data only, no Ray.
"""

from __future__ import annotations

import json
import os
import re
import threading
from pathlib import Path
from typing import Any

from engine.files import private_directory, write_private

_VERSION = re.compile(r"^v(\d{6})\.json$")
_ASSET_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def plans_folder(audit_db: str | Path) -> Path:
    """Where a site's plans live: ``plans/`` beside its audit database (``[site]
    audit_db``), in the site's ``var/`` folder."""
    return Path(audit_db).parent / "plans"


class PlanStore:
    """Plans of every asset of one site, in files under ``root``."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._lock = threading.Lock()

    def add(self, asset: str, plan: dict[str, Any], *, created: float, user: str) -> dict:
        """Store ``plan`` as the asset's next version (status ``proposed``); returns the
        stored entry."""
        with self._lock:
            folder = private_directory(self._folder(asset))
            versions = self._versions(asset)
            entry = {"version": (versions[-1] if versions else 0) + 1, "asset": asset,
                     "created": created, "user": user, "status": "proposed",
                     "approved_by": None, "approved_at": None, "plan": plan}
            _write(folder / f"v{entry['version']:06d}.json", entry)
            return entry

    def get(self, asset: str, version: int | None = None) -> dict[str, Any]:
        """Version ``version`` of the asset's plans (None: the latest); LookupError if
        there is none."""
        versions = self._versions(asset)
        if version is None:
            if not versions:
                raise LookupError(f"asset {asset!r} has no plan yet: POST one first")
            version = versions[-1]
        path = self._folder(asset) / f"v{version:06d}.json"
        if not path.exists():
            raise LookupError(f"asset {asset!r} has no plan version {version}")
        return json.loads(path.read_text())

    def approved(self, asset: str) -> dict[str, Any] | None:
        """The asset's highest approved version, None if none is."""
        for version in reversed(self._versions(asset)):
            entry = self.get(asset, version)
            if entry["status"] == "approved":
                return entry
        return None

    def approve(self, asset: str, version: int, *, user: str, time: float) -> dict[str, Any]:
        """Mark ``version`` approved by ``user`` at twin ``time``; LookupError if it does
        not exist, ValueError if it is approved already. Returns the entry."""
        with self._lock:
            entry = self.get(asset, version)
            if entry["status"] == "approved":
                raise ValueError(f"plan version {version} of {asset!r} was approved already "
                                 f"by {entry['approved_by']}")
            entry.update(status="approved", approved_by=user, approved_at=time)
            _write(self._folder(asset) / f"v{version:06d}.json", entry)
            return entry

    def _folder(self, asset: str) -> Path:
        if not _ASSET_ID.match(asset):
            raise ValueError(f"asset id {asset!r} cannot name a plan folder")
        return self.root / asset

    def _versions(self, asset: str) -> list[int]:
        folder = self._folder(asset)
        if not folder.is_dir():
            return []
        return sorted(int(m.group(1)) for m in map(_VERSION.match, os.listdir(folder)) if m)


def _write(path: Path, entry: dict[str, Any]) -> None:
    """Replace ``path`` by ``entry`` as JSON, atomically and durably, readable by its
    owner only."""
    write_private(path, json.dumps(entry))
