"""The order of messages on one connection: a sans-I/O session for either end.

Rules of this module:

1. Everything about which message may come when lives in :data:`TRANSITIONS`; the
   session class only applies it.
2. The table describes the connection, not one end. It is keyed by the role that
   *sends* a message, so both ends walk the same states: the worker's session applies
   the worker's row to what it sends and the coordinator's row to what it receives, and
   the coordinator's session the other way round.

Theory of operation. A connection starts in ``AWAITING_HELLO``: the only message that
may pass is the worker's :class:`Hello` (or a status client's :class:`StatusRequest`,
which the coordinator answers with a :class:`StatusReply` or a :class:`Reject`, and
closes). Then ``AWAITING_WELCOME``: the coordinator answers with :class:`Welcome`
(``ACTIVE``) or :class:`Reject` (``CLOSED``). In ``ACTIVE`` each side sends its own kinds
of message, and the coordinator ends the connection with :class:`Shutdown` (``CLOSED``).
After ``CLOSED`` nothing more may pass. Any error moves the session to ``ERROR`` for good:
a connection that broke the protocol is closed, not repaired.

Two exceptions keep this from blaming the innocent or hurting the caller:

- After *we* sent ``Reject`` or ``Shutdown``, frames the peer sent before it saw ours
  may still arrive; :meth:`ProtocolSession.receive` drops them instead of raising.
- A frame that cannot be encoded (:class:`ValueEncodeError`, :class:`FrameTooLargeError`:
  a user's value, not a bug) leaves the session as it was, so the caller can replace the
  offending message (say, by a :class:`TaskFailed`) and send again.

The session also decides when values may be unpickled: only once it is ``ACTIVE``, which
on the coordinator means after it sent ``Welcome``, so after it checked the worker's token.
The token itself is not checked here; the coordinator reads :attr:`ProtocolSession.hello`.
"""

from __future__ import annotations

from enum import Enum, IntEnum
from typing import TYPE_CHECKING, Final, final

from ..shared.errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from .chunks import MAX_VALUE_BYTES, InboundValues, OutgoingValues, chunk_size, spill_size
from .codec import (
    MAX_FRAME_BYTES,
    FrameTooLargeError,
    decode_frame,
    encode_frame,
    encode_wire,
    pack_messages,
)
from .messages import (
    PROTOCOL_VERSION,
    Assign,
    Cancel,
    Cancelled,
    CancelTaskRequest,
    Claim,
    CreateConditionRequest,
    CreateTaskRequest,
    HandBack,
    Heartbeat,
    Hello,
    LoopBlocked,
    Message,
    PrependRequest,
    Reject,
    Reply,
    ResultsDropped,
    Shutdown,
    SlotFreed,
    Started,
    StatusReply,
    StatusRequest,
    SuccessorsRequest,
    TaskFailed,
    TaskQuery,
    TaskSucceeded,
    ValueChunk,
    Welcome,
)
from .values import EXT_STREAMED, ValueEncodeError, streams_from

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import NoReturn

#: The largest frame the coordinator accepts before the session is ACTIVE: a hello is
#: small, and an unauthenticated peer should not make us allocate much.
HANDSHAKE_MAX_FRAME_BYTES: Final = 64 * 2**10  # 64 KiB


class CloseCode(IntEnum):
    """Why a connection was closed: the WebSocket close codes (RFC 6455, 7.4.1) we use."""

    #: The worker leaves after a Shutdown, or a status query was answered.
    NORMAL = 1000
    #: The worker is going away: stopped, or it lost its coordinator.
    GOING_AWAY = 1001
    #: A malformed frame, a bad field, a message out of order, an unheld lease.
    PROTOCOL_ERROR = 1002
    #: A wrong token, unknown loops, no hello in time, silent too long.
    POLICY_VIOLATION = 1008
    #: A bug while serving the connection.
    INTERNAL_ERROR = 1011


class Role(Enum):
    """Which end of a connection a session is."""

    COORDINATOR = "coordinator"
    WORKER = "worker"


