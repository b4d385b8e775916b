"""Frames: golden tables both ways, round trips, malformed input, and a fuzz test."""

from __future__ import annotations

import threading
from typing import Any

import cloudpickle
import msgpack
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trio_graph_scheduler.protocol import (
    EXT_PICKLE,
    EXT_TUPLE,
    MAX_FRAME_BYTES,
    MESSAGE_TYPES,
    Assign,
    Cancel,
    Cancelled,
    CancelTaskRequest,
    Claim,
    ConditionRecord,
    CreateConditionRequest,
    CreateTaskRequest,
    FrameTooLargeError,
    HandBack,
    Heartbeat,
    Hello,
    ListedTask,
    LocalProtocolError,
    LoopBlocked,
    LoopStatus,
    Message,
    PredecessorRecord,
    PrependRequest,
    Reject,
    RemoteProtocolError,
    Reply,
    ResultsDropped,
    RunningTask,
    Shutdown,
    SlotFreed,
    Started,
    StatusReply,
    StatusRequest,
    SuccessorsRequest,
    TaskFailed,
    TaskFilter,
    TaskQuery,
    TaskRecord,
    TaskSucceeded,
    UnreadableValue,
    ValueChunk,
    ValueEncodeError,
    Welcome,
    WorkerStatus,
    decode_frame,
    encode_frame,
)
from trio_graph_scheduler.shared.states import ConditionStatus, EndReason, TaskStatus


def tup(*items: Any) -> msgpack.ExtType:
    """The wire form of a tuple."""
    return msgpack.ExtType(EXT_TUPLE, msgpack.packb(list(items)))


PREDECESSOR = PredecessorRecord(
    task_uid="task-0",
    handle="load",
    status="failed",
    arguments=((1,), {}),
    result=None,
    exception_trace="Traceback ...",
)
PREDECESSOR_WIRE = {
    "task_uid": "task-0",
    "handle": "load",
    "status": "failed",
    "arguments": tup(tup(1), {}),
    "result": None,
    "exception_trace": "Traceback ...",
}

#: A uid as the worker chooses it for a task it creates.
NEW_UID = "task-" + "0123456789abcdef" * 2

