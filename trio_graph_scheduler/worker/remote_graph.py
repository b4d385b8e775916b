"""What a task running on a remote worker sees as ``task_node`` and ``graph``.

The coordinator owns the graph. A task on a worker sees its own node and its
predecessors (their results came with the assignment); whatever else it asks travels to
the coordinator as a request on the worker's connection, which carries requests out in
order and answers each awaited one with a ``reply``:

- ``await graph.create_task(..., key=K)``, ``await graph.aget_task(uid)``,
  ``await graph.get_task_by_key(K)`` (also spelled ``aget_task_by_key``),
  ``await graph.acancel_task(uid)``, ``await graph.acreate_condition(mode, uids)``,
  ``await task_node.aget_successors(name)`` and
  ``await task_node.aprepend_to_successor(...)`` wait for the coordinator's answer, so a
  refused call raises in the task, at the call, exactly as it would in-process. Calls
  made concurrently (tasks of a nursery) travel in the same frames: a task that creates
  1,000 tasks from a nursery pays a few round trips, not 1,000.
- ``GenericSchedulingCondition(graph, ...)``, ``graph.create_task_nowait(...)`` and
  ``task_node.prepend_to_successor(...)`` are synchronous in the seed's API, so they are
  sent without waiting. The worker chooses the new uids itself, and messages on one
  connection arrive in order, so a later call can use them at once. If the coordinator
  refuses one, the task ends as failed with that error, rather than the error being lost.
- What only the graph's owner can answer at once (``graph.cancel_task``,
  ``task_node.get_successors``, ``graph.explain``, ``graph.statistics`` ...) raises
  :class:`~trio_graph_scheduler.shared.errors.NotOnWorkerError` naming what to use
  instead, never an ``AttributeError``.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any, Final, Protocol

from ..protocol.codec import FrameTooLargeError
from ..protocol.messages import (
    MAX_SHIPPED_ARGUMENTS,
    CancelTaskRequest,
    CreateConditionRequest,
    CreateTaskRequest,
    Message,
    PredecessorRecord,
    PrependRequest,
    Reply,
    SuccessorsRequest,
    TaskQuery,
    TaskRecord,
)
from ..protocol.values import NotSent, ValueEncodeError
from ..shared import errors
from ..shared.errors import NotOnWorkerError, TGSError, ValueTooLargeError
from ..shared.states import ConditionStatus, EndReason, TaskStatus
from ..shared.task_calls import check_task_arguments, check_task_key
from ..shared.uids import new_uid

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from ..shared.task_calls import TaskArguments


class GraphCallLink(Protocol):
    """The worker's connection, as far as graph calls need it."""

    def send_nowait(self, message: Message) -> None:
        """Queue ``message`` for the coordinator."""
        ...

    async def request(self, message: Message) -> Reply:
        """Send ``message`` and wait for the coordinator's reply to it."""
        ...

    def next_request_id(self) -> int:
        """A request id not used before on this connection."""
        ...

    def check_sendable(self, message: Message) -> None:
        """Raise if ``message`` cannot be sent even alone in a frame.

        Raises:
            ValueEncodeError: a value in it cannot be serialised.
            FrameTooLargeError: it needs a larger frame than the coordinator accepts.
        """
        ...

    def fail_call(self, lease: int, error: Exception) -> None:
        """A graph call the task of ``lease`` did not wait for failed here: the task
        fails (``call_failed``) when it ends."""
        ...


class ConditionLike(Protocol):
    """A scheduling condition as a remote graph keeps it (the class itself lives with the
    coordinator's core, which a worker's modules never import)."""

    @property
    def uid(self) -> str:
        """``condition-`` and 32 hex digits."""
        ...

    @property
    def mode(self) -> object:
        """Its mode; ``str(mode)`` is the mode string, e.g. ``SUCCESS__ALL``."""
        ...


class RemoteCondition:
    """A condition of the coordinator's graph, as :meth:`RemoteTaskNode.aget_successors`
    returns it: its state when the coordinator answered."""

    __slots__ = ("condition_status", "mode", "uid")

    def __init__(self, uid: str, mode: str, condition_status: ConditionStatus) -> None:
        self.uid = uid
        self.mode = mode
        self.condition_status = condition_status

    def __repr__(self) -> str:
        return f"<RemoteCondition {self.mode} {self.uid} {self.condition_status}>"