class SessionState(Enum):
    """Where a connection is in its life."""

    #: Nothing has passed yet; the worker's hello must come first.
    AWAITING_HELLO = "awaiting_hello"
    #: The hello has passed; the coordinator owes a welcome or a reject.
    AWAITING_WELCOME = "awaiting_welcome"
    #: A status request came instead of a hello; the coordinator owes a reply or a reject.
    AWAITING_STATUS = "awaiting_status"
    #: Welcomed: work, graph calls and heartbeats flow both ways.
    ACTIVE = "active"
    #: A reject or shutdown has passed; nothing more may.
    CLOSED = "closed"
    #: A protocol error happened; the session refuses any further use.
    ERROR = "error"


_S = SessionState

#: Sender role -> state -> message type -> the state after that message. A message that
#: is missing here may not be sent by that role in that state.
TRANSITIONS: Final[Mapping[Role, Mapping[SessionState, Mapping[type[Message], SessionState]]]] = {
    Role.WORKER: {
        _S.AWAITING_HELLO: {Hello: _S.AWAITING_WELCOME, StatusRequest: _S.AWAITING_STATUS},
        _S.ACTIVE: {
            Claim: _S.ACTIVE,
            Started: _S.ACTIVE,
            TaskSucceeded: _S.ACTIVE,
            TaskFailed: _S.ACTIVE,
            HandBack: _S.ACTIVE,
            CreateTaskRequest: _S.ACTIVE,
            CreateConditionRequest: _S.ACTIVE,
            PrependRequest: _S.ACTIVE,
            TaskQuery: _S.ACTIVE,
            CancelTaskRequest: _S.ACTIVE,
            SuccessorsRequest: _S.ACTIVE,
            Cancelled: _S.ACTIVE,
            SlotFreed: _S.ACTIVE,
            LoopBlocked: _S.ACTIVE,
            ResultsDropped: _S.ACTIVE,
            Heartbeat: _S.ACTIVE,
            ValueChunk: _S.ACTIVE,
        },
    },
    Role.COORDINATOR: {
        _S.AWAITING_WELCOME: {Welcome: _S.ACTIVE, Reject: _S.CLOSED},
        _S.AWAITING_STATUS: {StatusReply: _S.CLOSED, Reject: _S.CLOSED},
        _S.ACTIVE: {
            Assign: _S.ACTIVE,
            Reply: _S.ACTIVE,
            Cancel: _S.ACTIVE,
            Heartbeat: _S.ACTIVE,
            ValueChunk: _S.ACTIVE,
            Shutdown: _S.CLOSED,
        },
    },
}

_PEER: Final = {Role.COORDINATOR: Role.WORKER, Role.WORKER: Role.COORDINATOR}

#: The messages that carry a protocol version, checked as they pass.
_VERSIONED: Final[frozenset[type[Message]]] = frozenset({Hello, Welcome, StatusRequest})

#: Sender role -> state -> the message types that leave that state as it is (and carry
#: no version): a frame of only these needs no step of the table per message.
_STAYS: Final[Mapping[Role, Mapping[SessionState, frozenset[type[Message]]]]] = {
    role: {
        state: frozenset(
            kind for kind, after in moves.items() if after is state and kind not in _VERSIONED
        )
        for state, moves in table.items()
    }
    for role, table in TRANSITIONS.items()
}