# (message, its wire form): encode must produce exactly this, and decode must accept it.
GOLDEN: list[tuple[Message, dict[str, Any]]] = [
    (
        Hello(version=1, token="s3cret", worker_name="w1", loops=["default", "io"], max_tasks=0),
        {
            "type": "hello",
            "version": 1,
            "token": "s3cret",
            "worker_name": "w1",
            "loops": ["default", "io"],
            "max_tasks": 0,
        },
    ),
    (
        Welcome(
            version=1,
            worker_id="worker-7",
            loops={"default": 4, "io": 1},
            heartbeat_interval=2.5,
            heartbeat_timeout=10.0,
            context_inits={"default": b"\x80\x05init"},
        ),
        {
            "type": "welcome",
            "version": 1,
            "worker_id": "worker-7",
            "loops": {"default": 4, "io": 1},
            "heartbeat_interval": 2.5,
            "heartbeat_timeout": 10.0,
            "context_inits": {"default": b"\x80\x05init"},
        },
    ),
    (Reject(reason="bad token"), {"type": "reject", "reason": "bad token"}),
    (Claim(loop="io", credit=3), {"type": "claim", "loop": "io", "credit": 3}),
    (
        Assign(
            lease=12,
            task_uid="task-1",
            handle="compute",
            loop="default",
            arguments=((1, "a"), {"scale": 2.0}),
            predecessors=[PREDECESSOR],
            function=b"\x80\x05fn",
            timeout=30.0,
        ),
        {
            "type": "assign",
            "lease": 12,
            "task_uid": "task-1",
            "handle": "compute",
            "loop": "default",
            "arguments": tup(tup(1, "a"), {"scale": 2.0}),
            "predecessors": [PREDECESSOR_WIRE],
            "function": b"\x80\x05fn",
            "timeout": 30.0,
        },
    ),
    (
        Assign(
            lease=13,
            task_uid="task-2",
            handle="compute",
            loop="default",
            arguments=None,
            predecessors=[],
            function=None,
            timeout=None,
        ),
        {
            "type": "assign",
            "lease": 13,
            "task_uid": "task-2",
            "handle": "compute",
            "loop": "default",
            "arguments": None,
            "predecessors": [],
            "function": None,
            "timeout": None,
        },
    ),
    (
        Welcome(
            version=1,
            worker_id="worker-8",
            loops={"default": 1},
            heartbeat_interval=1.0,
            heartbeat_timeout=10.0,
            context_inits={},
        ),
        {
            "type": "welcome",
            "version": 1,
            "worker_id": "worker-8",
            "loops": {"default": 1},
            "heartbeat_interval": 1.0,
            "heartbeat_timeout": 10.0,
            "context_inits": {},
        },
    ),
    (
        TaskSucceeded(lease=12, result={"rows": [1, 2], "pair": (3, 4)}),
        {"type": "task_succeeded", "lease": 12, "result": {"rows": [1, 2], "pair": tup(3, 4)}},
    ),
    (
        TaskFailed(lease=12, error_type="ValueError", message="bad", traceback="Traceback"),
        {
            "type": "task_failed",
            "lease": 12,
            "error_type": "ValueError",
            "message": "bad",
            "traceback": "Traceback",
        },
    ),
    (HandBack(leases=[3, 4]), {"type": "hand_back", "leases": [3, 4]}),
    (
        CreateTaskRequest(
            request_id=5,
            lease=12,
            uid=NEW_UID,
            awaited=True,
            handle="h",
            arguments=([1], {}),
            waits_on=["task-1"],
        ),
        {
            "type": "create_task_request",
            "request_id": 5,
            "lease": 12,
            "uid": NEW_UID,
            "awaited": True,
            "handle": "h",
            "arguments": tup([1], {}),
            "waits_on": ["task-1"],
        },
    ),
    (
        CreateTaskRequest(
            request_id=8,
            lease=12,
            uid="task-2",
            awaited=False,
            handle="h",
            arguments=(None, {"k": 1}),
            waits_on=[],
        ),
        {
            "type": "create_task_request",
            "request_id": 8,
            "lease": 12,
            "uid": "task-2",
            "awaited": False,
            "handle": "h",
            "arguments": tup(None, {"k": 1}),
            "waits_on": [],
        },
    ),
    (
        CreateTaskRequest(
            request_id=9,
            lease=12,
            uid="task-3",
            awaited=True,
            handle="h",
            arguments=((1,), None),
            waits_on=[],
        ),
        {
            "type": "create_task_request",
            "request_id": 9,
            "lease": 12,
            "uid": "task-3",
            "awaited": True,
            "handle": "h",
            "arguments": tup(tup(1), None),
            "waits_on": [],
        },
    ),
    (
        CreateTaskRequest(
            request_id=10,
            lease=12,
            uid="task-4",
            awaited=True,
            handle="fetch",
            arguments=(("https://a/",), {}),
            waits_on=[],
            key=("https://a/", 1),
        ),
        {
            "type": "create_task_request",
            "request_id": 10,
            "lease": 12,
            "uid": "task-4",
            "awaited": True,
            "handle": "fetch",
            "arguments": tup(tup("https://a/"), {}),
            "waits_on": [],
            "key": tup("https://a/", 1),
        },
    ),
    (
        PrependRequest(
            request_id=11, lease=12, successor_handle="s", new_task_uid="task-9", awaited=True
        ),
        {
            "type": "prepend_request",
            "request_id": 11,
            "lease": 12,
            "successor_handle": "s",
            "new_task_uid": "task-9",
            "awaited": True,
        },
    ),
    (
        TaskQuery(request_id=12, lease=12, uid="task-9", with_result=True),
        {
            "type": "task_query",
            "request_id": 12,
            "lease": 12,
            "uid": "task-9",
            "with_result": True,
        },
    ),
    (
        TaskQuery(request_id=13, lease=12, key="https://a/"),
        {"type": "task_query", "request_id": 13, "lease": 12, "key": "https://a/"},
    ),
    (
        CancelTaskRequest(request_id=14, lease=12, uid="task-9", reason="not needed"),
        {
            "type": "cancel_task_request",
            "request_id": 14,
            "lease": 12,
            "uid": "task-9",
            "reason": "not needed",
        },
    ),
    (
        SuccessorsRequest(request_id=15, lease=12, uid="task-9", handle="join"),
        {
            "type": "successors_request",
            "request_id": 15,
            "lease": 12,
            "uid": "task-9",
            "handle": "join",
        },
    ),
    (
        Reply(
            request_id=15,
            uid=None,
            error_type=None,
            error_message=None,
            tasks=[
                TaskRecord(
                    task_uid="task-8",
                    handle="join",
                    status=TaskStatus.SUCCESS,
                    arguments=None,
                    result=(1, 2),
                    exception_trace=None,
                    attempts=1,
                    end_reason=EndReason.SUCCEEDED,
                    key="j",
                )
            ],
            conditions=[
                ConditionRecord(
                    uid="condition-1", mode="SUCCESS__ALL", status=ConditionStatus.SATISFIED
                )
            ],
        ),
        {
            "type": "reply",
            "request_id": 15,
            "uid": None,
            "error_type": None,
            "error_message": None,
            "tasks": [
                {
                    "task_uid": "task-8",
                    "handle": "join",
                    "status": "success",
                    "arguments": None,
                    "result": tup(1, 2),
                    "exception_trace": None,
                    "attempts": 1,
                    "end_reason": "succeeded",
                    "key": "j",
                }
            ],
            "conditions": [{"uid": "condition-1", "mode": "SUCCESS__ALL", "status": "satisfied"}],
        },
    ),
    (
        Reply(request_id=14, uid=None, error_type=None, error_message=None, answer=True),
        {
            "type": "reply",
            "request_id": 14,
            "uid": None,
            "error_type": None,
            "error_message": None,
            "answer": True,
        },
    ),
    (
        CreateConditionRequest(
            request_id=16,
            lease=12,
            uid="condition-2",
            mode="COMPLETE__ALL",
            waits_on=["a"],
            awaited=True,
        ),
        {
            "type": "create_condition_request",
            "request_id": 16,
            "lease": 12,
            "uid": "condition-2",
            "mode": "COMPLETE__ALL",
            "waits_on": ["a"],
            "awaited": True,
        },
    ),
    (
        CreateConditionRequest(
            request_id=6, lease=12, uid="condition-1", mode="SUCCESS__2", waits_on=["a", "b"]
        ),
        {
            "type": "create_condition_request",
            "request_id": 6,
            "lease": 12,
            "uid": "condition-1",
            "mode": "SUCCESS__2",
            "waits_on": ["a", "b"],
        },
    ),
    (
        PrependRequest(request_id=7, lease=12, successor_handle="s", new_task_uid="task-9"),
        {
            "type": "prepend_request",
            "request_id": 7,
            "lease": 12,
            "successor_handle": "s",
            "new_task_uid": "task-9",
        },
    ),
    (
        Reply(request_id=5, uid="task-3", error_type=None, error_message=None),
        {
            "type": "reply",
            "request_id": 5,
            "uid": "task-3",
            "error_type": None,
            "error_message": None,
        },
    ),
    (
        Reply(request_id=6, uid=None, error_type="UnknownUidError", error_message="no uid x"),
        {
            "type": "reply",
            "request_id": 6,
            "uid": None,
            "error_type": "UnknownUidError",
            "error_message": "no uid x",
        },
    ),
    (Heartbeat(), {"type": "heartbeat"}),
    (Cancel(lease=12), {"type": "cancel", "lease": 12}),
    (Cancelled(lease=12), {"type": "cancelled", "lease": 12}),
    (Cancelled(lease=12, slot_busy=True), {"type": "cancelled", "lease": 12, "slot_busy": True}),
    (SlotFreed(lease=12), {"type": "slot_freed", "lease": 12}),
    (ResultsDropped(uids=["task-1"]), {"type": "results_dropped", "uids": ["task-1"]}),
    (
        ValueChunk(stream=3, offset=4, total=6, data=b"ab"),
        {"type": "value_chunk", "stream": 3, "offset": 4, "total": 6, "data": b"ab"},
    ),
    (Started(leases=[12, 13]), {"type": "started", "leases": [12, 13]}),
    (
        LoopBlocked(task_uid="task-1", handle="h", seconds=2.5),
        {"type": "loop_blocked", "task_uid": "task-1", "handle": "h", "seconds": 2.5},
    ),
    (
        LoopBlocked(task_uid=None, handle=None, seconds=1.0),
        {"type": "loop_blocked", "task_uid": None, "handle": None, "seconds": 1.0},
    ),
    (
        TaskFailed(
            lease=12,
            error_type="TaskTimeoutError",
            message="m",
            traceback="",
            reason=EndReason.TIMED_OUT,
            slot_busy=True,
        ),
        {
            "type": "task_failed",
            "lease": 12,
            "error_type": "TaskTimeoutError",
            "message": "m",
            "traceback": "",
            "reason": "timed_out",
            "slot_busy": True,
        },
    ),
    (
        Shutdown(reason="graph ended", graph_succeeded=True),
        {"type": "shutdown", "reason": "graph ended", "graph_succeeded": True},
    ),
    (
        StatusRequest(version=1, token="t", why="task-1"),
        {"type": "status_request", "version": 1, "token": "t", "why": "task-1"},
    ),
    (
        StatusReply(
            elapsed=2.5,
            tasks_by_status={"success": 3, "in_progress": 1},
            loops=[LoopStatus(name="default", concurrency=2, ready=4, running=1, workers=1)],
            workers=[
                WorkerStatus(
                    worker_id="worker-1",
                    name="h:1",
                    loops=["default"],
                    joined_at=1.0,
                    running=["task-2"],
                )
            ],
            slowest=[
                RunningTask(
                    task_uid="task-2", handle="f", worker="worker-1", running_for=0.5, attempt=1
                )
            ],
            explanation=None,
            lost=["worker worker-0 (h:0) lost while running task task-1 (function f): gone"],
        ),
        {
            "type": "status_reply",
            "elapsed": 2.5,
            "tasks_by_status": {"success": 3, "in_progress": 1},
            "loops": [
                {"name": "default", "concurrency": 2, "ready": 4, "running": 1, "workers": 1}
            ],
            "workers": [
                {
                    "worker_id": "worker-1",
                    "name": "h:1",
                    "loops": ["default"],
                    "joined_at": 1.0,
                    "running": ["task-2"],
                }
            ],
            "slowest": [
                {
                    "task_uid": "task-2",
                    "handle": "f",
                    "worker": "worker-1",
                    "running_for": 0.5,
                    "attempt": 1,
                }
            ],
            "explanation": None,
            "lost": ["worker worker-0 (h:0) lost while running task task-1 (function f): gone"],
        },
    ),
    # Waiting for --min-workers; a frame without these fields (the one above, as an
    # older coordinator sends it) decodes with 0 for both.
    (
        StatusReply(
            elapsed=0.0,
            tasks_by_status={"created": 4},
            loops=[],
            workers=[],
            slowest=[],
            explanation=None,
            waiting_for_workers=2,
            min_workers=3,
        ),
        {
            "type": "status_reply",
            "elapsed": 0.0,
            "tasks_by_status": {"created": 4},
            "loops": [],
            "workers": [],
            "slowest": [],
            "explanation": None,
            "waiting_for_workers": 2,
            "min_workers": 3,
        },
    ),
    # tgs-status --tasks: the request says which tasks; a request without ``tasks`` is
    # the frame above, unchanged.
    (
        StatusRequest(
            version=1,
            token="t",
            why=None,
            tasks=TaskFilter(statuses=[TaskStatus.FAILED], function="f", limit=50),
        ),
        {
            "type": "status_request",
            "version": 1,
            "token": "t",
            "why": None,
            "tasks": {"statuses": ["failed"], "function": "f", "limit": 50},
        },
    ),
    (
        StatusReply(
            elapsed=1.0,
            tasks_by_status={"success": 1, "in_progress": 1},
            loops=[],
            workers=[],
            slowest=[],
            explanation=None,
            tasks=[
                ListedTask(
                    task_uid="task-1",
                    key="page-1",
                    handle="f",
                    status=TaskStatus.SUCCESS,
                    worker="worker-1",
                    started_at=10.0,
                    ended_at=10.5,
                    attempts=1,
                ),
                ListedTask(
                    task_uid="task-2",
                    key=None,
                    handle="g",
                    status=TaskStatus.IN_PROGRESS,
                    worker="worker-2",
                    started_at=11.0,
                    ended_at=None,
                    attempts=2,
                ),
            ],
            tasks_matched=7,
        ),
        {
            "type": "status_reply",
            "elapsed": 1.0,
            "tasks_by_status": {"success": 1, "in_progress": 1},
            "loops": [],
            "workers": [],
            "slowest": [],
            "explanation": None,
            "tasks": [
                {
                    "task_uid": "task-1",
                    "key": "page-1",
                    "handle": "f",
                    "status": "success",
                    "worker": "worker-1",
                    "started_at": 10.0,
                    "ended_at": 10.5,
                    "attempts": 1,
                },
                {
                    "task_uid": "task-2",
                    "key": None,
                    "handle": "g",
                    "status": "in_progress",
                    "worker": "worker-2",
                    "started_at": 11.0,
                    "ended_at": None,
                    "attempts": 2,
                },
            ],
            "tasks_matched": 7,
        },
    ),
    (
        StatusReply(
            elapsed=1.0,
            tasks_by_status={},
            loops=[],
            workers=[],
            slowest=[],
            explanation=None,
            tasks_error="the graph has no function 'x'; it has: f, g",
        ),
        {
            "type": "status_reply",
            "elapsed": 1.0,
            "tasks_by_status": {},
            "loops": [],
            "workers": [],
            "slowest": [],
            "explanation": None,
            "tasks_error": "the graph has no function 'x'; it has: f, g",
        },
    ),
]
GOLDEN_IDS = [f"{message.TAG}-{index}" for index, (message, _) in enumerate(GOLDEN)]


