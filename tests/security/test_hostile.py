"""Hostile and broken input closes only the offending connection, with a reason.

Every test runs a graph with a good worker joined (see ``hostile_clients.serving``),
throws something bad at the same coordinator, checks how that one connection was closed
(WebSocket close code and reason, or the HTTP answer) and what the coordinator counted,
and then checks that the good worker still finished the graph.

Protocol logic runs over in-memory streams under the autojump clock; the raw TCP and
HTTP cases run over real loopback sockets; the last test throws bad connections at a real
``tgs-coordinator`` process while a real ``tgs-worker`` finishes its graph.
"""

from __future__ import annotations

import pickle
from typing import TYPE_CHECKING, Any

import msgpack
import pytest
import trio
import trio.testing
from hostile_clients import (
    DOUBLES,
    GOOD,
    HOSTILE,
    TIME_LIMIT,
    UPGRADE_REQUEST,
    assert_survived,
    binary_frame_header,
    close_code,
    closed,
    doubles_graph,
    e2e_procs,
    hello,
    join,
    raw_exchange,
    read_http_response,
    read_until_closed,
    send,
    serving,
    tcp_opener,
    tripwire_pickle,
    upgraded_stream,
    websocket,
)

from trio_graph_scheduler import CoordinatorConfig
from trio_graph_scheduler.protocol import (
    EXT_PICKLE,
    HANDSHAKE_MAX_FRAME_BYTES,
    MAX_FRAME_BYTES,
    MESSAGE_TYPES,
    PROTOCOL_VERSION,
    Assign,
    Cancelled,
    Claim,
    CreateConditionRequest,
    CreateTaskRequest,
    Heartbeat,
    Reject,
    TaskFailed,
    TaskSucceeded,
    decode_frame,
    encode_frame,
)

if TYPE_CHECKING:
    from pathlib import Path

#: WebSocket close codes (RFC 6455, 7.4.1).
PROTOCOL_ERROR = 1002
POLICY_VIOLATION = 1008
TOO_BIG = 1009

TOKEN = "s3cret"
HELLO_WIRE: dict[str, Any] = {
    "type": "hello",
    "version": PROTOCOL_VERSION,
    "token": "",
    "worker_name": HOSTILE,
    "loops": [],
    "max_tasks": 0,
}


def frame_of(*messages: Any) -> bytes:
    """A frame built by hand: msgpack of whatever is given, no checks."""
    return msgpack.packb(list(messages))


def hello_wire(**changes: Any) -> dict[str, Any]:
    wire = {**HELLO_WIRE, **changes}
    return {key: value for key, value in wire.items() if value is not ...}


def pickled(data: bytes) -> msgpack.ExtType:
    return msgpack.ExtType(EXT_PICKLE, data)


# -- before the handshake: nothing gets past the hello -------------------------------

#: (name, the first message sent, a fragment of the close reason). Each closes with 1002.
BAD_FIRST_MESSAGES: list[tuple[str, bytes | str, str]] = [
    ("text-frame", "hello", "frame must be binary, got a text message"),
    ("truncated-msgpack", encode_frame([hello()])[:-3], "invalid msgpack"),
    ("not-msgpack", b"\xc1\xc1\xc1", "invalid msgpack"),
    ("map-not-array", msgpack.packb(HELLO_WIRE), "Expected `array`, got `object`"),
    ("int-not-array", msgpack.packb(7), "Expected `array`, got `int`"),
    ("empty-array", msgpack.packb([]), "at least one message"),
    ("array-of-int", frame_of(1), "Expected `object`, got `int`"),
    (
        "missing-field",
        frame_of(hello_wire(worker_name=...)),
        "missing required field `worker_name`",
    ),
    ("missing-token", frame_of(hello_wire(token=...)), "missing required field `token`"),
    ("wrong-type", frame_of(hello_wire(version="1")), "Expected `int`, got `str`"),
    ("wrong-type-loops", frame_of(hello_wire(loops="default")), "Expected `array`, got `str`"),
    ("extra-field", frame_of(hello_wire(admin=True)), "unknown field `admin`"),
    ("unknown-type", frame_of({"type": "launch_missiles"}), "Invalid value 'launch_missiles'"),
    ("no-type", frame_of({"version": 1}), "missing required field `type`"),
    (
        "wrong-version",
        encode_frame([hello(version=PROTOCOL_VERSION + 1)]),
        f"protocol version {PROTOCOL_VERSION + 1}",
    ),
    ("claim-before-hello", encode_frame([Claim(loop="default", credit=1)]), "(claim)"),
    ("heartbeat-before-hello", encode_frame([Heartbeat()]), "(heartbeat)"),
    ("two-hellos", encode_frame([hello(), hello()]), "(hello)"),
    ("hello-then-claim", encode_frame([hello(), Claim(loop="default", credit=1)]), "(claim)"),
    (
        "result-before-hello",
        encode_frame([TaskSucceeded(lease=1, result="forged")]),
        "(task_succeeded)",
    ),
    ("deeply-nested", b"\x91" * 60_000 + b"\xc0", "invalid"),
]


