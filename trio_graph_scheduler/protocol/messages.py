"""The messages of the wire protocol: one frozen, slotted, keyword-only dataclass per type.

A message that exists is valid: every field is checked when the message is built, by a
checker generated from the field's annotation (see ``validation``), and a bad value raises
:class:`InvalidFieldError`, a ``LocalProtocolError``. The codec builds inbound messages
through the same constructors, so inbound frames get exactly the same checks.

The field names are the wire keys, and :data:`MESSAGE_TYPES` maps each wire tag to its
class: nothing else in the package spells a key or a tag. On the wire a message is the
msgpack map ``{"type": tag, field: value, ...}``.

Fields annotated ``Any`` (``Value``) hold task values (arguments, results); they are not
checked here but carried by the value codec, which decides what is representable.

Don't subclass the concrete messages: the codec looks classes up by exact type.
"""

# No `from __future__ import annotations` here, on purpose: the annotations are evaluated
# when each class is built, so `dataclasses.fields(cls)[i].type` is the real type the
# checkers and the codec are generated from.

import dataclasses
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Annotated, Any, ClassVar, Final, TypeVar

from ..shared.errors import LocalProtocolError
from ..shared.status import TaskStatus
from .validation import (
    Check,
    InvalidValue,
    at_least_one,
    checker_for,
    non_empty,
    one_of,
    positive,
    task_arguments,
    unique,
)

#: The version this code speaks. A peer speaking another one is refused at the handshake.
PROTOCOL_VERSION: Final = 1

#: The key of a message map that holds its wire tag; no field may have this name.
TYPE_KEY: Final = "type"

# Field types. A plain `int` is always 0 to 2**63 - 1 and a `float` always finite.
#: A loop name, task uid, handle or worker id: never empty.
Name = Annotated[str, non_empty]
#: A credit or a concurrency: at least 1.
AtLeastOne = Annotated[int, at_least_one]
#: A task's arguments: None or (args, kwargs), carried exactly by the value codec.
TaskArguments = Annotated[Any, task_arguments]
#: Any task value (a result): whatever the value codec can carry.
Value = Any
#: One of the task states' strings ("success", "failed", ...).
TaskStatusName = Annotated[str, one_of(TaskStatus)]


class InvalidFieldError(LocalProtocolError):
    """A message or record was built with a field value the protocol forbids.

    Attributes:
        struct_name: The wire tag of the message (or the name of the record).
        detail: What is wrong, e.g. ``field 'lease' must be int, got str``.
    """

    def __init__(self, struct_name: str, detail: str) -> None:
        self.struct_name = struct_name
        self.detail = detail
        super().__init__(f"{struct_name}: {detail}")


class Struct:
    """Base of messages and of the records nested in them: validation on construction."""

    __slots__ = ()

    #: (field name, checker) for every field that has a checker; set at class creation.
    _checks: ClassVar[tuple[tuple[str, Check], ...]] = ()
    #: The name used in error messages.
    _name: ClassVar[str] = ""

    def __post_init__(self) -> None:
        for name, check in self._checks:
            value = getattr(self, name)
            try:
                checked = check(value)
            except InvalidValue as exc:
                raise InvalidFieldError(self._name, f"field {name!r} {exc}") from None
            if checked is not value:
                # Normalised (a StrEnum to str, an int to float): store the wire type.
                object.__setattr__(self, name, checked)
        try:
            self._check_together()
        except InvalidValue as exc:
            raise InvalidFieldError(self._name, str(exc)) from None

    def _check_together(self) -> None:
        """Check rules that span several fields; raise InvalidValue. Most have none."""


class Message(Struct):
    """Base class of every message. ``TAG`` is the message's wire tag."""

    __slots__ = ()

    TAG: ClassVar[str]


_S = TypeVar("_S", bound=Struct)
_M = TypeVar("_M", bound=Message)

_REGISTRY: dict[str, type[Message]] = {}

#: Every message class by its wire tag: the one registry the codec is generated from.
MESSAGE_TYPES: Final[Mapping[str, type[Message]]] = MappingProxyType(_REGISTRY)


def _build_checks(cls: type[Struct], name: str) -> None:
    checks = []
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        if field.name == TYPE_KEY:
            raise TypeError(f"{cls.__name__}.{field.name}: that key holds the wire tag")
        if field.default is not dataclasses.MISSING or not field.kw_only:
            raise TypeError(f"{cls.__name__}.{field.name}: fields are required and keyword-only")
        check = checker_for(field.type)
        if check is not None:
            checks.append((field.name, check))
    cls._checks = tuple(checks)
    cls._name = name


def _record(cls: type[_S]) -> type[_S]:
    """Finish a record class (a struct nested in messages, with no tag of its own)."""
    _build_checks(cls, cls.__name__)
    return cls


def _message(tag: str) -> Callable[[type[_M]], type[_M]]:
    """Finish a message class and register it under ``tag``."""

    def register(cls: type[_M]) -> type[_M]:
        if tag in _REGISTRY:
            raise TypeError(f"message tag {tag!r} is used twice")
        _build_checks(cls, tag)
        cls.TAG = tag
        _REGISTRY[tag] = cls
        return cls

    return register


