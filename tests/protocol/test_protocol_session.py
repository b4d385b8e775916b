"""The session: message order on one connection, checked on both ends, without sockets."""

from __future__ import annotations

import threading

import pytest

from trio_graph_scheduler.protocol import (
    HANDSHAKE_MAX_FRAME_BYTES,
    MAX_FRAME_BYTES,
    MESSAGE_TYPES,
    PROTOCOL_VERSION,
    TRANSITIONS,
    Assign,
    Cancel,
    Cancelled,
    CancelTaskRequest,
    Claim,
    CreateConditionRequest,
    CreateTaskRequest,
    FrameTooLargeError,
    HandBack,
    Heartbeat,
    Hello,
    LocalProtocolError,
    LoopBlocked,
    Message,
    PrependRequest,
    ProtocolSession,
    Reject,
    RemoteProtocolError,
    Reply,
    ResultsDropped,
    Role,
    SessionState,
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
    ValueEncodeError,
    Welcome,
    encode_frame,
)

HELLO = Hello(version=PROTOCOL_VERSION, token="t", worker_name="w", loops=[], max_tasks=0)
WELCOME = Welcome(
    version=PROTOCOL_VERSION,
    worker_id="w-1",
    loops={"a": 1},
    heartbeat_interval=1,
    heartbeat_timeout=10,
    context_inits={"a": b"\x80\x05init"},
)
SAMPLES: dict[type[Message], Message] = {
    Hello: HELLO,
    Welcome: WELCOME,
    Reject: Reject(reason="bad token"),
    Claim: Claim(loop="a", credit=1),
    Assign: Assign(
        lease=1,
        task_uid="task-1",
        handle="h",
        loop="a",
        arguments=None,
        predecessors=[],
        function=None,
        timeout=None,
    ),
    TaskSucceeded: TaskSucceeded(lease=1, result=(1, 2)),
    TaskFailed: TaskFailed(lease=1, error_type="E", message="m", traceback="t"),
    HandBack: HandBack(leases=[1]),
    CreateTaskRequest: CreateTaskRequest(
        request_id=1,
        lease=1,
        uid="task-" + "0" * 32,
        awaited=True,
        handle="h",
        arguments=(None, {"a": 1}),
        waits_on=[],
    ),
    CreateConditionRequest: CreateConditionRequest(
        request_id=1, lease=1, uid="condition-1", mode="SUCCESS__ALL", waits_on=["task-1"]
    ),
    PrependRequest: PrependRequest(
        request_id=1, lease=1, successor_handle="h", new_task_uid="task-2"
    ),
    TaskQuery: TaskQuery(request_id=1, lease=1, key="k"),
    CancelTaskRequest: CancelTaskRequest(request_id=1, lease=1, uid="task-2", reason="r"),
    SuccessorsRequest: SuccessorsRequest(request_id=1, lease=1, uid="task-2", handle="h"),
    Reply: Reply(request_id=1, uid="task-2", error_type=None, error_message=None),
    Heartbeat: Heartbeat(),
    Cancel: Cancel(lease=1),
    Cancelled: Cancelled(lease=1),
    SlotFreed: SlotFreed(lease=1),
    ResultsDropped: ResultsDropped(uids=["task-1"]),
    ValueChunk: ValueChunk(stream=1, offset=0, total=3, data=b"abc"),
    Started: Started(leases=[1]),
    LoopBlocked: LoopBlocked(task_uid="task-1", handle="h", seconds=3.0),
    Shutdown: Shutdown(reason="done", graph_succeeded=True),
    StatusRequest: StatusRequest(version=PROTOCOL_VERSION, token="t", why=None),
    StatusReply: StatusReply(
        elapsed=1.0, tasks_by_status={}, loops=[], workers=[], slowest=[], explanation=None
    ),
}