def test_golden_table_covers_every_message_type() -> None:
    assert {type(message) for message, _ in GOLDEN} == set(MESSAGE_TYPES.values())


@pytest.mark.parametrize(("message", "wire"), GOLDEN, ids=GOLDEN_IDS)
def test_golden_encode(message: Message, wire: dict[str, Any]) -> None:
    assert encode_frame([message]) == msgpack.packb([wire])


@pytest.mark.parametrize(("message", "wire"), GOLDEN, ids=GOLDEN_IDS)
def test_golden_decode(message: Message, wire: dict[str, Any]) -> None:
    # No pickle is needed for any of these: tuples have their own extension type.
    assert decode_frame(msgpack.packb([wire]), allow_pickle=False) == [message]


@pytest.mark.parametrize(
    ("tasks", "error"),
    [
        ({"statuses": [], "function": None, "limit": 0}, "Expected `int` >= 1"),
        ({"statuses": [], "function": None, "limit": 10_001}, "Expected `int` <= 10000"),
        ({"statuses": ["sleeping"], "function": None, "limit": 5}, "Invalid enum value"),
        ({"statuses": [], "function": "", "limit": 5}, "length >= 1"),
        ({"statuses": [], "function": None, "limit": 5, "extra": 1}, "unknown field"),
    ],
    ids=["limit-0", "limit-too-big", "unknown-status", "empty-function", "extra-field"],
)
def test_a_task_query_is_validated(tasks: dict[str, Any], error: str) -> None:
    wire = {"type": "status_request", "version": 1, "token": "", "why": None, "tasks": tasks}
    with pytest.raises(RemoteProtocolError, match=error):
        decode_frame(msgpack.packb([wire]), allow_pickle=False)