#: What the in-process graph and nodes have that a task on a worker cannot use, and what
#: to say instead: an attribute missing on a worker raises NotOnWorkerError with this.
_GRAPH_ONLY_IN_PROCESS: Final = {
    "cancel_task": "use `await graph.acancel_task(uid)`, which waits for the coordinator",
    "uid": "the graph's uid is the coordinator's",
    "statistics": "the coordinator's tgs-status shows the counts",
    "explain": "tgs-status --why asks the coordinator",
    "draw": "the coordinator draws the graph (--draw)",
    "draw_timeline": "the coordinator draws the timeline",
    "to_dot": "the coordinator draws the graph",
    "check_invariants": "",
    "scheduler": "",
    "worker_loops": "",
    "task_functions": "",
    "expected_functions": "",
    "edges_by_label": "",
    "worker_context_init_functions": "",
}
_NODE_ONLY_IN_PROCESS: Final = {
    "get_successors": "use `await task_node.aget_successors(name)`, which asks the coordinator",
    "waits_on": "",
    "waited_on_by": "",
    "edges_by_label": "",
    "losses": "",
    "shared_losses": "",
    "queued_at": "",
    "started_at": "",
    "ended_at": "",
    "worker": "",
    "earlier_runs": "the coordinator's report and timeline keep a task's earlier runs",
    "task_exception": "a task's exception object stays with the coordinator; read "
    "`exception_trace`",
}


def _not_on_worker(what: str, instead: str) -> NotOnWorkerError:
    hint = f"; {instead}" if instead else ""
    return NotOnWorkerError(f"{what} is not available to a task running on a worker{hint}")


