"""Messages validate themselves at construction: a message that exists is valid."""

from __future__ import annotations

import ast
import dataclasses
import enum
import math
import sys
from pathlib import Path
from typing import Any

import pytest

import trio_graph_scheduler.protocol as protocol
from trio_graph_scheduler.protocol import (
    MESSAGE_TYPES,
    Assign,
    Claim,
    CreateConditionRequest,
    CreateTaskRequest,
    HandBack,
    Heartbeat,
    Hello,
    InvalidFieldError,
    LocalProtocolError,
    Message,
    PredecessorRecord,
    PrependRequest,
    Reply,
    Shutdown,
    TaskFailed,
    TaskSucceeded,
    Welcome,
)
from trio_graph_scheduler.shared.status import TaskStatus


class Priority(enum.IntEnum):
    HIGH = 7


def hello(**changes: Any) -> Hello:
    fields: dict[str, Any] = {
        "version": 1,
        "token": "",
        "worker_name": "w",
        "loops": [],
        "max_tasks": 0,
    }
    return Hello(**(fields | changes))


def record(**changes: Any) -> PredecessorRecord:
    fields: dict[str, Any] = {
        "task_uid": "task-1",
        "handle": "h",
        "status": "success",
        "arguments": None,
        "result": 1,
        "exception_trace": None,
    }
    return PredecessorRecord(**(fields | changes))


def assign(**changes: Any) -> Assign:
    fields: dict[str, Any] = {
        "lease": 1,
        "task_uid": "task-1",
        "handle": "h",
        "loop": "default",
        "arguments": None,
        "predecessors": [],
        "function": None,
    }
    return Assign(**(fields | changes))


def welcome(**changes: Any) -> Welcome:
    fields: dict[str, Any] = {
        "version": 1,
        "worker_id": "worker-1",
        "loops": {"default": 2},
        "heartbeat_interval": 5.0,
        "heartbeat_timeout": 15.0,
        "context_inits": {},
    }
    return Welcome(**(fields | changes))


def create_task_request(**changes: Any) -> CreateTaskRequest:
    fields: dict[str, Any] = {
        "request_id": 1,
        "lease": 1,
        "uid": "task-" + "0" * 32,
        "awaited": True,
        "handle": "h",
        "arguments": None,
        "waits_on": [],
    }
    return CreateTaskRequest(**(fields | changes))


def create_condition_request(**changes: Any) -> CreateConditionRequest:
    fields: dict[str, Any] = {
        "request_id": 1,
        "lease": 1,
        "uid": "condition-1",
        "mode": "SUCCESS__ALL",
        "waits_on": [],
    }
    return CreateConditionRequest(**(fields | changes))


def reply(**changes: Any) -> Reply:
    fields: dict[str, Any] = {
        "request_id": 1,
        "uid": None,
        "error_type": None,
        "error_message": None,
    }
    return Reply(**(fields | changes))