def test_golden_bytes() -> None:
    # Pins the framing itself: an array of maps, the tag first under "type".
    assert encode_frame([Heartbeat()]) == b"\x91\x81\xa4type\xa9heartbeat"
    assert encode_frame([Cancel(lease=1), Heartbeat()]) == (
        b"\x92\x82\xa4type\xa6cancel\xa5lease\x01\x81\xa4type\xa9heartbeat"
    )


def test_a_frame_batches_every_golden_message_in_order() -> None:
    messages = [message for message, _ in GOLDEN]
    frame = encode_frame(messages)
    assert msgpack.unpackb(frame) == [wire for _, wire in GOLDEN]
    assert decode_frame(frame, allow_pickle=False) == messages


def test_decode_accepts_any_bytes_like() -> None:
    frame = encode_frame([Heartbeat()])
    assert decode_frame(bytearray(frame), allow_pickle=False) == [Heartbeat()]
    assert decode_frame(memoryview(frame), allow_pickle=False) == [Heartbeat()]


def test_pickled_values_decode_only_when_allowed() -> None:
    frame = encode_frame([TaskSucceeded(lease=1, result=threading.Event)])
    assert decode_frame(frame, allow_pickle=True) == [
        TaskSucceeded(lease=1, result=threading.Event)
    ]
    with pytest.raises(RemoteProtocolError, match="pickled value"):
        decode_frame(frame, allow_pickle=False)


# Encoding errors: the sender's own bugs, or a user's value that cannot travel.


def test_unserialisable_value_names_message_field_and_type() -> None:
    messages = [Heartbeat(), TaskSucceeded(lease=1, result={"lock": threading.Lock()})]
    with pytest.raises(ValueEncodeError) as info:
        encode_frame(messages)
    error = info.value
    assert (error.message_index, error.field, error.type_name) == (1, "result", "_thread.lock")
    assert str(error).startswith("message 1, field 'result': cannot serialise")


def test_max_frame_bytes_is_16_mib() -> None:
    assert MAX_FRAME_BYTES == 16 * 2**20


def test_frame_too_large() -> None:
    with pytest.raises(FrameTooLargeError) as info:
        encode_frame([TaskSucceeded(lease=1, result=b"x" * 100)], max_frame_bytes=64)
    assert info.value.limit == 64
    assert info.value.size > 100


@pytest.mark.parametrize(
    ("messages", "fragment"),
    [
        ([], "at least one message"),
        ([{"type": "heartbeat"}], "message 0 is a dict, not a message"),
        ([Heartbeat(), PREDECESSOR], "message 1 is a PredecessorRecord, not a message"),
    ],
    ids=["empty", "dict", "record"],
)
def test_encoding_non_messages_is_a_local_error(messages: Any, fragment: str) -> None:
    with pytest.raises(LocalProtocolError, match=fragment):
        encode_frame(messages)


# Malformed input: every failure is a RemoteProtocolError saying what was wrong.


def golden_wire(tag: str) -> dict[str, Any]:
    """The wire form of the first golden message of type ``tag``."""
    return next(wire for message, wire in GOLDEN if tag == message.TAG)


HELLO_WIRE = golden_wire("hello")
ASSIGN_WIRE = golden_wire("assign")
WELCOME_WIRE = golden_wire("welcome")
CREATE_TASK_WIRE = golden_wire("create_task_request")
CREATE_CONDITION_WIRE = golden_wire("create_condition_request")


def frame_of(*wires: Any) -> bytes:
    frame: bytes = msgpack.packb(list(wires))
    return frame


