"""Values larger than a frame: sent as a stream of chunks, taken in before allocation.

A value whose encoded form is larger than a session's spill size leaves its message: the
message carries an ``EXT_STREAMED`` reference (the stream's id) and the value's bytes go
before it as :class:`~.messages.ValueChunk` messages, one chunk per frame. Both ends are
here, without I/O:

- :class:`OutgoingValues` (the sender) keeps the streams to send, one at a time, and the
  messages that wait for them. A message waiting for a stream holds back the later
  messages of the same lease (a ``Cancel`` never overtakes its ``Assign``, a task's
  result never overtakes the graph calls it made) and, an assignment, the later
  assignments of its function (the first carries the function); nothing else:
  heartbeats, credit, and small tasks' assignments and results go between the chunks.
- :class:`InboundValues` (the receiver) checks every chunk (the stream announced, in
  order, never past its announced total) and reassembles accepted values. A stream
  whose announced total is larger than the per-value limit, or than what the values
  held here may add up to, is refused without allocating anything: its chunks are
  counted and dropped, and the message that refers to it reads an ``UnreadableValue``
  saying why, which fails that one task. Everything it holds is released with the
  connection.

What a peer can make this side hold: at most ``2 * max_value_bytes`` of values being
reassembled or waiting for their message, plus one frame being decoded.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Final, final

from ..shared.errors import RemoteProtocolError
from .messages import ValueChunk
from .values import StreamRefused

if TYPE_CHECKING:
    from collections.abc import Callable

#: The largest value either program takes in by default (``--max-value-bytes``).
MAX_VALUE_BYTES: Final = 2**30  # 1 GiB
#: The most value bytes one frame carries: a chunk goes between batches of other
#: messages, so nothing waits longer behind a big value than this takes to send.
CHUNK_BYTES: Final = 2**20  # 1 MiB
#: Values whose encoded form is larger than this leave their frame as a stream (less if
#: the peer's frames are small: a sixteenth of the largest frame it takes).
SPILL_BYTES: Final = 256 * 2**10
#: A chunk's frame beside its data: the message's keys and numbers.
CHUNK_OVERHEAD: Final = 128


#: A result at least this large (by :func:`result_size`) is kept by the worker that ran the
#: task or was sent it (within its ``--result-cache-bytes``), and is not sent to it again
#: while it holds it: both ends apply the same rule, each keeps its account.
CACHED_FROM: Final = SPILL_BYTES


def result_size(value: object) -> int:
    """The size a result counts for when a worker keeps it: the length of ``bytes``,
    ``bytearray`` and ``str``, a ``memoryview``'s bytes; 0 (never kept) for anything else,
    whose size would cost a walk or an encoding to know. O(1)."""
    kind = type(value)
    if kind is bytes or kind is bytearray or kind is str:
        return len(value)  # type: ignore[arg-type]
    if isinstance(value, memoryview):
        return value.nbytes
    return 0


def spill_size(max_send_bytes: int) -> int:
    """Values encoded larger than this go as streams to a peer taking such frames."""
    return min(SPILL_BYTES, max_send_bytes // 16)


def chunk_size(max_send_bytes: int) -> int:
    """How much of a value one chunk carries to a peer taking such frames."""
    return max(1, min(CHUNK_BYTES, max_send_bytes - CHUNK_OVERHEAD))


@final
class _Outgoing:
    __slots__ = ("data", "offset", "stream")

    def __init__(self, stream: int, data: bytes) -> None:
        self.stream = stream
        self.data = memoryview(data)
        self.offset = 0


@final
class _Held:
    """A message (its frame) that goes once its streams went and its lease's earlier
    messages went."""

    __slots__ = ("frame", "keys", "waiting")

    def __init__(self, frame: bytes, keys: tuple[object, ...], waiting: set[int]) -> None:
        self.frame = frame
        self.keys = keys
        self.waiting = waiting


@final
class OutgoingValues:
    """The sender's streams and the messages waiting for them (one connection)."""

    __slots__ = ("_held", "_held_keys", "_next_id", "_streams")

    def __init__(self) -> None:
        self._next_id = 1
        self._streams: deque[_Outgoing] = deque()
        self._held: deque[_Held] = deque()
        # Order key (a lease, an assigned function) -> how many held messages have it:
        # later messages with it wait too.
        self._held_keys: dict[object, int] = {}

    @property
    def busy(self) -> bool:
        """Whether chunks or held messages remain to be sent."""
        return bool(self._streams or self._held)

    def new_stream(self) -> int:
        """A stream id not used before on this connection (ids only ever grow)."""
        stream = self._next_id
        self._next_id += 1
        return stream

    def holds(self, key: object) -> bool:
        """Whether a message with order key ``key`` must wait behind held ones."""
        return key in self._held_keys

    def add(self, streams: list[tuple[int, bytes]], held: list[_Held]) -> None:
        """Queue ``streams`` (id, bytes) to send, and ``held`` frames to send after."""
        for stream, data in streams:
            self._streams.append(_Outgoing(stream, data))
        for item in held:
            self._held.append(item)
            for key in item.keys:
                self._held_keys[key] = self._held_keys.get(key, 0) + 1

    @staticmethod
    def held(frame: bytes, keys: tuple[object, ...], waiting: set[int]) -> _Held:
        """A frame that waits for the streams ``waiting``, and for the held frames that
        share one of its order ``keys``."""
        return _Held(frame, keys, waiting)

    def mark(self) -> tuple[int, int]:
        """Where the queues end now (see :meth:`rollback`)."""
        return len(self._streams), len(self._held)

    def rollback(self, mark: tuple[int, int]) -> None:
        """Forget what was queued since ``mark`` (a batch built again); nothing was sent
        in between."""
        streams, held = mark
        while len(self._streams) > streams:
            self._streams.pop()
        while len(self._held) > held:
            self._forget_keys(self._held.pop().keys)

    def clear(self) -> None:
        """Drop everything (the connection may carry nothing more)."""
        self._streams.clear()
        self._held.clear()
        self._held_keys.clear()

    def next_frames(self, encode: Callable[[ValueChunk], bytes], chunk: int) -> list[bytes]:
        """The next chunk's frame, then the frames of the messages it let go.

        Args:
            encode: a chunk message as a frame.
            chunk: how many value bytes the chunk may carry.
        """
        frames: list[bytes] = []
        if self._streams:
            out = self._streams[0]
            total = len(out.data)
            piece = out.data[out.offset : out.offset + chunk]
            message = ValueChunk(stream=out.stream, offset=out.offset, total=total, data=piece)  # type: ignore[arg-type]  # msgspec encodes a memoryview as bytes
            frames.append(encode(message))
            out.offset += len(piece)
            if out.offset == total:
                self._streams.popleft()
                for item in self._held:
                    item.waiting.discard(out.stream)
        frames += self._release()
        return frames

    def _release(self) -> list[bytes]:
        frames: list[bytes] = []
        blocked: set[object] = set()
        kept: deque[_Held] = deque()
        for item in self._held:
            if not item.waiting and blocked.isdisjoint(item.keys):
                frames.append(item.frame)
                self._forget_keys(item.keys)
            else:
                kept.append(item)
                blocked.update(item.keys)
        self._held = kept
        return frames

    def _forget_keys(self, keys: tuple[object, ...]) -> None:
        for key in keys:
            left = self._held_keys[key] - 1
            if left:
                self._held_keys[key] = left
            else:
                del self._held_keys[key]