class Pair:
    """A worker and a coordinator session with a fake network link in between."""

    def __init__(
        self, *, worker_limit: int = MAX_FRAME_BYTES, coordinator_limit: int = MAX_FRAME_BYTES
    ) -> None:
        self.worker = ProtocolSession(Role.WORKER, max_frame_bytes=worker_limit)
        self.coordinator = ProtocolSession(Role.COORDINATOR, max_frame_bytes=coordinator_limit)

    def worker_sends(self, *messages: Message) -> None:
        assert self.coordinator.receive(self.worker.send(messages)) == list(messages)

    def coordinator_sends(self, *messages: Message) -> None:
        assert self.worker.receive(self.coordinator.send(messages)) == list(messages)

    def states(self) -> tuple[SessionState, SessionState]:
        return self.worker.state, self.coordinator.state


def active_pair(**limits: int) -> Pair:
    pair = Pair(**limits)
    pair.worker_sends(HELLO)
    pair.coordinator_sends(WELCOME)
    return pair


def test_samples_cover_every_message_type() -> None:
    assert set(SAMPLES) == set(MESSAGE_TYPES.values())


def test_a_whole_conversation() -> None:
    pair = Pair()
    assert pair.states() == (SessionState.AWAITING_HELLO, SessionState.AWAITING_HELLO)
    pair.worker_sends(HELLO)
    assert pair.states() == (SessionState.AWAITING_WELCOME, SessionState.AWAITING_WELCOME)
    assert pair.coordinator.hello == HELLO
    pair.coordinator_sends(WELCOME)
    assert pair.states() == (SessionState.ACTIVE, SessionState.ACTIVE)
    assert pair.worker.welcome == WELCOME
    pair.worker_sends(SAMPLES[Claim], SAMPLES[Started], SAMPLES[Heartbeat])
    pair.coordinator_sends(SAMPLES[Assign], SAMPLES[Heartbeat])
    pair.worker_sends(SAMPLES[CreateTaskRequest], SAMPLES[CreateConditionRequest])
    pair.coordinator_sends(SAMPLES[Reply], SAMPLES[Cancel])
    pair.worker_sends(SAMPLES[Cancelled], SAMPLES[TaskSucceeded], SAMPLES[TaskFailed])
    pair.worker_sends(SAMPLES[PrependRequest], SAMPLES[HandBack])
    pair.worker_sends(SAMPLES[SlotFreed], SAMPLES[LoopBlocked], SAMPLES[ResultsDropped])
    pair.coordinator_sends(SAMPLES[Shutdown])
    assert pair.states() == (SessionState.CLOSED, SessionState.CLOSED)


def test_a_status_request_is_answered_once_and_the_connection_closes() -> None:
    pair = Pair()
    pair.worker_sends(SAMPLES[StatusRequest])
    assert pair.states() == (SessionState.AWAITING_STATUS, SessionState.AWAITING_STATUS)
    pair.coordinator_sends(SAMPLES[StatusReply])
    assert pair.states() == (SessionState.CLOSED, SessionState.CLOSED)
    with pytest.raises(LocalProtocolError, match="expected nothing more"):
        pair.worker.send([Heartbeat()])


def test_a_status_client_gets_no_welcome_and_sends_no_work() -> None:
    pair = Pair()
    pair.worker_sends(SAMPLES[StatusRequest])
    with pytest.raises(LocalProtocolError, match="expected reject, status_reply"):
        pair.coordinator.send([WELCOME])
    pair = Pair()
    pair.worker_sends(SAMPLES[StatusRequest])
    with pytest.raises(RemoteProtocolError, match="in state AWAITING_STATUS"):
        pair.coordinator.receive(encode_frame([SAMPLES[Claim]]))


def test_a_status_request_of_another_version_is_refused() -> None:
    request = StatusRequest(version=PROTOCOL_VERSION + 1, token="", why=None)
    with pytest.raises(RemoteProtocolError, match="worker speaks protocol version"):
        ProtocolSession(Role.COORDINATOR).receive(encode_frame([request]))


def test_reject_closes_the_connection() -> None:
    pair = Pair()
    pair.worker_sends(HELLO)
    pair.coordinator_sends(SAMPLES[Reject])
    assert pair.states() == (SessionState.CLOSED, SessionState.CLOSED)
    assert pair.worker.welcome is None
    with pytest.raises(LocalProtocolError, match="expected nothing more"):
        pair.worker.send([Heartbeat()])