class RemoteTaskNode:
    """A task as seen from a remote worker: its state when the worker learnt it.

    Attributes:
        uid, task_handle, task_arguments, key: as on the coordinator. A predecessor's
            arguments come with the assignment only when small (encoded, at most
            ``MAX_SHIPPED_ARGUMENTS``, 64 KiB): ``task_arguments`` on one that did not
            raises :class:`NotOnWorkerError`, and ``await aget_task_arguments()`` asks
            the coordinator.
        task_status, task_result, exception_trace, end_reason, attempts: as the
            coordinator had them when it sent them (with the assignment, or in the
            answer to a query); a query asks again.
    """

    __slots__ = (
        "__weakref__",
        "_arguments",
        "_predecessors",
        "attempts",
        "end_reason",
        "exception_trace",
        "graph",
        "key",
        "task_handle",
        "task_result",
        "task_status",
        "uid",
    )

    def __init__(
        self,
        graph: RemoteGraph,
        uid: str,
        task_handle: str,
        task_arguments: TaskArguments,
        task_status: str,
        task_result: Any = None,
        exception_trace: str | None = None,
        *,
        key: Any = None,
        attempts: int = 0,
        end_reason: EndReason | None = None,
    ) -> None:
        self.graph = graph
        self.uid = uid
        self.task_handle = task_handle
        #: NOT_SENT: a predecessor's arguments, too large to come with the assignment.
        self._arguments: TaskArguments | NotSent = task_arguments
        self.task_status = task_status
        self.task_result = task_result
        self.exception_trace = exception_trace
        self.key = key
        self.attempts = attempts
        self.end_reason = end_reason
        #: ``None`` while the graph still holds them as the assignment's records (made
        #: into nodes when first asked for: most tasks never look).
        self._predecessors: Sequence[RemoteTaskNode] | None = ()

    @classmethod
    def from_record(
        cls, graph: RemoteGraph, record: TaskRecord | PredecessorRecord
    ) -> RemoteTaskNode:
        """A task as a reply, or an assignment's list of predecessors, describes it (a
        predecessor comes without attempts and end reason)."""
        attempts, end_reason = 0, None
        if isinstance(record, TaskRecord):
            attempts, end_reason = record.attempts, record.end_reason
        return cls(
            graph,
            record.task_uid,
            record.handle,
            record.arguments,
            TaskStatus(record.status),
            record.result,
            record.exception_trace,
            key=record.key,
            attempts=attempts,
            end_reason=end_reason,
        )

    def __repr__(self) -> str:
        return f"<RemoteTaskNode {self.task_handle} {self.uid} {self.task_status}>"

    def __getattr__(self, name: str) -> Any:
        # Only for names the slots do not hold: say what is in-process only.
        if name in _NODE_ONLY_IN_PROCESS:
            raise _not_on_worker(f"task_node.{name}", _NODE_ONLY_IN_PROCESS[name])
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @property
    def task_arguments(self) -> TaskArguments:
        """``((args...), {kwargs})`` or ``None``, as the task was created with.

        Raises:
            NotOnWorkerError: a predecessor's arguments too large to come with the
                assignment; ``await aget_task_arguments()`` asks the coordinator.
        """
        arguments = self._arguments
        if isinstance(arguments, NotSent):
            raise _not_on_worker(
                f"task_node.task_arguments of predecessor {self.uid} ({self.task_handle}), "
                f"larger than {MAX_SHIPPED_ARGUMENTS // 2**10} KiB encoded,",
                "use `await node.aget_task_arguments()`, which asks the coordinator",
            )
        return arguments

    async def aget_task_arguments(self) -> TaskArguments:
        """The task's arguments; asked of the coordinator if they did not come with the
        assignment (a predecessor's, larger than 64 KiB encoded), then kept.

        Raises:
            UnknownUidError: the coordinator has no task with this uid.
        """
        if isinstance(self._arguments, NotSent):
            # The reply brings them up to date on this very node (see RemoteGraph._known).
            await self.graph.aget_task(self.uid, with_result=False)
        return self.task_arguments

    def get_predecessor_task_nodes(self) -> list[RemoteTaskNode]:
        """Every task this one waits on, with the status and result it had when assigned."""
        if self._predecessors is None:
            self.graph._adopt(self)
        return list(self._predecessors or ())

    async def aget_successors(
        self, task_handle: str
    ) -> list[tuple[RemoteTaskNode, RemoteCondition]]:
        """The tasks running ``task_handle`` that wait on this one, with the condition
        linking each, as the coordinator has them now (results not included).

        Raises:
            UnknownUidError: the coordinator has no task with this uid.
        """
        graph = self.graph
        reply = await graph._ask(
            SuccessorsRequest(
                request_id=graph._link.next_request_id(),
                lease=graph.lease,
                uid=self.uid,
                handle=task_handle,
            )
        )
        return [
            (
                graph._known(record),
                RemoteCondition(condition.uid, condition.mode, condition.status),
            )
            for record, condition in zip(reply.tasks, reply.conditions, strict=True)
        ]

    def prepend_to_successor(
        self, successor_task_handle: str, new_task: RemoteTaskNode | str
    ) -> None:
        """Make ``new_task`` a predecessor of this task's ``successor_task_handle`` successors.

        Carried out by the coordinator without waiting; if it refuses, this task ends as
        failed. :meth:`aprepend_to_successor` raises the refusal at the call instead.
        """
        self.graph._send(self._prepend_request(successor_task_handle, new_task, awaited=False))

    async def aprepend_to_successor(
        self, successor_task_handle: str, new_task: RemoteTaskNode | str
    ) -> None:
        """:meth:`prepend_to_successor`, waiting for the coordinator: a refusal raises here
        (``GraphDefinitionError``, ``UnknownUidError`` ...), as in-process."""
        request = self._prepend_request(successor_task_handle, new_task, awaited=True)
        await self.graph._ask(request)

    def _prepend_request(
        self, successor_task_handle: str, new_task: RemoteTaskNode | str, *, awaited: bool
    ) -> PrependRequest:
        uid = new_task if isinstance(new_task, str) else new_task.uid
        return PrependRequest(
            request_id=self.graph._link.next_request_id(),
            lease=self.graph.lease,
            successor_handle=successor_task_handle,
            new_task_uid=uid,
            awaited=awaited,
        )


