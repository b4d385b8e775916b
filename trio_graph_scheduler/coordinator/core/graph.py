"""The graph's state: validation, the nodes/conditions registries, ``create_task``."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Final

from ...shared.errors import (
    GraphDefinitionError,
    TGSInternalError,
    UnknownFunctionError,
    UnknownUidError,
)
from ...shared.states import TaskStatus
from ...shared.task_calls import (
    TaskArguments,
    check_task_arguments,
    check_task_key,
    is_async_function,
)
from ...shared.uids import new_uid
from .conditions import GenericSchedulingCondition
from .loops import LoopQueue, WorkerLoop, assign_functions_to_loops, build_loop_queues
from .nodes import TaskNode
from .policy import DEFAULT_POLICY, TaskPolicy
from .scheduler import Scheduler

#: What a task that would wait on a released result is told.
_LATE_SUCCESSOR: Final = "no task can wait on it any more"

#: ``async def init(worker_index) -> context`` per loop (a plain function works too).
ContextInit = Callable[[int], Any]


@dataclass(frozen=True, slots=True)
class TaskFunction:
    """A graph function, with what a slot must know about it decided once."""

    name: str
    function: Callable[..., Any]
    #: True for ``async def`` functions; the rest run in a worker thread.
    is_async: bool
    #: The loop that runs it.
    loop: str
    #: How its tasks are retried and timed out.
    policy: TaskPolicy


@dataclass(frozen=True, slots=True)
class GraphStatistics:
    """Counts of a graph's tasks, as returned by :meth:`TaskGraphCore.statistics`."""

    #: Number of tasks in each status (statuses with none are left out).
    tasks_by_status: Mapping[str, int]
    #: Per loop: ``(ready, running, concurrency)``.
    loops: Mapping[str, tuple[int, int, int]]
    #: Tasks not yet ended.
    unfinished: int


