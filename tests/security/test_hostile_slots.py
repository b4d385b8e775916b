"""A hostile worker cannot free a slot it never kept busy."""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio
import trio.testing
from hostile_clients import (
    GOOD,
    TIME_LIMIT,
    assert_survived,
    closed,
    join,
    send,
    serving,
    websocket,
)

from trio_graph_scheduler.protocol import CloseCode, SlotFreed, encode_frame

if TYPE_CHECKING:
    from pathlib import Path


async def test_slot_freed_for_a_slot_never_kept_busy_is_dropped_with_1002(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    with trio.fail_after(TIME_LIMIT):
        async with serving(tmp_path) as run:
            async with websocket(run.open_stream) as ws:
                await join(ws)
                await send(ws, encode_frame([SlotFreed(lease=999)]))
                close = await closed(ws)
            assert close.code == CloseCode.PROTOCOL_ERROR
            assert "slot_freed for lease 999, whose slot was not kept busy" in close.reason
            assert run.session_names() == {GOOD}
            run.graph.check_invariants()
    assert_survived(run, joined=2, lost=1)
