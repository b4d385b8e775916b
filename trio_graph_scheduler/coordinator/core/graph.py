"""``TaskGraph``: the public face of a graph, its validation, and its registries."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Final

from ...shared.errors import GraphDefinitionError, UnknownFunctionError, UnknownUidError
from ...shared.invoke import is_async_function
from ...shared.states import TaskStatus
from ...shared.uids import new_uid
from .conditions import GenericSchedulingCondition
from .loops import WorkerLoop, assign_functions_to_loops, build_loop_queues
from .nodes import TaskArguments, TaskNode
from .policy import DEFAULT_POLICY, TaskPolicy
from .scheduler import Scheduler

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from ..observe.explain import ConnectedWorker

#: Keyword arguments every task function receives from the scheduler.
RESERVED_KWARGS: Final = frozenset({"task_node", "graph", "worker_context"})

#: ``async def init(worker_index) -> context`` per loop (a plain function works too).
ContextInit = Callable[[int], Any]


@dataclass(frozen=True, slots=True)
class TaskFunction:
    """A graph function, with what the runner must know about it decided once."""

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
    """Counts of a graph's tasks, as returned by :meth:`TaskGraph.statistics`."""

    #: Number of tasks in each status (statuses with none are left out).
    tasks_by_status: Mapping[str, int]
    #: Per loop: ``(ready, running, concurrency)``.
    loops: Mapping[str, tuple[int, int, int]]
    #: Tasks not yet ended.
    unfinished: int