class TaskGraphCore:
    """The state of a graph: its functions, loops, tasks and conditions, and its scheduler.

    The public :class:`~trio_graph_scheduler.TaskGraph` adds the views (pictures,
    ``explain``) on top; everything that changes a graph is here, synchronous and free of
    I/O. ``clock`` gives the timestamps of tasks (``queued_at``, ``started_at``,
    ``ended_at``); the public class passes wall time, tests may pass a fake.
    """

    #: The seed spelled it ``TaskGraph.WorkerLoop``.
    WorkerLoop: ClassVar[type[WorkerLoop]] = WorkerLoop

    def __init__(
        self,
        functions: Mapping[str, Callable[..., Any]],
        worker_loops: Iterable[Any],
        worker_context_init_functions: Mapping[str, ContextInit] | None = None,
        *,
        task_policies: Mapping[str, TaskPolicy] | None = None,
        clock: Callable[[], float],
    ) -> None:
        for name, function in functions.items():
            if not isinstance(name, str) or not callable(function):
                raise GraphDefinitionError(
                    f"functions must map names to callables; {name!r} maps to {function!r}"
                )
        loops, loop_of = assign_functions_to_loops(functions, worker_loops)
        init_functions = dict(worker_context_init_functions or {})
        loop_names = {loop.name for loop in loops}
        for loop_name, init in init_functions.items():
            if loop_name not in loop_names:
                raise GraphDefinitionError(f"context init function for unknown loop {loop_name!r}")
            if not callable(init):
                raise GraphDefinitionError(
                    f"context init function of {loop_name!r} is not callable"
                )

        policies = dict(task_policies or {})
        for name, policy in policies.items():
            if name not in functions:
                raise UnknownFunctionError(name, list(functions))
            if not isinstance(policy, TaskPolicy):
                raise GraphDefinitionError(f"the policy of {name!r} is not a TaskPolicy")

        self.uid = new_uid("graph")
        #: Every task, by uid.
        self.nodes: dict[str, TaskNode] = {}
        #: Every condition, by uid.
        self.conditions: dict[str, GenericSchedulingCondition] = {}
        # Tasks by key; made by the first task with a key, so a graph without keys pays
        # nothing for it.
        self._keys: dict[Any, TaskNode] | None = None
        # Tasks created with keep_result=True (release_results keeps their results);
        # made by the first such task.
        self._kept: set[TaskNode] | None = None
        self.worker_loops: list[WorkerLoop] = loops
        self.worker_context_init_functions: dict[str, ContextInit] = init_functions
        self.task_functions: dict[str, TaskFunction] = {
            name: TaskFunction(
                name,
                function,
                is_async_function(function),
                loop_of[name],
                policies.get(name, DEFAULT_POLICY),
            )
            for name, function in functions.items()
        }
        #: The scheduling core's interface for the shells (see :class:`Scheduler`).
        self.scheduler = Scheduler(build_loop_queues(loops, clock), clock)
        self._queue_of = self._queues_by_function()

    def _queues_by_function(self) -> dict[str, LoopQueue]:
        """Each function's loop queue, by function name: one lookup per task created."""
        loops = self.scheduler.loops
        return {name: loops[tf.loop] for name, tf in self.task_functions.items()}

    def __repr__(self) -> str:
        unfinished = self.scheduler.unfinished
        return f"<TaskGraph {self.uid} tasks={len(self.nodes)} unfinished={unfinished}>"

    @property
    def expected_functions(self) -> dict[str, Callable[..., Any]]:
        """The graph's functions by name (the seed's attribute)."""
        return {name: tf.function for name, tf in self.task_functions.items()}

    @property
    def edges_by_label(self) -> dict[str, list[str]]:
        """The seed's root edges: ``scheduled`` lists the tasks that wait on nothing."""
        return {"scheduled": [uid for uid, node in self.nodes.items() if not node.waits_on]}

    # -- growing the graph -------------------------------------------------------------

    async def create_task(
        self,
        task_handle: str,
        task_arguments: TaskArguments = None,
        waits_on: Iterable[str] | None = None,
        *,
        key: Any = None,
        keep_result: bool = False,
    ) -> TaskNode:
        """Add a task; it runs once every condition it waits on is satisfied.

        Works before and during execution, from the caller or from inside a running task.

        Args:
            task_handle: the name of one of the graph's functions.
            task_arguments: ``((args...), {kwargs})``, or ``None`` for no arguments.
            waits_on: uids of tasks (together they form one implicit ``SUCCESS__ALL``
                condition) and of conditions, in any mix.
            key: a ``str``, ``bytes``, number, ``bool`` or tuple of them naming the task
                (a URL, say). If a task with this key exists, no task is created and that
                task is returned, whatever its function and arguments: the check and the
                creation are one step at the graph's owner, so two tasks that create the
                same key, here or on any workers, get the same task.
            keep_result: keep its result even with ``release_results``, which drops a
                result once every task waiting on it has ended (a task with a key that
                exists marks that task).

        Returns:
            The new task's node, or the existing one with ``key``.

        Raises:
            UnknownFunctionError: ``task_handle`` is no function of the graph.
            UnknownUidError: a uid in ``waits_on`` is unknown.
            GraphDefinitionError: malformed arguments, kwargs that use a reserved name, or
                a key of another type.
            ResultReleasedError: it would wait on a task whose result ``release_results``
                released.
        """
        return self.create_task_nowait(
            task_handle, task_arguments, waits_on, key=key, keep_result=keep_result
        )

    def create_task_nowait(
        self,
        task_handle: str,
        task_arguments: TaskArguments = None,
        waits_on: Iterable[str] | None = None,
        *,
        key: Any = None,
        uid: str | None = None,
        keep_result: bool = False,
    ) -> TaskNode:
        """The synchronous twin of :meth:`create_task`; same arguments, same errors.

        ``uid`` is for remote workers, which choose the uids of the tasks they create (a
        task returned for its ``key`` keeps its own uid).
        """
        if key is None and uid is None and not keep_result:
            # The calls of a big build: a task with no key, no given uid, waiting on
            # nothing or on tasks only, takes the steps such a task needs and no more
            # (a call saved is a few percent of a task's build).
            try:
                queue = self._queue_of[task_handle]
            except (KeyError, TypeError):
                raise UnknownFunctionError(task_handle, list(self.task_functions)) from None
            if task_arguments is not None:
                check_task_arguments(task_handle, task_arguments)
            scheduler = self.scheduler
            if waits_on is None:
                node = TaskNode(self, new_uid("task"), task_handle, task_arguments, queue)
                if scheduler.recorder is not None:
                    scheduler.recorder.task_created(node, [])  # may refuse it: nothing changed yet
                self.nodes[node.uid] = node
                scheduler.add_free_task(node)
                return node
            # A chain's link waits on one task: looked up here, without the general
            # sorting of uids into tasks and conditions.
            one = (
                self.nodes.get(waits_on[0])
                if waits_on.__class__ is list and len(waits_on) == 1
                else None
            )
            if one is not None:
                predecessors: list[TaskNode] = [one]
                conditions: list[GenericSchedulingCondition] = []
            else:
                predecessors, conditions = self._split_waits_on(waits_on)
            if scheduler._releases is not None:
                self._check_readable(predecessors, conditions)
            waits: Sequence[GenericSchedulingCondition] = conditions
            if predecessors:
                alone = GenericSchedulingCondition._all_succeeded(self, predecessors)
                if conditions:
                    conditions.append(alone[0])
                else:  # a chain's link: the condition's own tuple, not a list of one
                    waits = alone
            node = TaskNode(self, new_uid("task"), task_handle, task_arguments, queue)
            if scheduler.recorder is not None:
                scheduler.recorder.task_created(node, list(waits))
            self.nodes[node.uid] = node
            scheduler.add_task(node, waits)
            return node
        function = self._check_function(task_handle)
        check_task_arguments(task_handle, task_arguments)
        predecessors, conditions = self._split_waits_on(waits_on)
        if self.scheduler._releases is not None:
            self._check_readable(predecessors, conditions)
        if key is not None:
            check_task_key(key)
            if self._keys is not None and (existing := self._keys.get(key)) is not None:
                if keep_result:
                    self._keep(existing)
                return existing
        if uid is None:
            uid = new_uid("task")
        else:
            self._check_new_uid(uid, "task-")
        if predecessors:
            conditions.append(GenericSchedulingCondition._all_succeeded(self, predecessors)[0])
        node = TaskNode(
            self,
            uid,
            task_handle,
            task_arguments,
            self.scheduler.loops[function.loop],
        )
        if key is not None:
            node.key = key
        recorder = self.scheduler.recorder
        if recorder is not None:
            recorder.task_created(node, conditions)  # may refuse it: nothing is changed yet
        self.nodes[node.uid] = node
        if key is not None:
            if self._keys is None:
                self._keys = {}
            self._keys[key] = node
        if keep_result:
            self._keep(node)
        self.scheduler.add_task(node, conditions)
        return node

    def _check_readable(
        self, predecessors: list[TaskNode], conditions: list[GenericSchedulingCondition]
    ) -> None:
        """Refuse to wait on a result ``release_results`` released (see ResultHolder)."""
        releases = self.scheduler._releases
        assert releases is not None
        releases.check_readable(predecessors, _LATE_SUCCESSOR)
        for condition in conditions:
            releases.check_readable(condition.predecessors, _LATE_SUCCESSOR)

    def _keep(self, node: TaskNode) -> None:
        if self._kept is None:
            self._kept = set()
        self._kept.add(node)

    def get_task_by_key(self, key: Any) -> TaskNode | None:
        """The task created with ``key``, or ``None`` if there is none (or ``key`` is
        ``None``). O(1).

        Synchronous here, where the graph lives; a task on a worker awaits it (the
        coordinator answers). :meth:`aget_task_by_key` is the form that works in both.

        Raises:
            GraphDefinitionError: ``key`` is of a type no key can have (a list ...).
        """
        if key is None:
            return None
        check_task_key(key)
        return None if self._keys is None else self._keys.get(key)

    async def aget_task_by_key(self, key: Any, *, with_result: bool = True) -> TaskNode | None:
        """:meth:`get_task_by_key`, awaitable: the same call works on a worker.

        ``with_result`` matters only on a worker (whether the result travels); here the
        node always has it.
        """
        return self.get_task_by_key(key)

    async def aget_task(self, uid: str, *, with_result: bool = True) -> TaskNode:
        """The task with ``uid`` (``graph.nodes[uid]``), awaitable: the same call works
        on a worker, where ``graph.nodes`` holds only the tasks it knows of.

        Raises:
            UnknownUidError: no task has this uid.
        """
        node = self.nodes.get(uid) if isinstance(uid, str) else None
        if node is None:
            raise UnknownUidError(uid)
        return node

    async def acreate_condition(
        self, mode: str, waits_on: Iterable[str]
    ) -> GenericSchedulingCondition:
        """``GenericSchedulingCondition(graph, mode, waits_on)``, awaitable: on a worker
        this form waits for the coordinator, so that a refusal raises at the call.

        Raises:
            GraphDefinitionError: a bad mode, too few predecessors, a condition's uid.
            UnknownUidError: a uid in ``waits_on`` is unknown.
        """
        return GenericSchedulingCondition(self, mode, waits_on)

    async def acancel_task(self, uid: str, reason: str = "cancelled by a graph call") -> bool:
        """:meth:`cancel_task`, awaitable: the same call works on a worker."""
        return self.cancel_task(uid, reason)

    def cancel_task(self, uid: str, reason: str = "cancelled by a graph call") -> bool:
        """Cancel a task; it ends as ``failed`` with ``cancelled: <reason>`` as its trace.

        A task that has not started ends at once (and its successors as they would after
        any failure). A running one is stopped where it runs, in this process or on a
        worker, and ends when it has really stopped: its loop's slot stays taken until
        then. A task that ends some other way first keeps that outcome.

        Returns:
            False if the task had ended already, else True.

        Raises:
            UnknownUidError: no task has this uid.
        """
        node = self.nodes.get(uid) if isinstance(uid, str) else None
        if node is None:
            raise UnknownUidError(uid)
        return self.scheduler.cancel(node, reason)

    def _forget_tasks(self) -> None:
        """Drop every task and condition, before a journal's replay rebuilds them."""
        if self.scheduler.started:
            raise TGSInternalError(f"{self.uid} is running: its tasks cannot be dropped")
        clock = self.scheduler.clock
        results = self.scheduler.results
        self.nodes = {}
        self.conditions = {}
        self._keys = None
        self._kept = None
        self.scheduler = Scheduler(build_loop_queues(self.worker_loops, clock), clock)
        self._queue_of = self._queues_by_function()
        if results is not None:
            results.forget_all()
            self.scheduler.attach_results(results)

    # -- reading -----------------------------------------------------------------------

    def statistics(self) -> GraphStatistics:
        """Counts by status and per loop. O(tasks)."""
        counts: dict[str, int] = {}
        for node in self.nodes.values():
            counts[node.task_status] = counts.get(node.task_status, 0) + 1
        ordered = {str(s): counts[s] for s in TaskStatus if s in counts}
        loops = {
            name: (len(q.ready), q.running, q.concurrency)
            for name, q in self.scheduler.loops.items()
        }
        return GraphStatistics(ordered, loops, self.scheduler.unfinished)

    def check_invariants(self) -> None:
        """Assert the scheduler's invariants over the whole graph (for tests; O(graph))."""
        self.scheduler.check_invariants(self.nodes.values(), self.conditions.values())

    # -- used by nodes, conditions and shells ------------------------------------------

    def _check_function(self, name: str) -> TaskFunction:
        try:
            return self.task_functions[name]
        except (KeyError, TypeError):
            raise UnknownFunctionError(name, list(self.task_functions)) from None

    def _resolve_tasks(self, uids: Iterable[str]) -> list[TaskNode]:
        """The nodes of ``uids`` (duplicates dropped, order kept)."""
        if isinstance(uids, str):
            raise GraphDefinitionError(f"waits_on must be a list of uids, not the string {uids!r}")
        nodes: list[TaskNode] = []
        for uid in dict.fromkeys(uids):
            node = self.nodes.get(uid)
            if node is None:
                if uid in self.conditions:
                    raise GraphDefinitionError(f"{uid} is a condition; a condition waits on tasks")
                raise UnknownUidError(uid)
            nodes.append(node)
        releases = self.scheduler.results
        if releases is not None and releases.release:
            releases.check_readable(nodes, _LATE_SUCCESSOR)
        return nodes

    def _split_waits_on(
        self, waits_on: Iterable[str] | None
    ) -> tuple[list[TaskNode], list[GenericSchedulingCondition]]:
        """The tasks (duplicates dropped, order kept) and the conditions of ``waits_on``."""
        if waits_on is None:
            return [], []
        if isinstance(waits_on, str):
            raise GraphDefinitionError(
                f"waits_on must be a list of uids, not the string {waits_on!r}"
            )
        nodes = self.nodes
        predecessors: list[TaskNode] = []
        conditions: list[GenericSchedulingCondition] = []
        # One uid has no duplicates to drop (a chain's links wait on one task each).
        one = waits_on.__class__ in (list, tuple) and len(waits_on) == 1
        uids = waits_on if one else dict.fromkeys(waits_on)
        for uid in uids:
            node = nodes.get(uid)
            if node is not None:
                predecessors.append(node)
            elif uid in self.conditions:
                conditions.append(self.conditions[uid])
            else:
                raise UnknownUidError(uid)
        return predecessors, conditions

    def _add_condition(
        self, condition: GenericSchedulingCondition, waits_on: Iterable[str]
    ) -> None:
        """Register a condition under construction, linked to its predecessors."""
        predecessors = self._resolve_tasks(waits_on)
        target = condition.mode.target
        if target is not None and target > len(predecessors):
            raise GraphDefinitionError(
                f"{condition.mode} needs at least {target} predecessors, got {len(predecessors)}"
            )
        self._register_condition(condition, predecessors)

    def _register_condition(
        self, condition: GenericSchedulingCondition, predecessors: list[TaskNode]
    ) -> None:
        """Register a condition whose predecessors are resolved and checked."""
        self._check_new_uid(condition.uid, "condition-")
        self.conditions[condition.uid] = condition
        self.scheduler.add_condition(condition, predecessors)

    def _check_new_uid(self, uid: str, prefix: str) -> None:
        if not uid.startswith(prefix) or uid in self.nodes or uid in self.conditions:
            raise GraphDefinitionError(f"uid {uid!r} is taken or does not start with {prefix!r}")
