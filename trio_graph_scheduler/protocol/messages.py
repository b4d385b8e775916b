"""The messages of the wire protocol: one frozen, keyword-only msgspec ``Struct`` per type.

On the wire a message is the msgpack map ``{"type": tag, field: value, ...}``; a frame is
an array of them (see ``codec``). The field names are the wire keys and each class's
``tag`` its wire tag: nothing else in the package spells a key or a tag.

Every field's rule is in its annotation (``msgspec.Meta`` constraints: a name is never
empty, an int is 0 to 2**63 - 1, an interval is positive and finite, ...), and msgspec
checks every inbound message against them while decoding, in C, so validation costs
well under a microsecond a message. Rules that span fields live in ``__post_init__``,
which runs both when a message is built here and when one is decoded.

Messages built by this package are not re-checked field by field when built: their
fields come from state that was checked already, and the peer checks every message it
receives, so a wrong one is caught there, as a protocol error that names the field.

Fields annotated :data:`Value` hold task values (arguments, results): any Python value,
carried exactly (tuples stay tuples) by the value codec in ``values``.

Don't subclass the concrete messages: the codec dispatches on exact classes.
"""

# No `from __future__ import annotations` here: msgspec and the codec read the
# annotations as real types when each class is built.

from collections.abc import Mapping
from types import MappingProxyType
from typing import Annotated, Any, ClassVar, Final

import msgspec

from ..shared.errors import LocalProtocolError
from ..shared.states import ConditionStatus, EndReason, TaskStatus

#: The version this code speaks. A peer speaking another one is refused at the handshake.
PROTOCOL_VERSION: Final = 1

#: The key of a message map that holds its wire tag; no field may have this name.
TYPE_KEY: Final = "type"

#: The largest int a field may hold: msgpack's signed 64-bit range, so that peers in
#: other languages can read every id and count as an int64.
MAX_WIRE_INT: Final = 2**63 - 1
#: The longest interval a field may hold, in seconds (a year): finite, and absurd beyond.
MAX_SECONDS: Final = 365 * 24 * 3600.0

#: Marks the fields that hold task values, for the codec.
VALUE_MARKER: Final = "tgs-value"

# Field types.
#: A count, an id or a version.
Count = Annotated[int, msgspec.Meta(ge=0, le=MAX_WIRE_INT)]
#: A credit or a concurrency.
AtLeastOne = Annotated[int, msgspec.Meta(ge=1, le=MAX_WIRE_INT)]
#: A loop name, task uid, handle or worker id: never empty.
Name = Annotated[str, msgspec.Meta(min_length=1)]
#: An interval in seconds: positive and finite.
Seconds = Annotated[float, msgspec.Meta(gt=0, le=MAX_SECONDS)]
#: Any task value (arguments, a result): whatever the value codec can carry.
Value = Annotated[Any, VALUE_MARKER]
#: Marks the value fields left out when their encoded form is larger than
#: :data:`MAX_SHIPPED_ARGUMENTS`: they arrive as ``values.NOT_SENT``.
SMALL_MARKER: Final = "tgs-small-value"
#: A value sent only when small: a predecessor's arguments, which few tasks read.
SmallValue = Annotated[Any, VALUE_MARKER, SMALL_MARKER]
#: The largest encoded predecessor's arguments an assignment carries (64 KiB).
MAX_SHIPPED_ARGUMENTS: Final = 64 * 2**10


class InvalidFieldError(LocalProtocolError, ValueError):
    """A message was built with fields that break a rule spanning several of them.

    Also a ``ValueError``: raised while decoding, msgspec turns it into a validation error
    of the frame, which the codec reports as a ``RemoteProtocolError``.

    Attributes:
        struct_name: The wire tag of the message (or the name of the record).
        detail: What is wrong.
    """

    def __init__(self, struct_name: str, detail: str) -> None:
        self.struct_name = struct_name
        self.detail = detail
        super().__init__(f"{struct_name}: {detail}")


class Record(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, gc=False):
    """Base of the records nested in messages.

    Subclasses repeat ``frozen=True, kw_only=True``: msgspec applies ``kw_only`` to the
    fields a class defines itself, and type checkers want ``frozen`` spelled out.

    Records and messages are not tracked by the cyclic garbage collector (``gc=False``,
    inherited): they are made fresh from values and never referred to by what they
    hold, so they cannot be part of a cycle. Tracked, the 100,000 predecessor records
    of one join's assignment cost the coordinator 2 to 9 µs each in collections, while
    a large graph is alive around them; untracked, 1 µs.
    """


