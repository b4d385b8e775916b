"""Messages: their fields, the rules checked when one is built, and the registry."""

from __future__ import annotations

import ast
import enum
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest

import trio_graph_scheduler.protocol as protocol
from trio_graph_scheduler.protocol import (
    MESSAGE_TYPES,
    Assign,
    Claim,
    CreateConditionRequest,
    CreateTaskRequest,
    Heartbeat,
    Hello,
    InvalidFieldError,
    LocalProtocolError,
    LoopBlocked,
    Message,
    PredecessorRecord,
    RemoteProtocolError,
    Reply,
    TaskFailed,
    TaskSucceeded,
    Welcome,
    decode_frame,
    encode_frame,
)
from trio_graph_scheduler.shared.states import TaskStatus


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
        "timeout": None,
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


# Rules spanning several fields are checked when a message is built, here or by the codec.
# (build, fragment of the error)
INVALID = [
    (lambda: hello(loops=["a", "a"]), "hello: loops lists a loop twice: ['a', 'a']"),
    (lambda: reply(error_type="E"), "error_type and error_message must be set together"),
    (lambda: reply(error_message="m"), "error_type and error_message must be set together"),
    (
        lambda: reply(uid="task-1", error_type="E", error_message="m"),
        "a reply carries a uid or an error, not both",
    ),
    (
        lambda: TaskFailed(lease=1, error_type="E", message="", traceback="", slot_busy=True),
        "task_failed: slot_busy goes only with reason timed_out",
    ),
    (
        lambda: LoopBlocked(task_uid="task-1", handle=None, seconds=1.0),
        "task_uid and handle must be set together",
    ),
]


@pytest.mark.parametrize(("build", "fragment"), INVALID, ids=[f for _, f in INVALID])
def test_invalid_combinations_raise_local_protocol_error(build: Any, fragment: str) -> None:
    with pytest.raises(LocalProtocolError) as info:
        build()
    assert isinstance(info.value, InvalidFieldError)
    assert fragment in str(info.value)


def test_error_carries_the_struct_and_the_detail() -> None:
    with pytest.raises(InvalidFieldError) as info:
        reply(error_type="E")
    assert info.value.struct_name == "reply"
    assert info.value.detail == "error_type and error_message must be set together"


def test_field_rules_are_checked_when_decoding() -> None:
    # Field by field, a message built here is not checked (its fields come from checked
    # state); the peer's decoder checks it, and names the field.
    frame = encode_frame([Claim(loop="default", credit=0)])
    with pytest.raises(RemoteProtocolError, match=r"Expected `int` >= 1 - at `\$\[0\].credit`"):
        decode_frame(frame, allow_pickle=False)


def test_decoded_statuses_are_task_statuses() -> None:
    (message,) = decode_frame(encode_frame([assign(predecessors=[record()])]), allow_pickle=False)
    assert isinstance(message, Assign)
    assert message.predecessors[0].status is TaskStatus.SUCCESS


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
    assert "worker_index" not in {field.name for field in msgspec.structs.fields(Assign)}
    with pytest.raises(TypeError, match="worker_index"):
        assign(worker_index=0)


def test_valid_replies() -> None:
    assert reply().uid is None
    assert reply(uid="condition-1").uid == "condition-1"
    assert reply(error_type="KeyError", error_message="").error_message == ""


def test_messages_are_frozen_slotted_and_keyword_only() -> None:
    message = Claim(loop="default", credit=1)
    with pytest.raises(AttributeError, match="immutable"):
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
    # issue 12 added task_query, cancel_task_request, successors_request; issue 10
    # value_chunk and results_dropped; issue 15 started
    assert len(MESSAGE_TYPES) == 26
    for tag, cls in MESSAGE_TYPES.items():
        assert tag == cls.TAG
        assert "type" not in {field.name for field in msgspec.structs.fields(cls)}
    with pytest.raises(TypeError):
        MESSAGE_TYPES["x"] = Heartbeat  # type: ignore[index]


PROTOCOL_DIR = Path(protocol.__file__).parent
ALLOWED_THIRD_PARTY = {"msgpack", "msgspec", "cloudpickle"}


@pytest.mark.parametrize("path", sorted(PROTOCOL_DIR.glob("*.py")), ids=lambda p: p.name)
def test_protocol_imports_only_stdlib_msgpack_msgspec_cloudpickle_and_shared(path: Path) -> None:
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
