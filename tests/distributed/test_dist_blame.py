"""Blame on evidence, through real sessions: a task whose worker keeps dying is run alone
until the losses name it, and the tasks that shared a worker with it are never failed.

The "poison" task never ends by itself; the test plays its effect by cutting the
connection of whichever worker runs it (the worker then reconnects as a new one, like a
restarted process). Time is trio's autojump clock.
"""

from __future__ import annotations

import trio
import trio.testing
from memcluster import TIME_LIMIT, open_cluster, timed

from trio_graph_scheduler import TaskGraph, TaskStatus, WorkerLoop
from trio_graph_scheduler.coordinator.observe.status_reply import build_status_reply
from trio_graph_scheduler.status import format_status


async def poison(**_: object) -> None:
    await trio.sleep_forever()


async def test_a_task_that_kills_its_workers_is_blamed_alone(
    autojump_clock: trio.testing.MockClock,
) -> None:
    graph = TaskGraph({"poison": poison, "timed": timed}, [WorkerLoop("default", 4)])
    node = await graph.create_task("poison")
    innocents = [await graph.create_task("timed", ((0.5,), None)) for _ in range(6)]
    # One innocent outlives the kills: the run must not end while a killed worker
    # reconnects (it would find the listener closed).
    innocents.append(await graph.create_task("timed", ((20.0,), None)))
    kills: list[int] = []  # how many leases the killed worker held each time

    with trio.fail_after(6 * TIME_LIMIT):
        async with open_cluster(graph) as cluster:
            coordinator = cluster.coordinator
            for _ in range(2):
                cluster.start_worker()
            while node.task_status is not TaskStatus.FAILED:
                await trio.sleep(0.01)
                if node.task_status is not TaskStatus.IN_PROGRESS:
                    continue
                (holder,) = [s for s in coordinator.sessions if node in s.leases.values()]
                if kills:  # once suspected, it only ever runs alone
                    assert holder.suspect is node
                    assert list(holder.leases.values()) == [node]
                (claim,) = holder._claims.values()
                assert claim.held == len(holder.leases)  # what it holds counts to its share
                graph.check_invariants()
                kills.append(len(holder.leases))
                # Its worker dies: the coordinator sees its connection end.
                stream = holder._ws._stream._stream  # inside the listener's counting wrapper
                assert stream in cluster.listener.accepted
                await stream.aclose()
                while True:  # until the coordinator has noticed
                    await trio.sleep(0.01)
                    if holder not in coordinator.sessions:
                        break
                graph.check_invariants()

            # What tgs-status shows: each lost worker and what it ran; --why for a task.
            (shared,) = [r for r in coordinator.workers.values() if len(r.lost_while_running) > 1]
            neighbour = next(uid for uid, _ in shared.lost_while_running if uid != node.uid)
            reply = build_status_reply(coordinator, why=neighbour)
            text = format_status(reply)

    assert len(reply.lost) == 4
    assert f"lost while running task {node.uid} (function poison): connection lost" in text
    assert reply.explanation is not None
    assert f"Worker {shared.worker_id} ({shared.name}) was lost while running task " in (
        reply.explanation
    )
    assert kills[0] > 1, "the poison first ran beside innocent tasks"
    assert kills[1:] == [1, 1, 1]
    assert node.losses == 3
    assert node.exception_trace is not None
    assert node.exception_trace.startswith("killed its worker 3 times (the last: worker-")
    for innocent in innocents:
        assert innocent.task_status is TaskStatus.SUCCESS, innocent
        assert innocent.losses == 0
        assert innocent.attempts - innocent.shared_losses == 1
    # Each lost worker says what it was running.
    lost = [r for r in coordinator.workers.values() if r.lost_while_running]
    assert len(lost) == 4
    assert all((node.uid, "poison") in r.lost_while_running for r in lost)
    assert len(lost[0].lost_while_running) == kills[0]
