"""Status push without Ray: a shard pushes the statuses its assets build, one message per
tick instant, to the real status board, which hands readers what changed."""

from __future__ import annotations

import asyncio

import msgspec

from actors.fleet import initial_outputs
from actors.safety import SafetyAuthority
from actors.shard import Shard
from actors.status_board import Board
from engine.clock import ClockSpec
from engine.messages import MeasurementPayload, Mode
from engine.status import StatusBatch, StatusUpdate
from tests.actors.test_shard import EPOCH, InProcess, two_tanks_over_mqtt

BATCH = msgspec.msgpack.Decoder(StatusBatch)
UPDATE = msgspec.msgpack.Decoder(StatusUpdate)


def pushes(board: InProcess) -> list[StatusBatch]:
    return [BATCH.decode(args[0]) for method, args in board.calls if method == "publish"]


def test_a_shard_pushes_one_batch_per_tick_instant_and_one_per_operator_command(tmp_path):
    """tank-01 ticks every 120 s, tank-02 every 240 s: four instants in 480 s, four pushes,
    each with the statuses of the assets due then, as of that tick; then a mode change
    is pushed on its own. The board's copy is what the shard itself answers."""
    site = two_tanks_over_mqtt(tmp_path)

    async def run() -> tuple[InProcess, Board, dict, int]:
        safety = InProcess(SafetyAuthority(
            site, {a.id: initial_outputs(a) for a in site.assets}, EPOCH))
        board = Board()
        pushed = InProcess(board)
        shard = Shard("shard:0", site.assets, ClockSpec(lockstep=True, epoch=EPOCH), safety,
                      plants={}, plcs={}, board=pushed)
        for asset in site.assets:
            sample = MeasurementPayload(ts=EPOCH, values={"T_bulk": asset.initial["T_bulk"]})
            await shard.ingest(asset.id, msgspec.msgpack.encode([sample]))
        await asyncio.sleep(0)  # the statuses of the assets as built
        started = len(pushes(pushed))
        await shard.run_for(480.0)
        ticked = await shard.status("tank-01")
        await shard.set_mode("tank-02", "MANUAL", "olga")
        await asyncio.sleep(0)
        return pushed, board, ticked, started

    pushed, board, ticked, started = asyncio.run(run())
    batches = pushes(pushed)[started:]
    assert [[s.id for s in b.statuses] for b in batches] == [
        ["tank-01"], ["tank-01", "tank-02"], ["tank-01"], ["tank-01", "tank-02"], ["tank-02"]]
    assert [b.statuses[0].ticks for b in batches[:4]] == [1, 2, 3, 4]
    assert batches[-1].statuses[0].mode is Mode.MANUAL
    held = board.latest["tank-01"]
    # the same status but for when it was built (the shard builds a fresh one to answer)
    assert {**msgspec.to_builtins(held), "built_at": None} == {**ticked, "built_at": None}
    assert held.ticks == 4 and board.latest["tank-02"].mode is Mode.MANUAL


def test_the_board_hands_a_reader_what_changed_since_it_last_asked(tmp_path):
    """A reader that asks with the board's version gets only later statuses; a status
    older than the one held (a message overtaken) is dropped; a reader whose version is
    from before a restart of the board gets everything."""
    site = two_tanks_over_mqtt(tmp_path)

    async def run() -> tuple[StatusUpdate, StatusUpdate, StatusUpdate, StatusUpdate]:
        safety = InProcess(SafetyAuthority(
            site, {a.id: initial_outputs(a) for a in site.assets}, EPOCH))
        board = Board()
        shard = Shard("shard:0", site.assets, ClockSpec(lockstep=True, epoch=EPOCH), safety,
                      plants={}, plcs={}, board=InProcess(board))
        await shard.run_for(0.0)
        await asyncio.sleep(0)
        everything = UPDATE.decode(await board.changes(0, 1.0))
        older = board.latest["tank-01"]
        await shard.run_for(120.0)
        later = UPDATE.decode(await board.changes(everything.version, 1.0))
        board.publish(msgspec.msgpack.encode(StatusBatch(shard="shard:0", statuses=[older])))
        unchanged = UPDATE.decode(await board.changes(later.version, 0.01))
        restarted = UPDATE.decode(await board.changes(later.version + 100, 0.01))
        return everything, later, unchanged, restarted

    everything, later, unchanged, restarted = asyncio.run(run())
    assert sorted(s.id for s in everything.statuses) == ["tank-01", "tank-02"]
    assert [(s.id, s.ticks) for s in later.statuses] == [("tank-01", 1)]
    assert unchanged.statuses == [] and unchanged.version == later.version
    assert sorted(s.id for s in restarted.statuses) == ["tank-01", "tank-02"]
    assert [s.ticks for s in restarted.statuses if s.id == "tank-01"] == [1]
