"""Task nodes: one function call in the graph, with its status and result.

Nodes are light on purpose (``__slots__``, no locks or events): a graph of a million tasks
must fit in well under a GiB. Edges are direct references to condition objects, so walking
from a task to its successors costs no dictionary lookups.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final, NamedTuple

from ...shared.errors import GraphDefinitionError
from ...shared.states import ConditionStatus, EndReason, TaskStatus
from .results import ResultAway

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ...shared.task_calls import TaskArguments
    from .conditions import GenericSchedulingCondition
    from .graph import TaskGraphCore
    from .loops import Claimant, LoopQueue


# Read once: reading it off its enum class costs about 250 ns (EnumType.__getattr__).
_WAITING: Final = TaskStatus.WAITING_FOR_PREDECESSORS

#: What ``TaskNode.worker`` says of a task run in-process.
LOCAL_WORKER: Final = "local"

#: ``waits_on`` and ``waited_on_by`` of a task without any: one shared empty tuple, not two
#: empty lists per task (112 bytes of a node's ~500; issue 10). The scheduler sets the
#: first (``Scheduler.add_task``, ``Scheduler.add_condition``): a list, or a condition's
#: own 1-tuple, shared by the predecessors no other condition waits on and by a task that
#: waits on it alone; a list again once there is more.
NO_CONDITIONS: Final[tuple[GenericSchedulingCondition, ...]] = ()


class EarlierRun(NamedTuple):
    """A run of a task that ended and was followed by another: a failure with attempts
    left (retried), or a loss with its worker (run again). The last run is not one: the
    node's own ``worker``/``started_at``/``ended_at``/``end_reason`` describe it.
    """

    #: What ran it: a worker's id, or ``local`` in-process.
    worker: str | None
    #: When it started and ended (``time.time()``).
    started_at: float | None
    ended_at: float
    #: How it ended: ``raised``, ``timed_out``, ``marked_failed``, ``worker_lost``, ...
    end_reason: EndReason
    #: Its traceback, or the sentence saying why it ended.
    error: str | None


class TaskNode:
    """One task of a :class:`TaskGraph`: a named function, its arguments, its outcome.

    Attributes:
        uid: ``task-`` followed by 32 hex digits.
        key: the key it was created with (``create_task(..., key=K)``), or ``None``.
        task_handle: the name of the function it runs.
        task_arguments: ``((args...), {kwargs})`` or ``None``.
        task_status: one of :class:`~trio_graph_scheduler.TaskStatus` (compares equal to the
            seed's strings).
        task_result: the function's return value once it succeeded. Under a memory
            limit it may be on disk, and reading it reads it back (a copy); with
            ``release_results`` reading one that was released raises
            :class:`~trio_graph_scheduler.ResultReleasedError`.
        exception_trace: the formatted traceback once it failed (or why it was
            cancelled, or lost); ``None`` again once a retry succeeded.
        task_exception: the exception its last failed run raised, once it failed that
            way (``None`` for a cancel, a lost worker, a task that marked itself failed,
            and again once a retry succeeded). From a worker it is the exception
            unpickled, or a :class:`~trio_graph_scheduler.RemoteTaskError` with its type's
            name and message when it could not travel. It keeps no traceback (that would
            keep the failed call's frames alive): the text is ``exception_trace``.
        end_reason: why it ended, as an :class:`EndReason`; ``None`` until it has.
        attempts: how many times it was started (not counting runs given back unfinished).
        earlier_runs: the runs before the last one, oldest first, as :class:`EarlierRun`;
            ``None`` for a task that ran at most once (the list exists only once a task
            is run again, so tasks that run once pay nothing for it).
        losses: how many of those runs were lost with their worker while it ran there
            alone (a loss shared with other tasks charges none of them; see
            ``Scheduler.task_lost``).
        shared_losses: how many of those runs were lost with a worker that ran other
            tasks too (charged to none of them).
        queued_at, started_at, ended_at: when it last became ready for execution (a
            task queued before the graph runs: when it starts), last started, and ended,
            as ``time.time()``; ``None`` until then.
        worker: what ran it last: a worker's id, or ``local`` in-process.
        waits_on: the conditions it waits on (a sequence: a tuple or a list; empty while
            there are none). It does not change once the task is created.
        waited_on_by: the conditions that wait on it (a sequence: empty, a condition's
            1-tuple that other tasks may share, or a list).
    """

    __slots__ = (
        "_claimant",
        "_loop",
        "_result",
        "_suspect",
        "_unsatisfied",
        "attempts",
        "earlier_runs",
        "end_reason",
        "ended_at",
        "exception_trace",
        "graph",
        "key",
        "losses",
        "queued_at",
        "shared_losses",
        "started_at",
        "task_arguments",
        "task_exception",
        "task_handle",
        "task_status",
        "uid",
        "waited_on_by",
        "waits_on",
        "worker",
    )

    def __init__(
        self,
        graph: TaskGraphCore,
        uid: str,
        task_handle: str,
        task_arguments: TaskArguments,
        loop: LoopQueue,
    ) -> None:
        self.graph = graph
        self.uid = uid
        self.task_handle = task_handle
        self.task_arguments = task_arguments
        self.key: Any = None
        self.task_status = _WAITING
        # The result, or a ResultAway while it is on disk or released (see task_result).
        self._result: Any = None
        self.exception_trace: str | None = None
        self.task_exception: BaseException | None = None
        #: Why it ended, once it has (see :class:`~trio_graph_scheduler.shared.states.EndReason`).
        self.end_reason: EndReason | None = None
        self.waits_on: Sequence[GenericSchedulingCondition] = NO_CONDITIONS
        self.waited_on_by: Sequence[GenericSchedulingCondition] = NO_CONDITIONS
        #: Runs started and not given back unfinished (worker losses included).
        self.attempts = 0
        #: The runs before the last one (retried or lost), oldest first; ``None`` until
        #: the task runs a second time.
        self.earlier_runs: list[EarlierRun] | None = None
        #: Runs lost with their worker while it ran there alone (charged losses).
        self.losses = 0
        #: Runs lost with a worker that ran other tasks too (charged to none of them).
        self.shared_losses = 0
        #: When it last became ready, last started, and ended (``time.time()``).
        self.queued_at: float | None = None
        self.started_at: float | None = None
        self.ended_at: float | None = None
        #: What ran it last: a worker's id, or ``local`` in-process.
        self.worker: str | None = None
        # How many of waits_on are not satisfied yet; the task is ready at zero.
        self._unsatisfied = 0
        self._loop = loop
        # Who it was handed to while it is in progress, so that it can be cancelled.
        self._claimant: Claimant | None = None
        # Lost with a worker that ran other tasks too: until it ends normally it is
        # handed out only alone (LoopQueue.suspects), so that a loss can be blamed on it.
        self._suspect = False

    def __repr__(self) -> str:
        return f"<TaskNode {self.task_handle} {self.uid} {self.task_status}>"

    @property
    def task_result(self) -> Any:
        """The function's return value once it succeeded (see the class's attributes).

        Raises:
            ResultReleasedError: ``release_results`` released it.
        """
        value = self._result
        if value.__class__ is ResultAway:
            results = self.graph.scheduler.results
            assert results is not None  # only a holder leaves one
            return results.fetch(self)
        return value

    @task_result.setter
    def task_result(self, value: Any) -> None:
        results = self.graph.scheduler.results
        if results is None:
            self._result = value
        else:
            results.put(self, value)

    def get_predecessor_task_nodes(self) -> list[TaskNode]:
        """Every task this one waits on, through all its conditions, in order."""
        return [node for condition in self.waits_on for node in condition.predecessors]

    def get_successors(self, task_handle: str) -> list[tuple[TaskNode, GenericSchedulingCondition]]:
        """The tasks running ``task_handle`` that wait on this one, with the condition linking them.

        Returns:
            ``(successor, condition)`` pairs, as the seed returned them.
        """
        return [
            (successor, condition)
            for condition in self.waited_on_by
            for successor in condition.successors
            if successor.task_handle == task_handle
        ]

    async def aget_task_arguments(self) -> TaskArguments:
        """``task_arguments``, awaitable: the form that works on a worker too, where a
        predecessor's large arguments are not sent with the task (it asks for them)."""
        return self.task_arguments

    async def aget_successors(
        self, task_handle: str
    ) -> list[tuple[TaskNode, GenericSchedulingCondition]]:
        """:meth:`get_successors`, awaitable: the form that works on a worker too."""
        return self.get_successors(task_handle)

    async def aprepend_to_successor(
        self, successor_task_handle: str, new_task: TaskNode | str
    ) -> None:
        """:meth:`prepend_to_successor`, awaitable: the form that raises at the call on a
        worker too (there it waits for the coordinator's answer)."""
        self.prepend_to_successor(successor_task_handle, new_task)

    def prepend_to_successor(self, successor_task_handle: str, new_task: TaskNode | str) -> None:
        """Make ``new_task`` a predecessor of this task's ``successor_task_handle`` successors.

        The new task joins the condition that links this task to each such successor, so
        the successor waits for it too: a running task uses this to postpone a successor.

        Raises:
            UnknownFunctionError: ``successor_task_handle`` is no function of the graph.
            UnknownUidError: ``new_task`` is a uid the graph does not know.
            GraphDefinitionError: a linking condition is already satisfied or failed, so its
                successor can no longer be postponed; or ``new_task`` is that successor.
        """
        graph = self.graph
        graph._check_function(successor_task_handle)
        new_node = graph._resolve_tasks([new_task if isinstance(new_task, str) else new_task.uid])[
            0
        ]
        successors = self.get_successors(successor_task_handle)
        if any(successor is new_node for successor, _ in successors):
            raise GraphDefinitionError(f"{new_node.uid} cannot be made to wait on itself")
        conditions = {id(c): c for _, c in successors}.values()
        for condition in conditions:
            if condition.condition_status is not ConditionStatus.WAITING_ON_TASKS:
                raise GraphDefinitionError(
                    f"cannot postpone {successor_task_handle!r}: its condition {condition.uid} "
                    f"is already {condition.condition_status}"
                )
        for condition in conditions:
            if new_node not in condition.predecessors:
                graph.scheduler.add_predecessor(condition, new_node)

    @property
    def edges_by_label(self) -> dict[str, list[str]]:
        """The seed's edge view: ``waits_on`` and ``waited_on_by`` condition uids."""
        return {
            "waits_on": [condition.uid for condition in self.waits_on],
            "waited_on_by": [condition.uid for condition in self.waited_on_by],
        }