@pytest.mark.parametrize("cls", list(SAMPLES), ids=lambda cls: cls.TAG)
def test_coordinator_receives_hello_first_and_nothing_before_it(cls: type[Message]) -> None:
    coordinator = ProtocolSession(Role.COORDINATOR)
    frame = encode_frame([SAMPLES[cls]])
    if cls in (Hello, StatusRequest):
        assert coordinator.receive(frame) == [SAMPLES[cls]]
        return
    with pytest.raises(RemoteProtocolError) as info:
        coordinator.receive(frame)
    assert f"message 0 ({cls.TAG})" in str(info.value)
    assert "in state AWAITING_HELLO; expected hello, status_request" in str(info.value)
    assert coordinator.state is SessionState.ERROR


@pytest.mark.parametrize("cls", list(SAMPLES), ids=lambda cls: cls.TAG)
def test_worker_receives_welcome_or_reject_first(cls: type[Message]) -> None:
    worker = ProtocolSession(Role.WORKER)
    worker.send([HELLO])
    frame = encode_frame([SAMPLES[cls]])
    if cls in (Welcome, Reject):
        assert worker.receive(frame) == [SAMPLES[cls]]
        return
    with pytest.raises(RemoteProtocolError, match="expected reject, welcome"):
        worker.receive(frame)
    assert worker.state is SessionState.ERROR


@pytest.mark.parametrize("role", list(Role), ids=lambda role: role.value)
@pytest.mark.parametrize("cls", list(SAMPLES), ids=lambda cls: cls.TAG)
def test_which_types_each_side_receives_when_active(cls: type[Message], role: Role) -> None:
    pair = active_pair()
    session = pair.worker if role is Role.WORKER else pair.coordinator
    peer = Role.COORDINATOR if role is Role.WORKER else Role.WORKER
    frame = encode_frame([SAMPLES[cls]])
    if cls in TRANSITIONS[peer][SessionState.ACTIVE]:
        # A value chunk is taken in by the session, not handed on.
        assert session.receive(frame) == ([] if cls is ValueChunk else [SAMPLES[cls]])
    else:
        with pytest.raises(RemoteProtocolError, match=f"a {peer.value} may not send it"):
            session.receive(frame)
        assert session.state is SessionState.ERROR


def test_worker_never_receives_claim_and_coordinator_never_receives_assign() -> None:
    pair = active_pair()
    with pytest.raises(RemoteProtocolError, match=r"\(claim\): a coordinator may not send it"):
        pair.worker.receive(encode_frame([SAMPLES[Claim]]))
    with pytest.raises(RemoteProtocolError, match=r"\(assign\): a worker may not send it"):
        pair.coordinator.receive(encode_frame([SAMPLES[Assign]]))


def test_sending_out_of_order_is_a_local_error() -> None:
    worker = ProtocolSession(Role.WORKER)
    with pytest.raises(LocalProtocolError, match="in state AWAITING_HELLO; expected hello"):
        worker.send([Claim(loop="a", credit=1)])
    assert worker.state is SessionState.ERROR
    coordinator = ProtocolSession(Role.COORDINATOR)
    with pytest.raises(LocalProtocolError, match="a coordinator may not send it"):
        coordinator.send([WELCOME])


def test_nothing_may_follow_shutdown_in_the_same_frame() -> None:
    pair = active_pair()
    frame = encode_frame([SAMPLES[Shutdown], Heartbeat()])
    with pytest.raises(RemoteProtocolError, match=r"message 1 \(heartbeat\).*expected nothing"):
        pair.worker.receive(frame)


def test_nothing_may_follow_shutdown_in_a_later_frame() -> None:
    pair = active_pair()
    pair.coordinator_sends(SAMPLES[Shutdown])
    with pytest.raises(RemoteProtocolError, match="in state CLOSED; expected nothing more"):
        pair.worker.receive(encode_frame([Heartbeat()]))


