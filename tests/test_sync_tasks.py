"""Sync task functions obey timeouts and cancellation, in-process, as far as Python allows.

A sync function runs in a thread, which nothing can stop: at its deadline (or a cancel)
the task ends at once and its successors proceed, while the thread runs on and whatever
it returns is thrown away. Its slot stays taken until the thread returns, so the loop
never runs more than its concurrency.

The threads here block on ``threading.Event``s that the test sets, never on wall time.
Deadlines pass when the test moves trio's mock clock, once it knows the thread has started:
an autojump clock would jump while a thread starts, as trio is idle then. Every wait in a
thread is bounded (:data:`THREAD_LIMIT`) so nothing can hang.
"""

from __future__ import annotations

import threading
from typing import Any

import trio
import trio.testing

from trio_graph_scheduler import (
    GenericSchedulingCondition,
    TaskGraph,
    TaskPolicy,
    WorkerLoop,
    execute_graph,
)
from trio_graph_scheduler.shared.states import EndReason

#: The longest a test thread blocks, in wall seconds, should a test go wrong.
THREAD_LIMIT = 30.0


class Gate:
    """A ``threading.Event`` that sync tasks block on, and what happened, in order."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.lock = threading.Lock()
        self.log: list[str] = []
        self.live = 0
        self.peak = 0
        self.started = threading.Event()

    def note(self, line: str) -> None:
        with self.lock:
            self.log.append(line)

    def blocked(self, name: str) -> str:
        """Run as a sync task would: note the start, block until opened, note the end."""
        with self.lock:
            self.live += 1
            self.peak = max(self.peak, self.live)
            self.log.append(f"start {name}")
        self.started.set()
        try:
            assert self.event.wait(THREAD_LIMIT), "the test never opened the gate"
            return f"late {name}"
        finally:
            with self.lock:
                self.live -= 1
                self.log.append(f"return {name}")

    def open(self) -> None:
        self.note("opened")
        self.event.set()

    async def wait_started(self, count: int = 1) -> None:
        """Wait (in a thread, without blocking trio) until ``count`` tasks have started."""

        def wait() -> bool:
            for _ in range(int(THREAD_LIMIT * 100)):
                with self.lock:
                    if sum(line.startswith("start") for line in self.log) >= count:
                        return True
                threading.Event().wait(0.01)
            return False

        assert await trio.to_thread.run_sync(wait), self.log


async def test_a_sync_task_times_out_at_its_deadline_and_its_slot_waits_for_the_thread(
    mock_clock: trio.testing.MockClock,
) -> None:
    gate = Gate()
    seen: dict[str, Any] = {}

    def stuck(**_: Any) -> str:
        return gate.blocked("stuck")

    async def after(*, graph: TaskGraph, task_node: Any, **_: Any) -> None:
        # The timed-out task has ended, its thread still runs: its slot is still taken.
        (victim,) = task_node.get_predecessor_task_nodes()
        queue = graph.scheduler.loops["default"]
        (waiting,) = [n for n in graph.nodes.values() if n.task_handle == "next_task"]
        seen.update(
            at=trio.current_time(),
            victim=(victim.task_status, victim.end_reason),
            slots=(queue.running, queue.busy),
            why=graph.explain(waiting.uid),
        )
        graph.check_invariants()
        gate.open()

    async def next_task(**_: Any) -> None:
        gate.note("next")

    graph = TaskGraph(
        {"stuck": stuck, "after": after, "next_task": next_task},
        [WorkerLoop("default", 1), WorkerLoop("control", 1, ["after"])],
        task_policies={"stuck": TaskPolicy(timeout=3)},
    )
    start = trio.current_time()
    victim = await graph.create_task("stuck")
    await graph.create_task("next_task")
    ended = GenericSchedulingCondition(graph, "COMPLETE__ALL", [victim.uid])
    successor = await graph.create_task("after", None, [ended.uid])
    async with trio.open_nursery() as nursery:
        nursery.start_soon(execute_graph, graph)
        await gate.wait_started()
        mock_clock.jump(3)

    why = seen.pop("why")
    assert seen == {
        "at": start + 3,  # at the deadline, not when the thread returned
        "victim": ("failed", EndReason.TIMED_OUT),
        "slots": (1, 1),  # loop default: one slot taken, by a thread whose task ended
    }
    assert why.endswith(
        "(next_task) is ready and waits for a free slot: loop default is full: 1 of 1 running "
        "(1 slot kept busy by the thread of a task that timed out or was cancelled); "
        "it is next in line."
    ), why
    assert "TimeoutError: the task took longer than its timeout of 3 s" in (
        victim.exception_trace or ""
    )
    assert victim.task_result is None  # the late result was thrown away
    assert successor.task_status == "success"
    # The loop's one slot ran nothing else until the thread had returned.
    assert gate.log == ["start stuck", "opened", "return stuck", "next"]
    queue = graph.scheduler.loops["default"]
    assert (queue.running, queue.busy) == (0, 0)
    graph.check_invariants()


async def test_cancel_task_ends_a_running_sync_task_at_once() -> None:
    gate = Gate()
    seen: dict[str, Any] = {}

    def stuck(**_: Any) -> str:
        return gate.blocked("stuck")

    async def canceller(victim: str, *, graph: TaskGraph, **_: Any) -> bool:
        await gate.wait_started()
        return graph.cancel_task(victim, "no longer needed")

    async def after(*, graph: TaskGraph, task_node: Any, **_: Any) -> None:
        (victim,) = task_node.get_predecessor_task_nodes()
        queue = graph.scheduler.loops["default"]
        seen.update(victim=victim.end_reason, busy=queue.busy)
        gate.open()

    async def next_task(**_: Any) -> None:
        gate.note("next")

    graph = TaskGraph(
        {"stuck": stuck, "canceller": canceller, "after": after, "next_task": next_task},
        [WorkerLoop("default", 1), WorkerLoop("control", 2, ["canceller", "after"])],
    )
    victim = await graph.create_task("stuck")
    await graph.create_task("next_task")
    cancel = await graph.create_task("canceller", ((victim.uid,), {}))
    ended = GenericSchedulingCondition(graph, "COMPLETE__ALL", [victim.uid])
    successor = await graph.create_task("after", None, [ended.uid])
    await execute_graph(graph)

    assert cancel.task_result is True
    # It ended while its thread was still blocked: the gate opened only after.
    assert seen == {"victim": EndReason.CANCELLED, "busy": 1}
    assert (victim.task_status, victim.task_result) == ("failed", None)
    assert victim.exception_trace == "cancelled: no longer needed\n"
    assert successor.task_status == "success"
    assert gate.log == ["start stuck", "opened", "return stuck", "next"]
    graph.check_invariants()


async def test_a_loop_never_runs_more_threads_than_its_concurrency(
    mock_clock: trio.testing.MockClock,
) -> None:
    gate = Gate()

    def stuck(name: str, **_: Any) -> str:
        return gate.blocked(name)

    graph = TaskGraph(
        {"stuck": stuck, "free": stuck},
        [WorkerLoop("default", 2)],
        task_policies={"stuck": TaskPolicy(timeout=1)},
    )
    nodes = [await graph.create_task("stuck", ((f"s{i}",), {})) for i in range(2)]
    nodes += [await graph.create_task("free", ((f"s{i}",), {})) for i in range(2, 4)]
    queue = graph.scheduler.loops["default"]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(execute_graph, graph)
        await gate.wait_started(2)
        mock_clock.jump(1)
        await trio.testing.wait_all_tasks_blocked()
        # Both timed out; their threads hold both slots, so s2 and s3 wait.
        assert [n.end_reason for n in nodes[:2]] == [EndReason.TIMED_OUT] * 2
        assert (queue.running, queue.busy, len(queue.ready)) == (2, 2, 2)
        graph.check_invariants()
        gate.open()

    assert gate.peak == 2
    assert sorted(gate.log[:2]) == ["start s0", "start s1"]
    assert gate.log[2] == "opened"
    assert {line for line in gate.log[3:] if line.startswith("start")} == {"start s2", "start s3"}
    assert [n.end_reason for n in nodes] == [EndReason.TIMED_OUT] * 2 + [EndReason.SUCCEEDED] * 2
    assert [n.task_result for n in nodes] == [None, None, "late s2", "late s3"]
    graph.check_invariants()


async def test_a_timed_out_sync_task_retries_once_its_slot_is_free(
    mock_clock: trio.testing.MockClock,
) -> None:
    gate = Gate()
    calls: list[int] = []

    def flaky(**_: Any) -> str:
        calls.append(1)
        if len(calls) == 1:
            return gate.blocked("first")
        gate.note("second")
        return "second"

    graph = TaskGraph(
        {"flaky": flaky},
        [WorkerLoop("default", 1)],
        task_policies={"flaky": TaskPolicy(attempts=2, backoff=0.0, timeout=1)},
    )
    node = await graph.create_task("flaky")
    queue = graph.scheduler.loops["default"]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(execute_graph, graph)
        await gate.wait_started()
        mock_clock.jump(1.5)
        await trio.testing.wait_all_tasks_blocked()
        # Timed out and queued again at once (no backoff), but the slot is the thread's.
        assert (node.task_status, node.attempts) == ("ready_for_execution", 1)
        assert (queue.running, queue.busy, len(queue.ready)) == (1, 1, 1)
        graph.check_invariants()
        gate.open()
    assert (node.task_status, node.task_result, node.attempts) == ("success", "second", 2)
    # The retry waited for the loop's one slot, which the first run's thread held.
    assert gate.log == ["start first", "opened", "return first", "second"]
    graph.check_invariants()


async def test_a_sync_task_can_notice_it_was_abandoned(
    autojump_clock: trio.testing.MockClock,
) -> None:
    noticed = threading.Event()

    def polite(**_: Any) -> str:
        # Checks now and then whether its call was cancelled (here: timed out).
        for _ in range(int(THREAD_LIMIT * 100)):
            try:
                trio.from_thread.check_cancelled()
            except trio.Cancelled:
                noticed.set()
                raise
            threading.Event().wait(0.01)
        return "never"

    graph = TaskGraph(
        {"polite": polite},
        [WorkerLoop("default", 1)],
        task_policies={"polite": TaskPolicy(timeout=2)},
    )
    node = await graph.create_task("polite")
    await execute_graph(graph)
    assert node.end_reason is EndReason.TIMED_OUT
    assert noticed.wait(THREAD_LIMIT)


async def test_cancelling_execution_hands_a_running_sync_task_back_at_once() -> None:
    gate = Gate()

    def stuck(**_: Any) -> str:
        return gate.blocked("stuck")

    graph = TaskGraph({"stuck": stuck}, [WorkerLoop("default", 1)])
    node = await graph.create_task("stuck")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(execute_graph, graph)
        await gate.wait_started()
        nursery.cancel_scope.cancel()
    # Returned at once, without waiting for the thread; the task runs again next time.
    assert gate.log == ["start stuck"]
    assert (node.task_status, node.attempts) == ("created", 0)
    graph.check_invariants()
    gate.open()
    await execute_graph(graph)
    assert node.task_result == "late stuck"
