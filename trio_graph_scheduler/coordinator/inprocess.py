"""In-process execution: every worker loop runs as trio tasks in the caller's process.

Each loop gets ``concurrency`` worker slots. A slot is a claimant of its loop's queue like
a remote worker is: it takes a ready task with ``claim_nowait`` and runs it; when none is
ready it parks until the queue delivers one (no polling). While ready tasks remain, a slot
runs them back to back without a channel hop, which is what makes small tasks cheap.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import outcome
import trio

from ..shared.errors import TasksFailedError
from ..shared.invoke import failure_reason, format_exception_trace, invoke_task_function
from ..shared.slots import ContextFailure, Slot, run_slot, slot_context
from ..shared.states import EndReason
from ..shared.task_errors import without_frames
from .core.nodes import LOCAL_WORKER
from .journal import Journal
from .result_store import configure_results, parse_size
from .run import GraphRun, log_task_failure, summarize_run, task_logger

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from pathlib import Path

    from .core.loops import WorkerLoop
    from .core.nodes import TaskNode
    from .run import RunSummary
    from .task_graph import TaskGraph


async def execute_graph(
    graph: TaskGraph,
    finish_polling_initial_delay: object = None,
    *,
    raise_on_failure: bool = False,
    journal: str | Path | None = None,
    memory_limit: int | str | None = None,
    release_results: bool = False,
    spill_dir: str | Path | None = None,
) -> RunSummary:
    """Run the graph's tasks in this process until every task has ended.

    Returns the moment the last task ends (an empty graph returns at once), with a
    :class:`~trio_graph_scheduler.RunSummary`: the tasks by status and the failed ones.
    A failed task is logged at WARNING with its headline (logger ``tgs.tasks``); its
    status is ``failed``, ``task_exception`` holds what it raised and ``exception_trace``
    the traceback. A loop whose context init raised fails the tasks its slots take
    (``WorkerContextError``), as on a worker. Cancelling the caller's scope cancels
    running tasks and puts them back in their queues, so a later ``execute_graph`` runs
    them again.

    Args:
        graph: the graph to run.
        finish_polling_initial_delay: accepted so that the seed's
            ``execute_graph(graph, 3)`` keeps working; ignored, as nothing polls.
        raise_on_failure: raise :class:`~trio_graph_scheduler.TasksFailedError` when the
            graph ended with failed tasks, instead of returning.
        journal: a file (SQLite) that records the run as it goes. If it already holds a
            run of this graph, that run resumes: the graph's tasks are replaced by the
            journal's (look them up in ``graph.nodes`` afterwards; the nodes the builder
            returned are not the graph's any more), tasks that had ended keep their
            outcome and do not run again, and the rest run.
        memory_limit: keep at most this many bytes of results in memory (an int, or a
            size such as ``"128MiB"``); the coldest of the rest go to a SQLite file in a
            temporary directory and come back when read (``node.task_result``, a copy).
            ``None`` (the default): every result stays in memory, as in the seed (results
            already on disk stay readable). See docs/operations.md, "Memory".
        release_results: drop a result once every task waiting on it has ended, except
            the results of sinks (tasks no task waits on) and of tasks created with
            ``keep_result=True``; reading a dropped one raises
            :class:`~trio_graph_scheduler.ResultReleasedError`.
        spill_dir: where to make the temporary directory of ``memory_limit`` (default:
            the system's, ``TMPDIR``).

    Raises:
        GraphStalledError: tasks remain that can never run (a dependency cycle).
        TasksFailedError: with ``raise_on_failure``, tasks failed; it lists them and
            carries the summary.
        TGSError: the graph is already executing.
        JournalError: the journal records another graph, or is damaged.
        ConfigError: ``memory_limit`` is no size.
    """
    if isinstance(memory_limit, str):
        memory_limit = parse_size(memory_limit, "memory_limit")
    configure_results(
        graph, memory_limit=memory_limit, release_results=release_results, spill_dir=spill_dir
    )
    if journal is None:
        await _execute(graph, None)
    else:
        opened = Journal.open(journal, graph)
        try:
            await _execute(graph, opened)
        finally:
            opened.close()
    summary = summarize_run(graph)
    if raise_on_failure and summary.failed_tasks:
        raise TasksFailedError(summary)
    return summary


async def _execute(graph: TaskGraph, journal: Journal | None) -> None:
    run = GraphRun(graph, journal)
    try:
        async with trio.open_nursery() as nursery:
            for loop in graph.worker_loops:
                for index in range(loop.concurrency):
                    nursery.start_soon(_run_slot, graph, loop, index)
            run.start(nursery)
            await run.ended.wait()
            nursery.cancel_scope.cancel()
    finally:
        run.stop()
    run.raise_if_stalled()


class _LocalSlot:
    """One worker slot of a loop, run in this process: its :class:`SlotOwner` parts.

    It is a claimant of its loop's queue: handed tasks (``deliver``), it runs them, and
    stops one when asked (``cancel``), as a worker session's claim on a loop does.
    """

    __slots__ = (
        "_extra",
        "_functions",
        "_queue",
        "_scheduler",
        "_task",
        "slot",
        "succeeded",
        "take_nowait",
    )

    # The queue's and the scheduler's own methods (the first bound to this claimant),
    # not wrappers: a call less per task.
    take_nowait: Callable[[], TaskNode | None]
    succeeded: Callable[[TaskNode, Any], None]

    def __init__(self, graph: TaskGraph, loop: WorkerLoop, context: Any) -> None:
        self._task = trio.lowlevel.current_task()
        self._scheduler = graph.scheduler
        self._queue = self._scheduler.loops[loop.name]
        self.take_nowait = functools.partial(self._queue.claim_nowait, self)
        self.succeeded = self._scheduler.task_succeeded
        self._functions = graph.task_functions
        self._extra = {"graph": graph, "worker_context": context}
        self.slot: Slot[TaskNode] = Slot()

    def deliver(self, node: TaskNode) -> bool:
        trio.lowlevel.reschedule(self._task, outcome.Value(node))
        return False  # one task at a time; the slot claims again when it is done

    def keeps_freed_slot(self) -> bool:
        return False  # it claims again itself when its task is done

    def cancel(self, node: TaskNode) -> None:
        """Cancel ``node`` if it is the task this slot runs."""
        if self.slot.task is node:
            self.slot.cancel()

    async def wait_for_task(self) -> TaskNode:
        """Park until the loop's queue delivers a task."""
        queue = self._queue
        queue.wait(self)

        def abort(_: Any) -> trio.lowlevel.Abort:
            queue.withdraw(self)
            return trio.lowlevel.Abort.SUCCEEDED

        node: TaskNode = await trio.lowlevel.wait_task_rescheduled(abort)
        return node

    def start(self, slot: Slot[TaskNode], node: TaskNode) -> tuple[Awaitable[Any], TaskNode] | None:
        node.worker = LOCAL_WORKER
        function = self._functions[node.task_handle]
        if function.is_async and function.policy.timeout is None:
            # What invoke_task_function does for such a call, without its coroutine
            # around the function's: one coroutine fewer per task.
            arguments = node.task_arguments
            try:
                if arguments is None:
                    return function.function(task_node=node, **self._extra), node
                args, kwargs = arguments
                call = function.function(
                    *(args or ()), **(kwargs or {}), task_node=node, **self._extra
                )
                return call, node
            except Exception:
                # Arguments the function does not take: calling an async function runs
                # none of it, so invoke_task_function calls it again, and the error
                # fails the task where the slot awaits it, as any other error does.
                pass
        call = invoke_task_function(
            function.function,
            function.is_async,
            node.task_arguments,
            {"task_node": node, **self._extra},
            slot.thread,
            time_limit=function.policy.timeout,
        )
        return call, node

    def failed(self, node: TaskNode, error: Exception | None, *, slot_busy: bool = False) -> None:
        if error is None:
            self._scheduler.task_marked_failed(node)
        else:
            trace = format_exception_trace(error)
            self._scheduler.task_failed(
                node,
                trace,
                failure_reason(error),
                slot_busy=slot_busy,
                exception=without_frames(error),
            )
        log_task_failure(node)

    def interrupted(self, node: TaskNode) -> None:
        # Execution was cancelled (or interrupted): the task runs again next time. A sync
        # function's thread runs on, abandoned: execute_graph returns without waiting.
        self._scheduler.hand_back(node)

    def task_cancelled(self, node: TaskNode, *, slot_busy: bool = False) -> None:
        self._scheduler.task_cancelled(node, slot_busy=slot_busy)
        log_task_failure(node)

    def slot_freed(self, node: TaskNode) -> None:
        self._scheduler.slot_freed(node)


class _FailedContextSlot(_LocalSlot):
    """A slot whose worker context init raised: each task it takes fails with that
    error, as on a worker (a class of its own, so that healthy slots check nothing)."""

    __slots__ = ()

    def start(self, slot: Slot[TaskNode], node: TaskNode) -> None:
        failure: ContextFailure = self._extra["worker_context"]
        node.worker = LOCAL_WORKER
        self._scheduler.task_failed(
            node, failure.trace, EndReason.WORKER_ERROR, exception=failure.error
        )
        log_task_failure(node)


async def _run_slot(graph: TaskGraph, loop: WorkerLoop, index: int) -> None:
    init = graph.worker_context_init_functions.get(loop.name)
    async with slot_context(loop.name, init, index, task_logger) as context:
        kind = _FailedContextSlot if isinstance(context, ContextFailure) else _LocalSlot
        local = kind(graph, loop, context)
        await run_slot(local.slot, local)