def changed(wire: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return wire | changes


def without(wire: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in wire.items() if k != key}


def with_predecessor(**changes: Any) -> dict[str, Any]:
    return changed(ASSIGN_WIRE, predecessors=[PREDECESSOR_WIRE | changes])


MALFORMED: list[tuple[str, Any, str]] = [
    # (id, frame, fragment of the error)
    ("empty-bytes", b"", "invalid msgpack: Input data was truncated"),
    ("reserved-byte", b"\xc1", "invalid msgpack: MessagePack data is malformed"),
    ("garbage", b"\xde\xad\xbe\xef", "invalid message: Expected `array`, got `object`"),
    ("truncated", frame_of(HELLO_WIRE)[:-3], "invalid msgpack: Input data was truncated"),
    ("trailing", frame_of(HELLO_WIRE) + b"\x00", "trailing characters"),
    ("bad-utf8", b"\x91\xa1\xff", "Expected `object`, got `str` - at `$[0]`"),
    ("too-deep", b"\x91" * 5000, "Expected `object`, got `array` - at `$[0]`"),
    ("unhashable-key", b"\x91\x81\x90\x01", "Expected `str`, got `array` - at `key` in `$[0]`"),
    ("text", "[]", "frame must be binary, got a text message"),
    ("map-frame", msgpack.packb(HELLO_WIRE), "invalid message: Expected `array`, got `object`"),
    ("int-frame", msgpack.packb(7), "invalid message: Expected `array`, got `int`"),
    ("no-messages", frame_of(), "at least one message"),
    ("not-a-map", frame_of(HELLO_WIRE, [1]), "Expected `object`, got `array` - at `$[1]`"),
    ("no-type", frame_of({"lease": 1}), "Object missing required field `type` - at `$[0]`"),
    ("unknown-type", frame_of({"type": "foo"}), "Invalid value 'foo' - at `$[0].type`"),
    ("int-type", frame_of({"type": 3}), "Expected `str`, got `int` - at `$[0].type`"),
    ("bytes-type", frame_of({"type": b"hello"}), "Expected `str`, got `bytes` - at `$[0].type`"),
    (
        "wrong-int-type",
        frame_of({"type": "heartbeat"}, {"type": "heartbeat"}, changed(ASSIGN_WIRE, lease="x")),
        "Expected `int`, got `str` - at `$[2].lease`",
    ),
    (
        "bool-for-int",
        frame_of(changed(HELLO_WIRE, version=True)),
        "Expected `int`, got `bool` - at `$[0].version`",
    ),
    (
        "negative",
        frame_of({"type": "cancel", "lease": -1}),
        "Expected `int` >= 0 - at `$[0].lease`",
    ),
    (
        "huge-int",
        frame_of({"type": "cancel", "lease": 2**64 - 1}),
        "Expected `int` <= 9223372036854775807 - at `$[0].lease`",
    ),
    (
        "missing",
        frame_of(without(HELLO_WIRE, "token")),
        "Object missing required field `token` - at `$[0]`",
    ),
    ("extra", frame_of(changed(HELLO_WIRE, x=1)), "Object contains unknown field `x` - at `$[0]`"),
    (
        "extra-int-key",
        frame_of({"type": "heartbeat", 1: 2}),
        "Expected `str`, got `int` - at `key` in `$[0]`",
    ),
    (
        "credit-zero",
        frame_of({"type": "claim", "loop": "a", "credit": 0}),
        "Expected `int` >= 1 - at `$[0].credit`",
    ),
    (
        "empty-loop",
        frame_of({"type": "claim", "loop": "", "credit": 1}),
        "Expected `str` of length >= 1 - at `$[0].loop`",
    ),
    (
        "loops-not-list",
        frame_of(changed(HELLO_WIRE, loops="a")),
        "Expected `array`, got `str` - at `$[0].loops`",
    ),
    (
        "loops-twice",
        frame_of(changed(HELLO_WIRE, loops=["a", "a"])),
        "hello: loops lists a loop twice: ['a', 'a'] - at `$[0]`",
    ),
    (
        "tuple-for-list",
        frame_of(changed(HELLO_WIRE, loops=tup("a"))),
        "Expected `array`, got `ext` - at `$[0].loops`",
    ),
    (
        "concurrency-zero",
        frame_of(changed(WELCOME_WIRE, loops={"default": 0})),
        "Expected `int` >= 1 - at `$[0].loops[...]`",
    ),
    (
        "interval-nan",
        frame_of(changed(WELCOME_WIRE, heartbeat_interval=float("nan"))),
        "Expected `float` > 0.0 - at `$[0].heartbeat_interval`",
    ),
    (
        "interval-zero",
        frame_of(changed(WELCOME_WIRE, heartbeat_interval=0.0)),
        "Expected `float` > 0.0 - at `$[0].heartbeat_interval`",
    ),
    (
        "function-str",
        frame_of(changed(ASSIGN_WIRE, function="f")),
        "Expected `bytes | null`, got `str` - at `$[0].function`",
    ),
    (
        "assign-worker-index",
        frame_of(changed(ASSIGN_WIRE, worker_index=0)),
        "Object contains unknown field `worker_index` - at `$[0]`",
    ),
    (
        "welcome-no-context-inits",
        frame_of(without(WELCOME_WIRE, "context_inits")),
        "Object missing required field `context_inits` - at `$[0]`",
    ),
    (
        "context-inits-not-map",
        frame_of(changed(WELCOME_WIRE, context_inits=[])),
        "Expected `object`, got `array` - at `$[0].context_inits`",
    ),
    (
        "context-init-str",
        frame_of(changed(WELCOME_WIRE, context_inits={"default": "f"})),
        "Expected `bytes`, got `str` - at `$[0].context_inits[...]`",
    ),
    (
        "context-init-empty-loop",
        frame_of(changed(WELCOME_WIRE, context_inits={"": b"f"})),
        "Expected `str` of length >= 1 - at `key` in `$[0].context_inits`",
    ),
    (
        "create-task-no-uid",
        frame_of(without(CREATE_TASK_WIRE, "uid")),
        "Object missing required field `uid` - at `$[0]`",
    ),
    (
        "create-task-no-awaited",
        frame_of(without(CREATE_TASK_WIRE, "awaited")),
        "Object missing required field `awaited` - at `$[0]`",
    ),
    (
        "create-task-empty-uid",
        frame_of(changed(CREATE_TASK_WIRE, uid="")),
        "Expected `str` of length >= 1 - at `$[0].uid`",
    ),
    (
        "create-task-uid-nil",
        frame_of(changed(CREATE_TASK_WIRE, uid=None)),
        "Expected `str`, got `None` - at `$[0].uid`",
    ),
    (
        "awaited-int",
        frame_of(changed(CREATE_TASK_WIRE, awaited=1)),
        "Expected `bool`, got `int` - at `$[0].awaited`",
    ),
    (
        "awaited-nil",
        frame_of(changed(CREATE_TASK_WIRE, awaited=None)),
        "Expected `bool`, got `None` - at `$[0].awaited`",
    ),
    (
        "create-condition-no-uid",
        frame_of(without(CREATE_CONDITION_WIRE, "uid")),
        "Object missing required field `uid` - at `$[0]`",
    ),
    (
        "create-condition-empty-uid",
        frame_of(changed(CREATE_CONDITION_WIRE, uid="")),
        "Expected `str` of length >= 1 - at `$[0].uid`",
    ),
    (
        "predecessors-not-list",
        frame_of(changed(ASSIGN_WIRE, predecessors={})),
        "Expected `array`, got `object` - at `$[0].predecessors`",
    ),
    (
        "predecessor-not-map",
        frame_of(changed(ASSIGN_WIRE, predecessors=[1])),
        "Expected `object`, got `int` - at `$[0].predecessors[0]`",
    ),
    (
        "predecessor-missing",
        frame_of(changed(ASSIGN_WIRE, predecessors=[without(PREDECESSOR_WIRE, "handle")])),
        "Object missing required field `handle` - at `$[0].predecessors[0]`",
    ),
    (
        "predecessor-extra",
        frame_of(with_predecessor(type="x")),
        "Object contains unknown field `type` - at `$[0].predecessors[0]`",
    ),
    (
        "predecessor-status",
        frame_of(with_predecessor(status="done")),
        "Invalid enum value 'done' - at `$[0].predecessors[0].status`",
    ),
    (
        "reply-both",
        frame_of(
            {"type": "reply", "request_id": 1, "uid": "u", "error_type": "E", "error_message": "m"}
        ),
        "reply: a reply carries a uid or an error, not both - at `$[0]`",
    ),
    (
        "pickle-refused",
        frame_of(
            {
                "type": "task_succeeded",
                "lease": 1,
                "result": msgpack.ExtType(EXT_PICKLE, cloudpickle.dumps(print)),
            }
        ),
        "pickled value",
    ),
    (
        "unknown-ext",
        frame_of({"type": "task_succeeded", "lease": 1, "result": msgpack.ExtType(42, b"")}),
        "unknown msgpack extension type 42",
    ),
    (
        "bad-tuple-ext",
        frame_of({"type": "task_succeeded", "lease": 1, "result": msgpack.ExtType(1, b"\xc1")}),
        "truncated or invalid msgpack",
    ),
]


@pytest.mark.parametrize(
    ("frame", "fragment"),
    [(frame, fragment) for _, frame, fragment in MALFORMED],
    ids=[name for name, _, _ in MALFORMED],
)
def test_malformed_frames_raise_remote_protocol_error(frame: Any, fragment: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        decode_frame(frame, allow_pickle=False)
    assert fragment in str(info.value)
    # Internal errors are not chained in: a peer's garbage is not our traceback.
    assert not isinstance(info.value.__cause__, KeyError | TypeError | IndexError)


def test_oversized_frame_is_refused_before_parsing() -> None:
    with pytest.raises(RemoteProtocolError, match="frame of 65 bytes exceeds the limit of 64"):
        decode_frame(b"\xc1" * 65, allow_pickle=False, max_frame_bytes=64)


def test_default_limit_is_max_frame_bytes() -> None:
    with pytest.raises(RemoteProtocolError, match=f"exceeds the limit of {MAX_FRAME_BYTES} "):
        decode_frame(b"\xc1" * (MAX_FRAME_BYTES + 1), allow_pickle=False)
    with pytest.raises(FrameTooLargeError) as info:
        encode_frame([TaskSucceeded(lease=1, result=b"x" * MAX_FRAME_BYTES)])
    assert info.value.limit == MAX_FRAME_BYTES


def test_garbage_pickle_is_a_remote_error_even_when_allowed() -> None:
    frame = frame_of(
        {"type": "task_succeeded", "lease": 1, "result": msgpack.ExtType(EXT_PICKLE, b"\x80")}
    )
    with pytest.raises(RemoteProtocolError, match="cannot unpickle"):
        decode_frame(frame, allow_pickle=True)


def _refuse_to_load() -> None:
    raise ImportError("only workers have this package")


class OnlyOnWorkers:
    def __reduce__(self) -> tuple[Any, tuple[()]]:
        return (_refuse_to_load, ())


def test_a_value_that_fails_to_load_fails_no_frame() -> None:
    # A result, a task's arguments and a predecessor's result: each is read as a marker,
    # and the other messages of the frame decode as usual.
    unreadable = UnreadableValue("ImportError: only workers have this package")
    record = PredecessorRecord(
        task_uid="task-" + "0" * 32,
        handle="f",
        status=TaskStatus.SUCCESS,
        arguments=None,
        result=OnlyOnWorkers(),
        exception_trace=None,
    )
    frame = encode_frame(
        [
            TaskSucceeded(lease=1, result=OnlyOnWorkers()),
            TaskSucceeded(lease=2, result=[OnlyOnWorkers()]),
            Assign(
                lease=3,
                task_uid="task-" + "1" * 32,
                handle="f",
                loop="default",
                arguments=((OnlyOnWorkers(),), {}),
                predecessors=[record],
                function=None,
                timeout=None,
            ),
            Heartbeat(),
        ]
    )
    first, second, assign, heartbeat = decode_frame(frame, allow_pickle=True)
    assert isinstance(first, TaskSucceeded)
    assert first.result == unreadable
    assert isinstance(second, TaskSucceeded)
    assert second.result == [unreadable]
    assert isinstance(assign, Assign)
    assert assign.arguments == ((unreadable,), {})
    assert assign.predecessors[0].result == unreadable
    assert isinstance(heartbeat, Heartbeat)


# Round trips of every message type, with generated field values.

names = st.text(min_size=1, max_size=8)
ints = st.integers(min_value=0, max_value=2**63 - 1)
_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=8)
    | st.binary(max_size=8)
)
values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.lists(inner, max_size=3).map(tuple)
        | st.dictionaries(st.text(max_size=4), inner, max_size=3)
        | st.frozensets(st.integers() | st.text(max_size=4), max_size=3)
    ),
    max_leaves=10,
)
_args = st.none() | st.lists(values, max_size=3).map(tuple) | st.lists(values, max_size=3)
_kwargs = st.none() | st.dictionaries(st.text(max_size=6), values, max_size=3)
task_arguments = st.none() | st.tuples(_args, _kwargs) | st.tuples(_args, _kwargs).map(list)
statuses = st.sampled_from(["created", "in_progress", "success", "failed", "precondition_failed"])
predecessors = st.builds(
    PredecessorRecord,
    task_uid=names,
    handle=names,
    status=statuses,
    arguments=task_arguments,
    result=values,
    exception_trace=st.none() | st.text(max_size=20),
)

