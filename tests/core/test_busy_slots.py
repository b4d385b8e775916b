"""A task can end with its slot still busy (its sync function runs on in a thread): the
loop keeps the slot counted as running until the claimant frees it. Driven by hand."""

from __future__ import annotations

from typing import Any

import pytest
from test_scheduler import Driver, Runner, make_graph, statuses

from trio_graph_scheduler import TaskGraph, TaskPolicy, WorkerLoop
from trio_graph_scheduler.shared.errors import TGSInternalError
from trio_graph_scheduler.shared.states import EndReason


async def noop(**_: Any) -> None:
    return None


def test_a_task_that_timed_out_with_its_slot_busy_holds_the_slot_until_freed() -> None:
    graph = make_graph(default=1)
    a = graph.create_task_nowait("f")
    b = graph.create_task_nowait("f")
    after = graph.create_task_nowait("g", None, [a.uid])
    driver = Driver(graph)
    queue = graph.scheduler.loops["default"]
    assert driver.claim() is a
    graph.scheduler.task_failed(a, "TimeoutError\n", EndReason.TIMED_OUT, slot_busy=True)
    graph.check_invariants()
    # a ended (and its successor failed), but the loop's one slot is still taken.
    assert statuses(a, after) == ["failed", "precondition_failed"]
    assert (queue.running, queue.busy) == (1, 1)
    assert queue.claim_nowait() is None
    graph.scheduler.slot_freed(a)
    graph.check_invariants()
    assert (queue.running, queue.busy) == (0, 0)
    driver.run(b)
    assert driver.ended == 1


def test_a_cancelled_task_with_its_slot_busy_frees_the_slot_for_a_waiting_claimant() -> None:
    graph = make_graph(default=1)
    a = graph.create_task_nowait("f")
    b = graph.create_task_nowait("f")
    driver = Driver(graph)
    runner = Runner()
    driver.claim()._claimant = runner
    assert graph.cancel_task(a.uid, "not needed")
    graph.scheduler.task_cancelled(a, slot_busy=True)
    graph.check_invariants()
    assert a.end_reason is EndReason.CANCELLED
    queue = graph.scheduler.loops["default"]

    class Waiting:
        handed: list[Any] = []  # noqa: RUF012 - one test's recorder

        def deliver(self, node: Any) -> bool:
            self.handed.append(node)
            return False

        def cancel(self, node: Any) -> None:
            raise AssertionError("not asked")

        def keeps_freed_slot(self) -> bool:
            return False

    waiting = Waiting()
    queue.wait(waiting)
    graph.check_invariants()
    assert waiting.handed == []  # b waits for the busy slot
    graph.scheduler.slot_freed(a)
    assert waiting.handed == [b]
    graph.check_invariants()


def test_a_retry_after_a_timeout_waits_for_the_busy_slot() -> None:
    graph = TaskGraph(
        {"f": noop},
        [WorkerLoop("default", 1)],
        task_policies={"f": TaskPolicy(attempts=2, backoff=0.0)},
    )
    retries: list[Any] = []
    graph.scheduler.on_retry = lambda node, delay: retries.append(node)
    a = graph.create_task_nowait("f")
    driver = Driver(graph)
    driver.claim()
    graph.scheduler.task_failed(a, "TimeoutError\n", EndReason.TIMED_OUT, slot_busy=True)
    graph.check_invariants()
    assert retries == [a]
    graph.scheduler.requeue(a)
    graph.check_invariants()
    queue = graph.scheduler.loops["default"]
    assert queue.claim_nowait() is None  # ready, but the slot is still busy
    graph.scheduler.slot_freed(a)
    driver.run(a)
    assert (a.task_status, a.attempts) == ("success", 2)


def test_freeing_a_slot_that_is_not_busy_is_an_internal_error() -> None:
    graph = make_graph()
    a = graph.create_task_nowait("f")
    driver = Driver(graph)
    driver.run(a)
    with pytest.raises(TGSInternalError, match="none is kept busy"):
        graph.scheduler.slot_freed(a)
