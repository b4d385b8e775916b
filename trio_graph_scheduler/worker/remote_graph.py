"""What a task running on a remote worker sees as ``task_node`` and ``graph``.

The coordinator owns the graph. A task on a worker sees its own node and its
predecessors (their results came with the assignment), and its graph calls travel to the
coordinator as requests on the worker's connection, which carries them out in order:

- ``await graph.create_task(...)`` waits for the coordinator's reply, so a bad call raises
  in the task exactly as it would in-process.
- ``GenericSchedulingCondition(graph, ...)``, ``graph.create_task_nowait(...)`` and
  ``task_node.prepend_to_successor(...)`` are synchronous in the seed's API, so they are
  sent without waiting. The worker chooses the new uids itself, and messages on one
  connection arrive in order, so a later call can use them at once. If the coordinator
  refuses one, the task ends as failed with that error, rather than the error being lost.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from ..protocol.codec import FrameTooLargeError
from ..protocol.messages import (
    CreateConditionRequest,
    CreateTaskRequest,
    Message,
    PredecessorRecord,
    PrependRequest,
    Reply,
)
from ..shared import errors
from ..shared.errors import TGSError, ValueTooLargeError
from ..shared.states import TaskStatus
from ..shared.task_calls import check_task_arguments
from ..shared.uids import new_uid

if TYPE_CHECKING:
    from collections.abc import Iterable

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


class RemoteTaskNode:
    """A task as seen from a remote worker: read-only but for ``prepend_to_successor``."""

    __slots__ = (
        "_predecessors",
        "exception_trace",
        "graph",
        "task_arguments",
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
    ) -> None:
        self.graph = graph
        self.uid = uid
        self.task_handle = task_handle
        self.task_arguments = task_arguments
        self.task_status = task_status
        self.task_result = task_result
        self.exception_trace = exception_trace
        self._predecessors: list[RemoteTaskNode] = []

    def __repr__(self) -> str:
        return f"<RemoteTaskNode {self.task_handle} {self.uid} {self.task_status}>"

    def get_predecessor_task_nodes(self) -> list[RemoteTaskNode]:
        """Every task this one waits on, with the status and result it had when assigned."""
        return list(self._predecessors)

    def get_successors(self, task_handle: str) -> list[Any]:
        """Not available on a remote worker, which sees only a task and its predecessors.

        Raises:
            TGSError: always; use ``prepend_to_successor``, which the coordinator resolves.
        """
        raise TGSError(
            "get_successors() is not available to a task running on a remote worker; "
            "prepend_to_successor() works there"
        )

    def prepend_to_successor(
        self, successor_task_handle: str, new_task: RemoteTaskNode | str
    ) -> None:
        """Make ``new_task`` a predecessor of this task's ``successor_task_handle`` successors.

        Carried out by the coordinator; if it refuses, this task ends as failed.
        """
        uid = new_task if isinstance(new_task, str) else new_task.uid
        self.graph._send(
            PrependRequest(
                request_id=self.graph._link.next_request_id(),
                lease=self.graph.lease,
                successor_handle=successor_task_handle,
                new_task_uid=uid,
            )
        )


class RemoteGraph:
    """The ``graph`` a task running on a remote worker receives.

    Attributes:
        nodes: the running task, its predecessors, and the tasks it created.
        conditions: the conditions the task created.
        lease: the lease the coordinator assigned the task under.
    """

    def __init__(self, link: GraphCallLink, lease: int) -> None:
        self._link = link
        self.lease = lease
        self.nodes: dict[str, RemoteTaskNode] = {}
        self.conditions: dict[str, ConditionLike] = {}

    def adopt_task(
        self, uid: str, handle: str, arguments: TaskArguments, records: list[PredecessorRecord]
    ) -> RemoteTaskNode:
        """Build the running task's node and its predecessors' from an assignment."""
        node = RemoteTaskNode(self, uid, handle, arguments, TaskStatus.IN_PROGRESS)
        for record in records:
            predecessor = RemoteTaskNode(
                self,
                record.task_uid,
                record.handle,
                record.arguments,
                TaskStatus(record.status),
                record.result,
                record.exception_trace,
            )
            self.nodes[predecessor.uid] = predecessor
            node._predecessors.append(predecessor)
        self.nodes[uid] = node
        return node

    async def create_task(
        self,
        task_handle: str,
        task_arguments: TaskArguments = None,
        waits_on: Iterable[str] | None = None,
    ) -> RemoteTaskNode:
        """Add a task to the coordinator's graph and wait until it is accepted.

        Raises:
            GraphDefinitionError, UnknownUidError, ...: what the coordinator raised.
        """
        request, node = self._task_request(task_handle, task_arguments, waits_on, awaited=True)
        assert request is not None  # an awaited call raises instead
        reply = await self._link.request(request)
        if reply.error_type is not None:
            raise rebuild_error(reply.error_type, reply.error_message or "")
        return node

    def create_task_nowait(
        self,
        task_handle: str,
        task_arguments: TaskArguments = None,
        waits_on: Iterable[str] | None = None,
    ) -> RemoteTaskNode:
        """Add a task without waiting; if the coordinator refuses it, this task fails."""
        request, node = self._task_request(task_handle, task_arguments, waits_on, awaited=False)
        if request is not None:
            self._send(request)
        return node

    def _task_request(
        self,
        task_handle: str,
        task_arguments: TaskArguments,
        waits_on: Iterable[str] | None,
        *,
        awaited: bool,
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
        )
        sendable: CreateTaskRequest | None = request
        try:
            self._link.check_sendable(request)
        except FrameTooLargeError as exc:
            if awaited:
                raise _too_large(task_handle, exc) from None
            self._link.fail_call(self.lease, _too_large(task_handle, exc))
            sendable = None
        node = RemoteTaskNode(self, uid, task_handle, task_arguments, TaskStatus.CREATED)
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
            error = ValueTooLargeError(
                f"the condition {condition.uid} is too large to send to the coordinator: "
                f"it needs a frame of {exc.size} bytes and at most {exc.limit} go"
            )
            self._link.fail_call(self.lease, error)
        else:
            self._send(request)
        self.conditions[condition.uid] = condition

    def _send(self, message: Message) -> None:
        self._link.send_nowait(message)


def _too_large(handle: str, error: FrameTooLargeError) -> ValueTooLargeError:
    return ValueTooLargeError(
        f"the arguments of the new {handle!r} task are too large to send to the "
        f"coordinator: they need a frame of {error.size} bytes and at most {error.limit} "
        "go (--max-frame-bytes)"
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