class Message(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    forbid_unknown_fields=True,
    tag_field=TYPE_KEY,
    gc=False,
):
    """Base class of every message. ``TAG`` is the message's wire tag.

    Subclasses repeat ``frozen=True, kw_only=True``; none is tracked by the garbage
    collector (see :class:`Record`).
    """

    TAG: ClassVar[str]


_REGISTRY: dict[str, type[Message]] = {}

#: Every message class by its wire tag: the one registry the codec is generated from.
MESSAGE_TYPES: Final[Mapping[str, type[Message]]] = MappingProxyType(_REGISTRY)


def _register(cls: type[Message]) -> type[Message]:
    tag = cls.__struct_config__.tag
    assert isinstance(tag, str), cls
    assert tag not in _REGISTRY, tag
    cls.TAG = tag
    _REGISTRY[tag] = cls
    return cls


# The handshake.


@_register
class Hello(Message, frozen=True, kw_only=True, tag="hello", omit_defaults=True):
    """Worker to coordinator, first: who the worker is and what it serves.

    ``loops`` empty means every loop of the graph; ``max_tasks`` 0 means the worker puts
    no cap of its own on how many tasks it runs at once. ``max_frame_bytes`` is the
    largest frame the worker accepts: the coordinator sends it nothing larger (0, or left
    out on the wire by an older worker: it did not say). ``max_value_bytes`` is the
    largest value the worker takes in as a stream of :class:`ValueChunk` (0, or left
    out: it takes no streams, so values must fit a frame). ``result_cache_bytes`` is the
    budget of the large results the worker keeps (see :class:`ResultsDropped`; 0, or
    left out: it keeps none, and is never sent a ``cached`` predecessor).
    """

    version: Count
    token: str
    worker_name: str
    loops: list[Name]
    max_tasks: Count
    max_frame_bytes: Count = 0
    max_value_bytes: Count = 0
    result_cache_bytes: Count = 0

    def __post_init__(self) -> None:
        if len(set(self.loops)) != len(self.loops):
            raise InvalidFieldError(self.TAG, f"loops lists a loop twice: {self.loops}")


@_register
class Welcome(Message, frozen=True, kw_only=True, tag="welcome", omit_defaults=True):
    """Coordinator to worker: accepted. ``loops`` maps each loop this worker serves to
    that loop's cluster-wide concurrency. Each side sends something (a heartbeat if nothing
    else) at least every ``heartbeat_interval`` seconds, and counts the other as lost after
    ``heartbeat_timeout`` seconds of silence. ``context_inits`` holds, for the served loops
    that have one, the cloudpickled worker-context init function. ``max_frame_bytes`` is
    the largest frame the coordinator accepts (0, or left out: it did not say).
    ``slot_indexes`` gives, per loop, the ``worker_index`` of each of the worker's slots
    (one number per slot, unique among the connected workers' slots of that loop); a
    loop left out numbers its slots from 0 (an older coordinator). ``max_value_bytes``:
    as in :class:`Hello`, for the coordinator.
    """

    version: Count
    worker_id: Name
    loops: dict[Name, AtLeastOne]
    heartbeat_interval: Seconds
    heartbeat_timeout: Seconds
    context_inits: dict[Name, bytes]
    max_frame_bytes: Count = 0
    slot_indexes: dict[Name, list[Count]] = msgspec.field(default_factory=dict)
    max_value_bytes: Count = 0

    def __post_init__(self) -> None:
        for loop, indexes in self.slot_indexes.items():
            if loop not in self.loops:
                raise InvalidFieldError(self.TAG, f"slot_indexes names loop {loop!r}, not served")
            if len(set(indexes)) != len(indexes):
                raise InvalidFieldError(self.TAG, f"slot_indexes of {loop!r} repeat a number")


@_register
class Reject(Message, frozen=True, kw_only=True, tag="reject"):
    """Coordinator to worker: refused (a bad token, unknown loops, ...); the coordinator
    closes the connection next.
    """

    reason: str


# Work.


