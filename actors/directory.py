"""Addresses of hosted assets: which shard actor holds which asset, and a handle per asset.

A shard actor (actors.shard.AssetShard, or a plant shard) hosts many assets; each of
its per-asset methods takes the asset id first. ``AssetHandle(shard, asset_id)`` is a
small picklable stand-in with the method names of the shard, minus the id:

    handle.status.remote()                 ->  shard.status.remote(asset_id)
    handle.set_mode.remote("OFF", "olga")  ->  shard.set_mode.remote(asset_id, "OFF", "olga")
    handle.pid.remote()                    ->  shard.pid.remote()   (shard-wide methods)

so HTTP, OPC UA, MQTT and tests address an asset by id, wherever it is hosted.
"""

from __future__ import annotations

from typing import Any

SHARD_WIDE = frozenset({"pid"})
"""Methods of a shard actor that concern the whole process, not one asset."""


class AssetHandle:
    """One asset on its shard actor: ``handle.<method>.remote(*args)`` calls
    ``shard.<method>.remote(asset_id, *args)``."""

    __slots__ = ("actor", "asset_id")

    def __init__(self, actor: Any, asset_id: str) -> None:
        self.actor = actor
        self.asset_id = asset_id

    def __getattr__(self, method: str) -> _AssetMethod:
        if method.startswith("_"):
            raise AttributeError(method)
        return _AssetMethod(self.actor, self.asset_id, method)

    def __getstate__(self) -> tuple[Any, str]:
        return self.actor, self.asset_id

    def __setstate__(self, state: tuple[Any, str]) -> None:
        self.actor, self.asset_id = state

    def __repr__(self) -> str:
        return f"AssetHandle({self.asset_id!r} on {self.actor!r})"


class _AssetMethod:
    __slots__ = ("actor", "asset_id", "method")

    def __init__(self, actor: Any, asset_id: str, method: str) -> None:
        self.actor, self.asset_id, self.method = actor, asset_id, method

    def remote(self, *args: Any, **kwargs: Any):
        method = getattr(self.actor, self.method)
        if self.method in SHARD_WIDE:
            return method.remote(*args, **kwargs)
        return method.remote(self.asset_id, *args, **kwargs)