class TaskGraph:
    """A graph of tasks and the scheduling conditions between them.

    Args:
        functions: maps a name to a callable, async or not (plain functions run in a
            worker thread). Each receives its task's args and kwargs plus ``task_node``,
            ``graph`` and ``worker_context`` keyword arguments.
        worker_loops: :class:`WorkerLoop` objects (any objects with ``name``,
            ``concurrency`` and ``functions`` work); one must be named ``default``.
        worker_context_init_functions: maps a loop name to ``init(worker_index)``, async or
            not, whose return value every task run by that worker slot receives as
            ``worker_context`` (``{}`` for loops without one).
        task_policies: maps a function name to its :class:`TaskPolicy` (retries with
            backoff, a timeout); functions not named run once, with no time limit.

    Raises:
        GraphDefinitionError: a function that is not callable, bad loops (see
            :func:`~.loops.assign_functions_to_loops`), or an init function for a loop
            that does not exist.
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
        self.scheduler = Scheduler(build_loop_queues(loops))

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
    ) -> TaskNode:
        """Add a task; it runs once every condition it waits on is satisfied.

        Works before and during execution, from the caller or from inside a running task.

        Args:
            task_handle: the name of one of the graph's functions.
            task_arguments: ``((args...), {kwargs})``, or ``None`` for no arguments.
            waits_on: uids of tasks (together they form one implicit ``SUCCESS__ALL``
                condition) and of conditions, in any mix.

        Returns:
            The new task's node.

        Raises:
            UnknownFunctionError: ``task_handle`` is no function of the graph.
            UnknownUidError: a uid in ``waits_on`` is unknown.
            GraphDefinitionError: malformed arguments, or kwargs that use a reserved name.
        """
        return self.create_task_nowait(task_handle, task_arguments, waits_on)

    def create_task_nowait(
        self,
        task_handle: str,
        task_arguments: TaskArguments = None,
        waits_on: Iterable[str] | None = None,
        *,
        uid: str | None = None,
    ) -> TaskNode:
        """The synchronous twin of :meth:`create_task`; same arguments, same errors.

        ``uid`` is for remote workers, which choose the uids of the tasks they create.
        """
        function = self._check_function(task_handle)
        check_task_arguments(task_handle, task_arguments)
        if uid is None:
            uid = new_uid("task")
        else:
            self._check_new_uid(uid, "task-")
        task_uids, conditions = self._split_waits_on(waits_on)
        if task_uids:
            conditions.append(GenericSchedulingCondition(self, "SUCCESS__ALL", task_uids))
        node = TaskNode(
            self,
            uid,
            task_handle,
            task_arguments,
            self.scheduler.loops[function.loop],
        )
        self.nodes[node.uid] = node
        self.scheduler.add_task(node, conditions)
        return node

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

    def to_dot(self) -> str:
        """The graph in Graphviz DOT, coloured by status like :meth:`draw`."""
        from ..observe.drawing import graph_to_dot

        return graph_to_dot(self)

    def draw(self, path: str | Path = "graph.html") -> None:
        """Draw the graph as the seed did: the graph as the yellow root, tasks as boxes,
        conditions as dots, green/red/orange by status.

        A path ending in ``.dot`` or ``.gv`` gets Graphviz DOT; any other gets one
        self-contained HTML file that opens with no network (needs the ``draw`` extra:
        ``pip install 'trio-graph-scheduler[draw]'``).
        """
        from ..observe.drawing import draw_graph

        draw_graph(self, path)

    def draw_timeline(self, path: str | Path = "timeline.html") -> None:
        """Draw the run as a timeline (a "task stream") into one self-contained HTML file.

        One row per worker slot (``local #0``, ``worker-2 #1``, ...), one bar per task
        that ran, from its start to its end, coloured by function; failed runs are
        outlined and hatched in red, unfinished ones in white. Hovering shows a task's
        uid, function, status, worker, duration and attempts; the title counts the tasks
        that never ran. Opens with no network; needs the ``draw`` extra.
        """
        from ..observe.timeline import draw_timeline

        draw_timeline(self, path)

    def explain(self, uid: str, *, workers: Sequence[ConnectedWorker] | None = None) -> str:
        """Why a task has not run (yet), or how it ended, in one short paragraph.

        For example ``task-… (render) is ready and waits for a free slot: loop html is
        full: 4 of 4 running, 12 ready ahead of it.`` A query: O(its conditions'
        predecessors + its place in its loop's queue); it changes nothing.

        Args:
            uid: a task's uid (a condition's uid says what the condition still needs).
            workers: the connected workers (each with ``worker_id`` and ``loops``) in
                distributed mode; ``None`` in-process, where every loop has its slots.

        Raises:
            UnknownUidError: no task or condition has this uid.
        """
        from ..observe.explain import explain_task

        return explain_task(self, uid, workers=workers)

    def check_invariants(self) -> None:
        """Assert the scheduler's invariants over the whole graph (for tests; O(graph))."""
        self.scheduler.check_invariants(self.nodes.values(), self.conditions.values())

    # -- used by nodes, conditions and runners -----------------------------------------

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
        return nodes

    def _split_waits_on(
        self, waits_on: Iterable[str] | None
    ) -> tuple[list[str], list[GenericSchedulingCondition]]:
        if waits_on is None:
            return [], []
        if isinstance(waits_on, str):
            raise GraphDefinitionError(
                f"waits_on must be a list of uids, not the string {waits_on!r}"
            )
        task_uids: list[str] = []
        conditions: list[GenericSchedulingCondition] = []
        for uid in dict.fromkeys(waits_on):
            if uid in self.nodes:
                task_uids.append(uid)
            elif uid in self.conditions:
                conditions.append(self.conditions[uid])
            else:
                raise UnknownUidError(uid)
        return task_uids, conditions

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
        self._check_new_uid(condition.uid, "condition-")
        self.conditions[condition.uid] = condition
        self.scheduler.add_condition(condition, predecessors)

    def _check_new_uid(self, uid: str, prefix: str) -> None:
        if not uid.startswith(prefix) or uid in self.nodes or uid in self.conditions:
            raise GraphDefinitionError(f"uid {uid!r} is taken or does not start with {prefix!r}")


def check_task_arguments(task_handle: str, arguments: object) -> None:
    """Check ``((args...), {kwargs})`` or ``None``, as ``create_task`` accepts them.

    Raises:
        GraphDefinitionError: another shape, non-str kwargs keys, or a reserved kwarg.
    """
    if arguments is None:
        return
    args: object = None
    kwargs: object = None
    if isinstance(arguments, tuple | list) and len(arguments) == 2:
        args, kwargs = arguments
    shape_ok = (
        isinstance(arguments, tuple | list)
        and len(arguments) == 2
        and (args is None or isinstance(args, tuple | list))
        and (kwargs is None or (isinstance(kwargs, dict) and all(type(k) is str for k in kwargs)))
    )
    if not shape_ok:
        raise GraphDefinitionError(
            f"task {task_handle!r}: arguments must be None or ((args...), {{kwargs}}), "
            f"got {arguments!r:.80}"
        )
    reserved = RESERVED_KWARGS.intersection(kwargs or ())  # type: ignore[arg-type]
    if reserved:
        raise GraphDefinitionError(
            f"task {task_handle!r}: {', '.join(sorted(reserved))} are passed by the scheduler "
            "and cannot be task kwargs"
        )