@_register
class Claim(Message, frozen=True, kw_only=True, tag="claim"):
    """Worker to coordinator: send up to ``credit`` more assignments on ``loop``."""

    loop: Name
    credit: AtLeastOne


@_register
class Started(Message, frozen=True, kw_only=True, tag="started"):
    """Worker to coordinator: the tasks of ``leases`` have started running here.

    Sent in the next frame after a slot takes a task, for the leases still running then
    (an answer says as much for a task that ended first). Until it hears this, the
    coordinator counts a task as sent and not started: at most a small prefetch of those
    go to one worker, and one left unstarted too long may be taken back (a ``cancel``).
    """

    leases: list[Count]


class PredecessorRecord(Record, frozen=True, kw_only=True, omit_defaults=True):
    """A predecessor of an assigned task, as the task sees it (nested in :class:`Assign`).

    ``key`` is the key it was created with (``None``, left out on the wire: none).
    ``arguments`` is left out (``values.NOT_SENT``) when its encoded form is larger than
    :data:`MAX_SHIPPED_ARGUMENTS`: the task asks for it if it reads it. ``cached``: the
    worker holds the result already (it ran the task, or was sent its result before, and
    has not said it dropped it: see :class:`ResultsDropped`), so ``result`` is ``None``;
    left out on the wire when false.
    """

    task_uid: Name
    handle: Name
    status: TaskStatus
    arguments: SmallValue
    result: Value
    exception_trace: str | None
    key: Value = None
    cached: bool = False


class TaskRecord(Record, frozen=True, kw_only=True, omit_defaults=True):
    """A task of the coordinator's graph as a task on a worker asked for it (nested in
    :class:`Reply`): its state when the coordinator answered.

    ``result`` is ``None`` unless the query asked for it (``with_result``).
    """

    task_uid: Name
    handle: Name
    status: TaskStatus
    arguments: Value
    result: Value
    exception_trace: str | None
    attempts: Count
    end_reason: EndReason | None
    key: Value = None


class ConditionRecord(Record, frozen=True, kw_only=True):
    """A condition of the coordinator's graph (nested in :class:`Reply`)."""

    uid: Name
    mode: Name
    status: ConditionStatus


@_register
class Assign(Message, frozen=True, kw_only=True, tag="assign", omit_defaults=True):
    """Coordinator to worker: run this task under ``lease``.

    ``function`` is the cloudpickled function, sent only the first time this worker gets
    a task of ``handle``, else ``None``. ``timeout`` is how many seconds the run may take
    (its function's policy), or ``None``. ``attempts`` counts the runs started so far,
    this one included (``task_node.attempts``); ``key`` is the task's key. Both are left
    out on the wire when they hold their default (0, ``None``).
    """

    lease: Count
    task_uid: Name
    handle: Name
    loop: Name
    arguments: Value
    predecessors: list[PredecessorRecord]
    function: bytes | None
    timeout: Seconds | None
    attempts: Count = 0
    key: Value = None


@_register
class TaskSucceeded(Message, frozen=True, kw_only=True, tag="task_succeeded"):
    """Worker to coordinator: the task of ``lease`` returned ``result``."""

    lease: Count
    result: Value


@_register
class TaskFailed(Message, frozen=True, kw_only=True, tag="task_failed", omit_defaults=True):
    """Worker to coordinator: the task of ``lease`` failed; ``reason`` says how.

    ``error_type`` names the exception's class (for people: the coordinator keeps the
    ``traceback`` text, or ``error_type: message`` when there is none); it is ``None``
    only when the task marked itself failed, which raises nothing. ``reason`` is left
    out on the wire when it is the usual ``raised``.

    ``slot_busy`` (only with ``timed_out``): the task's sync function runs on in its
    thread, which cannot be stopped; its slot stays taken until :class:`SlotFreed`.
    Left out on the wire when false.

    ``exception`` is the exception itself, cloudpickled (without its traceback), when it
    could be pickled and is not too large; left out otherwise. The coordinator keeps it
    as ``node.task_exception``, or a stand-in with ``error_type`` and ``message`` when it
    is left out or cannot be unpickled there.
    """

    lease: Count
    error_type: Name | None
    message: str
    traceback: str
    reason: EndReason = EndReason.RAISED
    slot_busy: bool = False
    exception: bytes | None = None

    def __post_init__(self) -> None:
        if self.slot_busy and self.reason is not EndReason.TIMED_OUT:
            raise InvalidFieldError(self.TAG, "slot_busy goes only with reason timed_out")


