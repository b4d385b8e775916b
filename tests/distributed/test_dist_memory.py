"""Results under a memory limit and release on the coordinator, with remote workers.

Tasks on workers read their predecessors' results as the coordinator held them (some
read back from disk), and ``keep_result`` reaches the coordinator from a task on a worker.
"""

from __future__ import annotations

import hashlib
from typing import Any

import trio
import trio.testing
from memcluster import TIME_LIMIT, run_cluster

from trio_graph_scheduler import CoordinatorConfig, ResultReleasedError, TaskGraph, WorkerLoop
from trio_graph_scheduler.coordinator.core.results import result_whereabouts

KIB = 1024


def blob(index: int) -> bytes:
    return hashlib.sha256(str(index).encode()).digest() * (8 * KIB // 32)


async def make(index: int, **_: Any) -> bytes:
    return hashlib.sha256(str(index).encode()).digest() * (8 * KIB // 32)


async def check(**kwargs: Any) -> list[str]:
    """The digest of each predecessor's result, as the worker received it."""
    return [
        hashlib.sha256(p.task_result).hexdigest()
        for p in kwargs["task_node"].get_predecessor_task_nodes()
    ]


async def spawn(**kwargs: Any) -> tuple[str, str]:
    """From a worker: one kept intermediate, one not, and a reader of both."""
    graph = kwargs["graph"]
    kept = await graph.create_task("make", ((100,), None), keep_result=True)
    dropped = await graph.create_task("make", ((101,), None))
    await graph.create_task("check", None, [kept.uid, dropped.uid])
    return kept.uid, dropped.uid


async def read_released(uid: str, **kwargs: Any) -> str:
    """Ask the coordinator for a released result."""
    try:
        await kwargs["graph"].aget_task(uid)
    except ResultReleasedError as error:
        return f"raised: {error}"
    return "read"


def make_graph() -> TaskGraph:
    functions = {"make": make, "check": check, "spawn": spawn, "read_released": read_released}
    return TaskGraph(functions, [WorkerLoop("default", 2, None)])


async def test_results_spill_and_are_read_back_by_successors_on_workers(
    autojump_clock: trio.testing.MockClock,
) -> None:
    graph = make_graph()
    makers = [await graph.create_task("make", ((i,), None)) for i in range(12)]
    checks = [
        await graph.create_task("check", None, [m.uid for m in makers[i : i + 3]])
        for i in range(0, 12, 3)
    ]
    config = CoordinatorConfig(memory_limit=20 * KIB)

    with trio.fail_after(TIME_LIMIT):
        summary, _ = await run_cluster(graph, 2, config=config)

    assert summary.succeeded
    holder = graph.scheduler.results
    assert holder is not None
    assert holder.peak_held <= 20 * KIB
    assert holder.spilled >= 12 - 2  # at most two 8 KiB results fit in 20 KiB
    assert holder.loaded > 0  # successors' assignments read results back from disk
    for index, reader in enumerate(checks):
        expected = [hashlib.sha256(blob(i)).hexdigest() for i in range(3 * index, 3 * index + 3)]
        assert reader.task_result == expected
    assert [m.task_result for m in makers] == [blob(i) for i in range(12)]


async def test_release_with_keep_result_from_a_worker(
    autojump_clock: trio.testing.MockClock,
) -> None:
    graph = make_graph()
    spawner = await graph.create_task("spawn")
    config = CoordinatorConfig(release_results=True)

    with trio.fail_after(TIME_LIMIT):
        summary, _ = await run_cluster(graph, 2, config=config)

    assert summary.succeeded
    kept_uid, dropped_uid = spawner.task_result
    assert graph.nodes[kept_uid].task_result == blob(100)
    assert result_whereabouts(graph.nodes[dropped_uid]) == "released"
    (reader,) = (n for n in graph.nodes.values() if n.task_handle == "check")
    assert reader.task_result == [hashlib.sha256(blob(i)).hexdigest() for i in (100, 101)]

    # A task on a worker that asks for a released result is told why, as in-process.
    again = make_graph()
    first = await again.create_task("make", ((1,), None))
    await again.create_task("check", None, [first.uid])
    with trio.fail_after(TIME_LIMIT):
        await run_cluster(again, 1, config=config)
    asker = await again.create_task("read_released", ((first.uid,), None))
    with trio.fail_after(TIME_LIMIT):
        await run_cluster(again, 1, config=config)
    assert asker.task_result.startswith("raised: the result of")
    assert "--release-results" in asker.task_result
