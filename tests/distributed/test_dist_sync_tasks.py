"""Sync task functions on workers obey timeouts and cancellation, as far as Python allows.

At its deadline (or a cancel) a task whose sync function runs in a worker's thread ends at
once and its successors proceed; the thread runs on and its late result is thrown away.
Its slot stays taken until the thread returns: the worker keeps the credit, and the
coordinator keeps the slot counted in the loop's ``running``, so no other worker gets that
place either. A worker that is stopped hands such a task back at once.

Task functions are shipped to workers by value, so they cannot share an object with the
test: the threads here block on a file the test creates (``open``), and say they started
with a file of their own. Deadlines pass when the test moves trio's mock clock, once it
knows the thread has started (an autojump clock would jump while the thread starts).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import trio
import trio.testing
from memcluster import open_cluster

from trio_graph_scheduler import GenericSchedulingCondition, TaskGraph, TaskPolicy, WorkerLoop
from trio_graph_scheduler.shared.states import EndReason

#: The longest a thread here blocks, or the test waits for one, in wall seconds.
WALL_LIMIT = 30.0


def stuck(gate: str, name: str, **_: Any) -> str:
    """Sync: say it started (a file per run), then block until ``open`` exists."""
    runs = len([f for f in os.listdir(gate) if f.startswith(f"started-{name}-")])
    Path(gate, f"started-{name}-{runs}").touch()
    deadline = time.monotonic() + WALL_LIMIT
    while not os.path.exists(os.path.join(gate, "open")):
        assert time.monotonic() < deadline, "the test never opened the gate"
        time.sleep(0.005)
    return f"late {name}"


async def next_task(**_: Any) -> str:
    return "ran"


async def after(*, task_node: Any, **_: Any) -> list[str]:
    return [str(p.task_status) for p in task_node.get_predecessor_task_nodes()]


async def started(gate: Path, name: str, runs: int = 1) -> None:
    """Wait, without blocking trio, until ``runs`` runs of ``name`` have started."""

    def wait() -> bool:
        deadline = time.monotonic() + WALL_LIMIT
        while len(list(gate.glob(f"started-{name}-*"))) < runs:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    assert await trio.to_thread.run_sync(wait), f"{name} never started"


def build(gate: Path, **policies: TaskPolicy) -> tuple[TaskGraph, dict[str, Any]]:
    """``stuck`` and ``next_task`` in ``default`` (limit 1, cluster-wide); ``after`` in
    ``control``, once ``stuck`` has ended however."""
    graph = TaskGraph(
        {"stuck": stuck, "next_task": next_task, "after": after},
        [WorkerLoop("default", 1, None), WorkerLoop("control", 1, ["after"])],
        task_policies=policies,
    )
    victim = graph.create_task_nowait("stuck", ((str(gate), "victim"), {}))
    second = graph.create_task_nowait("next_task")
    ended = GenericSchedulingCondition(graph, "COMPLETE__ALL", [victim.uid])
    successor = graph.create_task_nowait("after", None, [ended.uid])
    return graph, {"victim": victim, "next": second, "after": successor}


async def test_a_sync_task_times_out_on_a_worker_and_its_slot_waits_for_the_thread(
    mock_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    graph, nodes = build(tmp_path, stuck=TaskPolicy(timeout=3))
    queue = graph.scheduler.loops["default"]
    async with open_cluster(graph) as cluster:
        holder = await cluster.join_worker(max_tasks=1)
        await started(tmp_path, "victim")
        # A second worker with credit on the loop: it must not get the busy place either.
        other = await cluster.join_worker()
        mock_clock.jump(3)
        await trio.testing.wait_all_tasks_blocked()
        assert nodes["victim"].end_reason is EndReason.TIMED_OUT
        assert nodes["after"].task_status == "success"  # its successor went on
        assert nodes["next"].task_status == "ready_for_execution"
        assert (queue.running, queue.busy) == (1, 1)
        # ... and the worker kept the slot's credit: it has none to grant on the loop.
        sessions = {session.worker_name: session for session in cluster.coordinator.sessions}
        assert sessions[holder.config.name]._claims["default"].credit == 0
        assert list(sessions[holder.config.name].busy_slots.values()) == [nodes["victim"]]
        graph.check_invariants()
        (tmp_path / "open").touch()
    assert nodes["victim"].task_result is None  # the late result was thrown away
    assert "took longer than its timeout of 3 s" in (nodes["victim"].exception_trace or "")
    assert nodes["next"].task_status == "success"
    assert nodes["after"].task_result == ["failed"]
    assert (queue.running, queue.busy) == (0, 0)
    assert holder.statistics().tasks_failed == 1
    assert holder.statistics().tasks_succeeded + other.statistics().tasks_succeeded == 2
    assert cluster.coordinator.statistics().tasks_lost == 0
    graph.check_invariants()


async def test_cancel_task_ends_a_running_sync_task_on_a_worker_at_once(
    mock_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    graph, nodes = build(tmp_path)
    queue = graph.scheduler.loops["default"]
    async with open_cluster(graph) as cluster:
        worker = await cluster.join_worker()
        await started(tmp_path, "victim")
        assert graph.cancel_task(nodes["victim"].uid, "no longer needed")
        await trio.testing.wait_all_tasks_blocked()
        victim = nodes["victim"]
        assert (victim.task_status, victim.end_reason) == ("failed", EndReason.CANCELLED)
        assert nodes["after"].task_status == "success"
        # The worker keeps the slot (and its credit) until the thread returns.
        assert nodes["next"].task_status == "ready_for_execution"
        assert (queue.running, queue.busy) == (1, 1)
        (session,) = cluster.coordinator.sessions
        assert list(session.busy_slots.values()) == [victim]
        graph.check_invariants()
        (tmp_path / "open").touch()
    assert victim.task_result is None
    assert victim.exception_trace == "cancelled: no longer needed\n"
    assert nodes["next"].task_status == "success"
    assert worker.statistics().tasks_cancelled == 1
    graph.check_invariants()


async def test_a_stopped_worker_hands_its_running_sync_task_back_at_once(
    mock_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    graph, nodes = build(tmp_path)
    async with open_cluster(graph) as cluster:
        leaving = await cluster.join_worker()
        await started(tmp_path, "victim")
        staying = await cluster.join_worker()
        leaving.stop()
        # It leaves without waiting for its thread; the task runs again on the other.
        await started(tmp_path, "victim", runs=2)
        (tmp_path / "open").touch()
    victim = nodes["victim"]
    assert (victim.task_status, victim.task_result) == ("success", "late victim")
    assert victim.attempts == 1  # a hand-back is no attempt
    assert leaving.statistics().tasks_handed_back == 1
    assert staying.statistics().tasks_succeeded == 3
    assert cluster.coordinator.statistics().tasks_lost == 0
    graph.check_invariants()


async def test_a_worker_that_leaves_frees_the_slots_its_threads_kept(
    mock_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    graph, nodes = build(tmp_path, stuck=TaskPolicy(timeout=3))
    queue = graph.scheduler.loops["default"]
    async with open_cluster(graph) as cluster:
        leaving = await cluster.join_worker(loops=("default",))
        await started(tmp_path, "victim")
        mock_clock.jump(3)
        await trio.testing.wait_all_tasks_blocked()
        assert (queue.running, queue.busy) == (1, 1)
        # The worker goes (its thread still runs): the place is the cluster's again.
        leaving.stop()
        await cluster.join_worker()
        await trio.testing.wait_all_tasks_blocked()
        assert (queue.running, queue.busy) == (0, 0)
        assert nodes["next"].task_status == "success"
        (tmp_path / "open").touch()
    assert nodes["victim"].end_reason is EndReason.TIMED_OUT
    graph.check_invariants()