@_register
class ResultsDropped(Message, frozen=True, kw_only=True, tag="results_dropped"):
    """Worker to coordinator: the large results of these tasks are no longer kept here
    (its cache was full, or one was larger than the whole cache): an assignment that
    needs one must carry it again."""

    uids: list[Name]


@_register
class HandBack(Message, frozen=True, kw_only=True, tag="hand_back"):
    """Worker to coordinator, on a graceful stop: these leases will not be finished.

    Sent with no lease too, by a worker that stops holding none: a close after it means
    the worker left on purpose, not that the connection was lost.
    """

    leases: list[Count]


# Graph calls made by a task running on a worker. The worker chooses the new uids, so that
# the seed's synchronous calls need no answer; only an awaited create_task gets a Reply.
# An unawaited call the coordinator refuses makes the calling task fail instead.


@_register
class CreateTaskRequest(
    Message, frozen=True, kw_only=True, tag="create_task_request", omit_defaults=True
):
    """Worker to coordinator: the task of ``lease`` calls ``graph.create_task``.

    ``awaited`` is true when the task waits for the :class:`Reply` (``await
    graph.create_task``) and false for ``create_task_nowait``. ``key`` is the task's key
    (``None``, left out on the wire: none); a task with one is only ever awaited, since
    the reply says which task the key names. ``keep_result`` (left out on the wire when
    false): ``release_results`` never drops the task's result.
    """

    request_id: Count
    lease: Count
    uid: Name
    awaited: bool
    handle: Name
    arguments: Value
    waits_on: list[Name]
    key: Value = None
    keep_result: bool = False

    def __post_init__(self) -> None:
        if self.key is not None and not self.awaited:
            raise InvalidFieldError(self.TAG, "a task with a key is created only awaited")


@_register
class CreateConditionRequest(
    Message, frozen=True, kw_only=True, tag="create_condition_request", omit_defaults=True
):
    """Worker to coordinator: the task of ``lease`` builds a scheduling condition.

    ``mode`` is checked by the coordinator; a bad one makes the calling task fail, as the
    in-process graph would raise in it. ``awaited`` (``await graph.acreate_condition``;
    left out on the wire when false): the task waits for the :class:`Reply`, and a
    refusal raises there instead of failing the task.
    """

    request_id: Count
    lease: Count
    uid: Name
    mode: Name
    waits_on: list[Name]
    awaited: bool = False


@_register
class PrependRequest(Message, frozen=True, kw_only=True, tag="prepend_request", omit_defaults=True):
    """Worker to coordinator: the task of ``lease`` calls ``prepend_to_successor``.

    ``awaited`` (``aprepend_to_successor``; left out on the wire when false): the task
    waits for the :class:`Reply`, and a refusal raises there instead of failing the task.
    """

    request_id: Count
    lease: Count
    successor_handle: Name
    new_task_uid: Name
    awaited: bool = False


@_register
class TaskQuery(Message, frozen=True, kw_only=True, tag="task_query", omit_defaults=True):
    """Worker to coordinator: the task of ``lease`` looks up a task by ``uid`` or by
    ``key`` (exactly one of them); the :class:`Reply` carries it in ``tasks`` (none for
    an unknown key, an ``UnknownUidError`` for an unknown uid), with its result only when
    ``with_result``.
    """

    request_id: Count
    lease: Count
    uid: Name | None = None
    key: Value = None
    with_result: bool = False

    def __post_init__(self) -> None:
        if (self.uid is None) == (self.key is None):
            raise InvalidFieldError(self.TAG, "exactly one of uid and key must be set")


@_register
class CancelTaskRequest(Message, frozen=True, kw_only=True, tag="cancel_task_request"):
    """Worker to coordinator: the task of ``lease`` calls ``graph.acancel_task``; the
    :class:`Reply`'s ``answer`` is what the call returns (false: it had ended already)."""

    request_id: Count
    lease: Count
    uid: Name
    reason: str


@_register
class SuccessorsRequest(Message, frozen=True, kw_only=True, tag="successors_request"):
    """Worker to coordinator: the task of ``lease`` calls ``aget_successors(handle)`` on
    the task ``uid``; the :class:`Reply` carries the successors in ``tasks`` and, at the
    same index, the condition linking each in ``conditions``."""

    request_id: Count
    lease: Count
    uid: Name
    handle: Name


