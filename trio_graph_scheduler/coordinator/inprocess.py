"""In-process execution: every worker loop runs as trio tasks in the caller's process.

Each loop gets ``concurrency`` worker slots. A slot is a claimant of its loop's queue like
a remote worker is: it takes a ready task with ``claim_nowait`` and runs it; when none is
ready it parks until the queue delivers one (no polling). While ready tasks remain, a slot
runs them back to back without a channel hop, which is what makes small tasks cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import outcome
import trio

from ..shared.invoke import format_exception_trace, invoke_task_function, run_context_init
from ..shared.states import TaskStatus
from .core.nodes import LOCAL_WORKER
from .run import GraphRun

if TYPE_CHECKING:
    from .core.loops import LoopQueue, WorkerLoop
    from .core.nodes import TaskNode
    from .task_graph import TaskGraph

#: A slot yields to trio after this many tasks that never yielded themselves, so a burst
#: of tiny tasks cannot starve other trio tasks or delay cancellation for long.
TASKS_PER_FORCED_YIELD: Final = 64


async def execute_graph(graph: TaskGraph, finish_polling_initial_delay: object = None) -> None:
    """Run the graph's tasks in this process until every task has ended.

    Returns the moment the last task ends; an empty graph returns at once. Failed tasks do
    not raise: their status is ``failed`` and their ``exception_trace`` holds the
    traceback. Cancelling the caller's scope cancels running tasks and puts them back in
    their queues, so a later ``execute_graph`` runs them again.

    Args:
        graph: the graph to run.
        finish_polling_initial_delay: accepted so that the seed's
            ``execute_graph(graph, 3)`` keeps working; ignored, as nothing polls.

    Raises:
        GraphStalledError: tasks remain that can never run (a dependency cycle).
        TGSError: the graph is already executing.
        WorkerContextError: a loop's context init function raised (inside an
            ExceptionGroup, as trio nurseries raise).
    """
    run = GraphRun(graph)
    try:
        async with trio.open_nursery() as nursery:
            for loop in graph.worker_loops:
                limiter = trio.CapacityLimiter(loop.concurrency)
                for index in range(loop.concurrency):
                    nursery.start_soon(_run_slot, graph, loop, index, limiter)
            run.start(nursery)
            await run.ended.wait()
            nursery.cancel_scope.cancel()
    finally:
        run.stop()
    run.raise_if_stalled()


class _Slot:
    """One worker slot of a loop: runs one task at a time."""

    __slots__ = ("_task", "cancelled", "node", "scope")

    def __init__(self) -> None:
        self._task = trio.lowlevel.current_task()
        #: The task it runs now, if any.
        self.node: TaskNode | None = None
        #: Serves the slot's tasks until a cancel_task uses it up.
        self.scope = trio.CancelScope()
        #: Whether ``scope`` was cancelled (cheaper to read than ``scope.cancel_called``,
        #: which looks at the clock).
        self.cancelled = False

    def deliver(self, node: TaskNode) -> bool:
        trio.lowlevel.reschedule(self._task, outcome.Value(node))
        return False  # one task at a time; the slot claims again when it is done

    def cancel(self, node: TaskNode) -> None:
        """Cancel ``node`` if it is the task this slot runs."""
        if self.node is node:
            self.cancelled = True
            self.scope.cancel()

    async def wait_for_task(self, queue: LoopQueue) -> TaskNode:
        """Park until ``queue`` delivers a task."""
        queue.wait(self)

        def abort(_: Any) -> trio.lowlevel.Abort:
            queue.withdraw(self)
            return trio.lowlevel.Abort.SUCCEEDED

        node: TaskNode = await trio.lowlevel.wait_task_rescheduled(abort)
        return node


async def _run_slot(
    graph: TaskGraph, loop: WorkerLoop, index: int, limiter: trio.CapacityLimiter
) -> None:
    context = await _init_worker_context(graph, loop.name, index)
    slot = _Slot()
    while True:
        # One cancel scope serves the slot's tasks until a cancel_task uses it up: a
        # scope per task would cost more than a small task itself.
        with trio.CancelScope() as slot.scope:
            slot.cancelled = False
            await _serve_slot(graph, loop, slot, context, limiter)
        if slot.node is not None:  # stopped by cancel_task, and now really ended
            graph.scheduler.task_cancelled(slot.node)
            slot.node = None


async def _serve_slot(
    graph: TaskGraph, loop: WorkerLoop, slot: _Slot, context: Any, limiter: trio.CapacityLimiter
) -> None:
    """Run tasks of ``loop`` back to back; return once the slot's scope was cancelled."""
    scheduler = graph.scheduler
    queue = scheduler.loops[loop.name]
    extra = {"graph": graph, "worker_context": context}
    unyielded = 0
    while not slot.cancelled:  # a cancel that came too late: use a fresh scope
        node = queue.claim_nowait()
        if node is None:
            node = await slot.wait_for_task(queue)
            unyielded = 0
        node._runner = slot
        node.worker = LOCAL_WORKER
        slot.node = node
        function = graph.task_functions[node.task_handle]
        try:
            result = await invoke_task_function(
                function.function,
                function.is_async,
                node.task_arguments,
                {"task_node": node, **extra},
                limiter,
                time_limit=function.policy.timeout,
            )
        except Exception as exc:
            scheduler.task_failed(node, format_exception_trace(exc))
        except BaseException:
            if not slot.cancelled:
                # Execution was cancelled (or interrupted): the task did not finish.
                scheduler.hand_back(node)
                slot.node = None
            raise
        else:
            if node.task_status == TaskStatus.FAILED:
                # The seed let a task mark itself failed and return.
                node.task_status = TaskStatus.IN_PROGRESS
                scheduler.task_failed(node, None)
            else:
                scheduler.task_succeeded(node, result)
        slot.node = None
        unyielded += 1
        if unyielded >= TASKS_PER_FORCED_YIELD:
            unyielded = 0
            await trio.lowlevel.checkpoint()


async def _init_worker_context(graph: TaskGraph, loop: str, index: int) -> Any:
    init = graph.worker_context_init_functions.get(loop)
    return {} if init is None else await run_context_init(loop, init, index)