def test_frames_crossing_our_shutdown_are_dropped_not_blamed() -> None:
    pair = active_pair()
    in_flight = pair.worker.send([Heartbeat(), SAMPLES[TaskSucceeded]])
    pair.coordinator_sends(SAMPLES[Shutdown])
    assert pair.coordinator.receive(in_flight) == []
    assert pair.coordinator.state is SessionState.CLOSED


@pytest.mark.parametrize("version", [0, PROTOCOL_VERSION + 1])
def test_a_hello_of_another_version_is_refused_naming_both(version: int) -> None:
    coordinator = ProtocolSession(Role.COORDINATOR)
    hello = Hello(version=version, token="t", worker_name="w", loops=[], max_tasks=0)
    with pytest.raises(RemoteProtocolError) as info:
        coordinator.receive(encode_frame([hello]))
    assert f"worker speaks protocol version {version}" in str(info.value)
    assert f"this end speaks version {PROTOCOL_VERSION}" in str(info.value)
    assert coordinator.state is SessionState.ERROR
    assert coordinator.hello is None
    # The worker's own session refuses to send it in the first place.
    with pytest.raises(LocalProtocolError, match="protocol version"):
        ProtocolSession(Role.WORKER).send([hello])


def test_a_welcome_of_another_version_is_refused() -> None:
    worker = ProtocolSession(Role.WORKER)
    worker.send([HELLO])
    welcome = Welcome(
        version=99,
        worker_id="w",
        loops={},
        heartbeat_interval=1.0,
        heartbeat_timeout=10.0,
        context_inits={},
    )
    with pytest.raises(RemoteProtocolError, match="coordinator speaks protocol version 99"):
        worker.receive(encode_frame([welcome]))


def test_after_an_error_the_session_refuses_any_use() -> None:
    coordinator = ProtocolSession(Role.COORDINATOR)
    with pytest.raises(RemoteProtocolError):
        coordinator.receive(b"\xc1")
    assert coordinator.state is SessionState.ERROR
    with pytest.raises(LocalProtocolError, match="had a protocol error"):
        coordinator.receive(encode_frame([HELLO]))
    with pytest.raises(LocalProtocolError, match="had a protocol error"):
        coordinator.send([WELCOME])


def test_pickles_are_refused_until_active() -> None:
    # A first frame may not smuggle a pickle in next to the hello: it is refused before
    # anything is unpickled, whatever follows.
    coordinator = ProtocolSession(Role.COORDINATOR)
    frame = encode_frame([HELLO, TaskSucceeded(lease=1, result=threading.Event)])
    with pytest.raises(RemoteProtocolError, match="pickled value"):
        coordinator.receive(frame)
    # Once active, they are accepted.
    pair = active_pair()
    pair.worker_sends(TaskSucceeded(lease=1, result=threading.Event))


def test_handshake_frames_are_small() -> None:
    coordinator = ProtocolSession(Role.COORDINATOR)
    token = "t" * HANDSHAKE_MAX_FRAME_BYTES
    big = Hello(version=1, token=token, worker_name="w", loops=[], max_tasks=0)
    with pytest.raises(RemoteProtocolError, match="exceeds the limit"):
        coordinator.receive(encode_frame([big]))


def test_max_frame_bytes_defaults_to_the_codec_limit() -> None:
    for role in Role:
        assert ProtocolSession(role).max_frame_bytes == MAX_FRAME_BYTES
    assert ProtocolSession(Role.WORKER, max_frame_bytes=100).max_frame_bytes == 100


SMALL_LIMIT = 256
BIG_RESULT = TaskSucceeded(lease=1, result=b"x" * SMALL_LIMIT)


def test_a_small_limit_refuses_a_larger_active_frame_on_receive() -> None:
    # The worker sends under the default limit; the coordinator accepts only SMALL_LIMIT.
    pair = active_pair(coordinator_limit=SMALL_LIMIT)
    pair.worker_sends(TaskSucceeded(lease=1, result=b"x"))
    frame = pair.worker.send([BIG_RESULT])
    assert len(frame) > SMALL_LIMIT
    with pytest.raises(RemoteProtocolError, match=f"exceeds the limit of {SMALL_LIMIT} bytes"):
        pair.coordinator.receive(frame)
    assert pair.coordinator.state is SessionState.ERROR


