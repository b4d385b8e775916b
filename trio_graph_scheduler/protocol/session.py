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
from .codec import MAX_FRAME_BYTES, FrameTooLargeError, decode_frame, encode_frame
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
    Shutdown,
    SlotFreed,
    Started,
    StatusReply,
    StatusRequest,
    SuccessorsRequest,
    TaskFailed,
    TaskQuery,
    TaskSucceeded,
    Welcome,
)
from .values import ValueEncodeError

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
            Heartbeat: _S.ACTIVE,
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
            Shutdown: _S.CLOSED,
        },
    },
}

_PEER: Final = {Role.COORDINATOR: Role.WORKER, Role.WORKER: Role.COORDINATOR}


@final
class ProtocolSession:
    """One end of one connection: checks the order of messages and encodes frames.

    Usage, in an I/O shell::

        session = ProtocolSession(Role.WORKER)
        await ws.send_message(session.send([Hello(...)]))
        for message in session.receive(await ws.get_message()):
            ...

    Args:
        role: Which end this is.
        max_frame_bytes: The largest frame sent or accepted once the session is active.

    Attributes:
        role: Which end this is.
        max_send_bytes: The largest frame sent: ``max_frame_bytes``, or less once the
            peer said it accepts less: the worker's hello and the coordinator's welcome
            say how much each accepts, and the session applies it (:meth:`limit_sends`).
        hello: The worker's hello, once it has passed.
        welcome: The coordinator's welcome, once it has passed.
    """

    def __init__(self, role: Role, *, max_frame_bytes: int = MAX_FRAME_BYTES) -> None:
        self.role: Final = role
        self.max_frame_bytes: Final = max_frame_bytes
        self.max_send_bytes = max_frame_bytes
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

    def receive(self, data: bytes | bytearray | memoryview | str) -> list[Message]:
        """Decode a frame from the peer and check that it may send these messages now.

        Returns:
            The messages, in order. Empty only when we had already sent ``Reject`` or
            ``Shutdown``: frames that crossed ours are dropped unread.

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
            messages = decode_frame(
                data,
                allow_pickle=active,
                max_frame_bytes=self._receive_limit(active),
            )
            state = self._walk(_PEER[self.role], messages, RemoteProtocolError)
        except RemoteProtocolError:
            self._state = SessionState.ERROR
            raise
        self._commit(messages, state)
        return messages

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
        for message in messages:
            if isinstance(message, Hello):
                self.hello = message
                if self.role is Role.COORDINATOR:
                    self.limit_sends(message.max_frame_bytes)
            elif isinstance(message, Welcome):
                self.welcome = message
                if self.role is Role.WORKER:
                    self.limit_sends(message.max_frame_bytes)
        self._state = state


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