@final
class ProtocolSession:
    """One end of one connection: checks the order of messages and encodes frames.

    Usage, in an I/O shell::

        session = ProtocolSession(Role.WORKER)
        await ws.send_message(session.send([Hello(...)]))
        for message in session.receive(await ws.get_message()):
            ...

    Values larger than a frame (see ``chunks``): :meth:`send_streamed` takes them out of
    their messages as streams, which :meth:`stream_frames` sends a chunk at a time, and
    holds back the messages that refer to them until their streams went; :meth:`receive`
    takes chunks in and hands out only the other messages. Only a peer that said it takes
    streams (``max_value_bytes`` in its hello or welcome) is sent any.

    Args:
        role: Which end this is.
        max_frame_bytes: The largest frame sent or accepted once the session is active.
        max_value_bytes: The largest value taken in as a stream.

    Attributes:
        role: Which end this is.
        max_send_bytes: The largest frame sent: ``max_frame_bytes``, or less once the
            peer said it accepts less: the worker's hello and the coordinator's welcome
            say how much each accepts, and the session applies it (:meth:`limit_sends`).
        hello: The worker's hello, once it has passed.
        welcome: The coordinator's welcome, once it has passed.
        peer_max_value_bytes: The largest value the peer takes in as a stream (0: it
            takes none).
    """

    def __init__(
        self,
        role: Role,
        *,
        max_frame_bytes: int = MAX_FRAME_BYTES,
        max_value_bytes: int = MAX_VALUE_BYTES,
    ) -> None:
        self.role: Final = role
        self.max_frame_bytes: Final = max_frame_bytes
        self.max_value_bytes: Final = max_value_bytes
        self.max_send_bytes = max_frame_bytes
        self.peer_max_value_bytes = 0
        self._outgoing = OutgoingValues()
        self._inbound = InboundValues(max_value_bytes)
        self.hello: Hello | None = None
        self.welcome: Welcome | None = None
        self._state = SessionState.AWAITING_HELLO
        self._we_closed = False

    def limit_sends(self, peer_limit: int) -> None:
        """The peer accepts frames of at most ``peer_limit`` bytes (0: it did not say)."""
        if peer_limit > 0:
            self.max_send_bytes = min(self.max_send_bytes, peer_limit)

    @property
    def state(self) -> SessionState:
        """The connection's current state."""
        return self._state

    def send(self, messages: Sequence[Message]) -> bytes:
        """Check that we may send ``messages`` now, in this order, and encode them.

        Returns:
            One frame, for one WebSocket binary message.

        Raises:
            ValueEncodeError: A value cannot be serialised; the session is unchanged.
            FrameTooLargeError: The frame is too large; the session is unchanged.
            LocalProtocolError: We may not send one of these messages now (a bug), or
                the session is already in ERROR. The session moves to ERROR.
        """
        self._check_usable()
        try:
            state = self._walk(self.role, messages, LocalProtocolError)
            frame = encode_frame(messages, max_frame_bytes=self.max_send_bytes)
        except (ValueEncodeError, FrameTooLargeError):
            raise
        except ProtocolError:
            self._state = SessionState.ERROR
            raise
        self._commit(messages, state)
        self._we_closed = state is SessionState.CLOSED
        return frame

    def send_streamed(self, messages: Sequence[Message]) -> bytes | None:
        """As :meth:`send`, but a value too large for a frame goes as a stream.

        Such a value's message, and every later message of the same lease, is held
        until the stream went (:meth:`stream_frames`); the others go now.

        Returns:
            The frame of the messages that go now; ``None`` if every one is held.

        Raises:
            ValueEncodeError: A value cannot be serialised, or is larger than the peer
                takes in; the session is unchanged.
            FrameTooLargeError: The frame is too large; the session is unchanged.
            LocalProtocolError: As :meth:`send`.
        """
        if not self.peer_max_value_bytes or self._state is not SessionState.ACTIVE:
            return self.send(messages)
        self._check_usable()
        try:
            state = self._walk(self.role, messages, LocalProtocolError)
        except ProtocolError:
            self._state = SessionState.ERROR
            raise
        # A value over the peer's limit is refused here whatever its size: it spills.
        spill_above = min(spill_size(self.max_send_bytes), self.peer_max_value_bytes)
        try:
            frame = self._hold_streamed(messages, spill_above)
        except FrameTooLargeError:
            if len(messages) != 1 or spill_above <= _SMALL_SPILL:
                raise
            # One message of many mid-sized values: every value but the smallest goes
            # as a stream.
            frame = self._hold_streamed(messages, _SMALL_SPILL)
        self._commit(messages, state)
        self._we_closed = state is SessionState.CLOSED
        return frame

    def _hold_streamed(self, messages: Sequence[Message], spill_above: int) -> bytes | None:
        outgoing = self._outgoing
        streams: list[tuple[int, bytes]] = []
        spilled: dict[int, set[int]] = {}

        def spill(index: int, packed: bytes) -> bytes:
            stream = outgoing.new_stream()
            streams.append((stream, packed))
            spilled.setdefault(index, set()).add(stream)
            return _stream_reference(stream)

        wire = pack_messages(
            messages, spill=spill, spill_above=spill_above, spill_limit=self.peer_max_value_bytes
        )
        if not spilled and not outgoing.busy:
            return encode_wire(wire, max_frame_bytes=self.max_send_bytes)
        ready = []
        held = []
        held_now: set[object] = set()
        for index, message in enumerate(messages):
            keys = _order_keys(message)
            waiting = spilled.get(index)
            if waiting is not None or any(k in held_now or outgoing.holds(k) for k in keys):
                held_now.update(keys)
                alone = encode_wire([wire[index]], max_frame_bytes=self.max_send_bytes)
                held.append(outgoing.held(alone, keys, waiting or set()))
            else:
                ready.append(wire[index])
        frame = encode_wire(ready, max_frame_bytes=self.max_send_bytes) if ready else None
        outgoing.add(streams, held)
        return frame

    @property
    def streaming(self) -> bool:
        """Whether chunks, or messages waiting for them, remain to be sent."""
        return self._outgoing.busy

    def stream_frames(self) -> list[bytes]:
        """The next chunk's frame, and the frames of the messages it let go (in order).

        Empty once the session is no longer active: whatever waited is dropped.
        """
        if self._state is not SessionState.ACTIVE:
            self._outgoing.clear()
            return []
        limit = self.max_send_bytes
        return self._outgoing.next_frames(
            lambda chunk: encode_frame([chunk], max_frame_bytes=limit), chunk_size(limit)
        )

    def mark(self) -> tuple[int, int]:
        """Where the outgoing streams end now: a batch built again rolls back to it."""
        return self._outgoing.mark()

    def rollback(self, mark: tuple[int, int]) -> None:
        """Forget the streams and held messages queued since ``mark``; none was sent."""
        self._outgoing.rollback(mark)

    def check_sendable(self, message: Message) -> None:
        """Raise if ``message`` cannot be sent, as :meth:`send_streamed` would send it.

        Raises:
            ValueEncodeError: a value cannot be serialised, or is larger than the peer
                takes in.
            FrameTooLargeError: it needs a larger frame than the peer takes.
        """
        if not self.peer_max_value_bytes:
            encode_frame([message], max_frame_bytes=self.max_send_bytes)
            return
        wire = pack_messages(
            [message],
            spill=lambda index, packed: _stream_reference(1),
            spill_above=_SMALL_SPILL,
            spill_limit=self.peer_max_value_bytes,
        )
        encode_wire(wire, max_frame_bytes=self.max_send_bytes)

    def release_streams(self) -> None:
        """Forget every value on its way, both ways (the connection ended)."""
        self._outgoing.clear()
        self._inbound.release()

    def receive(self, data: bytes | bytearray | memoryview | str) -> list[Message]:
        """Decode a frame from the peer and check that it may send these messages now.

        Returns:
            The messages, in order, but for the value chunks, which are taken in here.
            Empty when the frame held only chunks, or when we had already sent
            ``Reject`` or ``Shutdown``: frames that crossed ours are dropped unread.

        Raises:
            RemoteProtocolError: The frame is malformed or breaks the order (a hello with
                another protocol version included). The session moves to ERROR.
            LocalProtocolError: The session is already in ERROR.
        """
        self._check_usable()
        if self._we_closed:
            return []
        active = self._state is SessionState.ACTIVE
        try:
            with streams_from(self._inbound if active else None):
                messages = decode_frame(
                    data,
                    allow_pickle=active,
                    max_frame_bytes=self._receive_limit(active),
                )
            state = self._walk(_PEER[self.role], messages, RemoteProtocolError)
            if any(type(message) is ValueChunk for message in messages):
                messages = self._take_chunks(messages)
        except RemoteProtocolError:
            self._state = SessionState.ERROR
            raise
        self._commit(messages, state)
        return messages

    def _take_chunks(self, messages: list[Message]) -> list[Message]:
        if not self.max_value_bytes:
            raise RemoteProtocolError("value_chunk: this end takes no streamed values")
        others = []
        for message in messages:
            if type(message) is ValueChunk:
                self._inbound.receive(message)
            else:
                others.append(message)
        return others

    def _receive_limit(self, active: bool) -> int:
        # Before the token was checked, the coordinator accepts only a small frame. A
        # worker chose its coordinator: the welcome (with the loops' context init
        # functions) may be as large as the worker accepts at all.
        if active or self.role is Role.WORKER:
            return self.max_frame_bytes
        return HANDSHAKE_MAX_FRAME_BYTES

    def _check_usable(self) -> None:
        if self._state is SessionState.ERROR:
            raise LocalProtocolError("this session had a protocol error; close the connection")

    def _walk(
        self,
        sender: Role,
        messages: Sequence[Message],
        error: type[LocalProtocolError] | type[RemoteProtocolError],
    ) -> SessionState:
        """Return the state after ``sender`` sent ``messages``; raise ``error`` if illegal."""
        state = self._state
        # The usual frame (work, answers, heartbeats while ACTIVE) leaves the state as it
        # is: checked in C, without a Python step per message.
        stays = _STAYS[sender].get(state)
        if stays is not None and all(map(stays.__contains__, map(type, messages))):
            return state
        for index, message in enumerate(messages):
            allowed = TRANSITIONS[sender].get(state, {})
            next_state = allowed.get(type(message))
            if next_state is None:
                _refuse(error, index, message, sender, state, allowed)
            versioned = Hello | Welcome | StatusRequest
            if isinstance(message, versioned) and message.version != PROTOCOL_VERSION:
                raise error(
                    f"the {sender.value} speaks protocol version {message.version}, "
                    f"this end speaks version {PROTOCOL_VERSION}"
                )
            state = next_state
        return state

    def _commit(self, messages: Sequence[Message], state: SessionState) -> None:
        # Only the handshake's messages are kept, and none passes once ACTIVE.
        for message in messages if self._state is not SessionState.ACTIVE else ():
            if isinstance(message, Hello):
                self.hello = message
                if self.role is Role.COORDINATOR:
                    self.limit_sends(message.max_frame_bytes)
                    self.peer_max_value_bytes = message.max_value_bytes
            elif isinstance(message, Welcome):
                self.welcome = message
                if self.role is Role.WORKER:
                    self.limit_sends(message.max_frame_bytes)
                    self.peer_max_value_bytes = message.max_value_bytes
        self._state = state


