"""The connection pump's timers, over an in-memory WebSocket and trio's autojump clock.

The pump keeps one silence timer per silent spell and one heartbeat timer per interval,
not a timeout per frame: these tests hold it to what the timeouts did. A heartbeat goes
out only after an interval without a send, and the receiver gives up only after a whole
silence limit without a frame.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import pytest
import trio
import trio.testing
import trio_websocket

from trio_graph_scheduler.shared.concurrency import MESSAGES_PER_YIELD
from trio_graph_scheduler.shared.pump import ConnectionPump

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


class Ping:
    """The heartbeat of these tests."""


class Note:
    """Any other message: a number, to see what arrived in which frame."""

    def __init__(self, number: int) -> None:
        self.number = number


def encode(messages: list[Ping | Note]) -> list[bytes]:
    return [b",".join(b"p" if isinstance(m, Ping) else b"%d" % m.number for m in messages)]


def decode(data: bytes | str) -> list[Ping | Note]:
    assert isinstance(data, bytes)
    return [Ping() if part == b"p" else Note(int(part)) for part in data.split(b",")]


@asynccontextmanager
async def connected() -> AsyncIterator[
    tuple[trio_websocket.WebSocketConnection, trio_websocket.WebSocketConnection]
]:
    """Two ends of one WebSocket over in-memory streams."""
    client_stream, server_stream = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:
        server_ready: trio.MemorySendChannel[trio_websocket.WebSocketConnection]
        server_ready, server_ends = trio.open_memory_channel(1)

        async def serve() -> None:
            request = await trio_websocket.wrap_server_stream(nursery, server_stream)
            await server_ready.send(await request.accept())

        nursery.start_soon(serve)
        client = await trio_websocket.wrap_client_stream(
            nursery,
            client_stream,  # type: ignore[arg-type]  # any trio stream does
            "localhost",
            "/",
        )
        server = await server_ends.receive()
        yield client, server
        nursery.cancel_scope.cancel()


def pump_over(
    ws: trio_websocket.WebSocketConnection, outbox: list[Ping | Note], handled: list[object]
) -> ConnectionPump[Ping | Note]:
    def take() -> list[Ping | Note]:
        taken = outbox[:]
        outbox.clear()
        return taken

    return ConnectionPump[Ping | Note](
        ws,
        decode=decode,
        encode=encode,
        heartbeat=Ping,
        take_outbox=take,
        may_send=lambda: True,
        handlers={Note: handled.append},
    )


async def frames_until(
    ws: trio_websocket.WebSocketConnection, end: float
) -> list[tuple[float, bytes | str]]:
    """Every frame ``ws`` receives until trio time ``end``, with when it came."""
    frames = []
    with trio.move_on_at(end):
        while True:
            data = await ws.get_message()
            frames.append((trio.current_time(), data))
    return frames


async def test_a_heartbeat_goes_only_after_an_interval_without_a_send(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with connected() as (near, far), trio.open_nursery() as nursery:
        outbox: list[Ping | Note] = []
        pump = pump_over(near, outbox, [])
        nursery.start_soon(pump.send_loop, 1.0)
        start = trio.current_time()

        async def talk() -> None:
            # A note every 0.4 interval for 4 s: no heartbeat is needed meanwhile.
            for number in range(10):
                outbox.append(Note(number))
                pump.wake()
                await trio.sleep(0.4)

        nursery.start_soon(talk)
        frames = await frames_until(far, start + 6.25)
        nursery.cancel_scope.cancel()
    busy = [data for at, data in frames if at < start + 4.0]
    assert busy == [b"%d" % number for number in range(10)]
    # Then silence: a heartbeat one interval after the last note, and one per interval.
    beats = [round(at - start, 1) for at, data in frames if data == b"p"]
    assert beats == [4.6, 5.6]


async def test_the_receiver_gives_up_only_after_a_whole_silence_limit(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with connected() as (near, far):
        handled: list[object] = []
        pump = pump_over(near, [], handled)
        start = trio.current_time()
        ended: list[float] = []

        async def receive() -> None:
            assert await pump.receive_loop(1.0) is None  # silent, not closed
            ended.append(trio.current_time() - start)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(receive)
            # A frame every 0.75 s for 3 s, each within the limit of the one before.
            for number in range(4):
                await trio.sleep(0.75)
                await far.send_message(b"%d" % number)
        assert [note.number for note in handled] == [0, 1, 2, 3]  # type: ignore[attr-defined]
        # The last frame came at 3.0 s: silent from then on for 1 s.
        assert [round(at, 2) for at in ended] == [4.0]


async def test_a_long_frame_is_handled_whole(autojump_clock: trio.testing.MockClock) -> None:
    async with connected() as (near, far):
        handled: list[object] = []
        pump = pump_over(near, [], handled)
        count = 3 * MESSAGES_PER_YIELD + 1
        async with trio.open_nursery() as nursery:
            nursery.start_soon(pump.receive_loop, 1.0)
            await far.send_message(b",".join(b"%d" % n for n in range(count)))
            await far.send_message(b"%d" % count)
        assert [note.number for note in handled] == list(range(count + 1))  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("count", "yields_after"),
    [
        (MESSAGES_PER_YIELD + 1, []),  # no tail of one on its own
        (2 * MESSAGES_PER_YIELD, [MESSAGES_PER_YIELD]),
        (3 * MESSAGES_PER_YIELD - 1, [MESSAGES_PER_YIELD]),
        (3 * MESSAGES_PER_YIELD, [MESSAGES_PER_YIELD, 2 * MESSAGES_PER_YIELD]),
    ],
)
async def test_a_long_frame_yields_between_pieces_of_at_least_a_yields_worth(
    count: int,
    yields_after: list[int],
    autojump_clock: trio.testing.MockClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with connected() as (near, far):
        handled: list[object] = []
        pump = pump_over(near, [], handled)
        yielded_at: list[int] = []
        checkpoint = trio.lowlevel.checkpoint

        async def counted_checkpoint() -> None:
            if len(handled) < count:  # a yield within the frame (not trio-websocket's after)
                yielded_at.append(len(handled))
            await checkpoint()

        monkeypatch.setattr(trio.lowlevel, "checkpoint", counted_checkpoint)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(pump.receive_loop, 1.0)
            await far.send_message(b",".join(b"%d" % n for n in range(count)))
            await trio.sleep(0.5)
            nursery.cancel_scope.cancel()
    assert len(handled) == count
    assert yielded_at == yields_after
