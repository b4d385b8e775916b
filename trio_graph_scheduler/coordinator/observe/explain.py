"""Why has this task not run (yet)? One short paragraph, in words a user reads at once.

:func:`explain_task` looks at one task and what holds it: the conditions it waits on
(and how their predecessors stand), its loop's queue and slots, the workers connected
(in distributed mode), a retry backoff, a cancel in flight. It is a query, not part of
the scheduling core: it costs O(predecessors of its conditions + its place in the
queue), and changes nothing.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Protocol

from ...shared.errors import UnknownUidError
from ...shared.states import FINAL_TASK_STATUSES, ConditionStatus, TaskStatus
from ..core.nodes import LOCAL_WORKER
from ..core.scheduler import cancel_reason
from .wording import (
    STATUS_WORDS,
    format_seconds,
    plural,
    task_headline,
    task_label,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from ..core.conditions import GenericSchedulingCondition
    from ..core.nodes import TaskNode
    from ..core.scheduler import Scheduler
    from ..task_graph import TaskGraph

#: The order in which predecessor counts are listed: ended first, then what is pending.
_COUNT_ORDER = ("succeeded", "failed", "skipped", "running", "retrying", "ready", "waiting")


class ConnectedWorker(Protocol):
    """A connected worker, as :func:`explain_task` needs it (``WorkerRecord`` fits)."""

    @property
    def worker_id(self) -> str: ...

    @property
    def loops(self) -> Sequence[str]: ...


class LostWorker(Protocol):
    """A worker that left, as :func:`explain_task` needs it (``WorkerRecord`` fits)."""

    @property
    def worker_id(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def left_because(self) -> str | None: ...

    @property
    def lost_while_running(self) -> list[tuple[str, str]]: ...


def explain_task(
    graph: TaskGraph,
    uid: str,
    *,
    workers: Sequence[ConnectedWorker] | None = None,
    now: float | None = None,
    lost_workers: Iterable[LostWorker] = (),
) -> str:
    """Say, in one short paragraph, why a task has not run yet, or how it ended.

    Args:
        graph: the graph the task belongs to (the coordinator's, in distributed mode).
        uid: a task's uid, or the key it was created with (``create_task(..., key=K)``;
            a uid is looked up first). A condition's uid is accepted too: the answer then
            says what the condition still needs.
        workers: the workers connected now, each with ``worker_id`` and ``loops``;
            ``None`` means in-process, where a loop's own slots always serve it.
        now: the current ``time.time()``, to say how long a task has been running;
            defaults to the clock.
        lost_workers: the run's workers that left (``Coordinator.workers.values()``):
            each one lost while running the task is named.

    Returns:
        The explanation, starting with the task's uid and function.

    Raises:
        UnknownUidError: no task or condition of the graph has this uid, nor any task
            this key.
    """
    node = graph.nodes.get(uid) if isinstance(uid, str) else None
    if node is None and isinstance(uid, str):
        node = graph.get_task_by_key(uid)
    if node is None:
        condition = graph.conditions.get(uid) if isinstance(uid, str) else None
        if condition is None:
            raise UnknownUidError(uid)
        return _explain_condition(condition, graph.scheduler)
    return _explain_node(node, workers, now) + _losses(node, lost_workers)


def _explain_node(
    node: TaskNode, workers: Sequence[ConnectedWorker] | None, now: float | None
) -> str:
    scheduler = node.graph.scheduler
    status = node.task_status
    if status in FINAL_TASK_STATUSES:
        return _ended(node)
    if status is TaskStatus.WAITING_FOR_PREDECESSORS:
        return _waiting(node, scheduler)
    if status is TaskStatus.IN_PROGRESS:
        return _running(node, scheduler, workers, time.time() if now is None else now)
    if node in scheduler.retrying:
        return _retrying(node)
    return _ready(node, scheduler, workers)


def _losses(node: TaskNode, lost_workers: Iterable[LostWorker]) -> str:
    """A sentence per worker lost while running the task; the first says which tasks
    shared that worker, since the blame depends on it."""
    sentences = []
    for record in lost_workers:
        tasks = record.lost_while_running
        if not any(uid == node.uid for uid, _ in tasks):
            continue
        others = len(tasks) - 1
        beside = f", beside {plural(others, 'other task')}" if others else ", alone"
        sentences.append(
            f"Worker {record.worker_id} ({record.name}) was lost while running task "
            f"{node.uid} (function {node.task_handle}){beside}: {record.left_because}."
        )
    if not sentences:
        return ""
    queued = node.task_status in (TaskStatus.READY_FOR_EXECUTION, TaskStatus.CREATED)
    if node._suspect and queued and node not in node.graph.scheduler.retrying:
        sentences.append(
            "It is a suspect: it runs again alone, on the next worker that has nothing else to do."
        )
    return " " + " ".join(sentences)


# -- ended ------------------------------------------------------------------------------


def _ended(node: TaskNode) -> str:
    label = task_label(node)
    if node.task_status is TaskStatus.PRECONDITION_FAILED:
        return f"{label} will not run: {_failed_condition_clause(node)}."
    reason = cancel_reason(node)
    if reason is not None:
        when = f"after {plural(node.attempts, 'run')}" if node.attempts else "before it ran"
        return f"{label} was cancelled {when}: {reason}."
    details = ", ".join(_run_details(node))
    if node.task_status is TaskStatus.SUCCESS:
        return f"{label} has run and succeeded ({details})."
    headline = task_headline(node)
    if headline is None:  # the seed let a task mark itself failed and return
        return f"{label} has run and failed ({details}); it marked itself failed, with no error."
    return f"{label} has run and failed ({details}): {headline}"


def _run_details(node: TaskNode) -> list[str]:
    """Where the last run happened, which attempt it was, how long it took."""
    details = [_where(node.worker, None)] if node.worker else []
    details.append(_attempt(node))
    if node.started_at is not None and node.ended_at is not None:
        details.append(format_seconds(max(0.0, node.ended_at - node.started_at)))
    return details


def _attempt(node: TaskNode) -> str:
    allowed = node.graph.task_functions[node.task_handle].policy.attempts
    return f"attempt {node.attempts}" + (f" of {allowed}" if allowed > 1 else "")


def _where(worker: str | None, workers: Sequence[ConnectedWorker] | None) -> str:
    if worker == LOCAL_WORKER:
        return "in this process"
    for candidate in workers or ():
        # A WorkerRecord says ``name``, a WorkerSession ``worker_name``: take either.
        name = getattr(candidate, "name", None) or getattr(candidate, "worker_name", None)
        if candidate.worker_id == worker and name:
            return f"on {worker} ({name})"
    return f"on {worker}"


def _failed_condition_clause(node: TaskNode) -> str:
    failed = [c for c in node.waits_on if c.condition_status is ConditionStatus.FAILED]
    if not failed:
        return "a condition it waited on failed"
    condition = failed[0]
    scheduler = node.graph.scheduler
    clause = f"{condition.mode} ({condition.uid}) failed: {_counts(condition, scheduler)}"
    first = next(
        (p for p in condition.predecessors if p.task_status is TaskStatus.FAILED),
        next((p for p in condition.predecessors if p.task_status in FINAL_TASK_STATUSES), None),
    )
    if first is not None and first.task_status is TaskStatus.FAILED:
        why = task_headline(first) or "failed"
        clause += f"; the first failure: {task_label(first)}: {why}"
    elif first is not None and first.task_status is TaskStatus.PRECONDITION_FAILED:
        # The cause lies further up the chain: say where to look next.
        clause += f"; {task_label(first)} was skipped too (explain it to see why)"
    if len(failed) > 1:
        clause += f" (and {plural(len(failed) - 1, 'more condition')} failed)"
    return clause


# -- waiting on conditions --------------------------------------------------------------


def _waiting(node: TaskNode, scheduler: Scheduler) -> str:
    open_conditions = [
        c for c in node.waits_on if c.condition_status is ConditionStatus.WAITING_ON_TASKS
    ]
    if not open_conditions:  # cannot happen while the scheduler's invariants hold
        return f"{task_label(node)} waits on no open condition; it should be ready."
    clauses = [_need(c, scheduler) for c in open_conditions]
    return f"{task_label(node)} has not run yet: it " + "; and it ".join(clauses) + "."


def _need(condition: GenericSchedulingCondition, scheduler: Scheduler) -> str:
    """What an open condition still needs, as a clause that starts with its verb."""
    predecessors = condition.predecessors
    if condition.mode.require_success and condition.mode.target is None:
        # Mostly the implicit condition of create_task(..., waits_on=[task uids]): it
        # reads as the tasks themselves, not as a mode.
        if len(predecessors) == 1:
            (only,) = predecessors
            return f"waits for {task_label(only)} to succeed, which {_pending(only, scheduler)}"
        counts = _counts(condition, scheduler, with_total=False)
        return f"waits for {len(predecessors)} tasks to succeed ({condition.uid}): {counts}"
    return f"waits on {condition.mode} ({condition.uid}): {_counts(condition, scheduler)}"


def _pending(node: TaskNode, scheduler: Scheduler) -> str:
    word = _word(node, scheduler)
    return {
        "running": "is running",
        "retrying": "is waiting to retry",
        "ready": "is ready to run",
        "waiting": "itself waits on other tasks",
    }.get(word, f"has {word}")


def _word(node: TaskNode, scheduler: Scheduler) -> str:
    if node in scheduler.retrying:  # ready_for_execution, but out of its queue for now
        return "retrying"
    return STATUS_WORDS[node.task_status]


def _counts(
    condition: GenericSchedulingCondition, scheduler: Scheduler, *, with_total: bool = True
) -> str:
    """``1 of 3 succeeded, 1 running, 1 waiting``: the predecessors, counted by status."""
    tally = dict.fromkeys(_COUNT_ORDER, 0)
    for predecessor in condition.predecessors:
        tally[_word(predecessor, scheduler)] += 1
    total = len(condition.predecessors)
    if condition.mode.require_success:
        succeeded = tally.pop("succeeded")
        if with_total:
            lead = [f"{succeeded} of {total} succeeded"]
        else:
            lead = [f"{succeeded} succeeded"] if succeeded else []
    else:
        # COMPLETE__*: any end counts, so the ended lead the list, split by how they ended.
        ended = {word: tally.pop(word) for word in _COUNT_ORDER[:3]}
        split = ", ".join(f"{n} {word}" for word, n in ended.items() if n)
        lead = [f"{sum(ended.values())} of {total} ended" + (f" ({split})" if split else "")]
    return ", ".join(lead + [f"{n} {word}" for word, n in tally.items() if n])


# -- ready, running, retrying -----------------------------------------------------------


def _ready(node: TaskNode, scheduler: Scheduler, workers: Sequence[ConnectedWorker] | None) -> str:
    label = task_label(node)
    queue = node._loop
    ahead = next((i for i, queued in enumerate(queue.ready) if queued is node), None)
    if ahead is None:
        place = "it is about to be queued"  # between two scheduler steps: rare
    elif ahead == 0:
        place = "it is next in line"
    else:
        place = f"{ahead} ready ahead of it"
    if not scheduler.started:
        # A coordinator starts the run once --min-workers have joined; in-process, it is
        # execute_graph that starts it.
        until = (
            "the graph is executed"
            if workers is None
            else "the coordinator starts the run (it waits for --min-workers to join)"
        )
        return (
            f"{label} is ready, queued in loop {queue.name} ({place}); nothing runs until {until}."
        )
    if workers is not None and not any(queue.name in w.loops for w in workers):
        if workers:
            served = sorted({loop for w in workers for loop in w.loops})
            connected = f"{plural(len(workers), 'worker')} connected, serving {', '.join(served)}"
        else:
            connected = "no worker is connected"
        return (
            f"{label} is ready, but no connected worker serves loop {queue.name} "
            f"({connected}); it runs once one that does joins."
        )
    running = f"{queue.running} of {queue.concurrency} running"
    if queue.busy:  # threads of ended sync tasks still hold slots
        held = plural(queue.busy, "slot")
        running += f" ({held} kept busy by the thread of a task that timed out or was cancelled)"
    if queue.running >= queue.concurrency:
        sep = ", " if ahead else "; "
        return (
            f"{label} is ready and waits for a free slot: "
            f"loop {queue.name} is full: {running}{sep}{place}."
        )
    return (
        f"{label} is ready: loop {queue.name} has a free slot ({running}) and {place}; "
        "it starts when a worker slot of the loop next asks for work."
    )


def _running(
    node: TaskNode, scheduler: Scheduler, workers: Sequence[ConnectedWorker] | None, now: float
) -> str:
    label = task_label(node)
    details = [_where(node.worker, workers)] if node.worker else []
    details.append(_attempt(node))
    if node.started_at is not None:
        details.append(f"started {format_seconds(max(0.0, now - node.started_at))} ago")
    reason = scheduler.cancelling.get(node)
    if reason is not None:
        return (
            f"{label} is being cancelled ({reason}) while it runs ({', '.join(details)}); "
            f"it ends as failed once it has stopped, and keeps its slot in loop "
            f"{node._loop.name} until then."
        )
    return f"{label} is running ({', '.join(details)})."


def _retrying(node: TaskNode) -> str:
    failures = node.attempts - node.losses - node.shared_losses
    allowed = node.graph.task_functions[node.task_handle].policy.attempts
    text = (
        f"{task_label(node)} failed attempt {failures} of {allowed} and waits out its retry "
        "backoff before it runs again"
    )
    headline = task_headline(node)
    return text + (f"; the last error: {headline}" if headline else ".")


def _explain_condition(condition: GenericSchedulingCondition, scheduler: Scheduler) -> str:
    state = {
        ConditionStatus.WAITING_ON_TASKS: "is still open",
        ConditionStatus.SATISFIED: "is satisfied",
        ConditionStatus.FAILED: "failed",
    }[condition.condition_status]
    waiting = plural(len(condition.successors), "task")
    return (
        f"{condition.uid} ({condition.mode}) {state}: {_counts(condition, scheduler)}; "
        f"{waiting} wait{'s' if len(condition.successors) == 1 else ''} on it."
    )