# (build, fragment of the error)
INVALID = [
    (lambda: hello(version="1"), "hello: field 'version' must be int, got str"),
    (lambda: hello(version=True), "field 'version' must be int, got bool"),
    (lambda: hello(max_tasks=-1), "field 'max_tasks' must be between 0 and 2**63 - 1, got -1"),
    (lambda: hello(max_tasks=2**63), "must be between 0 and"),
    (lambda: hello(token=None), "field 'token' must be str, got NoneType"),
    (lambda: hello(loops="default"), "field 'loops' must be list, got str"),
    (lambda: hello(loops=("default",)), "field 'loops' must be list, got tuple"),
    (lambda: hello(loops=["a", ""]), "field 'loops' item 1: must not be empty"),
    (lambda: hello(loops=["a", 3]), "field 'loops' item 1: must be str, got int"),
    (lambda: hello(loops=["a", "a"]), "field 'loops' lists 'a' twice"),
    (lambda: welcome(worker_id=""), "field 'worker_id' must not be empty"),
    (lambda: welcome(loops={"a": 0}), "field 'loops' value of 'a': must be at least 1, got 0"),
    (lambda: welcome(loops={"": 1}), "field 'loops' key '': must not be empty"),
    (lambda: welcome(loops=[("a", 1)]), "field 'loops' must be dict, got list"),
    (lambda: welcome(heartbeat_interval=0), "field 'heartbeat_interval' must be positive"),
    (lambda: welcome(heartbeat_interval=math.nan), "must be finite"),
    (lambda: welcome(heartbeat_interval="5"), "must be float, got str"),
    (lambda: welcome(context_inits=None), "field 'context_inits' must be dict, got NoneType"),
    (lambda: welcome(context_inits=[]), "field 'context_inits' must be dict, got list"),
    (lambda: welcome(context_inits={"": b"f"}), "field 'context_inits' key '': must not be empty"),
    (
        lambda: welcome(context_inits={"a": "f"}),
        "field 'context_inits' value of 'a': must be bytes, got str",
    ),
    (
        lambda: welcome(context_inits={"a": None}),
        "field 'context_inits' value of 'a': must be bytes, got NoneType",
    ),
    (lambda: Claim(loop="default", credit=0), "claim: field 'credit' must be at least 1, got 0"),
    (lambda: Claim(loop="", credit=1), "field 'loop' must not be empty"),
    (lambda: assign(lease=-1), "assign: field 'lease' must be between 0 and"),
    (lambda: assign(function="code"), "field 'function' must be bytes, got str"),
    (lambda: assign(function=bytearray(b"x")), "field 'function' must be bytes, got bytearray"),
    (lambda: assign(predecessors=[{}]), "field 'predecessors' item 0: must be PredecessorRecord"),
    (lambda: assign(arguments=[1, 2, 3]), "field 'arguments' must be None or (args, kwargs)"),
    (lambda: assign(arguments={"a": 1}), "must be None or (args, kwargs), got dict"),
    (lambda: assign(arguments=(1, {})), "args must be a tuple, list or None, got int"),
    (lambda: assign(arguments=({}, None)), "args must be a tuple, list or None, got dict"),
    (lambda: assign(arguments=((), [])), "kwargs must be a dict or None, got list"),
    (lambda: assign(arguments=(None, ())), "kwargs must be a dict or None, got tuple"),
    (lambda: assign(arguments=((), {1: 2})), "kwargs keys must be str, got int"),
    (lambda: assign(arguments=(None, {1: 2})), "kwargs keys must be str, got int"),
    (lambda: assign(arguments=(None, {b"a": 2})), "kwargs keys must be str, got bytes"),
    (lambda: assign(arguments=(None,)), "must be None or (args, kwargs), got tuple"),
    (lambda: assign(arguments=(None, None, None)), "must be None or (args, kwargs), got tuple"),
    (lambda: record(status="done"), "PredecessorRecord: field 'status' must be one of"),
    (lambda: record(exception_trace=b"x"), "field 'exception_trace' must be str, got bytes"),
    (lambda: TaskFailed(lease=1, error_type="", message="", traceback=""), "'error_type'"),
    (lambda: HandBack(leases=[1, -2]), "field 'leases' item 1: must be between 0 and"),
    (
        lambda: create_task_request(arguments=5),
        "create_task_request: field 'arguments' must be None or (args, kwargs), got int",
    ),
    (lambda: create_task_request(uid=""), "create_task_request: field 'uid' must not be empty"),
    (lambda: create_task_request(uid=None), "field 'uid' must be str, got NoneType"),
    (lambda: create_task_request(uid=b"task-1"), "field 'uid' must be str, got bytes"),
    (lambda: create_task_request(awaited=1), "field 'awaited' must be bool, got int"),
    (lambda: create_task_request(awaited=0), "field 'awaited' must be bool, got int"),
    (lambda: create_task_request(awaited=None), "field 'awaited' must be bool, got NoneType"),
    (lambda: create_task_request(awaited="yes"), "field 'awaited' must be bool, got str"),
    (lambda: create_task_request(arguments=(None, {1: 2})), "kwargs keys must be str, got int"),
    (lambda: create_condition_request(mode=""), "field 'mode' must not be empty"),
    (
        lambda: create_condition_request(uid=""),
        "create_condition_request: field 'uid' must not be empty",
    ),
    (lambda: create_condition_request(uid=7), "field 'uid' must be str, got int"),
    (
        lambda: PrependRequest(request_id=1, lease=1, successor_handle="h", new_task_uid=""),
        "field 'new_task_uid' must not be empty",
    ),
    (lambda: reply(uid=""), "field 'uid' must not be empty"),
    (lambda: reply(error_type="E"), "error_type and error_message must be set together"),
    (lambda: reply(error_message="m"), "error_type and error_message must be set together"),
    (
        lambda: reply(uid="task-1", error_type="E", error_message="m"),
        "a reply carries a uid or an error, not both",
    ),
    (lambda: Shutdown(reason="", graph_succeeded=1), "must be bool, got int"),  # type: ignore[arg-type]
]