MESSAGE_STRATEGIES: dict[type[Message], st.SearchStrategy[Message]] = {
    Hello: st.builds(
        Hello,
        version=ints,
        token=st.text(max_size=10),
        worker_name=st.text(max_size=10),
        loops=st.lists(names, max_size=3, unique=True),
        max_tasks=ints,
    ),
    Welcome: st.builds(
        Welcome,
        version=ints,
        worker_id=names,
        loops=st.dictionaries(names, st.integers(1, 2**63 - 1), max_size=3),
        heartbeat_interval=st.floats(min_value=1e-3, max_value=1e6),
        heartbeat_timeout=st.floats(min_value=1e-3, max_value=1e6),
        context_inits=st.dictionaries(names, st.binary(max_size=8), max_size=2),
    ),
    Reject: st.builds(Reject, reason=st.text(max_size=20)),
    Claim: st.builds(Claim, loop=names, credit=st.integers(1, 2**63 - 1)),
    Assign: st.builds(
        Assign,
        lease=ints,
        task_uid=names,
        handle=names,
        loop=names,
        arguments=task_arguments,
        predecessors=st.lists(predecessors, max_size=3),
        function=st.none() | st.binary(max_size=20),
        timeout=st.none() | st.floats(min_value=1e-3, max_value=1e6),
    ),
    TaskSucceeded: st.builds(TaskSucceeded, lease=ints, result=values),
    TaskFailed: st.builds(
        TaskFailed,
        lease=ints,
        error_type=names,
        message=st.text(max_size=20),
        traceback=st.text(max_size=20),
    ),
    HandBack: st.builds(HandBack, leases=st.lists(ints, max_size=5)),
    CreateTaskRequest: st.builds(
        CreateTaskRequest,
        request_id=ints,
        lease=ints,
        uid=names,
        awaited=st.booleans(),
        handle=names,
        arguments=task_arguments,
        waits_on=st.lists(names, max_size=3),
    )
    | st.builds(
        CreateTaskRequest,
        request_id=ints,
        lease=ints,
        uid=names,
        awaited=st.just(True),
        handle=names,
        arguments=task_arguments,
        waits_on=st.lists(names, max_size=3),
        key=names | ints | st.tuples(names, ints),
    ),
    TaskQuery: st.builds(
        TaskQuery, request_id=ints, lease=ints, uid=names, with_result=st.booleans()
    )
    | st.builds(TaskQuery, request_id=ints, lease=ints, key=names | st.tuples(names, ints)),
    CancelTaskRequest: st.builds(
        CancelTaskRequest, request_id=ints, lease=ints, uid=names, reason=st.text(max_size=9)
    ),
    SuccessorsRequest: st.builds(
        SuccessorsRequest, request_id=ints, lease=ints, uid=names, handle=names
    ),
    CreateConditionRequest: st.builds(
        CreateConditionRequest,
        request_id=ints,
        lease=ints,
        uid=names,
        mode=names,
        waits_on=st.lists(names, max_size=3),
    ),
    PrependRequest: st.builds(
        PrependRequest,
        request_id=ints,
        lease=ints,
        successor_handle=names,
        new_task_uid=names,
        awaited=st.booleans(),
    ),
    Reply: st.builds(
        Reply, request_id=ints, uid=names, error_type=st.none(), error_message=st.none()
    )
    | st.builds(
        Reply,
        request_id=ints,
        uid=st.none(),
        error_type=st.none(),
        error_message=st.none(),
        tasks=st.lists(
            st.builds(
                TaskRecord,
                task_uid=names,
                handle=names,
                status=st.sampled_from(TaskStatus),
                arguments=task_arguments,
                result=task_arguments,
                exception_trace=st.none() | st.text(max_size=9),
                attempts=ints,
                end_reason=st.none() | st.sampled_from(EndReason),
                key=st.none() | names,
            ),
            max_size=2,
        ),
        answer=st.booleans(),
    )
    | st.builds(
        Reply, request_id=ints, uid=st.none(), error_type=names, error_message=st.text(max_size=9)
    ),
    Heartbeat: st.builds(Heartbeat),
    Cancel: st.builds(Cancel, lease=ints),
    Cancelled: st.builds(Cancelled, lease=ints, slot_busy=st.booleans()),
    SlotFreed: st.builds(SlotFreed, lease=ints),
    ResultsDropped: st.builds(ResultsDropped, uids=st.lists(names, max_size=3)),
    ValueChunk: st.builds(
        lambda data, extra: ValueChunk(stream=1, offset=0, total=len(data) + extra, data=data),
        st.binary(min_size=1, max_size=20),
        st.integers(0, 5),
    ),
    Started: st.builds(Started, leases=st.lists(ints, max_size=5)),
    LoopBlocked: st.builds(
        LoopBlocked, task_uid=names, handle=names, seconds=st.floats(min_value=1e-3, max_value=1e6)
    )
    | st.builds(
        LoopBlocked,
        task_uid=st.none(),
        handle=st.none(),
        seconds=st.floats(min_value=1e-3, max_value=1e6),
    ),
    Shutdown: st.builds(Shutdown, reason=st.text(max_size=20), graph_succeeded=st.booleans()),
    StatusRequest: st.builds(
        StatusRequest,
        version=ints,
        token=st.text(max_size=10),
        why=st.none() | names,
        tasks=st.none()
        | st.builds(
            TaskFilter,
            statuses=st.lists(st.sampled_from(TaskStatus), max_size=3),
            function=st.none() | names,
            limit=st.integers(1, 10_000),
        ),
    ),
    StatusReply: st.builds(
        StatusReply,
        elapsed=st.floats(min_value=0, max_value=1e9),
        tasks_by_status=st.dictionaries(names, ints, max_size=3),
        loops=st.lists(
            st.builds(
                LoopStatus,
                name=names,
                concurrency=st.integers(1, 2**63 - 1),
                ready=ints,
                running=ints,
                workers=ints,
            ),
            max_size=2,
        ),
        workers=st.lists(
            st.builds(
                WorkerStatus,
                worker_id=names,
                name=st.text(max_size=5),
                loops=st.lists(names, max_size=2),
                joined_at=st.floats(min_value=0, max_value=1e9),
                running=st.lists(names, max_size=2),
            ),
            max_size=2,
        ),
        slowest=st.lists(
            st.builds(
                RunningTask,
                task_uid=names,
                handle=names,
                worker=st.text(max_size=5),
                running_for=st.floats(min_value=0, max_value=1e9),
                attempt=ints,
            ),
            max_size=2,
        ),
        explanation=st.none() | st.text(max_size=20),
        tasks=st.lists(
            st.builds(
                ListedTask,
                task_uid=names,
                key=st.none() | st.text(max_size=5),
                handle=names,
                status=st.sampled_from(TaskStatus),
                worker=st.text(max_size=5),
                started_at=st.none() | st.floats(min_value=0, max_value=1e9),
                ended_at=st.none() | st.floats(min_value=0, max_value=1e9),
                attempts=ints,
            ),
            max_size=2,
        ),
        tasks_matched=ints,
        tasks_error=st.none() | st.text(max_size=10),
    ),
}
any_message = st.one_of(*MESSAGE_STRATEGIES.values())


