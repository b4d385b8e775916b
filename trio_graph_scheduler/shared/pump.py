"""The connection pump: what both ends of a coordinator-worker connection do alike.

The coordinator's :class:`~trio_graph_scheduler.coordinator.worker_session.WorkerSession`
and the worker's :class:`~trio_graph_scheduler.worker.link.CoordinatorLink` each drive one
:class:`ConnectionPump` over their WebSocket: its receiver hands every inbound message to
the owner's handler for its type, its sender turns everything the owner queued since the
last send into as few frames as possible (or a heartbeat when there was nothing to say),
and it closes the connection without hanging on a peer that does not answer.

The pump knows nothing of the protocol's messages: the owner passes in how to decode a
frame and encode a batch (its protocol session), its handlers, how to take what it has
queued, and when sending must stop. The pump decides nothing either: how a connection's
end (silence, a close, an error a handler raised) ends the session stays with the owner.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final, Generic, TypeVar

import trio
import trio_websocket

from .concurrency import MESSAGES_PER_YIELD

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

_M = TypeVar("_M")

#: The WebSocket receive buffer both ends open their connections with. trio-websocket
#: reads 4 KiB at a time by default; batched frames are far larger, and a 64 KiB buffer
#: made batched throughput 1.66x faster here (see the project's STACK notes).
RECEIVE_BUFFER_BYTES: Final = 64 * 2**10

#: A close frame's reason may hold at most 123 bytes.
MAX_CLOSE_REASON: Final = 120


class ConnectionPump(Generic[_M]):
    """Moves messages over one WebSocket for its owner, the connection's shell.

    The owner queues messages wherever it likes and calls :meth:`wake`; the sender
    (:meth:`send_loop`) then takes them all with ``take_outbox`` and sends them. The
    receiver (:meth:`receive_loop`) handles each inbound message synchronously, with
    ``handlers[type(message)]``. Run each loop in its own task; only the sender (or the
    owner while the sender is not running) may send, so frames keep the queue's order.
    """

    __slots__ = (
        "_decode",
        "_encode",
        "_handlers",
        "_heartbeat",
        "_heartbeat_due",
        "_may_send",
        "_sent_at",
        "_stream_frames",
        "_streaming",
        "_take_outbox",
        "_wake",
        "_ws",
    )

    def __init__(
        self,
        ws: trio_websocket.WebSocketConnection,
        *,
        decode: Callable[[bytes | str], list[_M]],
        encode: Callable[[list[_M]], list[bytes]],
        heartbeat: type[_M],
        take_outbox: Callable[[], list[_M]],
        may_send: Callable[[], bool],
        handlers: Mapping[type[_M], Callable[[Any], None]],
        streaming: Callable[[], bool] = lambda: False,
        stream_frames: Callable[[], list[bytes]] = list,
    ) -> None:
        """Set up the pump; nothing moves until the owner runs its loops.

        Args:
            ws: the connection.
            decode: a frame's messages, in order; raises to end the receiver (the
                owner's protocol session: a protocol error is the owner's to map).
            encode: a batch of messages as frames, in order (the owner decides what
                happens to a message that cannot be encoded).
            heartbeat: the message type (made with no arguments) sent when there was
                nothing to say for a whole heartbeat interval. One that arrives needs no
                handler: its arrival alone restarted the silence timer.
            take_outbox: everything to send now, in order; the owner's queues are left
                empty.
            may_send: whether anything may still be sent; once false, the sender stops
                (after a ``Shutdown``, nothing may follow it).
            handlers: the handler for each other message type that may arrive; one
                raising ends the receiver with that error.
            streaming: whether large values are on their way out (then the sender
                does not wait between sends).
            stream_frames: the next piece of them: one chunk's frame, and the frames
                of the messages it let go. The sender sends one such piece between two
                batches of everything else, so nothing queued waits behind a big value
                longer than one chunk takes.
        """
        self._ws = ws
        self._decode = decode
        self._encode = encode
        self._heartbeat = heartbeat
        self._take_outbox = take_outbox
        self._may_send = may_send
        self._handlers: dict[type[_M], Callable[[Any], None]] = {heartbeat: _ignore, **handlers}
        self._streaming = streaming
        self._stream_frames = stream_frames
        self._wake = trio.Event()
        # When a frame last went, and whether the heartbeat timer asks for one.
        self._sent_at = 0.0
        self._heartbeat_due = False

    def wake(self) -> None:
        """Tell the sender there is something to send (cheap; call it per message)."""
        self._wake.set()

    async def receive_loop(self, silence_limit: float) -> trio_websocket.ConnectionClosed | None:
        """Handle inbound messages until the connection closes or the peer goes silent.

        Returns:
            The close, once the connection closed; ``None`` if the peer sent nothing for
            ``silence_limit`` seconds.

        Raises:
            Whatever ``decode`` or a handler raised (the owner maps it to an end).
        """
        decode = self._decode
        handlers = self._handlers
        get_message = self._ws.get_message
        current_time = trio.current_time
        heard = current_time()
        # One silence timer per silent spell, not one per frame: a frame only notes when
        # it came (a cancel scope per frame was a tenth of the coordinator's CPU with 100
        # workers). When the timer fires it looks at that note, and either ends the
        # loop or starts again from it.
        while True:
            long_frame = None
            with trio.CancelScope(deadline=heard + silence_limit):
                while True:
                    try:
                        data = await get_message()
                    except trio_websocket.ConnectionClosed as closed:
                        return closed
                    heard = current_time()
                    messages = decode(data)
                    if len(messages) >= 2 * MESSAGES_PER_YIELD:
                        long_frame = messages
                        break
                    for message in messages:
                        handlers[type(message)](message)
            if long_frame is not None:
                # Handled outside the timer: a frame is never cut in half.
                last = len(long_frame) - MESSAGES_PER_YIELD
                for index, message in enumerate(long_frame, 1):
                    handlers[type(message)](message)
                    # Let the tasks fed by the first messages of a big frame start on them,
                    # in pieces of at least MESSAGES_PER_YIELD: a small tail would go out
                    # in a frame of its own, and frames of that size then keep coming (a
                    # worker answers a frame with a frame, and is given back what it
                    # freed), so a frame of 33 split 32 + 1 was split for the whole run.
                    if index % MESSAGES_PER_YIELD == 0 and index <= last:
                        await trio.lowlevel.checkpoint()
            elif current_time() - heard >= silence_limit:
                return None

    async def send_loop(self, heartbeat_interval: float) -> None:
        """Send what the owner queues, as it comes, until ``may_send`` turns false.

        A heartbeat goes out when nothing was sent for ``heartbeat_interval`` seconds,
        so the peer's silence timer sees this end alive.

        Raises:
            trio_websocket.ConnectionClosed: the connection closed under a send.
        """
        error: Exception | None = None
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._heartbeats, heartbeat_interval)
            try:
                await self._send_queued()
            except Exception as exc:  # raised again below: a nursery would group it
                error = exc
            nursery.cancel_scope.cancel()
        if error is not None:
            raise error

    async def _send_queued(self) -> None:
        while self._may_send():
            if not self._streaming():
                await self._wake.wait()
            # A fresh event before taking the outbox: a wake from here on is not lost.
            self._wake = trio.Event()
            heartbeat, self._heartbeat_due = self._heartbeat_due, False
            await self.flush(heartbeat=heartbeat)
            if self._streaming() and self._may_send():
                # One chunk between two batches of everything else (each send is a
                # checkpoint: what was queued meanwhile goes in the next batch).
                for frame in self._stream_frames():
                    await self._ws.send_message(frame)

    async def _heartbeats(self, interval: float) -> None:
        """Ask the sender for a heartbeat whenever nothing was sent for ``interval``.

        A timer of its own that wakes once per interval, instead of a timeout on every
        wait of the sender: a cancel scope per frame cost more than the frame's send.
        """
        self._sent_at = trio.current_time()
        while True:
            due = self._sent_at + interval
            await trio.sleep_until(due)
            if self._sent_at + interval <= trio.current_time():
                self._heartbeat_due = True
                self._wake.set()
                self._sent_at = trio.current_time()  # on its way: the next in an interval

    async def flush(self, *, heartbeat: bool = False) -> None:
        """Send everything queued, in order (or a heartbeat, if asked and nothing is).

        Only the sender calls it: one task sending keeps the frames in queue order.
        """
        if not self._may_send():
            return  # e.g. the Shutdown came (or went) while the sender waited
        messages = self._take_outbox()
        if heartbeat and not messages:
            messages = [self._heartbeat()]
        if messages:
            await self.send(messages)

    async def send(self, messages: list[_M]) -> None:
        """Encode ``messages`` and send them now, in as few frames as the limit allows.

        Raises:
            trio_websocket.ConnectionClosed: the connection closed; frames before the
                failing one were sent.
        """
        for frame in self._encode(messages):
            await self._ws.send_message(frame)
        self._sent_at = trio.current_time()

    async def close(self, code: int, reason: str) -> None:
        """Close the connection, waiting at most a second for the peer's close frame.

        A frozen peer never answers the close handshake; it must not hold this end.
        """
        with trio.move_on_after(1):
            await self._ws.aclose(code, reason[:MAX_CLOSE_REASON])


def _ignore(message: object) -> None:
    """The handler of a message whose arrival alone says all it has to."""
