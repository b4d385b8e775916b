"""Why a task ended, as the core records it: ``TaskNode.end_reason``, and the clock it is
given for timestamps. Driven by hand, without trio, like ``test_scheduler.py``."""

from __future__ import annotations

import itertools

from test_scheduler import Driver, make_graph, noop

from trio_graph_scheduler import TaskGraph, TaskPolicy, WorkerLoop
from trio_graph_scheduler.coordinator.core.scheduler import cancel_reason
from trio_graph_scheduler.shared.states import EndReason


def test_each_way_of_ending_has_its_reason() -> None:
    graph = make_graph()
    ok, raised, marked, lost, cancelled, waiting = (graph.create_task_nowait("f") for _ in range(6))
    skipped = graph.create_task_nowait("f", None, [raised.uid])
    never_ran = graph.create_task_nowait("f", None, [waiting.uid])
    graph.scheduler.max_lost_attempts = 1
    driver = Driver(graph)
    driver.run(ok)
    driver.run(raised, ok=False)
    assert driver.claim() is marked
    marked.task_status = "failed"  # the seed let a task mark itself failed, then return
    graph.scheduler.task_marked_failed(marked)
    assert driver.claim() is lost
    graph.scheduler.task_lost(lost, "w-1 (host:1): connection lost")
    assert driver.claim() is cancelled
    cancelled._claimant = type("R", (), {"cancel": lambda self, node: None})()
    graph.cancel_task(cancelled.uid, "too slow")
    graph.scheduler.task_cancelled(cancelled)
    graph.cancel_task(never_ran.uid, "not needed")
    graph.check_invariants()
    assert [n.end_reason for n in (ok, raised, marked, lost, cancelled, skipped, never_ran)] == [
        EndReason.SUCCEEDED,
        EndReason.RAISED,
        EndReason.MARKED_FAILED,
        EndReason.WORKER_LOST,
        EndReason.CANCELLED,
        EndReason.PRECONDITION_FAILED,
        EndReason.CANCELLED,
    ]
    assert marked.exception_trace is None
    assert waiting.end_reason is None  # still ready: no reason yet
    assert [cancel_reason(n) for n in (cancelled, never_ran, raised)] == [
        "too slow",
        "not needed",
        None,
    ]


def test_a_failure_with_a_reason_keeps_it_and_a_retry_waits_for_the_last_run() -> None:
    graph = TaskGraph(
        {"f": noop}, [WorkerLoop("default", 2)], task_policies={"f": TaskPolicy(attempts=2)}
    )
    graph.scheduler.on_retry = lambda node, delay: None
    a = graph.create_task_nowait("f")
    driver = Driver(graph)
    assert driver.claim() is a
    graph.scheduler.task_failed(a, "TaskTimeoutError: slow\n", EndReason.TIMED_OUT)
    assert a.end_reason is None  # it will run again: it has not ended
    graph.scheduler.requeue(a)
    assert driver.claim() is a
    graph.scheduler.task_failed(a, "TaskTimeoutError: slow\n", EndReason.TIMED_OUT)
    assert (a.task_status, a.end_reason) == ("failed", EndReason.TIMED_OUT)


def test_the_core_timestamps_with_the_clock_it_is_given() -> None:
    ticks = itertools.count(100)
    graph = TaskGraph({"f": noop}, [WorkerLoop("default", 1)], clock=lambda: next(ticks))
    a = graph.create_task_nowait("f")
    driver = Driver(graph)
    driver.run(a)
    assert (a.queued_at, a.started_at, a.ended_at) == (100, 101, 102)
