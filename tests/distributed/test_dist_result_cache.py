"""A large result already on a worker is not sent to it again (issue 10): the worker's
result cache, the coordinator's account of it, and the eviction and miss paths."""

from __future__ import annotations

from typing import Any

import trio
import trio.testing
from memcluster import TIME_LIMIT, open_cluster, run_cluster

from trio_graph_scheduler import TaskGraph, WorkerLoop
from trio_graph_scheduler.protocol.chunks import CACHED_FROM, result_size
from trio_graph_scheduler.worker.result_cache import MISSING, ResultCache

LARGE = 300_000  # over CACHED_FROM (256 KiB)


def test_the_cache_drops_the_least_recently_used_first() -> None:
    cache = ResultCache(budget=1000)
    assert cache.put("a", b"a", 400) == []
    assert cache.put("b", b"b", 400) == []
    assert cache.get("a") == b"a"  # now the most recently used
    assert cache.put("c", b"c", 400) == ["b"]
    assert cache.get("b") is MISSING
    assert cache.held_bytes == 800
    assert cache.put("d", b"d", 2000) == ["d"]  # larger than the whole budget: not kept
    assert "d" not in cache
    assert len(cache) == 2


def test_which_results_count_as_large() -> None:
    assert result_size(b"x" * CACHED_FROM) == CACHED_FROM
    assert result_size("é" * 10) == 10
    assert result_size(memoryview(b"abcd")) == 4
    assert result_size([b"x" * LARGE]) == 0  # its size would cost a walk: never kept


async def produce(tag: int, **_: Any) -> bytes:
    await trio.sleep(1)  # each state of the accounts lasts a (virtual) second
    return bytes([tag]) * LARGE


async def consume(*, task_node: Any, **_: Any) -> list[int]:
    """Each large predecessor's result checked whole (its tag, its size); the tags."""
    found = []
    for node in task_node.get_predecessor_task_nodes():
        value = node.task_result
        if isinstance(value, bytes):
            assert value == bytes([value[0]]) * LARGE, "a wrong or partial value"
            found.append(value[0])
    return sorted(found)


async def pause(**_: Any) -> None:
    await trio.sleep(1)


def one_worker_graph() -> TaskGraph:
    return TaskGraph(
        {"produce": produce, "consume": consume, "pause": pause}, [WorkerLoop("default", 1)]
    )


async def test_a_result_made_on_the_worker_is_not_sent_back_to_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    graph = one_worker_graph()
    made = await graph.create_task("produce", ((1,), {}))
    first = await graph.create_task("consume", None, [made.uid])
    second = await graph.create_task("consume", None, [made.uid, first.uid])
    with trio.fail_after(TIME_LIMIT):
        summary, [worker] = await run_cluster(graph, 1)
    assert summary.succeeded
    assert first.task_result == [1]
    assert second.task_result == [1]  # `first`'s result is a small list: sent
    stats = worker.statistics()
    assert (stats.results_from_cache, stats.results_fetched) == (2, 0)


async def test_a_worker_says_what_it_dropped_and_is_sent_it_again(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Room for one large result: the second one made drops the first, and the worker
    # says so, so the successor of both gets the first in its assignment again.
    graph = one_worker_graph()
    a = await graph.create_task("produce", ((1,), {}))
    b = await graph.create_task("produce", ((2,), {}), [a.uid])
    both = await graph.create_task("consume", None, [a.uid, b.uid])
    with trio.fail_after(TIME_LIMIT):
        async with open_cluster(graph) as cluster:
            worker = await cluster.join_worker(result_cache_bytes=LARGE + 1000)
            (session,) = cluster.coordinator.sessions
            accounts = []
            while both.task_status != "success":
                accounts.append(set(session.worker_results))
                await trio.sleep(0.01)
    assert both.task_result == [1, 2]
    stats = worker.statistics()
    # a's for b (which waits on it), b's for both; a's came again.
    assert (stats.results_from_cache, stats.results_fetched) == (2, 0)
    # The coordinator's account followed the worker's: a, then b (a dropped), then a
    # again (sent to `both`, it dropped b).
    assert {a.uid} in accounts
    assert b.uid not in session.worker_results
    assert session.worker_results == {a.uid}


async def test_a_result_dropped_while_its_assignment_travels_is_asked_for(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # The coordinator marks a result cached that the worker no longer holds (here the
    # worker forgets it behind the coordinator's back): the worker asks for it before
    # the task runs, and the task sees the right value.
    graph = one_worker_graph()
    made = await graph.create_task("produce", ((3,), {}))
    gate = await graph.create_task("pause")  # runs between the two
    late = await graph.create_task("consume", None, [made.uid, gate.uid])
    with trio.fail_after(TIME_LIMIT):
        async with open_cluster(graph) as cluster:
            worker = await cluster.join_worker()
            while made.task_status != "success":  # noqa: ASYNC110 - looks at each step
                await trio.sleep(0.01)
            (session,) = cluster.coordinator.sessions
            assert made.uid in session.worker_results
            link = worker._link
            assert link is not None
            link._results.clear()
    assert late.task_result == [3]
    stats = worker.statistics()
    assert (stats.results_from_cache, stats.results_fetched) == (0, 1)


async def test_a_worker_keeping_no_results_is_always_sent_them(
    autojump_clock: trio.testing.MockClock,
) -> None:
    graph = one_worker_graph()
    made = await graph.create_task("produce", ((4,), {}))
    used = await graph.create_task("consume", None, [made.uid])
    with trio.fail_after(TIME_LIMIT):
        _, [worker] = await run_cluster(graph, 1, result_cache_bytes=0)
    assert used.task_result == [4]
    assert worker.statistics().results_from_cache == 0