class RemoteGraph:
    """The ``graph`` a task running on a remote worker receives.

    Attributes:
        nodes: the tasks this task knows of: itself, its predecessors, the tasks it
            created or looked up (the coordinator's ``graph.nodes`` holds them all; ask
            it with :meth:`aget_task`).
        conditions: the conditions the task created.
        lease: the lease the coordinator assigned the task under.
    """

    # __dict__: a task may set attributes of its own on its graph, as in-process (made
    # only when one is set).
    __slots__ = (
        "__dict__",
        "__weakref__",
        "_link",
        "_nodes",
        "_own",
        "_pending",
        "conditions",
        "lease",
    )

    def __init__(self, link: GraphCallLink, lease: int) -> None:
        self._link = link
        self.lease = lease
        self._nodes: dict[str, RemoteTaskNode] = {}
        #: The running task's node, held weakly until the task looks at :attr:`nodes`
        #: (see :meth:`adopt_task`).
        self._own: weakref.ref[RemoteTaskNode] | None = None
        #: The predecessors' records and the results to read instead of theirs (the
        #: worker's cache), until they are made into nodes.
        self._pending: tuple[list[PredecessorRecord], dict[str, Any]] | None = None
        self.conditions: dict[str, ConditionLike] = {}

    @property
    def nodes(self) -> dict[str, RemoteTaskNode]:
        """The tasks this task knows of, by uid."""
        if self._own is not None:
            self._adopt(None)
        return self._nodes

    def __getattr__(self, name: str) -> Any:
        # Only for names the instance does not have: say what is in-process only.
        if name in _GRAPH_ONLY_IN_PROCESS:
            raise _not_on_worker(f"graph.{name}", _GRAPH_ONLY_IN_PROCESS[name])
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def adopt_task(
        self,
        uid: str,
        handle: str,
        arguments: TaskArguments,
        records: list[PredecessorRecord],
        *,
        key: Any = None,
        attempts: int = 0,
        results: dict[str, Any] | None = None,
    ) -> RemoteTaskNode:
        """Build the running task's node from an assignment. Its predecessors' nodes are
        made from their ``records`` when the task first asks for them (or for
        :attr:`nodes`), with the result in ``results`` in place of a record's own.

        Until the task looks at :attr:`nodes` the graph holds the node weakly: the node
        holds the graph, and a strong reference back would make a cycle of every task's
        graph and node, which only the cyclic collector frees (about 4 µs per task of a
        worker's CPU went to it). Held weakly, they go when the task is done with them.
        """
        # As RemoteTaskNode(...) makes it, without the keyword arguments' cost: once a task.
        node = _new_node(RemoteTaskNode)
        node.graph = self
        node.uid = uid
        node.task_handle = handle
        node._arguments = arguments
        node.task_status = TaskStatus.IN_PROGRESS
        node.task_result = None
        node.exception_trace = None
        node.key = key
        node.attempts = attempts
        node.end_reason = None
        node._predecessors = ()
        self._own = weakref.ref(node)
        if records:
            node._predecessors = None
            self._pending = (records, results or {})
        return node

    def _adopt(self, node: RemoteTaskNode | None) -> None:
        """Make :attr:`nodes` whole: the running task's node (``node``, or the one held
        weakly), held strongly from now on, and its predecessors' nodes."""
        own = self._own
        self._own = None
        if node is None and own is not None:
            # None only when the task is over and nothing holds its node any more.
            node = own()
        nodes: dict[str, RemoteTaskNode] = {}
        pending = self._pending
        if pending is not None:
            self._pending = None
            records, results = pending
            predecessors = [_predecessor_node(self, record) for record in records]
            nodes = {p.uid: p for p in predecessors}
            for uid, value in results.items():
                nodes[uid].task_result = value
            if node is not None:
                node._predecessors = predecessors
        # In the order they came: the predecessors, then the task itself.
        if node is not None:
            nodes[node.uid] = node
        nodes.update(self._nodes)
        self._nodes = nodes

    async def create_task(
        self,
        task_handle: str,
        task_arguments: TaskArguments = None,
        waits_on: Iterable[str] | None = None,
        *,
        key: Any = None,
        keep_result: bool = False,
    ) -> RemoteTaskNode:
        """Add a task to the coordinator's graph and wait until it is accepted.

        With ``key``, the coordinator returns the task that has this key if there is one
        (created by any task, on any worker), and creates one otherwise, in one step.
        ``keep_result``: ``release_results`` never drops its result.

        Raises:
            GraphDefinitionError, UnknownUidError, ...: what the coordinator raised.
        """
        if key is not None:
            check_task_key(key)
        request, node = self._task_request(
            task_handle, task_arguments, waits_on, awaited=True, key=key, keep_result=keep_result
        )
        assert request is not None  # an awaited call raises instead
        reply = await self._ask(request)
        if reply.tasks:  # a key: the task it names, maybe one that existed
            del self.nodes[node.uid]
            return self._known(reply.tasks[0])
        return node

    def create_task_nowait(
        self,
        task_handle: str,
        task_arguments: TaskArguments = None,
        waits_on: Iterable[str] | None = None,
        *,
        key: Any = None,
        keep_result: bool = False,
    ) -> RemoteTaskNode:
        """Add a task without waiting; if the coordinator refuses it, this task fails.

        Raises:
            NotOnWorkerError: with a ``key``, whose task only the coordinator's answer
                can name: ``await graph.create_task(..., key=K)`` instead.
        """
        if key is not None:
            raise _not_on_worker(
                "create_task_nowait(..., key=K)",
                "a key names a task only the coordinator knows: "
                "use `await graph.create_task(..., key=K)`",
            )
        request, node = self._task_request(
            task_handle, task_arguments, waits_on, awaited=False, keep_result=keep_result
        )
        if request is not None:
            self._send(request)
        return node

    async def aget_task(self, uid: str, *, with_result: bool = True) -> RemoteTaskNode:
        """The task ``uid`` of the coordinator's graph, as it is now.

        ``with_result=False`` leaves its result out (``task_result`` is ``None``): a
        status check then costs no more than a few bytes, whatever the result's size.

        Raises:
            UnknownUidError: the coordinator's graph has no such task.
        """
        query = TaskQuery(
            request_id=self._link.next_request_id(),
            lease=self.lease,
            uid=uid,
            with_result=with_result,
        )
        reply = await self._ask(query)
        if not reply.tasks:  # a reply without the task is the coordinator's bug
            raise errors.UnknownUidError(uid)
        return self._known(reply.tasks[0], with_result=with_result)

    async def get_task_by_key(self, key: Any, *, with_result: bool = True) -> RemoteTaskNode | None:
        """The task created with ``key`` in the coordinator's graph, or ``None``.

        Awaited on a worker (the coordinator answers); the in-process graph's is
        synchronous. :meth:`aget_task_by_key` is the spelling that works in both.
        """
        if key is None:
            return None
        check_task_key(key)
        query = TaskQuery(
            request_id=self._link.next_request_id(),
            lease=self.lease,
            key=key,
            with_result=with_result,
        )
        reply = await self._ask(query)
        return self._known(reply.tasks[0], with_result=with_result) if reply.tasks else None

    aget_task_by_key = get_task_by_key

    async def acreate_condition(self, mode: str, waits_on: Iterable[str]) -> RemoteCondition:
        """A scheduling condition over ``waits_on``, as ``GenericSchedulingCondition(graph,
        mode, waits_on)`` builds one, waiting until the coordinator accepted it.

        Raises:
            GraphDefinitionError, UnknownUidError: what the coordinator raised.
        """
        uid = new_uid("condition")
        request = CreateConditionRequest(
            request_id=self._link.next_request_id(),
            lease=self.lease,
            uid=uid,
            mode=str(mode),
            waits_on=_uid_list(waits_on),
            awaited=True,
        )
        try:
            self._link.check_sendable(request)
        except FrameTooLargeError as exc:
            raise _condition_too_large(uid, exc) from None
        await self._ask(request)
        condition = RemoteCondition(uid, str(mode), ConditionStatus.WAITING_ON_TASKS)
        self.conditions[uid] = condition
        return condition

    async def acancel_task(self, uid: str, reason: str = "cancelled by a graph call") -> bool:
        """Cancel a task of the coordinator's graph, as ``cancel_task`` in-process.

        Returns:
            False if the task had ended already, else True.

        Raises:
            UnknownUidError: no task has this uid.
        """
        request = CancelTaskRequest(
            request_id=self._link.next_request_id(), lease=self.lease, uid=uid, reason=reason
        )
        reply = await self._ask(request)
        return reply.answer

    async def _ask(self, request: Message) -> Reply:
        """Send a request and wait for its reply; a refusal raises here, in the task."""
        reply = await self._link.request(request)
        if reply.error_type is not None:
            raise rebuild_error(reply.error_type, reply.error_message or "")
        return reply

    def _known(self, record: TaskRecord, *, with_result: bool = False) -> RemoteTaskNode:
        """The node of a task a reply described, now known to this graph.

        A task known already keeps its node (as in-process, the same object comes back),
        brought up to date; its result only if the reply carried it.
        """
        node = self.nodes.get(record.task_uid)
        if node is None:
            node = RemoteTaskNode.from_record(self, record)
            self.nodes[node.uid] = node
            return node
        node.task_status = TaskStatus(record.status)
        node.exception_trace = record.exception_trace
        node.attempts = record.attempts
        node.end_reason = record.end_reason
        node.key = record.key
        node._arguments = record.arguments  # a reply carries them whole, whatever the size
        if with_result:
            node.task_result = record.result
        return node

    def _task_request(
        self,
        task_handle: str,
        task_arguments: TaskArguments,
        waits_on: Iterable[str] | None,
        *,
        awaited: bool,
        key: Any = None,
        keep_result: bool = False,
    ) -> tuple[CreateTaskRequest | None, RemoteTaskNode]:
        """The request for a new task, and the task as this graph keeps it.

        Arguments too large to send fail the call: an awaited one raises
        :class:`ValueTooLargeError`; an unawaited one gives no request and makes the
        calling task fail when it ends, as a refusal by the coordinator would.

        Raises:
            ValueEncodeError: the arguments cannot be serialised at all.
        """
        # Check here what the coordinator would refuse anyway, so that the error is raised
        # in the calling task, as in-process, instead of breaking the connection.
        check_task_arguments(task_handle, task_arguments)
        uid = new_uid("task")
        request = CreateTaskRequest(
            request_id=self._link.next_request_id(),
            lease=self.lease,
            uid=uid,
            awaited=awaited,
            handle=task_handle,
            arguments=task_arguments,
            waits_on=_uid_list(waits_on),
            key=key,
            keep_result=keep_result,
        )
        sendable: CreateTaskRequest | None = request
        try:
            self._link.check_sendable(request)
        except (FrameTooLargeError, ValueEncodeError) as exc:
            if isinstance(exc, ValueEncodeError) and not exc.too_large:
                raise
            if awaited:
                raise _too_large(task_handle, exc) from None
            self._link.fail_call(self.lease, _too_large(task_handle, exc))
            sendable = None
        node = RemoteTaskNode(self, uid, task_handle, task_arguments, TaskStatus.CREATED, key=key)
        self.nodes[uid] = node
        return sendable, node

    def _add_condition(self, condition: ConditionLike, waits_on: Iterable[str]) -> None:
        # Called by GenericSchedulingCondition's constructor when its graph is this one.
        request = CreateConditionRequest(
            request_id=self._link.next_request_id(),
            lease=self.lease,
            uid=condition.uid,
            mode=str(condition.mode),
            waits_on=_uid_list(waits_on),
        )
        try:
            self._link.check_sendable(request)
        except FrameTooLargeError as exc:
            # A condition over so many tasks that their uids need more than a frame.
            self._link.fail_call(self.lease, _condition_too_large(condition.uid, exc))
        else:
            self._send(request)
        self.conditions[condition.uid] = condition

    def _send(self, message: Message) -> None:
        self._link.send_nowait(message)


