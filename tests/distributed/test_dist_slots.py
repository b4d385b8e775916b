"""Slots on demand (issue 15): a worker of a loop without a worker context starts slot
tasks as work comes, up to its cap, and lets idle ones go; it does not open the loop's
whole concurrency up front. Time is trio's autojump clock."""

from __future__ import annotations

import random
from typing import Any

import trio
import trio.testing
from memcluster import TIME_LIMIT, open_cluster, peak_overlap, timed

from trio_graph_scheduler import Coordinator, CoordinatorConfig, TaskGraph, TaskStatus, WorkerLoop
from trio_graph_scheduler.worker.link import SLOT_IDLE_SECONDS

BIG_LOOP = 3000


async def test_a_worker_runs_slots_for_what_it_runs_not_for_the_whole_loop(
    autojump_clock: trio.testing.MockClock,
) -> None:
    graph = TaskGraph({"timed": timed}, [WorkerLoop("default", BIG_LOOP)])
    nodes = [graph.create_task_nowait("timed", ((1.0,), None)) for _ in range(6)]
    seen: list[int] = []
    with trio.fail_after(TIME_LIMIT):
        async with open_cluster(graph) as cluster:
            worker = await cluster.join_worker()
            while graph.scheduler.unfinished:
                await trio.sleep(0.1)
                link = worker._link
                if link is not None:
                    seen.append(link._pools["default"].live)
    assert all(n.task_status is TaskStatus.SUCCESS for n in nodes)
    # Its six tasks ran at once, each on a slot of its own...
    assert peak_overlap(n.task_result for n in nodes) == 6
    # ...and it never ran more slots than that, of the 3,000 it may.
    assert max(seen) == 6


async def test_idle_slots_go_and_come_back_when_work_does(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def second_wave(**kwargs: Any) -> None:
        # Created once the first wave has long ended: the worker's slots have gone idle.
        await trio.sleep(2 * SLOT_IDLE_SECONDS)
        graph = kwargs["graph"]
        for _ in range(3):
            await graph.create_task("timed", ((1.0,), None))

    graph = TaskGraph(
        {"timed": timed, "second_wave": second_wave},
        [WorkerLoop("default", 10), WorkerLoop("waves", 1, ["second_wave"])],
    )
    first = [graph.create_task_nowait("timed", ((1.0,), None)) for _ in range(4)]
    graph.create_task_nowait("second_wave")
    lows: list[int] = []
    with trio.fail_after(TIME_LIMIT * 3):
        async with open_cluster(graph) as cluster:
            worker = await cluster.join_worker()
            while graph.scheduler.unfinished:
                await trio.sleep(0.5)
                link = worker._link
                if link is not None and all(n.task_status is TaskStatus.SUCCESS for n in first):
                    lows.append(link._pools["default"].live)
    later = [n for n in graph.nodes.values() if n not in first and n.task_handle == "timed"]
    assert len(later) == 3
    assert all(n.task_status is TaskStatus.SUCCESS for n in graph.nodes.values())
    # The first wave's 4 slots went after idling; the second wave started 3 again.
    assert 0 in lows
    assert peak_overlap(n.task_result for n in later) == 3


def test_slot_numbers_are_the_lowest_free_whatever_the_order_of_joins_and_leaves() -> None:
    # take_slot_indexes is O(count log n) now (it scanned every number held per join:
    # 150 workers of a loop of 3,000 cost seconds of the coordinator's time to join).
    graph = TaskGraph({"timed": timed}, [WorkerLoop("default", 3)])
    coordinator = Coordinator(graph, CoordinatorConfig())
    rng = random.Random(15)
    held: list[list[int]] = []
    for _ in range(500):
        if held and rng.random() < 0.4:
            gone = held.pop(rng.randrange(len(held)))
            coordinator.free_slot_indexes("default", gone)
            continue
        count = rng.randint(1, 5)
        in_use = {number for numbers in held for number in numbers}
        lowest = [n for n in range(len(in_use) + count) if n not in in_use][:count]
        taken = coordinator.take_slot_indexes("default", count)
        assert taken == lowest
        held.append(taken)