@pytest.mark.parametrize(
    ("first", "fragment"),
    [(first, fragment) for _, first, fragment in BAD_FIRST_MESSAGES],
    ids=[name for name, _, _ in BAD_FIRST_MESSAGES],
)
async def test_bad_first_message_closes_only_that_connection_with_1002(
    autojump_clock: trio.testing.MockClock, tmp_path: Path, first: bytes | str, fragment: str
) -> None:
    with trio.fail_after(TIME_LIMIT):
        async with serving(tmp_path) as run:
            async with websocket(run.open_stream) as ws:
                await send(ws, first)
                close = await closed(ws)
            assert close.code == PROTOCOL_ERROR
            assert close.reason.startswith("protocol error: ")
            assert fragment in close.reason
            assert close.messages == []  # no welcome, no reject: just the close
            assert run.session_names() == {GOOD}
            assert not run.coordinator.ended
    assert_survived(run)


async def test_silent_websocket_is_closed_after_the_handshake_timeout(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    config = CoordinatorConfig(handshake_timeout=2)
    with trio.fail_after(TIME_LIMIT):
        async with serving(tmp_path, config) as run:
            async with websocket(run.open_stream) as ws:
                opened = trio.current_time()
                close = await closed(ws)
                waited = trio.current_time() - opened  # virtual seconds
            assert (close.code, close.reason) == (POLICY_VIOLATION, "no hello in time")
            assert 2 <= waited < 3
            assert run.session_names() == {GOOD}
    assert_survived(run)


async def test_silent_stream_is_closed_after_the_handshake_timeout(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    # Not even the HTTP upgrade: trio-websocket's own connect timeout (handshake_timeout).
    config = CoordinatorConfig(handshake_timeout=2)
    with trio.fail_after(TIME_LIMIT):
        async with serving(tmp_path, config) as run:
            stream = await run.open_stream()
            async with stream:
                opened = trio.current_time()
                assert await read_until_closed(stream) == b""
                waited = trio.current_time() - opened
            assert 2 <= waited < 3
            assert run.session_names() == {GOOD}
    assert_survived(run)


# -- tokens --------------------------------------------------------------------------


@pytest.mark.parametrize("token", ["wrong", "", TOKEN + "x", TOKEN[:-1]])
async def test_wrong_or_missing_token_is_rejected_with_1008(
    autojump_clock: trio.testing.MockClock, tmp_path: Path, token: str
) -> None:
    config = CoordinatorConfig(token=TOKEN)
    with trio.fail_after(TIME_LIMIT):
        async with serving(tmp_path, config) as run:
            async with websocket(run.open_stream) as ws:
                await send(ws, encode_frame([hello(token)]))
                close = await closed(ws)
            assert (close.code, close.reason) == (POLICY_VIOLATION, "wrong token")
            assert close.messages == [Reject(reason="wrong token")]
            assert run.session_names() == {GOOD}
    assert_survived(run)


async def test_hello_without_a_token_field_is_a_protocol_error(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    config = CoordinatorConfig(token=TOKEN)
    with trio.fail_after(TIME_LIMIT):
        async with serving(tmp_path, config) as run:
            async with websocket(run.open_stream) as ws:
                await send(ws, frame_of(hello_wire(token=...)))
                close = await closed(ws)
            assert close.code == PROTOCOL_ERROR
            assert "missing required field `token`" in close.reason
    assert_survived(run)


# -- pickles before the handshake are never loaded -----------------------------------


def test_the_tripwire_pickle_is_observable(tmp_path: Path) -> None:
    # The check the next test relies on: loading this pickle does create the file.
    path = tmp_path / "loaded"
    pickle.loads(tripwire_pickle(path))  # our own bytes
    assert path.exists()


#: How a pickle is smuggled in: (name, the frames sent given the pickle, the close code).
SMUGGLED: list[tuple[str, Any, int]] = [
    (
        "result-before-hello",
        lambda p: [frame_of({"type": "task_succeeded", "lease": 1, "result": p})],
        PROTOCOL_ERROR,
    ),
    (
        "next-to-the-hello",
        lambda p: [frame_of(HELLO_WIRE, {"type": "task_succeeded", "lease": 1, "result": p})],
        PROTOCOL_ERROR,
    ),
    ("as-the-token", lambda p: [frame_of(hello_wire(token=p))], PROTOCOL_ERROR),
    ("as-the-frame", lambda p: [msgpack.packb(p)], PROTOCOL_ERROR),
    ("as-a-message", lambda p: [frame_of(p)], PROTOCOL_ERROR),
    (
        "create-task-arguments",
        lambda p: [
            frame_of(
                {
                    "type": "create_task_request",
                    "request_id": 1,
                    "lease": 1,
                    "uid": "task-" + "0" * 32,
                    "awaited": False,
                    "handle": "double",
                    "arguments": p,
                    "waits_on": [],
                }
            )
        ],
        PROTOCOL_ERROR,
    ),
    (
        "after-a-wrong-token",
        lambda p: [
            frame_of(hello_wire(token="wrong")),
            frame_of({"type": "task_succeeded", "lease": 1, "result": p}),
        ],
        POLICY_VIOLATION,
    ),
]


@pytest.mark.parametrize(
    ("frames", "code"),
    [(frames, code) for _, frames, code in SMUGGLED],
    ids=[name for name, _, _ in SMUGGLED],
)
async def test_pickle_before_the_handshake_is_refused_unloaded(
    autojump_clock: trio.testing.MockClock, tmp_path: Path, frames: Any, code: int
) -> None:
    tripwire = tmp_path / "unpickled"
    config = CoordinatorConfig(token=TOKEN)
    with trio.fail_after(TIME_LIMIT):
        async with serving(tmp_path, config) as run:
            async with websocket(run.open_stream) as ws:
                for frame in frames(pickled(tripwire_pickle(tripwire))):
                    await send(ws, frame)
                close = await closed(ws)
            assert close.code == code
            if code == PROTOCOL_ERROR:
                assert close.reason.startswith("protocol error: ")
            assert not tripwire.exists()
            assert run.session_names() == {GOOD}
    assert_survived(run)
    assert not tripwire.exists()


# -- after the welcome: the session is dropped, the good worker is untouched ----------

#: (name, a frame sent by a welcomed client, a fragment of the close reason).
BAD_LATER_MESSAGES: list[tuple[str, bytes | str, str]] = [
    ("second-hello", encode_frame([hello()]), "(hello)"),
    ("text-frame", "claim", "frame must be binary"),
    ("garbage", b"\xc1garbage", "invalid msgpack"),
    ("truncated", encode_frame([Claim(loop="default", credit=1)])[:-1], "invalid msgpack"),
    ("map-not-array", msgpack.packb({"type": "heartbeat"}), "Expected `array`"),
    ("unknown-type", frame_of({"type": "become_coordinator"}), "Invalid value"),
    (
        "claim-wrong-type",
        frame_of({"type": "claim", "loop": "default", "credit": "all"}),
        "Expected `int`",
    ),
    ("claim-zero", frame_of({"type": "claim", "loop": "default", "credit": 0}), ">= 1"),
    ("claim-missing", frame_of({"type": "claim", "loop": "default"}), "`credit`"),
    ("claim-unserved-loop", encode_frame([Claim(loop="nope", credit=1)]), "not served"),
    ("coordinator-message", encode_frame([Reject(reason="no")]), "(reject)"),
    (
        "bad-pickle",
        frame_of({"type": "task_succeeded", "lease": 1, "result": pickled(b"\x80\x05junk")}),
        "cannot unpickle",
    ),
]


@pytest.mark.parametrize(
    ("frame", "fragment"),
    [(frame, fragment) for _, frame, fragment in BAD_LATER_MESSAGES],
    ids=[name for name, _, _ in BAD_LATER_MESSAGES],
)
async def test_welcomed_client_breaking_the_protocol_is_dropped_with_1002(
    autojump_clock: trio.testing.MockClock, tmp_path: Path, frame: bytes | str, fragment: str
) -> None:
    with trio.fail_after(TIME_LIMIT):
        async with serving(tmp_path) as run:
            async with websocket(run.open_stream) as ws:
                await join(ws)
                assert run.session_names() == {GOOD, HOSTILE}
                await send(ws, frame)
                close = await closed(ws)
            assert close.code == PROTOCOL_ERROR
            assert fragment in close.reason
            assert run.session_names() == {GOOD}
            assert not run.coordinator.ended
    assert_survived(run, joined=2, lost=1)


@pytest.mark.parametrize(
    "answer",
    [
        TaskSucceeded(lease=999, result="forged"),
        TaskFailed(lease=999, error_type="E", message="forged", traceback="forged"),
        Cancelled(lease=999),
    ],
    ids=lambda message: message.TAG,
)
async def test_answer_for_a_lease_never_held_is_dropped_with_1002(
    autojump_clock: trio.testing.MockClock, tmp_path: Path, answer: Any
) -> None:
    with trio.fail_after(TIME_LIMIT):
        async with serving(tmp_path) as run:
            async with websocket(run.open_stream) as ws:
                await join(ws)
                await send(ws, encode_frame([answer]))
                close = await closed(ws)
            assert close.code == PROTOCOL_ERROR
            assert "lease 999, which this worker does not hold" in close.reason
            assert run.coordinator.statistics().results_dropped == 1
            assert run.session_names() == {GOOD}
    assert_survived(run, joined=2, lost=1, results_dropped=1)


async def test_result_for_the_good_workers_lease_is_not_recorded(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    # Leases count up from 1, and the good worker holds the first: the gate task. A
    # hostile worker that guesses it cannot end that task with a result of its own.
    with trio.fail_after(TIME_LIMIT):
        async with serving(tmp_path) as run:
            (gate,) = [n for n in run.graph.nodes.values() if n.task_handle == "gate"]
            # The good worker claims it at once; the scheduler has no event to wait on.
            while gate.task_status != "in_progress":  # noqa: ASYNC110
                await trio.sleep(0.01)
            good_lease = 1
            async with websocket(run.open_stream) as ws:
                await join(ws)
                await send(ws, encode_frame([TaskSucceeded(lease=good_lease, result="forged")]))
                close = await closed(ws)
            assert close.code == PROTOCOL_ERROR
            assert f"lease {good_lease}, which this worker does not hold" in close.reason
            assert gate.task_status == "in_progress"
    assert_survived(run, joined=2, lost=1, results_dropped=1)
    assert gate.task_result == "open"


async def test_task_of_a_dropped_worker_runs_again_on_the_good_one(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    # The hostile client joins first and takes a task, then breaks the protocol: the task
    # is lost with it and runs again on the good worker.
    with trio.fail_after(TIME_LIMIT):
        async with serving(tmp_path, graph=doubles_graph(), join_good=False) as run:
            async with websocket(run.open_stream) as ws:
                await join(ws)
                await send(ws, encode_frame([Claim(loop="default", credit=1)]))
                assign: Any = None
                while not isinstance(assign, Assign):  # heartbeats may come first
                    (assign,) = decode_frame(await ws.get_message(), allow_pickle=False)
                await send(ws, b"\xc1")
                close = await closed(ws)
            assert close.code == PROTOCOL_ERROR
            node = run.graph.nodes[assign.task_uid]
            assert node.task_status == "ready_for_execution"
            await run.join_good_worker()
    assert_survived(run, joined=2, lost=1, tasks_lost=1)
    assert node.task_result == 2 * assign.arguments[0][0]


async def test_welcomed_client_gone_silent_is_dropped_after_the_heartbeat_timeout(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    config = CoordinatorConfig(heartbeat_timeout=3)
    with trio.fail_after(TIME_LIMIT):
        async with serving(tmp_path, config) as run:
            async with websocket(run.open_stream) as ws:
                await join(ws)
                close = await closed(ws)  # reads the heartbeats, never answers
            assert (close.code, close.reason) == (POLICY_VIOLATION, "silent for 3 s")
            assert any(isinstance(message, Heartbeat) for message in close.messages)
            assert run.session_names() == {GOOD}
    assert_survived(run, joined=2, lost=1)


#: Graph calls a welcomed client makes for a lease it does not hold.
UNHELD_GRAPH_CALLS: list[tuple[str, Any]] = [
    (
        "create-task",
        CreateTaskRequest(
            request_id=1,
            lease=999,
            uid="task-" + "f" * 32,
            awaited=False,
            handle="double",
            arguments=((50,), {}),
            waits_on=[],
        ),
    ),
    (
        "create-task-awaited",
        CreateTaskRequest(
            request_id=1,
            lease=999,
            uid="task-" + "f" * 32,
            awaited=True,
            handle="double",
            arguments=((50,), {}),
            waits_on=[],
        ),
    ),
    (
        "create-condition",
        CreateConditionRequest(
            request_id=1, lease=999, uid="condition-" + "f" * 32, mode="SUCCESS__ALL", waits_on=[]
        ),
    ),
]


@pytest.mark.parametrize(
    "call", [call for _, call in UNHELD_GRAPH_CALLS], ids=[name for name, _ in UNHELD_GRAPH_CALLS]
)
async def test_graph_call_for_a_lease_never_held_is_refused_with_1002(
    autojump_clock: trio.testing.MockClock, tmp_path: Path, call: Any
) -> None:
    # Graph calls come from a task running under a lease; a worker that follows the
    # protocol cannot make one for a lease it does not hold (its tasks are stopped
    # before it hands their leases back). Answers for such leases close the connection
    # (fencing); graph calls must not change the graph either.
    config = CoordinatorConfig(heartbeat_timeout=3)
    with trio.fail_after(TIME_LIMIT):
        async with serving(tmp_path, config) as run:
            known = set(run.graph.nodes) | set(run.graph.conditions)
            async with websocket(run.open_stream) as ws:
                await join(ws)
                await send(ws, encode_frame([call]))
                close = await closed(ws)
            assert set(run.graph.nodes) | set(run.graph.conditions) == known
            assert close.code == PROTOCOL_ERROR
            assert "lease 999" in close.reason
    assert_survived(run, joined=2, lost=1)


# -- status queries: answered, then closed; nothing else may come with them -----------

needs_status_queries = pytest.mark.skipif(
    "status_request" not in MESSAGE_TYPES, reason="this protocol has no status queries"
)


def status_request(**changes: Any) -> bytes:
    wire = {"type": "status_request", "version": PROTOCOL_VERSION, "token": "", "why": None}
    return frame_of({**wire, **changes})


@pytest.mark.parametrize(
    "why",
    [None, "task-nope", "condition-nope", "x" * 60_000, "\x00\ufffd\u202e"],
    ids=["none", "unknown-task", "unknown-condition", "huge", "odd-text"],
)
@needs_status_queries
async def test_status_query_is_answered_and_closed(
    autojump_clock: trio.testing.MockClock, tmp_path: Path, why: str | None
) -> None:
    with trio.fail_after(TIME_LIMIT):
        async with serving(tmp_path) as run:
            async with websocket(run.open_stream) as ws:
                await send(ws, status_request(why=why))
                close = await closed(ws)
            assert (close.code, close.reason) == (1000, "status sent")
            assert [message.TAG for message in close.messages] == ["status_reply"]
            assert run.session_names() == {GOOD}
    assert_survived(run)


@pytest.mark.parametrize(
    ("frame", "code", "fragment"),
    [
        (status_request(token="wrong"), POLICY_VIOLATION, "wrong token"),
        (status_request(version=PROTOCOL_VERSION + 1), PROTOCOL_ERROR, "protocol version"),
        (status_request(why=""), PROTOCOL_ERROR, "length >= 1"),
        (status_request(why=7), PROTOCOL_ERROR, "Expected `str | null`"),
        (
            frame_of(
                {"type": "status_request", "version": 1, "token": "", "why": None}, HELLO_WIRE
            ),
            PROTOCOL_ERROR,
            "(hello)",
        ),
        (
            frame_of(
                HELLO_WIRE, {"type": "status_request", "version": 1, "token": "", "why": None}
            ),
            PROTOCOL_ERROR,
            "(status_request)",
        ),
    ],
    ids=["wrong-token", "wrong-version", "empty-why", "int-why", "then-hello", "after-hello"],
)
@needs_status_queries
async def test_bad_status_query_is_refused(
    autojump_clock: trio.testing.MockClock, tmp_path: Path, frame: bytes, code: int, fragment: str
) -> None:
    config = CoordinatorConfig(token=TOKEN)
    with trio.fail_after(TIME_LIMIT):
        async with serving(tmp_path, config) as run:
            async with websocket(run.open_stream) as ws:
                await send(ws, frame)
                close = await closed(ws)
            assert close.code == code
            assert fragment in close.reason
            assert all(message.TAG == "reject" for message in close.messages)
            assert run.session_names() == {GOOD}
    assert_survived(run)


# -- frames too large ----------------------------------------------------------------


@pytest.mark.parametrize("welcomed", [False, True], ids=["before-hello", "after-welcome"])
async def test_frame_over_max_frame_bytes_closes_with_1009(
    autojump_clock: trio.testing.MockClock, tmp_path: Path, welcomed: bool
) -> None:
    limit = 2**16
    config = CoordinatorConfig(max_frame_bytes=limit)
    with trio.fail_after(TIME_LIMIT):
        async with serving(tmp_path, config) as run:
            async with websocket(run.open_stream) as ws:
                if welcomed:
                    await join(ws)
                await send(ws, b"\x00" * (limit + 1))
                close = await closed(ws)
            assert close.code == TOO_BIG
            assert str(limit) in close.reason
            assert run.session_names() == {GOOD}
    assert_survived(run, joined=1 + welcomed, lost=int(welcomed))


async def test_frame_bigger_than_a_handshake_before_hello_is_refused(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    # Under max_frame_bytes, over what a hello may take: refused by the protocol session
    # (1002), or by the WebSocket layer (1009) should it learn the handshake's limit.
    with trio.fail_after(TIME_LIMIT):
        async with serving(tmp_path) as run:
            async with websocket(run.open_stream) as ws:
                await send(ws, encode_frame([hello(name="x" * HANDSHAKE_MAX_FRAME_BYTES)]))
                close = await closed(ws)
            if close.code == PROTOCOL_ERROR:
                assert f"exceeds the limit of {HANDSHAKE_MAX_FRAME_BYTES} bytes" in close.reason
            else:
                assert close.code == TOO_BIG
            assert run.session_names() == {GOOD}
    assert_survived(run)


async def test_unauthenticated_client_cannot_make_the_coordinator_buffer_a_big_frame(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    # HANDSHAKE_MAX_FRAME_BYTES: "an unauthenticated peer should not make us allocate
    # much". A client announces an 8 MiB message and sends the first 256 KiB of it: the
    # coordinator should close as soon as 64 KiB have come, not buffer on until the
    # handshake timeout (1024 connections x 16 MiB each is 16 GiB).
    config = CoordinatorConfig(handshake_timeout=5)
    with trio.fail_after(TIME_LIMIT):
        async with serving(tmp_path, config) as run:
            stream = await upgraded_stream(run.open_stream)
            async with stream:
                started = trio.current_time()
                await stream.send_all(binary_frame_header(8 * 2**20) + bytes(256 * 2**10))
                answer = await read_until_closed(stream)
                waited = trio.current_time() - started  # virtual seconds
            assert close_code(answer) in (PROTOCOL_ERROR, TOO_BIG), answer[:80]
            assert waited < 5, "held until the handshake timeout"
    assert_survived(run)


# -- the connection cap --------------------------------------------------------------


async def test_connection_over_the_cap_gets_503_and_the_good_worker_gets_in_later(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    config = CoordinatorConfig(max_connections=1, handshake_timeout=3)
    with trio.fail_after(TIME_LIMIT):
        async with serving(tmp_path, config, join_good=False) as run:
            async with websocket(run.open_stream) as holder:  # takes the only slot and says nothing
                opened = trio.current_time()
                stream = await run.open_stream()
                async with stream:
                    await stream.send_all(UPGRADE_REQUEST)
                    answer = await read_http_response(stream)
                assert answer.startswith(b"HTTP/1.1 503 ")
                assert answer.endswith(b"\r\n\r\ntoo many connections")
                # The good worker is refused too, and keeps trying until the slot frees.
                worker = run.good_worker()
                await run.nursery.start(worker.run)
                assert trio.current_time() - opened >= 3  # welcomed once the holder timed out
                close = await closed(holder)
            assert (close.code, close.reason) == (POLICY_VIOLATION, "no hello in time")
            assert run.session_names() == {GOOD}
    assert_survived(run)


async def test_connection_over_the_cap_is_closed_after_its_503(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    # CoordinatorConfig.max_connections says "more are closed at once". A client that
    # keeps its refused connection open must not keep a socket and a task of the
    # coordinator: otherwise the cap bounds nothing.
    config = CoordinatorConfig(max_connections=1, handshake_timeout=3)
    with trio.fail_after(TIME_LIMIT):
        async with serving(tmp_path, config) as run:  # the good worker holds the slot
            stream = await run.open_stream()
            async with stream:
                await stream.send_all(UPGRADE_REQUEST)
                assert (await read_http_response(stream)).startswith(b"HTTP/1.1 503 ")
                # Virtual seconds, longer than the handshake timeout.
                with trio.move_on_after(5) as waiting:
                    tail = await read_until_closed(stream)
            assert not waiting.cancelled_caught, "the refused connection is still open"
            assert tail == b""
    assert_survived(run)


# -- real sockets: bytes that are not even HTTP --------------------------------------

#: Long enough that a connection closed within TIME_LIMIT was closed for what it sent.
PATIENT = CoordinatorConfig(handshake_timeout=60)


@pytest.mark.parametrize(
    "payload",
    [
        b"\x00\xffgarbage\r\n\r\n",
        bytes(range(256)) * 16,
        b"\xc1" * 70_000,
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\n" * 64,  # a TLS hello, then lines
    ],
    ids=["garbage-lines", "all-bytes", "garbage-70k", "tls-hello"],
)
async def test_garbage_bytes_on_the_port_are_refused_at_once(
    tmp_path: Path, payload: bytes
) -> None:
    with trio.fail_after(TIME_LIMIT):
        async with serving(tmp_path, PATIENT, in_memory=False) as run:
            answer = await raw_exchange(run.open_stream, payload)
            # A 400, unless the reset that follows unread bytes overtook it.
            assert answer == b"" or answer.startswith(b"HTTP/1.1 400 "), answer
            assert run.session_names() == {GOOD}
    assert_survived(run)


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        b"GET / HTTP/1.0\r\n\r\n",
        b"POST /api HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
        UPGRADE_REQUEST.replace(b"Sec-WebSocket-Version: 13", b"Sec-WebSocket-Version: 7"),
        UPGRADE_REQUEST.replace(b"Upgrade: websocket", b"Upgrade: h2c"),
    ],
    ids=["get", "get-http10", "post", "bad-ws-version", "upgrade-h2c"],
)
async def test_plain_http_gets_a_4xx_answer(tmp_path: Path, request_bytes: bytes) -> None:
    with trio.fail_after(TIME_LIMIT):
        async with serving(tmp_path, PATIENT, in_memory=False) as run:
            answer = await raw_exchange(run.open_stream, request_bytes)
            status = answer.split(b"\r\n", 1)[0]
            assert status.startswith(b"HTTP/1.1 4"), answer
            assert run.session_names() == {GOOD}
    assert_survived(run)


@pytest.mark.parametrize(
    "sent",
    [b"", b"\xc1" * 64, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n"],
    ids=["nothing", "garbage-no-newline", "half-a-request"],
)
async def test_silent_tcp_connection_is_closed_after_the_handshake_timeout(
    tmp_path: Path, sent: bytes
) -> None:
    config = CoordinatorConfig(handshake_timeout=0.3)
    with trio.fail_after(TIME_LIMIT):
        async with serving(tmp_path, config, in_memory=False) as run:
            stream = await run.open_stream()
            async with stream:
                await stream.send_all(sent)
                assert await read_until_closed(stream) == b""
            assert run.session_names() == {GOOD}
    assert_survived(run)


async def test_silent_websocket_over_tcp_is_closed_after_the_handshake_timeout(
    tmp_path: Path,
) -> None:
    config = CoordinatorConfig(handshake_timeout=0.3)
    with trio.fail_after(TIME_LIMIT):
        async with serving(tmp_path, config, in_memory=False) as run:
            async with websocket(run.open_stream) as ws:  # upgraded, then silent
                close = await closed(ws)
            assert (close.code, close.reason) == (POLICY_VIOLATION, "no hello in time")
            assert run.session_names() == {GOOD}
    assert_survived(run)


async def test_bad_frames_over_tcp_close_only_their_connection(tmp_path: Path) -> None:
    with trio.fail_after(TIME_LIMIT):
        async with serving(tmp_path, in_memory=False) as run:
            async with websocket(run.open_stream) as first, websocket(run.open_stream) as second:
                await send(first, b"\xc1")
                await join(second)
                await send(second, encode_frame([TaskSucceeded(lease=77, result=None)]))
                closes = [await closed(first), await closed(second)]
            assert [close.code for close in closes] == [PROTOCOL_ERROR, PROTOCOL_ERROR]
            assert "invalid msgpack" in closes[0].reason
            assert "lease 77" in closes[1].reason
            assert run.session_names() == {GOOD}
    assert_survived(run, joined=2, lost=1, results_dropped=1)


async def test_many_bad_connections_at_once(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    # Forty bad clients at the same moment, of every kind: each gets its own close.
    kinds: list[bytes | str] = [b"\xc1", "text", msgpack.packb(1), encode_frame([hello("x")])]
    codes: list[int] = []
    config = CoordinatorConfig(token=TOKEN)

    async def attack(run: Any, data: bytes | str) -> None:
        async with websocket(run.open_stream) as ws:
            await send(ws, data)
            codes.append((await closed(ws)).code)

    with trio.fail_after(TIME_LIMIT):
        async with serving(tmp_path, config) as run:
            async with trio.open_nursery() as nursery:
                for index in range(40):
                    nursery.start_soon(attack, run, kinds[index % len(kinds)])
            assert sorted(codes) == [PROTOCOL_ERROR] * 30 + [POLICY_VIOLATION] * 10
            assert run.session_names() == {GOOD}
    assert_survived(run)
    assert len([n for n in run.graph.nodes.values() if n.task_handle == "double"]) == DOUBLES


# -- a real tgs-coordinator process ----------------------------------------------------

#: The bound on the real-process test, in seconds (each wait inside has its own, too).
PROCESS_TIME_LIMIT = 60


@pytest.mark.slow
async def test_real_coordinator_survives_hostile_connections(tmp_path: Path) -> None:
    procs_module = e2e_procs()
    procs = procs_module.Processes(tmp_path)
    try:
        with trio.fail_after(PROCESS_TIME_LIMIT):
            await attack_a_real_run(procs, tmp_path / "unpickled")
    finally:
        procs.close()


async def attack_a_real_run(procs: Any, tripwire: Path) -> None:
    """Run ``build_blocking`` (4 tasks held until ``release``) on one real worker, attack
    the coordinator meanwhile, then let the graph end."""
    coordinator = procs.coordinator("build_blocking", "--token", TOKEN)
    url = await trio.to_thread.run_sync(coordinator.wait_listening)
    worker = procs.worker(url, "--token", TOKEN, "--name", GOOD)

    def all_started(events: list[dict[str, Any]]) -> bool:
        return sum(event["event"] == "start" for event in events) == 4

    await trio.to_thread.run_sync(procs.wait_events, all_started, "the 4 hold tasks to start")
    opener = tcp_opener(url)

    # Held open while the graph ends: neither may keep the coordinator from exiting.
    silent_tcp = await opener()
    async with silent_tcp, websocket(opener) as silent_ws:
        answer = await raw_exchange(opener, b"\x00\xffgarbage\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 400 "), answer
        answer = await raw_exchange(opener, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 4"), answer

        smuggled = frame_of(
            {"type": "task_succeeded", "lease": 1, "result": pickled(tripwire_pickle(tripwire))}
        )
        cases: list[tuple[bytes | str, int, str]] = [
            (b"\xc1", PROTOCOL_ERROR, "invalid msgpack"),
            ("hello", PROTOCOL_ERROR, "must be binary"),
            (frame_of(hello_wire(version="1")), PROTOCOL_ERROR, "Expected `int`"),
            (encode_frame([hello(TOKEN, version=99)]), PROTOCOL_ERROR, "protocol version 99"),
            (encode_frame([hello()]), POLICY_VIOLATION, "wrong token"),
            (smuggled, PROTOCOL_ERROR, "pickled value"),
            (b"\x00" * (MAX_FRAME_BYTES + 1), TOO_BIG, "maximum message size"),
        ]
        for data, code, fragment in cases:
            async with websocket(opener) as ws:
                await send(ws, data)
                close = await closed(ws)
            assert close.code == code, (data[:20], close)
            assert fragment in close.reason, (data[:20], close)

        async with websocket(opener) as ws:  # welcomed, then answers for the good lease
            await join(ws, TOKEN)
            await send(ws, encode_frame([TaskSucceeded(lease=1, result="forged")]))
            close = await closed(ws)
        assert close.code == PROTOCOL_ERROR
        assert "lease 1, which this worker does not hold" in close.reason

        procs.release("release")
        assert await trio.to_thread.run_sync(procs.wait, coordinator) == 0
        assert await trio.to_thread.run_sync(procs.wait, worker) == 0
        assert await read_until_closed(silent_tcp) == b""
        await closed(silent_ws)

    assert coordinator.summary() == {"success": 4}
    # The good worker ran every task once: none was lost, none was ended by the forgery.
    events = procs.events()
    assert sorted(e["task"] for e in events if e["event"] == "start") == [
        f"hold-{i}" for i in range(4)
    ]
    assert {e["pid"] for e in events} == {worker.pid}
    assert not await trio.Path(tripwire).exists()
