"""The coordinator's listeners: a cap on open connections, enforced where they arrive.

Counting connections in the WebSocket handler would miss those still in their HTTP
handshake (a peer that sends nothing holds its socket until the handshake deadline), and
trio-websocket leaves a rejected connection open until the peer hangs up. So the cap is
kept at the listener: a connection over it gets a fixed HTTP 503 answer and is closed at
once, before any WebSocket code sees it; a connection under it is counted until its
stream is closed.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Final

import trio

logger = logging.getLogger("tgs.coordinator")

#: What a connection over the cap is told before it is closed.
TOO_MANY_CONNECTIONS: Final = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"Content-Type: text/plain\r\n"
    b"Content-Length: 20\r\n"
    b"Connection: close\r\n"
    b"\r\n"
    b"too many connections"
)
#: Seconds spent telling a refused connection so, at most.
REFUSAL_TIMEOUT: Final = 1.0


class CappedListener(trio.abc.Listener[trio.abc.Stream]):
    """Accepts from ``listener`` while fewer than ``cap`` accepted streams are open."""

    def __init__(self, listener: trio.abc.Listener[trio.abc.Stream], cap: int) -> None:
        self.listener = listener
        self.cap = cap
        #: Streams accepted and not yet closed.
        self.open = 0

    async def accept(self) -> trio.abc.Stream:
        while True:
            stream = await self.listener.accept()
            if self.open < self.cap:
                self.open += 1
                return _CountedStream(stream, self)
            logger.warning("refused a connection: %d are open already", self.open)
            # Gone already, or too slow to listen: either way, nothing more to tell.
            broken = (trio.BrokenResourceError, trio.ClosedResourceError)
            with trio.move_on_after(REFUSAL_TIMEOUT), contextlib.suppress(*broken):
                await stream.send_all(TOO_MANY_CONNECTIONS)
            await trio.aclose_forcefully(stream)

    async def aclose(self) -> None:
        await self.listener.aclose()


class _CountedStream(trio.abc.Stream):
    """A stream that gives its place under the cap back when it is closed."""

    def __init__(self, stream: trio.abc.Stream, owner: CappedListener) -> None:
        self._stream = stream
        self._owner: CappedListener | None = owner

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self._stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self._stream.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        return await self._stream.receive_some(max_bytes)

    async def aclose(self) -> None:
        if self._owner is not None:
            self._owner.open -= 1
            self._owner = None
        await self._stream.aclose()
