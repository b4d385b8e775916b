"""One execution of a graph, as both shells (``execute_graph``, the coordinator) run it.

:class:`GraphRun` wires the scheduling core's callbacks to trio: the end of the graph (or
a stall) sets an event, and failed tasks due for a retry are put back in their queues by
one :class:`RetryTimer` task, which sleeps until the earliest due retry (never polling)
and is woken early when an earlier one is scheduled. The core itself stays free of time.
"""

from __future__ import annotations

import heapq
import itertools
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import trio

from ..shared.errors import GraphStalledError, TGSError
from ..shared.states import EndReason, TaskStatus
from .observe.wording import task_headline

if TYPE_CHECKING:
    from collections.abc import Mapping

    from .core.nodes import TaskNode
    from .core.scheduler import Scheduler
    from .journal import Journal, Resumed
    from .task_graph import TaskGraph


@dataclass(frozen=True, slots=True)
class FailedTask:
    """One task that failed, as a :class:`RunSummary` lists it."""

    uid: str
    #: The name of the function it ran.
    function: str
    #: What went wrong, in one line: ``Type: message`` (see ``node.task_exception``), or
    #: why it was cancelled or lost.
    headline: str
    #: How it ended (an ``EndReason`` value: ``raised``, ``timed_out``, ``cancelled``...).
    end_reason: str


#: How many failed tasks the repr of a RunSummary shows before "and N more".
_FAILED_SHOWN = 5


@dataclass(frozen=True, slots=True, repr=False)
class RunSummary:
    """How a run ended: what ``execute_graph`` and ``Coordinator.serve`` return.

    ``failed_tasks`` lists the tasks that failed (status ``failed``), in the order they
    failed; tasks skipped because a condition failed are only counted, under
    ``precondition_failed``. Look a task up in ``graph.nodes`` by its uid for more
    (``task_exception``, ``exception_trace``).
    """

    #: Number of tasks in each status (statuses with none are left out).
    tasks_by_status: Mapping[str, int]
    #: True when the run was stopped (:meth:`Coordinator.stop`) before the graph ended.
    interrupted: bool = False
    #: The tasks that failed.
    failed_tasks: tuple[FailedTask, ...] = ()

    @property
    def succeeded(self) -> bool:
        """True when the graph ended and every task succeeded (an empty graph counts)."""
        return not self.interrupted and set(self.tasks_by_status) <= {TaskStatus.SUCCESS}

    def __repr__(self) -> str:
        # A run may fail thousands of tasks: the first few tell what went wrong.
        failed = self.failed_tasks
        shown = ", ".join(repr(task) for task in failed[:_FAILED_SHOWN])
        if len(failed) > _FAILED_SHOWN:
            shown += f", ... and {len(failed) - _FAILED_SHOWN} more"
        return (
            f"RunSummary(tasks_by_status={dict(self.tasks_by_status)!r}, "
            f"interrupted={self.interrupted!r}, failed_tasks=({shown}))"
        )


def summarize_run(graph: TaskGraph, *, interrupted: bool = False) -> RunSummary:
    """The :class:`RunSummary` of ``graph`` as it is now.

    Once every task has ended it costs O(failed tasks): the scheduler counts failures and
    skips where they happen, and the rest succeeded. Else (a run stopped early) O(tasks).
    """
    scheduler = graph.scheduler
    failed = [_failed_task(node) for node in scheduler.failed]
    if scheduler.unfinished:
        return RunSummary(graph.statistics().tasks_by_status, interrupted, tuple(failed))
    counts = {
        TaskStatus.SUCCESS: len(graph.nodes) - len(failed) - scheduler.skipped,
        TaskStatus.FAILED: len(failed),
        TaskStatus.PRECONDITION_FAILED: scheduler.skipped,
    }
    ordered = {str(s): n for s, n in counts.items() if n}
    return RunSummary(ordered, interrupted, tuple(failed))


def _failed_task(node: TaskNode) -> FailedTask:
    reason = str(node.end_reason) if node.end_reason is not None else "failed"
    headline = task_headline(node) or "failed, with no error"
    return FailedTask(node.uid, node.task_handle, headline, reason)


#: Where both modes log each failed task (``tgs.tasks``, under the ``tgs`` logger that
#: the programs' ``--log-level`` sets).
task_logger = logging.getLogger("tgs.tasks")


