"""The scheduling core: every change of graph state, as plain synchronous calls.

Rules
-----
1. Nothing here awaits, locks or imports trio. Trio runs one task at a time between
   checkpoints, so a synchronous method is atomic; the shells around the core (in-process
   slots, remote sessions) do the waiting and the I/O.
2. Every event costs O(1), or O(successors) when a task ends: conditions keep counts,
   tasks keep the number of conditions they still wait for, loops keep FIFO queues.
   No scan of the graph happens on any event.
3. A task's status changes only here and in :class:`~.loops.LoopQueue` (which marks a task
   in progress when it hands it out). :meth:`Scheduler.check_invariants` states what
   must hold between events; the tests call it after every step.

A task moves: ``waiting_for_predecessors`` (or ``created`` before the graph starts) →
``ready_for_execution`` (queued in its loop) → ``in_progress`` (handed to a claimant) →
``success`` | ``failed``. A task whose condition fails goes straight to
``precondition_failed``, and so on downstream, without running.

Three detours lead back from ``in_progress``:

- *handed back* (its claimant stopped cleanly, or the caller cancelled execution): it goes
  back to the front of its queue, and the run does not count as an attempt;
- *lost* with its worker: it runs again. Blame goes on evidence only: a task that ran
  alone on the lost worker is charged the loss, and after ``max_lost_attempts`` charged
  losses it fails ("killed its worker 3 times"); tasks that shared the worker are charged
  nothing but become *suspects*, which the shell hands out only alone, so that the next
  loss, if any, names the task that causes it. A suspect that ends normally is cleared;
- *failed* with attempts left under its function's :class:`~.policy.TaskPolicy`: it is
  ``ready_for_execution`` but out of its queue until the shell's retry timer puts it back
  (``on_retry`` tells the shell the delay; :meth:`Scheduler.requeue` ends it).

:meth:`Scheduler.cancel` ends a task that is not running at once (``failed``, with the
reason as its trace); a running one is asked to stop through its claimant and ends when the
claimant confirms it stopped (:meth:`Scheduler.task_cancelled`), so its loop's slot stays
taken until the task has really ended.

A sync task function runs in a thread, which nothing can stop: at its timeout, or when it
is cancelled, the task ends at once (``task_failed``/``task_cancelled`` with
``slot_busy=True``) while the thread runs on. Its slot then stays taken (``LoopQueue.busy``,
still counted in ``running``) until the claimant says the thread returned
(:meth:`Scheduler.slot_freed`), so a loop never runs more than its concurrency, threads
included.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any, Final

from ...shared.errors import TGSInternalError
from ...shared.states import FINAL_TASK_STATUSES, ConditionStatus, EndReason, TaskStatus
from .nodes import EarlierRun

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence

    from .conditions import GenericSchedulingCondition
    from .loops import LoopQueue
    from .nodes import TaskNode
    from .recording import GraphRecorder
    from .results import ResultHolder

#: A task lost with its worker this many times fails (see ``Scheduler.task_lost``).
DEFAULT_MAX_LOST_ATTEMPTS: Final = 3

# The states as module constants: reading one off its enum class goes through
# EnumType.__getattr__ (about 250 ns in Python 3.11, more than the rest of a status
# change), and the scheduler reads them several times per task.
_CREATED: Final = TaskStatus.CREATED
_WAITING: Final = TaskStatus.WAITING_FOR_PREDECESSORS
_READY: Final = TaskStatus.READY_FOR_EXECUTION
_IN_PROGRESS: Final = TaskStatus.IN_PROGRESS
_SUCCESS: Final = TaskStatus.SUCCESS
_FAILED: Final = TaskStatus.FAILED
_PRECONDITION_FAILED: Final = TaskStatus.PRECONDITION_FAILED
_COND_WAITING: Final = ConditionStatus.WAITING_ON_TASKS
_SATISFIED: Final = ConditionStatus.SATISFIED
_COND_FAILED: Final = ConditionStatus.FAILED
_SUCCEEDED: Final = EndReason.SUCCEEDED
_SKIPPED: Final = EndReason.PRECONDITION_FAILED


class Scheduler:
    """Owns the state transitions of one graph's tasks and conditions.

    It is also the shells' one way into the core, as ``graph.scheduler``: they start and
    stop it, take tasks from its loop queues (``loops``), and report what became of each
    (``task_succeeded``, ``task_failed``, ``task_marked_failed``, ``task_cancelled``,
    ``hand_back``, ``task_lost``, ``requeue``). The views read it and change nothing.
    """

    def __init__(self, loops: Mapping[str, LoopQueue], clock: Callable[[], float]) -> None:
        #: One queue per worker loop, by name.
        self.loops = loops
        #: Timestamps the tasks' ends (injected: the core reads no clock of its own).
        self.clock = clock
        #: Tasks not in a final state.
        self.unfinished = 0
        #: Tasks ready or in progress: while this is zero and tasks are unfinished, the
        #: graph can never move again.
        self.runnable = 0
        #: True between start() and stop(): ready tasks may be handed out.
        self.started = False
        #: Called once the last unfinished task has ended (while started).
        self.on_graph_end: Callable[[], None] | None = None
        #: Called when unfinished tasks remain but none can ever run (a cycle).
        self.on_graph_stalled: Callable[[], None] | None = None
        #: Called with a failed task and a delay in seconds when it will run again; the
        #: shell calls :meth:`requeue` after the delay. Without it, nothing is retried.
        self.on_retry: Callable[[TaskNode, float], None] | None = None
        #: A task lost with its worker this many times fails instead of running again.
        self.max_lost_attempts = DEFAULT_MAX_LOST_ATTEMPTS
        #: Failed tasks waiting out their retry delay.
        self.retrying: set[TaskNode] = set()
        #: Running tasks asked to stop, with why: they end when their claimant confirms.
        self.cancelling: dict[TaskNode, str] = {}
        #: Told of the graph's growth and of every task's end (a run's journal), if any.
        self.recorder: GraphRecorder | None = None
        #: Tasks that ended ``failed``, in the order they did, and how many ended
        #: ``precondition_failed``: counted where they end (never on a success), so that
        #: a run's summary needs no pass over the graph.
        self.failed: list[TaskNode] = []
        self.skipped = 0
        #: Keeps results under a memory limit and releases them (see core/results.py);
        #: ``None``: every result stays in its node, as in the seed.
        self.results: ResultHolder | None = None
        # The same holder when it releases results, else None: the hooks of release cost
        # one test per event when it is off.
        self._releases: ResultHolder | None = None

    def attach_results(self, holder: ResultHolder | None) -> None:
        """Keep results with ``holder`` from now on (``None``: in the nodes, as the seed).
        The caller has let it adopt the tasks made so far (:meth:`ResultHolder.adopt`)."""
        self.results = holder
        self._releases = holder if holder is not None and holder.release else None

    # -- building ----------------------------------------------------------------------

    def add_task(self, node: TaskNode, conditions: Sequence[GenericSchedulingCondition]) -> None:
        """Add a new task that waits on ``conditions`` (possibly none), which becomes its
        ``waits_on`` (a list, or a condition's :meth:`add_condition` tuple)."""
        if conditions:
            node.waits_on = conditions
        unsatisfied = 0
        failed = False
        for condition in conditions:
            condition.successors.append(node)
            status = condition.condition_status
            if status is _COND_FAILED:
                failed = True
            elif status is not _SATISFIED:
                unsatisfied += 1
        node._unsatisfied = unsatisfied
        if failed:
            # It can never run; it has no successors yet, so nothing cascades.
            node.task_status = _PRECONDITION_FAILED
            node.end_reason = _SKIPPED
            node.ended_at = self.clock()
            self.skipped += 1
            return
        if self._releases is not None:
            self._releases.task_added(node, conditions)
        self.unfinished += 1
        if unsatisfied == 0:
            self._make_ready(node)

    def add_free_task(self, node: TaskNode) -> None:
        """:meth:`add_task` of a task that waits on nothing: it is ready at once."""
        self.unfinished += 1
        self.runnable += 1
        # _make_ready's steps and LoopQueue.push's, inlined: two calls fewer per task of
        # a big build.
        queue = node._loop
        if self.started:
            node.task_status = _READY
            queue.push(node)
        else:  # stamped when the graph starts; no claimant waits for it before
            node.task_status = _CREATED
            queue.ready.append(node)

    def add_condition(
        self, condition: GenericSchedulingCondition, predecessors: list[TaskNode]
    ) -> tuple[GenericSchedulingCondition]:
        """Link a new condition to its predecessors, counting those already ended.

        ``predecessors`` are appended to ``condition.predecessors``, unless they are that
        very list (a condition that adopted a fresh list of its own).

        Returns:
            ``(condition,)``: the ``waited_on_by`` of each predecessor that no other
            condition waits on (one tuple for all, not a list each: 5,000 leaves joined
            by one task share it), which a task waiting on this condition alone may take
            as its ``waits_on`` (a chain's link: one object fewer per task).
        """
        if predecessors is not condition.predecessors:
            condition.predecessors.extend(predecessors)
        alone = (condition,)
        ended = False
        for node in predecessors:
            # _link's steps but the append, inlined: a graph of chains links one per task.
            waited_on_by = node.waited_on_by
            if waited_on_by.__class__ is list:
                waited_on_by.append(condition)
            elif waited_on_by:  # another condition's shared tuple: a list of its own now
                node.waited_on_by = [*waited_on_by, condition]
            else:  # the first
                node.waited_on_by = alone
            status = node.task_status
            if status is _SUCCESS or status is _FAILED or status is _PRECONDITION_FAILED:
                condition._record_end(status is _SUCCESS)
                ended = True
        # A new condition has no successors yet, so settling it cascades nowhere. With
        # predecessors none of which has ended, it waits (every mode needs one end at
        # least): no need to ask.
        if ended or not predecessors:
            condition.condition_status = condition._evaluate()
        if self.recorder is not None:
            self.recorder.condition_created(condition)
        return alone

    def add_predecessor(self, condition: GenericSchedulingCondition, node: TaskNode) -> None:
        """Make ``node`` one more predecessor of a condition that is still waiting."""
        self._link(condition, node)
        if self.recorder is not None:
            self.recorder.predecessor_added(condition, node)
        if self._releases is not None:
            self._releases.predecessor_added(condition, node)
        failed: list[TaskNode] = []
        self._settle(condition, failed)
        self._cascade(failed)
        self._check_progress()

    def _link(self, condition: GenericSchedulingCondition, node: TaskNode) -> None:
        condition.predecessors.append(node)
        waited_on_by = node.waited_on_by
        if isinstance(waited_on_by, list):
            waited_on_by.append(condition)
        else:  # the shared empty tuple, or a condition's (see add_condition): a list now
            node.waited_on_by = [*waited_on_by, condition]
        if node.task_status in FINAL_TASK_STATUSES:
            condition._record_end(node.task_status is _SUCCESS)

    # -- running -----------------------------------------------------------------------

    def start(self) -> None:
        """Let ready tasks be handed out; tasks created earlier become ready_for_execution
        (and their ``queued_at`` says now)."""
        self.started = True
        now = self.clock()  # when the tasks queued meanwhile became ready for execution
        for queue in self.loops.values():
            for node in queue.ready:
                node.task_status = _READY
                node.queued_at = now
            for node in queue.suspects:
                node.task_status = _READY
                node.queued_at = now
        for queue in self.loops.values():
            queue.open_up()
        self._check_progress()

    def stop(self) -> None:
        """Stop handing out tasks. Ready tasks go back to ``created``; tasks waiting out a
        retry delay are queued again at once (the timer that would have done it is gone)."""
        self.started = False
        for queue in self.loops.values():
            queue.close()
        for node in list(self.retrying):
            self.requeue(node)
        for queue in self.loops.values():
            for node in queue.ready:
                node.task_status = _CREATED
            for node in queue.suspects:
                node.task_status = _CREATED

    def task_marked_failed(self, node: TaskNode) -> None:
        """A task set its own status to ``failed`` and returned (the seed allowed it): it
        failed, with no trace; retried like any failure."""
        node.task_status = _IN_PROGRESS  # the core, not the task, ends it
        self.task_failed(node, None, EndReason.MARKED_FAILED)

    def task_succeeded(self, node: TaskNode, result: Any) -> None:
        """A task's function returned ``result``."""
        results = self.results
        if results is None:
            node._result = result
        else:
            results.put(node, result)
        if node.exception_trace is not None:  # it succeeded on a retry: no error now
            node.exception_trace = None
            node.task_exception = None
        if self.cancelling:  # rare: a cancel that came too late changes nothing
            self.cancelling.pop(node, None)
        # _end_running's steps for a success, inlined (the path of every task): a success
        # fails no condition, so nothing cascades beyond the conditions it counts in.
        if node.task_status is not _IN_PROGRESS:
            self._expect_in_progress(node)
        node.task_status = _SUCCESS
        node.end_reason = _SUCCEEDED
        node.ended_at = self.clock()
        claimant = node._claimant
        node._claimant = None
        self.unfinished -= 1
        self.runnable -= 1
        if self.recorder is not None:
            self.recorder.task_ended(node)
        if self._releases is not None:
            self._releases.task_ended(node)
        queue = node._loop
        queue.running -= 1  # LoopQueue.release, inlined
        if queue._claimants:
            queue._dispatch(claimant)
        for condition in node.waited_on_by:
            condition._completions += 1
            condition._successes += 1
            if condition.condition_status is _COND_WAITING:
                # What condition._evaluate() says after a success, asked here: it holds
                # once enough predecessors count (a success fails no condition), and
                # until then (5,000 leaves joined by one task: 4,999 times) nothing is
                # called.
                mode = condition.mode
                needed = len(condition.predecessors) if mode.target is None else mode.target
                counted = condition._successes if mode.require_success else condition._completions
                if counted >= needed:
                    self._satisfy(condition)
        if self.started and (self.unfinished == 0 or self.runnable == 0):
            self._check_progress()

    def task_failed(
        self,
        node: TaskNode,
        exception_trace: str | None,
        reason: EndReason = EndReason.RAISED,
        *,
        slot_busy: bool = False,
        exception: BaseException | None = None,
    ) -> None:
        """A task's run failed: ``exception_trace`` is the formatted traceback (or the
        sentence saying why), ``reason`` which kind of failure it was, ``exception`` the
        exception it raised, if any (kept as ``node.task_exception``).

        With attempts left under its function's policy, the task runs again after the
        policy's delay (see ``on_retry``); else it ends as failed. With ``slot_busy``
        (it timed out while its sync function runs on in a thread) its slot stays taken
        until :meth:`slot_freed`.
        """
        policy = node.graph.task_functions[node.task_handle].policy
        failures = node.attempts - node.losses - node.shared_losses
        cancelled = self.cancelling.pop(node, None) is not None
        if failures < policy.attempts and self.on_retry is not None and not cancelled:
            self._expect_in_progress(node)
            self._record_run(node, reason, exception_trace)
            node.exception_trace = exception_trace  # the last error stays visible
            node.task_exception = exception
            node._suspect = False  # it ended normally: whatever killed workers, not this
            self._leave_running(node)
            self.retrying.add(node)
            if slot_busy:
                node._loop.keep_busy()
            else:
                node._loop.release()
            self.on_retry(node, policy.retry_delay(failures))
            return
        self._end_running(node, _FAILED, exception_trace, reason, slot_busy, exception)

    def task_cancelled(self, node: TaskNode, *, slot_busy: bool = False) -> None:
        """A running task asked to stop (:meth:`cancel`) has ended; it ends as failed.

        With ``slot_busy`` (its sync function runs on in a thread) its slot stays taken
        until :meth:`slot_freed`.
        """
        reason = self.cancelling.pop(node, "cancelled")
        trace = cancelled_trace(reason)
        self._end_running(node, _FAILED, trace, EndReason.CANCELLED, slot_busy)

    def slot_freed(self, node: TaskNode) -> None:
        """The slot that ``node`` ended with ``slot_busy`` is free: the thread its function
        ran on in has returned (or whoever ran it is gone). The loop may use it again.

        Raises:
            TGSInternalError: no slot of ``node``'s loop was kept busy.
        """
        queue = node._loop
        if queue.busy <= 0:
            raise TGSInternalError(f"slot of task {node.uid} freed, but none is kept busy")
        queue.free_busy()

    def hand_back(self, node: TaskNode) -> None:
        """A running task was given back unfinished (its claimant stopped cleanly, or the
        caller cancelled execution): it runs again, and this run was no attempt."""
        self._expect_in_progress(node)
        node.attempts -= 1
        self._requeue_running(node)

    def task_lost(
        self, node: TaskNode, reason: str, *, alone: bool = True, started: bool = True
    ) -> None:
        """A running task's worker was lost (``reason`` names the worker and why).

        With ``alone`` (the worker ran nothing else) the task is charged the loss, and
        after ``max_lost_attempts`` charged losses it fails. Else nobody can tell which of
        the worker's tasks killed it: none is charged (``shared_losses`` counts the run,
        and it counts against no retry policy). Either way a task that runs again is a
        suspect: handed out only alone.

        Without ``started`` (the worker never said it started the task, and held others)
        the hand-out was no run: it counts no attempt and leaves no earlier run, but the
        task is still a suspect, since it may have started and killed the worker before
        the word came.
        """
        self._expect_in_progress(node)
        if not started and not alone:
            node.attempts -= 1
            node._suspect = True
            self._requeue_running(node)
            return
        if node in self.cancelling:  # it was being cancelled: it has stopped, so it ends
            node.losses += alone
            self.task_cancelled(node)
            return
        if alone:
            node.losses += 1
            if node.losses >= self.max_lost_attempts:
                times = "once" if node.losses == 1 else f"{node.losses} times"
                trace = f"killed its worker {times} (the last: {reason})\n"
                self._end_running(node, _FAILED, trace, EndReason.WORKER_LOST)
                return
        else:
            node.shared_losses += 1
        node._suspect = True
        self._record_run(node, EndReason.WORKER_LOST, reason)
        self._requeue_running(node)

    def requeue(self, node: TaskNode) -> None:
        """A failed task's retry delay is over: queue it again (unless it was cancelled)."""
        if node in self.retrying:
            self.retrying.discard(node)
            node._loop.push(node)

    def cancel(self, node: TaskNode, reason: str) -> bool:
        """Cancel a task: at once if it is not running, else through its claimant.

        Returns:
            False if the task had ended already, else True.
        """
        status = node.task_status
        if status in FINAL_TASK_STATUSES:
            return False
        if status is _IN_PROGRESS:
            if node not in self.cancelling:
                self.cancelling[node] = reason
                assert node._claimant is not None, node
                node._claimant.cancel(node)
            return True
        if status is not _WAITING:
            self.runnable -= 1
            if node in self.retrying:
                self.retrying.discard(node)
            else:
                node._loop.remove(node)  # ready (or created): it is queued
        node.exception_trace = cancelled_trace(reason)
        node.task_exception = None
        self._end_unstarted(node, _FAILED, EndReason.CANCELLED, self.clock())
        return True

    # -- resuming from a journal -------------------------------------------------------

    def restore_end(
        self, node: TaskNode, status: TaskStatus, reason: EndReason, ended_at: float | None
    ) -> None:
        """Replay a recorded end while the graph is rebuilt from a journal (not started).

        The caller has set the node's outcome (result, trace, attempts, ...). The task is
        waiting or queued, as replaying the journal in order left it; it ends as it did
        in the recorded run, and its successors follow as they did then. A queued task
        stays in its queue until :meth:`finish_restore` drops every ended one, so that
        replaying costs O(1) per end.

        Raises:
            TGSInternalError: the graph has started, or the task has ended already.
        """
        if self.started or node.task_status in FINAL_TASK_STATUSES:
            raise TGSInternalError(f"cannot restore the end of {node.uid} ({node.task_status})")
        if node.task_status is not _WAITING:
            self.runnable -= 1
        self._end_unstarted(node, status, reason, ended_at)

    def finish_restore(self) -> None:
        """Drop from the loop queues the tasks :meth:`restore_end` ended. O(queued)."""
        for queue in self.loops.values():
            queue.drop_ended()

    def _end_unstarted(
        self, node: TaskNode, status: TaskStatus, reason: EndReason, ended_at: float | None
    ) -> None:
        node.task_status = status
        if status is _FAILED:
            self.failed.append(node)
        node.end_reason = reason
        node.ended_at = ended_at
        self.unfinished -= 1
        if self.recorder is not None:
            self.recorder.task_ended(node)
        if self._releases is not None:
            self._releases.task_ended(node)
        self._cascade([node])
        self._check_progress()

    def _record_run(self, node: TaskNode, reason: EndReason, error: str | None) -> None:
        """Keep a run that ended but is followed by another (a retry, a run after a
        loss), for the timeline and the report; only tasks that run again pay for it."""
        run = EarlierRun(node.worker, node.started_at, self.clock(), reason, error)
        if node.earlier_runs is None:
            node.earlier_runs = [run]
        else:
            node.earlier_runs.append(run)

    def _requeue_running(self, node: TaskNode) -> None:
        if node in self.cancelling:  # it was being cancelled: it has stopped, so it ends
            self.task_cancelled(node)
            return
        self._leave_running(node)
        queue = node._loop
        queue.running -= 1
        if node._suspect:
            queue.push_suspect(node)  # in the order they were lost
        else:
            queue.push_front(node)

    def _leave_running(self, node: TaskNode) -> None:
        node.task_status = _READY if self.started else _CREATED
        node._claimant = None

    def _end_running(
        self,
        node: TaskNode,
        status: TaskStatus,
        trace: str | None,
        reason: EndReason,
        slot_busy: bool = False,
        exception: BaseException | None = None,
    ) -> None:
        self._expect_in_progress(node)
        node.task_status = status
        if status is _FAILED:
            self.failed.append(node)
        node.end_reason = reason
        node.ended_at = self.clock()
        if trace is not None:
            node.exception_trace = trace
            node.task_exception = exception
        claimant = node._claimant
        node._claimant = None
        self.unfinished -= 1
        self.runnable -= 1
        if self.recorder is not None:
            self.recorder.task_ended(node)
        if self._releases is not None:
            self._releases.task_ended(node)
        if slot_busy:
            node._loop.keep_busy()
        else:
            node._loop.release(claimant)
        self._cascade([node])
        self._check_progress()

    @staticmethod
    def _expect_in_progress(node: TaskNode) -> None:
        if node.task_status is not _IN_PROGRESS:
            raise TGSInternalError(
                f"task {node.uid} ended while {node.task_status}, not in progress"
            )

    # -- propagation -------------------------------------------------------------------

    def _cascade(self, ended: list[TaskNode]) -> None:
        """Count each ended task in the conditions that wait on it, and so on downstream.

        ``ended`` is a work list, not recursion: a failure can run down a chain of a
        million tasks.
        """
        while ended:
            node = ended.pop()
            succeeded = node.task_status is _SUCCESS
            for condition in node.waited_on_by:
                condition._record_end(succeeded)
                if condition.condition_status is _COND_WAITING:
                    self._settle(condition, ended)

    def _settle(self, condition: GenericSchedulingCondition, failed: list[TaskNode]) -> None:
        """Re-evaluate a waiting condition and pass a final outcome to its successors.

        Successors that end as precondition_failed are appended to ``failed``.
        """
        status = condition._evaluate()
        if status is _COND_WAITING:
            return
        if status is _SATISFIED:
            self._satisfy(condition)
            return
        condition.condition_status = status
        for successor in condition.successors:
            if successor.task_status is _WAITING:
                successor.task_status = _PRECONDITION_FAILED
                successor.end_reason = _SKIPPED
                successor.ended_at = self.clock()
                self.skipped += 1
                self.unfinished -= 1
                if self._releases is not None:
                    self._releases.task_ended(successor)
                failed.append(successor)

    def _satisfy(self, condition: GenericSchedulingCondition) -> None:
        """A waiting condition holds: its successors wait on one condition fewer."""
        condition.condition_status = _SATISFIED
        for successor in condition.successors:
            if successor.task_status is _WAITING:
                successor._unsatisfied -= 1
                if successor._unsatisfied == 0:
                    # _make_ready's steps, inlined: a chain readies a task per task.
                    successor.task_status = _READY if self.started else _CREATED
                    self.runnable += 1
                    successor._loop.push(successor)

    def _make_ready(self, node: TaskNode) -> None:
        node.task_status = _READY if self.started else _CREATED
        self.runnable += 1
        node._loop.push(node)

    def _check_progress(self) -> None:
        if not self.started:
            return
        if self.unfinished == 0:
            if self.on_graph_end is not None:
                self.on_graph_end()
        elif self.runnable == 0 and self.on_graph_stalled is not None:
            self.on_graph_stalled()

    # -- checking ----------------------------------------------------------------------

    def check_invariants(
        self, nodes: Iterable[TaskNode], conditions: Iterable[GenericSchedulingCondition]
    ) -> None:
        """Assert everything that must hold between events. O(graph): for tests only.

        Raises:
            AssertionError: naming the first invariant that does not hold.
        """
        nodes = list(nodes)
        if self.results is not None:
            self.results.check_invariants(nodes)
        failed = [n for n in nodes if n.task_status is _FAILED]
        assert sorted(map(id, self.failed)) == sorted(map(id, failed)), "failed tasks"
        skipped = [n for n in nodes if n.task_status is _PRECONDITION_FAILED]
        assert self.skipped == len(skipped), (self.skipped, len(skipped))
        unfinished = [n for n in nodes if n.task_status not in FINAL_TASK_STATUSES]
        assert self.unfinished == len(unfinished), (self.unfinished, len(unfinished))
        active = (_READY, _CREATED, _IN_PROGRESS)
        runnable = [n for n in nodes if n.task_status in active]
        assert self.runnable == len(runnable), (self.runnable, len(runnable))
        queued = {id(n) for queue in self.loops.values() for n in queue.ready}
        suspects = {id(n) for queue in self.loops.values() for n in queue.suspects}
        assert not queued & suspects, "a task is both ready and a suspect"
        for queue in self.loops.values():
            assert not any(n._suspect for n in queue.ready), queue
            assert all(n._suspect for n in queue.suspects), queue
        queued |= suspects
        # A suspect runs alone: its claimant holds no other task.
        in_progress = [n for n in nodes if n.task_status is _IN_PROGRESS]
        held = Counter(id(n._claimant) for n in in_progress if n._claimant is not None)
        for node in in_progress:
            if node._suspect and node._claimant is not None:
                assert held[id(node._claimant)] == 1, f"suspect {node} does not run alone"
        for node in self.retrying:
            assert node.task_status in active, node
            assert id(node) not in queued, node
        for node in self.cancelling:
            assert node.task_status is _IN_PROGRESS, node
        running = sum(queue.running - queue.busy for queue in self.loops.values())
        # Every runnable task is in exactly one place: a queue, the retry set, or a claimant.
        assert len(queued) + len(self.retrying) + running == self.runnable, self.runnable
        for queue in self.loops.values():
            assert 0 <= queue.running <= queue.concurrency, queue
            # A slot kept busy by a thread that outlived its task is still a slot taken.
            assert 0 <= queue.busy <= queue.running, queue
            in_progress = [n for n in nodes if n._loop is queue and n.task_status is _IN_PROGRESS]
            assert queue.running == len(in_progress) + queue.busy, (queue, len(in_progress))
            ready_status = _READY if self.started else _CREATED
            assert all(n.task_status is ready_status for n in queue.ready), queue
            assert all(n.task_status is ready_status for n in queue.suspects), queue
            if self.started:
                # A claimant may only wait while nothing it could take is ready.
                assert not (
                    queue.waiting_claimants and queue.ready and queue.running < queue.concurrency
                ), queue
        for node in nodes:
            open_conditions = [c for c in node.waits_on if c.condition_status is not _SATISFIED]
            if node.task_status is _WAITING:
                assert node._unsatisfied == len(open_conditions) > 0, node
                assert all(c.condition_status is _COND_WAITING for c in open_conditions), node
            elif node.task_status is _FAILED and node.attempts == 0:
                pass  # cancelled before it could run: its conditions may still be open
            elif node.task_status is not _PRECONDITION_FAILED:
                assert not open_conditions, node
        for condition in conditions:
            ended = [n for n in condition.predecessors if n.task_status in FINAL_TASK_STATUSES]
            successes = [n for n in ended if n.task_status is _SUCCESS]
            assert condition.completions == len(ended), condition
            assert condition.successes == len(successes), condition
            if condition.condition_status is _COND_WAITING:
                assert condition._evaluate() is _COND_WAITING, condition


#: What ``exception_trace`` says of a cancelled task, before the reason it was given.
_CANCELLED_PREFIX: Final = "cancelled: "


def cancelled_trace(reason: str) -> str:
    """The ``exception_trace`` of a task cancelled for ``reason``."""
    return f"{_CANCELLED_PREFIX}{reason}\n"


def cancel_reason(node: TaskNode) -> str | None:
    """The reason a cancelled task was given; ``None`` if it was not cancelled."""
    trace = node.exception_trace
    if node.end_reason is not EndReason.CANCELLED or trace is None:
        return None
    return trace.removeprefix(_CANCELLED_PREFIX).strip()