def test_a_small_limit_refuses_a_larger_active_frame_on_send() -> None:
    pair = active_pair(worker_limit=SMALL_LIMIT)
    with pytest.raises(FrameTooLargeError) as info:
        pair.worker.send([Heartbeat(), BIG_RESULT])
    assert info.value.limit == SMALL_LIMIT
    assert info.value.size > SMALL_LIMIT
    assert pair.worker.state is SessionState.ACTIVE
    # The shell replaces the offending message and carries on.
    replacement = TaskFailed(lease=1, error_type="FrameTooLargeError", message="", traceback="")
    pair.worker_sends(Heartbeat(), replacement)


def test_a_small_limit_does_not_close_the_session_on_a_too_large_shutdown() -> None:
    # A Shutdown that cannot be sent does not move the session to CLOSED either.
    pair = active_pair(coordinator_limit=SMALL_LIMIT)
    with pytest.raises(FrameTooLargeError):
        pair.coordinator.send([Shutdown(reason="r" * SMALL_LIMIT, graph_succeeded=True)])
    assert pair.coordinator.state is SessionState.ACTIVE
    pair.worker_sends(Heartbeat())
    pair.coordinator_sends(SAMPLES[Shutdown])
    assert pair.states() == (SessionState.CLOSED, SessionState.CLOSED)


def test_the_handshake_limit_does_not_follow_max_frame_bytes() -> None:
    # A small active limit does not shrink what the handshake accepts...
    coordinator = ProtocolSession(Role.COORDINATOR, max_frame_bytes=SMALL_LIMIT)
    hello = Hello(version=1, token="t" * SMALL_LIMIT, worker_name="w", loops=[], max_tasks=0)
    assert coordinator.receive(encode_frame([hello])) == [hello]
    # ...and a large one does not widen it.
    coordinator = ProtocolSession(Role.COORDINATOR, max_frame_bytes=4 * MAX_FRAME_BYTES)
    big = Hello(
        version=1, token="t" * HANDSHAKE_MAX_FRAME_BYTES, worker_name="w", loops=[], max_tasks=0
    )
    with pytest.raises(RemoteProtocolError, match=f"limit of {HANDSHAKE_MAX_FRAME_BYTES} bytes"):
        coordinator.receive(encode_frame([big]))


def test_an_unencodable_value_leaves_the_session_usable() -> None:
    pair = active_pair()
    bad = TaskSucceeded(lease=1, result=threading.Lock())
    with pytest.raises(ValueEncodeError) as info:
        pair.worker.send([Heartbeat(), bad])
    assert (info.value.message_index, info.value.field) == (1, "result")
    assert pair.worker.state is SessionState.ACTIVE
    # The shell replaces the offending message and carries on.
    replacement = TaskFailed(lease=1, error_type="ValueEncodeError", message="", traceback="")
    pair.worker_sends(Heartbeat(), replacement)


def test_sending_something_that_is_not_a_message_is_a_local_error() -> None:
    pair = active_pair()
    with pytest.raises(LocalProtocolError, match=r"message 0 \(dict\)"):
        pair.worker.send([{"type": "heartbeat"}])  # type: ignore[list-item]
    assert pair.worker.state is SessionState.ERROR


def test_the_table_is_consistent() -> None:
    # Every message type appears in the table, and each is sent by exactly one role,
    # except the heartbeat and the value chunk, which go both ways.
    senders: dict[type[Message], set[Role]] = {}
    for role, states in TRANSITIONS.items():
        for allowed in states.values():
            for cls in allowed:
                senders.setdefault(cls, set()).add(role)
    assert set(senders) == set(MESSAGE_TYPES.values())
    assert {cls for cls, roles in senders.items() if len(roles) > 1} == {Heartbeat, ValueChunk}