@_register
class Reply(Message, frozen=True, kw_only=True, tag="reply", omit_defaults=True):
    """Coordinator to worker: the answer to request ``request_id``.

    On success ``uid`` is the new task's or condition's uid (``None`` when the call
    returns nothing) and the error fields are ``None``; on failure ``error_type`` and
    ``error_message`` say what the coordinator raised and ``uid`` is ``None``.

    What a query answers (left out on the wire when empty): ``tasks`` (a
    :class:`TaskQuery`'s task, a keyed ``create_task``'s task, a
    :class:`SuccessorsRequest`'s successors), ``conditions`` (the condition linking
    each successor, at the same index), ``answer`` (a :class:`CancelTaskRequest`'s).
    """

    request_id: Count
    uid: Name | None
    error_type: Name | None
    error_message: str | None
    tasks: list[TaskRecord] = msgspec.field(default_factory=list)
    conditions: list[ConditionRecord] = msgspec.field(default_factory=list)
    answer: bool = False

    def __post_init__(self) -> None:
        if (self.error_type is None) != (self.error_message is None):
            raise InvalidFieldError(self.TAG, "error_type and error_message must be set together")
        if self.error_type is not None and self.uid is not None:
            raise InvalidFieldError(self.TAG, "a reply carries a uid or an error, not both")
        if self.error_type is not None and (self.tasks or self.conditions or self.answer):
            raise InvalidFieldError(self.TAG, "a reply carries an answer or an error, not both")
        if self.conditions and len(self.conditions) != len(self.tasks):
            raise InvalidFieldError(self.TAG, "conditions must pair with tasks one to one")


# Values larger than a frame.


@_register
class ValueChunk(Message, frozen=True, kw_only=True, tag="value_chunk"):
    """Either way: the bytes ``[offset, offset + len(data))`` of stream ``stream``, a value
    of ``total`` bytes (the value codec's form of it) that a later message refers to with
    an ``EXT_STREAMED`` reference. Streams are numbered upwards from 1 by their sender,
    chunks of one stream come in order, and the message referring to a stream comes after
    its last chunk, in a later frame. Only sent to a peer that said ``max_value_bytes``.
    """

    stream: AtLeastOne
    offset: Count
    total: AtLeastOne
    data: bytes

    def __post_init__(self) -> None:
        if not self.data or self.offset + len(self.data) > self.total:
            raise InvalidFieldError(
                self.TAG, f"{len(self.data)} bytes at {self.offset} of a {self.total}-byte value"
            )


# Liveness and the end.


@_register
class Heartbeat(Message, frozen=True, kw_only=True, tag="heartbeat"):
    """Either way: I am alive."""


@_register
class Cancel(Message, frozen=True, kw_only=True, tag="cancel"):
    """Coordinator to worker: stop the task of ``lease``; answer with :class:`Cancelled`."""

    lease: Count


@_register
class Cancelled(Message, frozen=True, kw_only=True, tag="cancelled", omit_defaults=True):
    """Worker to coordinator: the task of ``lease`` was stopped as asked.

    ``slot_busy``: its sync function runs on in its thread, which cannot be stopped; its
    slot stays taken until :class:`SlotFreed`. Left out on the wire when false.
    """

    lease: Count
    slot_busy: bool = False


@_register
class SlotFreed(Message, frozen=True, kw_only=True, tag="slot_freed"):
    """Worker to coordinator: the thread of the task of ``lease``, which ended with
    ``slot_busy``, has returned; its slot is free (the worker's credit for it follows in
    a :class:`Claim`)."""

    lease: Count


@_register
class LoopBlocked(Message, frozen=True, kw_only=True, tag="loop_blocked"):
    """Worker to coordinator, for its log: the worker's event loop was blocked for
    ``seconds`` (no heartbeat could go), by the task ``task_uid`` running ``handle``, or
    by no task (both ``None``)."""

    task_uid: Name | None
    handle: Name | None
    seconds: Seconds

    def __post_init__(self) -> None:
        if (self.task_uid is None) != (self.handle is None):
            raise InvalidFieldError(self.TAG, "task_uid and handle must be set together")