def test_every_message_type_has_a_strategy() -> None:
    assert set(MESSAGE_STRATEGIES) == set(MESSAGE_TYPES.values())


@pytest.mark.parametrize("cls", list(MESSAGE_STRATEGIES), ids=lambda cls: cls.TAG)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_message_type_round_trips(cls: type[Message], data: st.DataObject) -> None:
    message = data.draw(MESSAGE_STRATEGIES[cls])
    assert decode_frame(encode_frame([message]), allow_pickle=False) == [message]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(any_message, min_size=1, max_size=6))
def test_batches_round_trip(messages: list[Message]) -> None:
    assert decode_frame(encode_frame(messages), allow_pickle=False) == messages


def exact(value: Any) -> Any:
    """``value`` with the type of every container and scalar made part of the comparison."""
    if isinstance(value, list | tuple):
        return (type(value), [exact(item) for item in value])
    if isinstance(value, dict):
        return (dict, [(exact(key), exact(item)) for key, item in value.items()])
    return (type(value), value)


def assign_carrying(arguments: Any) -> Assign:
    """An assign whose own arguments and whose predecessor's are both ``arguments``."""
    return Assign(
        lease=1,
        task_uid="task-1",
        handle="h",
        loop="default",
        arguments=arguments,
        predecessors=[
            PredecessorRecord(
                task_uid="task-0",
                handle="h",
                status="success",
                arguments=arguments,
                result=None,
                exception_trace=None,
            )
        ],
        function=None,
        timeout=None,
    )