# The handshake.


@_message("hello")
@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Hello(Message):
    """Worker to coordinator, first: who the worker is and what it serves.

    ``loops`` empty means every loop of the graph; ``max_tasks`` 0 means the worker puts
    no cap of its own on how many tasks it runs at once.
    """

    version: int
    token: str
    worker_name: str
    loops: Annotated[list[Name], unique]
    max_tasks: int


@_message("welcome")
@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Welcome(Message):
    """Coordinator to worker: accepted. ``loops`` maps each loop this worker serves to
    that loop's cluster-wide concurrency. Each side sends something (a heartbeat if nothing
    else) at least every ``heartbeat_interval`` seconds, and counts the other as lost after
    ``heartbeat_timeout`` seconds of silence. ``context_inits`` holds, for the served loops
    that have one, the cloudpickled worker-context init function.
    """

    version: int
    worker_id: Name
    loops: dict[Name, AtLeastOne]
    heartbeat_interval: Annotated[float, positive]
    heartbeat_timeout: Annotated[float, positive]
    context_inits: dict[Name, bytes]


@_message("reject")
@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Reject(Message):
    """Coordinator to worker: refused (a bad token, unknown loops, ...); the coordinator
    closes the connection next.
    """

    reason: str


# Work.


@_message("claim")
@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Claim(Message):
    """Worker to coordinator: send up to ``credit`` more assignments on ``loop``."""

    loop: Name
    credit: AtLeastOne


@_record
@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class PredecessorRecord(Struct):
    """A predecessor of an assigned task, as the task sees it (nested in :class:`Assign`)."""

    task_uid: Name
    handle: Name
    status: TaskStatusName
    arguments: TaskArguments
    result: Value
    exception_trace: str | None


@_message("assign")
@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Assign(Message):
    """Coordinator to worker: run this task under ``lease``.

    ``function`` is the cloudpickled function, sent only the first time this worker gets
    a task of ``handle``, else ``None``.
    """

    lease: int
    task_uid: Name
    handle: Name
    loop: Name
    arguments: TaskArguments
    predecessors: list[PredecessorRecord]
    function: bytes | None


@_message("task_succeeded")
@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class TaskSucceeded(Message):
    """Worker to coordinator: the task of ``lease`` returned ``result``."""

    lease: int
    result: Value


@_message("task_failed")
@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class TaskFailed(Message):
    """Worker to coordinator: the task of ``lease`` raised."""

    lease: int
    error_type: Name
    message: str
    traceback: str


@_message("hand_back")
@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class HandBack(Message):
    """Worker to coordinator, on a graceful stop: these leases will not be finished."""

    leases: list[int]


# Graph calls made by a task running on a worker. The worker chooses the new uids, so that
# the seed's synchronous calls need no answer; only an awaited create_task gets a Reply.
# An unawaited call the coordinator refuses makes the calling task fail instead.


@_message("create_task_request")
@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class CreateTaskRequest(Message):
    """Worker to coordinator: the task of ``lease`` calls ``graph.create_task``.

    ``awaited`` is true when the task waits for the :class:`Reply` (``await
    graph.create_task``) and false for ``create_task_nowait``.
    """

    request_id: int
    lease: int
    uid: Name
    awaited: bool
    handle: Name
    arguments: TaskArguments
    waits_on: list[Name]


@_message("create_condition_request")
@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class CreateConditionRequest(Message):
    """Worker to coordinator: the task of ``lease`` builds a scheduling condition.

    ``mode`` is checked by the coordinator; a bad one makes the calling task fail, as the
    in-process graph would raise in it.
    """

    request_id: int
    lease: int
    uid: Name
    mode: Name
    waits_on: list[Name]


@_message("prepend_request")
@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class PrependRequest(Message):
    """Worker to coordinator: the task of ``lease`` calls ``prepend_to_successor``."""

    request_id: int
    lease: int
    successor_handle: Name
    new_task_uid: Name


@_message("reply")
@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Reply(Message):
    """Coordinator to worker: the answer to request ``request_id``.

    On success ``uid`` is the new task's or condition's uid (``None`` when the call
    returns nothing) and the error fields are ``None``; on failure ``error_type`` and
    ``error_message`` say what the coordinator raised and ``uid`` is ``None``.
    """

    request_id: int
    uid: Name | None
    error_type: Name | None
    error_message: str | None

    def _check_together(self) -> None:
        if (self.error_type is None) != (self.error_message is None):
            raise InvalidValue("error_type and error_message must be set together")
        if self.error_type is not None and self.uid is not None:
            raise InvalidValue("a reply carries a uid or an error, not both")


# Liveness and the end.


@_message("heartbeat")
@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Heartbeat(Message):
    """Either way: I am alive."""


@_message("cancel")
@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Cancel(Message):
    """Coordinator to worker: stop the task of ``lease``; answer with :class:`Cancelled`."""

    lease: int


@_message("cancelled")
@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Cancelled(Message):
    """Worker to coordinator: the task of ``lease`` was stopped as asked."""

    lease: int


@_message("shutdown")
@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Shutdown(Message):
    """Coordinator to worker, last: the graph has ended; exit."""

    reason: str
    graph_succeeded: bool