def _order_keys(message: Message) -> tuple[object, ...]:
    """What a message must not overtake: the held messages of its lease, and (an
    assignment) the held assignments of its function, one of which may carry it."""
    lease = getattr(message, "lease", None)
    if lease is None:
        return ()
    if type(message) is Assign:
        return (lease, ("function", message.handle))
    return (lease,)


#: The spill size of a message too large for a frame with its values in it.
_SMALL_SPILL: Final = 1024


def _stream_reference(stream: int) -> bytes:
    """The msgpack of an ``EXT_STREAMED`` reference to ``stream`` (an ext 8)."""
    return bytes((0xD7, EXT_STREAMED)) + stream.to_bytes(8, "big")


def _refuse(
    error: type[LocalProtocolError] | type[RemoteProtocolError],
    index: int,
    message: Message,
    sender: Role,
    state: SessionState,
    allowed: Mapping[type[Message], SessionState],
) -> NoReturn:
    expected = ", ".join(sorted(cls.TAG for cls in allowed)) or "nothing more"
    # getattr: a caller's bug may hand us something that is not a message at all.
    tag = getattr(message, "TAG", type(message).__name__)
    raise error(
        f"message {index} ({tag}): a {sender.value} may not send it in state "
        f"{state.name}; expected {expected}"
    )