@pytest.mark.parametrize(
    "arguments",
    [
        None,
        (None, {"a": 1}),
        ((1,), None),
        (None, None),
        [None, {"a": (1, [2])}],
        [[1, (2,)], None],
        [None, None],
        ((), {}),
    ],
    ids=repr,
)
def test_none_halves_of_task_arguments_round_trip_exactly(arguments: Any) -> None:
    messages: list[Message] = [
        CreateTaskRequest(
            request_id=1,
            lease=1,
            uid=NEW_UID,
            awaited=False,
            handle="h",
            arguments=arguments,
            waits_on=[],
        ),
        assign_carrying(arguments),
    ]
    decoded = decode_frame(encode_frame(messages), allow_pickle=False)
    assert decoded == messages
    assert exact(decoded[0].arguments) == exact(arguments)  # type: ignore[attr-defined]
    assert exact(decoded[1].arguments) == exact(arguments)  # type: ignore[attr-defined]
    assert exact(decoded[1].predecessors[0].arguments) == exact(arguments)  # type: ignore[attr-defined]


@pytest.mark.parametrize("count", [1, 5, 1000])
@pytest.mark.parametrize("where", [None, "arguments", "result", "key"])
def test_a_value_of_one_predecessor_among_many_round_trips_exactly(
    count: int, where: str | None
) -> None:
    # Predecessors whose values are all None are let through without packing them one
    # by one: a tuple in any one of them (here the last) must still be packed.
    records = [
        PredecessorRecord(
            task_uid=f"task-{index}",
            handle="h",
            status="success",
            arguments=None,
            result=None,
            exception_trace=None,
        )
        for index in range(count)
    ]
    if where is not None:
        records[-1] = msgspec.structs.replace(records[-1], **{where: (1, (2,))})
    message = msgspec.structs.replace(assign_carrying(None), predecessors=records)
    (decoded,) = decode_frame(encode_frame([message]), allow_pickle=False)
    assert decoded == message
    last = decoded.predecessors[-1]  # type: ignore[attr-defined]
    if where is not None:
        assert exact(getattr(last, where)) == exact((1, (2,)))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(task_arguments)
def test_generated_task_arguments_round_trip_exactly(arguments: Any) -> None:
    message = Assign(
        lease=1,
        task_uid="t",
        handle="h",
        loop="l",
        arguments=arguments,
        predecessors=[],
        function=None,
        timeout=None,
    )
    (decoded,) = decode_frame(encode_frame([message]), allow_pickle=False)
    assert exact(decoded.arguments) == exact(arguments)  # type: ignore[attr-defined]


# Fuzz: whatever the bytes, decoding returns messages or raises RemoteProtocolError.


@st.composite
def damaged_frames(draw: st.DrawFn) -> bytes:
    frame = encode_frame(draw(st.lists(any_message, min_size=1, max_size=3)))
    damage = draw(st.sampled_from(["truncate", "flip", "insert"]))
    at = draw(st.integers(0, len(frame) - 1))
    if damage == "truncate":
        return frame[:at]
    if damage == "flip":
        return frame[:at] + bytes([draw(st.integers(0, 255))]) + frame[at + 1 :]
    return frame[:at] + draw(st.binary(min_size=1, max_size=4)) + frame[at:]


@settings(
    max_examples=2000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.binary(max_size=64) | damaged_frames())
def test_fuzz_decode_only_raises_remote_protocol_error(data: bytes) -> None:
    try:
        messages = decode_frame(data, allow_pickle=False)
    except RemoteProtocolError:
        return
    assert messages
    assert all(isinstance(message, Message) for message in messages)