def _predecessor_node(graph: RemoteGraph, record: PredecessorRecord) -> RemoteTaskNode:
    """A predecessor's node, as its record in an assignment describes it: as
    ``RemoteTaskNode.from_record`` makes it, without its checks (a join reads thousands;
    the record was checked when decoded, its status is a ``TaskStatus`` already)."""
    node = _new_node(RemoteTaskNode)
    node.graph = graph
    node.uid = record.task_uid
    node.task_handle = record.handle
    node._arguments = record.arguments
    node.task_status = record.status
    node.task_result = record.result
    node.exception_trace = record.exception_trace
    node.key = record.key
    node.attempts = 0
    node.end_reason = None
    node._predecessors = ()
    return node


_new_node: Final = object.__new__


def _condition_too_large(uid: str, error: FrameTooLargeError) -> ValueTooLargeError:
    return ValueTooLargeError(
        f"the condition {uid} is too large to send to the coordinator: "
        f"it needs a frame of {error.size} bytes and at most {error.limit} go"
    )


def _too_large(handle: str, error: FrameTooLargeError | ValueEncodeError) -> ValueTooLargeError:
    if isinstance(error, FrameTooLargeError):
        detail = (
            f"they need a frame of {error.size} bytes and at most {error.limit} go "
            "(--max-frame-bytes)"
        )
    else:
        detail = f"a {error.type_name} in them: {error.reason}"
    return ValueTooLargeError(
        f"the arguments of the new {handle!r} task are too large to send to the "
        f"coordinator: {detail}"
    )


def _uid_list(waits_on: Iterable[str] | None) -> list[str]:
    if waits_on is None:
        return []
    if isinstance(waits_on, str):
        raise errors.GraphDefinitionError(
            f"waits_on must be a list of uids, not the string {waits_on!r}"
        )
    return list(waits_on)


def rebuild_error(error_type: str, message: str) -> Exception:
    """The coordinator's error for a graph call, as the task on the worker sees it.

    Our own error classes come back as themselves (so ``except ValueError`` and
    ``except KeyError`` work as in-process); anything else as a plain ``TGSError``.
    """
    cls = errors.GRAPH_CALL_ERRORS.get(error_type)
    if cls is None:
        return TGSError(f"{error_type}: {message}")
    # Bypass the classes' own constructors, which build their message from parts the
    # reply does not carry; the coordinator's message is the one to show.
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    return error