@pytest.mark.parametrize(("build", "fragment"), INVALID, ids=[f for _, f in INVALID])
def test_invalid_fields_raise_local_protocol_error(build: Any, fragment: str) -> None:
    with pytest.raises(LocalProtocolError) as info:
        build()
    assert isinstance(info.value, InvalidFieldError)
    assert fragment in str(info.value)


def test_error_carries_the_struct_and_the_detail() -> None:
    with pytest.raises(InvalidFieldError) as info:
        Claim(loop="default", credit=0)
    assert info.value.struct_name == "claim"
    assert info.value.detail == "field 'credit' must be at least 1, got 0"


def test_enum_members_and_ints_are_normalised_to_wire_types() -> None:
    status = record(status=TaskStatus.FAILED).status
    assert status == "failed"
    assert type(status) is str
    lease = TaskSucceeded(lease=Priority.HIGH, result=None).lease
    assert lease == 7
    assert type(lease) is int
    interval = welcome(heartbeat_interval=2).heartbeat_interval
    assert interval == 2.0
    assert type(interval) is float


def test_values_are_kept_as_given() -> None:
    # Value fields are not checked nor normalised: the value codec carries them exactly.
    result = [Priority.HIGH, (1, 2)]
    assert TaskSucceeded(lease=1, result=result).result is result
    arguments = [[1], {"a": Priority.HIGH}]  # lists are accepted for (args, kwargs)
    assert assign(arguments=arguments).arguments is arguments


# Either half of (args, kwargs) may be None, as TaskGraph.create_task accepts it.
NONE_HALVES = [
    (None, {"a": 1}),
    ((1,), None),
    (None, None),
    [None, {"a": 1}],
    [[1], None],
    [None, None],
]


@pytest.mark.parametrize("arguments", NONE_HALVES, ids=repr)
def test_none_halves_of_task_arguments_are_accepted_as_given(arguments: Any) -> None:
    assert assign(arguments=arguments).arguments is arguments
    assert create_task_request(arguments=arguments).arguments is arguments
    assert record(arguments=arguments).arguments is arguments


def test_new_graph_call_fields() -> None:
    request = create_task_request(uid="task-" + "ab" * 16, awaited=False)
    assert (request.uid, request.awaited) == ("task-" + "ab" * 16, False)
    assert create_condition_request(uid="condition-9").uid == "condition-9"


def test_welcome_context_inits() -> None:
    assert welcome().context_inits == {}
    inits = {"default": b"\x80\x05init", "io": b""}
    assert welcome(context_inits=inits).context_inits == inits


def test_assign_has_no_worker_index() -> None:
    assert "worker_index" not in {field.name for field in dataclasses.fields(Assign)}
    with pytest.raises(TypeError, match="worker_index"):
        assign(worker_index=0)


def test_valid_replies() -> None:
    assert reply().uid is None
    assert reply(uid="condition-1").uid == "condition-1"
    assert reply(error_type="KeyError", error_message="").error_message == ""


def test_messages_are_frozen_slotted_and_keyword_only() -> None:
    message = Claim(loop="default", credit=1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        message.credit = 2  # type: ignore[misc]
    assert not hasattr(message, "__dict__")
    with pytest.raises(TypeError):
        Claim("default", 1)  # type: ignore[call-arg]
    assert Heartbeat() == Heartbeat()


def test_registry_holds_every_message_class_once() -> None:
    classes = {
        value
        for value in vars(protocol).values()
        if isinstance(value, type) and issubclass(value, Message) and value is not Message
    }
    assert set(MESSAGE_TYPES.values()) == classes
    assert len(MESSAGE_TYPES) == 16
    for tag, cls in MESSAGE_TYPES.items():
        assert tag == cls.TAG
        assert "type" not in {field.name for field in dataclasses.fields(cls)}  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        MESSAGE_TYPES["x"] = Heartbeat  # type: ignore[index]


PROTOCOL_DIR = Path(protocol.__file__).parent
ALLOWED_THIRD_PARTY = {"msgpack", "cloudpickle"}


@pytest.mark.parametrize("path", sorted(PROTOCOL_DIR.glob("*.py")), ids=lambda p: p.name)
def test_protocol_imports_only_stdlib_msgpack_cloudpickle_and_shared(path: Path) -> None:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 1:  # from .x: this package
                continue
            if node.level == 2:  # from ..x: only the shared package
                assert (node.module or "").startswith("shared"), ast.unparse(node)
                continue
            names = [node.module or ""]
        else:
            continue
        for name in names:
            top = name.partition(".")[0]
            assert top in sys.stdlib_module_names or top in ALLOWED_THIRD_PARTY, name