@final
class _Inbound:
    __slots__ = ("pieces", "received", "refused", "total")

    def __init__(self, total: int, refused: str | None) -> None:
        self.total = total
        self.received = 0
        self.refused = refused
        # The chunks as they came, joined once when taken (one copy, not one per chunk).
        self.pieces: list[bytes] | None = [] if refused is None else None


@final
class InboundValues:
    """The receiver's streams: checked chunk by chunk, reassembled within the limits.

    Args:
        max_value_bytes: The largest value taken in; larger ones are refused (their
            message reads an ``UnreadableValue``). Values being reassembled or waiting
            for their message may add up to twice this.
    """

    __slots__ = ("_done", "_last", "_partial", "held_bytes", "max_value_bytes")

    def __init__(self, max_value_bytes: int = MAX_VALUE_BYTES) -> None:
        self.max_value_bytes = max_value_bytes
        #: The bytes of accepted values announced and not yet taken.
        self.held_bytes = 0
        self._last = 0
        self._partial: dict[int, _Inbound] = {}
        self._done: dict[int, _Inbound] = {}

    def receive(self, chunk: ValueChunk) -> None:
        """Take in one chunk.

        Raises:
            RemoteProtocolError: a chunk of a stream never announced or finished already,
                out of order, or saying another total than its stream's first.
        """
        stream = chunk.stream
        inbound = self._partial.get(stream)
        if inbound is None:
            if stream <= self._last:
                raise RemoteProtocolError(f"value_chunk: stream {stream} is finished or unknown")
            if chunk.offset != 0:
                raise RemoteProtocolError(
                    f"value_chunk: stream {stream} starts at {chunk.offset}, not 0"
                )
            self._last = stream
            inbound = self._partial[stream] = self._start(chunk.total)
        elif chunk.total != inbound.total:
            raise RemoteProtocolError(
                f"value_chunk: stream {stream} announced {inbound.total} bytes, now {chunk.total}"
            )
        if chunk.offset != inbound.received:
            raise RemoteProtocolError(
                f"value_chunk: stream {stream} jumps from byte {inbound.received} to {chunk.offset}"
            )
        inbound.received += len(chunk.data)
        if inbound.pieces is not None:
            inbound.pieces.append(chunk.data)
        if inbound.received == inbound.total:
            self._done[stream] = self._partial.pop(stream)

    def _start(self, total: int) -> _Inbound:
        limit = self.max_value_bytes
        if total > limit:
            why = f"a value of {total:,} bytes, more than this side takes in ({limit:,} bytes"
            return _Inbound(total, f"{why}, --max-value-bytes)")
        if self.held_bytes + total > 2 * limit:
            why = (
                f"a value of {total:,} bytes, while {self.held_bytes:,} bytes of values wait "
                f"here already (at most {2 * limit:,}: twice --max-value-bytes)"
            )
            return _Inbound(total, why)
        self.held_bytes += total
        return _Inbound(total, None)

    def take(self, stream: int) -> list[bytes] | StreamRefused:
        """The whole value of a finished stream in pieces, forgotten here; or why it was
        refused.

        Raises:
            RemoteProtocolError: no stream ``stream`` finished (never sent, not finished
                yet, or taken already).
        """
        inbound = self._done.pop(stream, None)
        if inbound is None:
            raise RemoteProtocolError(f"a reference to stream {stream}, which is not finished")
        if inbound.pieces is None:
            assert inbound.refused is not None
            return StreamRefused(inbound.refused)
        self.held_bytes -= inbound.total
        return inbound.pieces

    @property
    def pending(self) -> int:
        """Streams started or finished and not yet taken."""
        return len(self._partial) + len(self._done)

    def release(self) -> None:
        """Forget every stream (the connection ended)."""
        self._partial.clear()
        self._done.clear()
        self.held_bytes = 0