@_register
class Shutdown(Message, frozen=True, kw_only=True, tag="shutdown"):
    """Coordinator to worker, last: the graph has ended; exit."""

    reason: str
    graph_succeeded: bool


# Status queries: a client (tgs-status) that is not a worker asks how the run is going.
# Instead of a hello it sends a status request; the coordinator answers and closes.

#: Seconds, or a ``time.time()`` timestamp: never negative, always finite.
NonNegativeSeconds = Annotated[float, msgspec.Meta(ge=0, le=MAX_WIRE_INT)]


class LoopStatus(Record, frozen=True, kw_only=True):
    """One worker loop in a :class:`StatusReply`."""

    name: Name
    concurrency: AtLeastOne
    #: Tasks queued for a free slot, and tasks running (cluster-wide).
    ready: Count
    running: Count
    #: Connected workers serving the loop.
    workers: Count


class WorkerStatus(Record, frozen=True, kw_only=True):
    """One connected worker in a :class:`StatusReply`."""

    worker_id: Name
    name: str
    loops: list[Name]
    joined_at: NonNegativeSeconds
    #: Uids of the tasks it runs now.
    running: list[Name]


class RunningTask(Record, frozen=True, kw_only=True):
    """A running task in a :class:`StatusReply`."""

    task_uid: Name
    handle: Name
    worker: str
    #: Seconds since it started, and which run of the task this is (1 for the first).
    running_for: NonNegativeSeconds
    attempt: Count


#: The most tasks a :class:`TaskFilter` may ask for: 10,000 rows stay far below a frame.
MAX_TASKS_LISTED: Final = 10_000


class TaskFilter(Record, frozen=True, kw_only=True):
    """Which tasks a :class:`StatusRequest` asks to list: those in one of ``statuses``
    (any if empty) that run ``function`` (any if None), the first ``limit`` of them."""

    statuses: list[TaskStatus]
    function: Name | None
    limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_TASKS_LISTED)]


class ListedTask(Record, frozen=True, kw_only=True):
    """A listed task in a :class:`StatusReply`."""

    task_uid: Name
    #: The task's key as text, if it has one.
    key: str | None
    handle: Name
    status: TaskStatus
    #: What ran it last (a worker's id), or "".
    worker: str
    #: When it last started and ended, as ``time.time()``; None until then.
    started_at: NonNegativeSeconds | None
    ended_at: NonNegativeSeconds | None
    attempts: Count


@_register
class StatusRequest(Message, frozen=True, kw_only=True, tag="status_request", omit_defaults=True):
    """Client to coordinator, first and only: how is the run going?

    With ``why``, also explain why that task has not run (yet); with ``tasks``, also list
    the tasks it selects. ``tasks`` is left out of the frame when None, so a request
    without it is the same frame as before it existed.
    """

    version: Count
    token: str
    why: Name | None
    tasks: TaskFilter | None = None


@_register
class StatusReply(Message, frozen=True, kw_only=True, tag="status_reply", omit_defaults=True):
    """Coordinator to client, last: the run's state; the coordinator closes next.

    ``slowest`` lists the longest-running tasks first; ``explanation`` answers ``why``.
    Fields with a default are left out of the frame when they hold it, and a frame from
    an older coordinator, without them, decodes with the default.
    """

    elapsed: NonNegativeSeconds
    tasks_by_status: dict[Name, Count]
    loops: list[LoopStatus]
    workers: list[WorkerStatus]
    slowest: list[RunningTask]
    explanation: str | None
    #: One line per worker lost while running tasks, naming them (newest last).
    lost: list[str] = msgspec.field(default_factory=list)
    #: True when ``why`` named no task or condition of the graph (``explanation`` says so).
    why_unknown: bool = False
    #: Workers still to join before any task is handed out (``--min-workers``); 0 once
    #: the run started (``elapsed`` counts from then).
    waiting_for_workers: Count = 0
    #: The coordinator's ``--min-workers`` (0: it starts at once).
    min_workers: Count = 0
    #: With ``tasks`` in the request: the first tasks that matched, in the order they
    #: were created, and how many matched in all.
    tasks: list[ListedTask] = msgspec.field(default_factory=list)
    tasks_matched: Count = 0
    #: Why the listing could not be made (a function the graph does not have), or None.
    tasks_error: str | None = None