def log_task_failure(node: TaskNode) -> None:
    """Log a task whose run failed: WARNING with its headline once it has failed for good,
    INFO when it will run again (its policy retries it) or was cancelled."""
    headline = task_headline(node) or "failed, with no error"
    if node.task_status is not TaskStatus.FAILED:
        task_logger.info(
            "task %s (%s) failed (attempt %d) and runs again: %s",
            node.uid,
            node.task_handle,
            node.attempts,
            headline,
        )
    elif node.end_reason is EndReason.CANCELLED:
        task_logger.info("task %s (%s) %s", node.uid, node.task_handle, headline)
    else:
        task_logger.warning("task %s (%s) failed: %s", node.uid, node.task_handle, headline)


class RetryTimer:
    """Requeues failed tasks after their delay; run :meth:`run` in a nursery."""

    def __init__(self, scheduler: Scheduler) -> None:
        self._scheduler = scheduler
        # (due time, tie-breaker, task): the earliest first.
        self._due: list[tuple[float, int, TaskNode]] = []
        self._order = itertools.count()
        self._wake = trio.Event()

    def schedule(self, node: TaskNode, delay: float) -> None:
        """Requeue ``node`` after ``delay`` seconds (``Scheduler.on_retry``)."""
        due = trio.current_time() + delay
        heapq.heappush(self._due, (due, next(self._order), node))
        if self._due[0][2] is node:  # the new earliest: the sleeper must wake sooner
            self._wake.set()

    async def run(self) -> None:
        """Requeue due tasks forever (until cancelled)."""
        while True:
            deadline = self._due[0][0] if self._due else float("inf")
            with trio.move_on_at(deadline):
                await self._wake.wait()
            self._wake = trio.Event()
            now = trio.current_time()
            while self._due and self._due[0][0] <= now:
                _, _, node = heapq.heappop(self._due)
                self._scheduler.requeue(node)


class GraphRun:
    """Starts a graph's scheduler, says when the graph has ended, and stops it again.

    Usage::

        run = GraphRun(graph)
        try:
            run.start(nursery)        # the retry timer runs in ``nursery``
            await run.ended.wait()
        finally:
            run.stop()
        run.raise_if_stalled()

    With a ``journal``, the graph is first rebuilt from it (or recorded in it, if it is
    new; see :meth:`Journal.bind`), and every change from then on is written to it while
    the run goes on.

    Raises:
        TGSError: the graph is already executing.
        JournalError: the journal cannot be replayed.
    """

    def __init__(self, graph: TaskGraph, journal: Journal | None = None) -> None:
        self._graph = graph
        if graph.scheduler.started:
            raise TGSError(f"{graph.uid} is already executing")
        self._journal = journal
        #: What the journal held (``None`` without one).
        self.resumed: Resumed | None = None
        if journal is not None:
            self.resumed = journal.bind(graph)  # may replace graph.scheduler
        self._scheduler = graph.scheduler
        #: Set once every task has ended, the graph stalled, or :meth:`end` was called.
        self.ended = trio.Event()
        #: True if the graph stalled: unfinished tasks wait on each other in a cycle.
        self.stalled = False
        self._timer = RetryTimer(self._scheduler)

    def start(self, nursery: trio.Nursery) -> None:
        """Hand out ready tasks from now on; retries are timed in ``nursery``."""
        scheduler = self._scheduler
        scheduler.on_graph_end = self.ended.set
        scheduler.on_graph_stalled = self._on_stalled
        scheduler.on_retry = self._timer.schedule
        nursery.start_soon(self._timer.run)
        if self._journal is not None:
            nursery.start_soon(self._journal.keep_flushed)
        scheduler.start()

    def end(self) -> None:
        """End the run early (the caller stops it)."""
        self.ended.set()

    def stop(self) -> None:
        """Stop handing out tasks and unhook the scheduler; calling it again does nothing.

        Call it as soon as the run has ended, and in a ``finally``. With a journal, what
        it buffered is written now (it stays bound: ends that still come are recorded
        until the shell closes it).
        """
        if self._journal is not None:
            self._journal.flush()
        scheduler = self._scheduler
        if not scheduler.started:
            return
        scheduler.stop()
        scheduler.on_graph_end = scheduler.on_graph_stalled = scheduler.on_retry = None

    def raise_if_stalled(self) -> None:
        """Raise GraphStalledError if the graph stalled.

        Raises:
            GraphStalledError: with the uids of the tasks that can never run.
        """
        if self.stalled:
            waiting = TaskStatus.WAITING_FOR_PREDECESSORS
            stuck = [n.uid for n in self._graph.nodes.values() if n.task_status is waiting]
            raise GraphStalledError(stuck)

    def _on_stalled(self) -> None:
        self.stalled = True
        self.ended.set()
