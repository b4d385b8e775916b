"""The coordinator warns while ready tasks wait in a loop no connected worker serves, at a
low rate, and stops once a worker serving it is connected. Autojump clock: the waits
cost no wall time."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import trio
import trio.testing
from memcluster import open_cluster, timed

from trio_graph_scheduler import TaskGraph, WorkerLoop
from trio_graph_scheduler.coordinator.unserved import FIRST_WARNING_AFTER, REPEAT_WARNING_EVERY

if TYPE_CHECKING:
    import pytest


async def test_a_loop_no_worker_serves_is_warned_about_until_one_does(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="tgs.coordinator")
    graph = TaskGraph(
        {"timed": timed, "gpu": timed},
        [WorkerLoop("default", 2), WorkerLoop("gpu", 1, ["gpu"])],
    )
    await graph.create_task("timed", ((1.0,), None))
    await graph.create_task("gpu", ((1.0,), None))
    await graph.create_task("gpu", ((1.0,), None))

    def warnings() -> list[str]:
        return [r.getMessage() for r in caplog.records if "no connected worker" in r.message]

    with trio.fail_after(200):
        async with open_cluster(graph) as cluster:
            start = trio.current_time()
            await cluster.join_worker(loops=("default",))
            await trio.sleep(FIRST_WARNING_AFTER + 2 * REPEAT_WARNING_EVERY + 1)
            assert (
                warnings()
                == [
                    "no connected worker serves loop(s) gpu (2 ready tasks) (1 worker connected): "
                    "start workers that serve them (tgs-worker --loops ...)"
                ]
                * 3
            )
            assert trio.current_time() - start < FIRST_WARNING_AFTER + 3 * REPEAT_WARNING_EVERY
            await cluster.join_worker(loops=("gpu",))
            await trio.sleep(3 * REPEAT_WARNING_EVERY)
            assert len(warnings()) == 3  # served now: no more
    assert cluster.coordinator.summary is not None
    assert cluster.coordinator.summary.succeeded
