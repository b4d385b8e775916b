"""How the coordinator shares work among workers, and how workers and runs start and end:
cluster-wide concurrency, worker caps and loops, tokens, stopping either side, coordinators
that cannot be reached, empty graphs, dependency cycles and connections cut off.

Every test runs a real coordinator and real workers over in-memory streams through
``memcluster``; time is trio's autojump clock, so sleeps cost no wall time.
"""

from __future__ import annotations

import itertools
import logging
from typing import Any

import pytest
import trio
import trio.testing
from memcluster import TIME_LIMIT, open_cluster, peak_overlap, results_of, run_cluster, timed

from trio_graph_scheduler import (
    ConfigError,
    CoordinatorConfig,
    CoordinatorUnreachableError,
    GraphStalledError,
    TaskGraph,
    Worker,
    WorkerConfig,
    WorkerLoop,
    WorkerRejectedError,
)
from trio_graph_scheduler.coordinator.observe.status_reply import build_status_reply
from trio_graph_scheduler.shared.uids import new_uid
from trio_graph_scheduler.status import format_status, reply_as_json
from trio_graph_scheduler.testing import MemoryListener
from trio_graph_scheduler.worker.link import describe_served


async def timed_graph(tasks: int, concurrency: int, seconds: float = 1.0) -> TaskGraph:
    graph = TaskGraph({"timed": timed}, [WorkerLoop("default", concurrency)])
    for _ in range(tasks):
        await graph.create_task("timed", ((seconds,), None))
    return graph


# -- sharing work ----------------------------------------------------------------------


async def test_loop_concurrency_is_cluster_wide(autojump_clock: trio.testing.MockClock) -> None:
    # Each worker runs as many slots as the loop allows (3) and grants that much credit,
    # so only the coordinator stands between 6 slots and a limit of 3.
    graph = await timed_graph(tasks=12, concurrency=3)

    with trio.fail_after(TIME_LIMIT):
        summary, workers = await run_cluster(graph, 2)

    assert summary.succeeded
    assert peak_overlap(results_of(graph, "timed")) == 3
    assert all(worker.statistics().tasks_succeeded > 0 for worker in workers)
    assert sum(worker.statistics().tasks_succeeded for worker in workers) == 12


async def test_min_workers_holds_the_work_until_enough_have_joined(
    autojump_clock: trio.testing.MockClock,
) -> None:
    graph = await timed_graph(tasks=4, concurrency=4)
    with trio.fail_after(TIME_LIMIT):
        async with open_cluster(graph, CoordinatorConfig(min_workers=2)) as cluster:
            first = await cluster.join_worker()
            await trio.sleep(5)
            # Joined, but nothing was handed out: the whole run waits for the second.
            assert first.statistics().tasks_succeeded == 0
            assert graph.statistics().tasks_by_status == {"created": 4}
            # tgs-status says so (issue 16: it said "running for 0.0 ms").
            waiting = format_status(build_status_reply(cluster.coordinator, None))
            assert (
                waiting.splitlines()[0] == "waiting for 1 more worker (--min-workers 2): 4 created"
            )
            as_json = reply_as_json(build_status_reply(cluster.coordinator, None))
            assert (as_json["waiting_for_workers"], as_json["min_workers"]) == (1, 2)
            assert as_json["lost"] == []  # left out of the frame, not out of --json
            second = await cluster.join_worker()
            await cluster.coordinator.wait_started()
            running = build_status_reply(cluster.coordinator, None)
            assert (running.waiting_for_workers, running.min_workers) == (0, 2)
            # (elapsed is on the wall clock, not trio's: its figure is not asserted.)
            assert format_status(running).startswith("running for ")
            await cluster.coordinator.wait_ended()
    assert first.statistics().tasks_succeeded == second.statistics().tasks_succeeded == 2


async def test_a_coordinator_stopped_while_waiting_for_workers_ends_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    graph = await timed_graph(tasks=2, concurrency=1)
    with trio.fail_after(TIME_LIMIT):
        async with open_cluster(graph, CoordinatorConfig(min_workers=3)) as cluster:
            await cluster.join_worker()
            cluster.coordinator.stop()
    summary = cluster.coordinator.summary
    assert summary is not None
    assert summary.interrupted
    assert summary.tasks_by_status == {"created": 2}


@pytest.mark.parametrize("workers", [1, 2])
async def test_worker_max_tasks_caps_each_worker(
    autojump_clock: trio.testing.MockClock, workers: int
) -> None:
    graph = await timed_graph(tasks=6, concurrency=3)

    with trio.fail_after(TIME_LIMIT):
        summary, started = await run_cluster(graph, workers, max_tasks=1)

    assert summary.succeeded
    # One task at a time per worker, although the loop would allow three.
    assert peak_overlap(results_of(graph, "timed")) == workers
    assert all(worker.statistics().tasks_succeeded > 0 for worker in started)


async def test_worker_logs_its_own_slots_beside_the_loops_limit(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    # Issue 16: "serving default (3)" read as this worker's cap; it was the loop's limit.
    graph = await timed_graph(tasks=2, concurrency=3)
    caplog.set_level(logging.INFO, logger="tgs.worker")
    with trio.fail_after(TIME_LIMIT):
        await run_cluster(graph, 1, max_tasks=2)
    (connected,) = [r.getMessage() for r in caplog.records if "connected to" in r.getMessage()]
    assert connected.endswith(
        "serving default (2 slots; the loop allows 3 at once cluster-wide)"
    ), connected


def test_describe_served_without_a_cap_and_with_one_slot() -> None:
    assert describe_served({"a": 4, "b": 1}, None) == (
        "a (4 slots; the loop allows 4 at once cluster-wide), "
        "b (1 slot; the loop allows 1 at once cluster-wide)"
    )
    assert describe_served({"a": 4}, 1) == "a (1 slot; the loop allows 4 at once cluster-wide)"


@pytest.mark.parametrize("max_tasks", [0, -1])
def test_worker_config_refuses_a_cap_below_one(max_tasks: int) -> None:
    # 0 once meant "no cap" silently; None says it now.
    with pytest.raises(ConfigError, match="max_tasks must be at least 1"):
        WorkerConfig(url="ws://127.0.0.1:1", max_tasks=max_tasks)


async def test_worker_serving_one_loop_gets_only_its_tasks(
    autojump_clock: trio.testing.MockClock,
) -> None:
    graph = TaskGraph(
        {"timed": timed, "fetch": timed},
        [WorkerLoop("default", 2, None), WorkerLoop("io", 2, ["fetch"])],
    )
    for _ in range(3):
        await graph.create_task("fetch")
    for _ in range(5):
        await graph.create_task("timed")

    with trio.fail_after(TIME_LIMIT):
        async with open_cluster(graph) as cluster:
            io_worker = cluster.start_worker(loops=("io",))
            default_worker = cluster.start_worker(loops=("default",))

    assert cluster.coordinator.summary is not None
    assert cluster.coordinator.summary.succeeded
    # A task of a loop a worker does not serve would break its protocol (the worker
    # refuses it); the counts show each ran exactly its own loop's tasks.
    assert io_worker.statistics().tasks_succeeded == 3
    assert default_worker.statistics().tasks_succeeded == 5


async def test_worker_asking_for_an_unknown_loop_is_refused(
    autojump_clock: trio.testing.MockClock,
) -> None:
    graph = await timed_graph(tasks=2, concurrency=1)

    with trio.fail_after(TIME_LIMIT):
        async with open_cluster(graph) as cluster:
            stray = cluster.worker(loops=("default", "gpu"))
            with pytest.raises(WorkerRejectedError, match=r"unknown loops \['gpu'\]"):
                await stray.run()
            # The coordinator carries on and serves a worker that asks for less.
            cluster.start_worker(loops=("default",))

    assert cluster.coordinator.summary is not None
    assert cluster.coordinator.summary.succeeded
    assert stray.statistics().connections == 0
    assert stray.statistics().tasks_succeeded == 0


@pytest.mark.parametrize("token", ["", "wrong", "s3cre"])
async def test_token_is_checked(autojump_clock: trio.testing.MockClock, token: str) -> None:
    graph = await timed_graph(tasks=2, concurrency=2)

    with trio.fail_after(TIME_LIMIT):
        async with open_cluster(graph, CoordinatorConfig(token="s3cret")) as cluster:
            intruder = cluster.worker(token=token)
            with pytest.raises(WorkerRejectedError, match="wrong token"):
                await intruder.run()
            welcome = await cluster.join_worker(token="s3cret")

    assert cluster.coordinator.summary is not None
    assert cluster.coordinator.summary.succeeded
    assert intruder.statistics().tasks_succeeded == 0
    assert welcome.statistics().tasks_succeeded == 2


# -- stopping ----------------------------------------------------------------------------


@pytest.mark.parametrize("tasks", [4, 2])
async def test_stopped_worker_hands_its_tasks_to_another(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture, tasks: int
) -> None:
    # With 2 tasks the leaving worker still has credit when it hands them back.
    graph = await timed_graph(tasks=tasks, concurrency=4, seconds=5)
    start = trio.current_time()

    with trio.fail_after(TIME_LIMIT), caplog.at_level(logging.INFO, "tgs.coordinator"):
        async with open_cluster(graph) as cluster:
            leaving = await cluster.join_worker()
            await trio.sleep(1)  # every task is running on `leaving`
            assert graph.statistics().loops["default"] == (0, tasks, 4)
            staying = await cluster.join_worker()
            leaving.stop()

    assert cluster.coordinator.summary is not None
    assert cluster.coordinator.summary.succeeded
    assert leaving.statistics().tasks_handed_back == tasks
    assert leaving.statistics().tasks_succeeded == 0
    assert staying.statistics().tasks_succeeded == tasks
    # Each task's one recorded result is its second run, started at the hand back.
    assert [begun for begun, _ in results_of(graph, "timed")] == [start + 1] * tasks
    # It left, as a Ctrl-C on it means (issue 16: it read as "dropped: connection lost"),
    # and lost nothing: no worker lost, no task charged.
    stopped = [r for r in caplog.records if "w1" in r.getMessage()]
    assert [(r.levelno, r.getMessage()) for r in stopped[1:]] == [
        (logging.INFO, f"worker worker-1 (w1) left: stopped, handed back {tasks} task(s)")
    ]
    assert cluster.coordinator.workers["worker-1"].left_because == "stopped"
    assert cluster.coordinator.workers["worker-1"].lost_while_running == []
    counters = cluster.coordinator.statistics()
    assert (counters.workers_lost, counters.tasks_lost) == (0, 0)
    assert all(node.losses == node.shared_losses == 0 for node in graph.nodes.values())


async def test_stopped_worker_holding_no_task_left_not_lost(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    graph = await timed_graph(tasks=1, concurrency=1, seconds=5)

    with trio.fail_after(TIME_LIMIT), caplog.at_level(logging.INFO, "tgs.coordinator"):
        async with open_cluster(graph) as cluster:
            await cluster.join_worker()
            idle = await cluster.join_worker()
            await trio.sleep(1)
            assert graph.statistics().loops["default"] == (0, 1, 1)  # on `busy`
            idle.stop()

    assert cluster.coordinator.summary is not None
    assert cluster.coordinator.summary.succeeded
    assert "worker worker-2 (w2) left: stopped, handed back 0 task(s)" in caplog.text
    assert "dropped" not in caplog.text
    assert cluster.coordinator.statistics().workers_lost == 0
    assert [r.left_because for r in cluster.coordinator.workers.values()] == [
        "dismissed",
        "stopped",
    ]


async def test_stopped_coordinator_ends_the_run(autojump_clock: trio.testing.MockClock) -> None:
    graph = await timed_graph(tasks=4, concurrency=4, seconds=5)
    start = trio.current_time()

    with trio.fail_after(TIME_LIMIT):
        async with open_cluster(graph) as cluster:
            workers = [await cluster.join_worker() for _ in range(2)]
            await trio.sleep(1)
            cluster.coordinator.stop()
        # Leaving the block means serve and both workers' run() returned.

    summary = cluster.coordinator.summary
    assert summary is not None
    assert summary.interrupted
    assert not summary.succeeded
    assert trio.current_time() - start < 5  # the running tasks were not waited for
    assert all(worker.statistics().tasks_succeeded == 0 for worker in workers)
    # Nothing is left marked as running: every task waits to be run again.
    assert summary.tasks_by_status == {"created": 4}
    graph.check_invariants()

    # Served again, the graph picks up where it stopped and finishes.
    with trio.fail_after(TIME_LIMIT):
        resumed, _ = await run_cluster(graph, 1)
    assert resumed.succeeded
    assert resumed.tasks_by_status == {"success": 4}


async def test_coordinator_stopped_in_a_stream_of_short_tasks_dismisses_every_worker(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Tasks end and new ones are handed out all the time: the stop must not let one be
    # sent after the Shutdown (which broke the session), nor a result be sent after the
    # worker was dismissed (which broke the worker).
    graph = await timed_graph(tasks=2000, concurrency=16, seconds=0.001)

    with trio.fail_after(TIME_LIMIT):
        async with open_cluster(graph) as cluster:
            workers = [await cluster.join_worker() for _ in range(4)]
            await trio.sleep(0.05)
            cluster.coordinator.stop()
        # Leaving the block means every worker's run() returned: each was dismissed.

    summary = cluster.coordinator.summary
    assert summary is not None
    assert summary.interrupted
    assert 0 < summary.tasks_by_status["success"] < 2000
    assert set(summary.tasks_by_status) == {"success", "created"}
    assert [record.left_because for record in cluster.coordinator.workers.values()] == [
        "dismissed"
    ] * 4
    assert all(worker.statistics().connections == 1 for worker in workers)
    graph.check_invariants()


async def test_worker_stopped_while_connecting_does_not_take_work(
    autojump_clock: trio.testing.MockClock,
) -> None:
    graph = await timed_graph(tasks=1, concurrency=1, seconds=5)

    with trio.fail_after(TIME_LIMIT):
        async with open_cluster(graph) as cluster:

            async def dial_then_stop() -> trio.abc.Stream:
                # stop() lands after the connection opened, before the handshake.
                stream = await cluster.listener.connect()
                quitter.stop()
                return stream

            quitter = Worker(WorkerConfig(url=cluster.coordinator.url), open_stream=dial_then_stop)
            with trio.move_on_after(1) as still_running:
                await quitter.run()
            cluster.start_worker()

    assert not still_running.cancelled_caught, "run() did not return after stop()"
    assert cluster.coordinator.summary is not None
    assert cluster.coordinator.summary.succeeded
    assert quitter.statistics().tasks_succeeded == 0


# -- starting, and graphs that end before they begin -------------------------------------


async def test_worker_gives_up_on_a_closed_coordinator(
    autojump_clock: trio.testing.MockClock,
) -> None:
    graph = await timed_graph(tasks=1, concurrency=1)
    with trio.fail_after(TIME_LIMIT):
        async with open_cluster(graph) as cluster:
            cluster.start_worker()
        assert cluster.coordinator.ended

        # The graph has ended and the coordinator stopped listening.
        late = cluster.worker(connect_timeout=2)
        start = trio.current_time()
        with pytest.raises(CoordinatorUnreachableError, match="closed") as raised:
            await late.run()
    assert trio.current_time() - start >= 2
    assert raised.value.url == cluster.coordinator.url
    assert late.statistics().connections == 0


async def test_worker_waiting_for_its_coordinator_says_so_at_a_low_rate(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    # Issue 16: a worker started before its coordinator printed nothing while it waited.
    graph = await timed_graph(tasks=1, concurrency=1)
    with trio.fail_after(TIME_LIMIT + 25):
        async with open_cluster(graph) as cluster:
            cluster.start_worker()
        caplog.set_level(logging.INFO, logger="tgs.worker")
        caplog.clear()
        # Nobody listens any more: every attempt is refused, one each 0-2 s for 25 s.
        url = cluster.coordinator.url
        attempts = 0

        async def dial() -> trio.abc.Stream:
            nonlocal attempts
            attempts += 1
            return await cluster.listener.connect()

        late = Worker(WorkerConfig(url=url, connect_timeout=25), open_stream=dial)
        with pytest.raises(CoordinatorUnreachableError, match=r"\(tried for 25 s\)"):
            await late.run()
    lines = [record.getMessage() for record in caplog.records]
    assert lines[0] == f"waiting for the coordinator at {url} (trying for 25 s)"
    # One line after 10 s and one after 20 s, not one per attempt.
    assert len(lines) == 3, lines
    for line in lines[1:]:
        assert line.startswith(f"still no coordinator at {url} (last: "), line
        assert "in-memory listener is closed" in line
    assert attempts > 12


async def test_worker_gives_up_when_nobody_answers(autojump_clock: trio.testing.MockClock) -> None:
    listener = MemoryListener()  # nobody ever accepts: each dial hangs until the deadline
    worker = Worker(
        WorkerConfig(url="ws://in-memory:0", connect_timeout=3), open_stream=listener.connect
    )
    with trio.fail_after(TIME_LIMIT):
        start = trio.current_time()
        with pytest.raises(CoordinatorUnreachableError, match="tried for 3 s"):
            await worker.run()
    assert trio.current_time() - start == 3
    await listener.aclose()


async def test_empty_graph_ends_at_once(autojump_clock: trio.testing.MockClock) -> None:
    graph = TaskGraph({"timed": timed}, [WorkerLoop("default", 1)])
    start = trio.current_time()
    with trio.fail_after(TIME_LIMIT):
        summary, _ = await run_cluster(graph, 0)
    assert trio.current_time() == start
    assert summary.succeeded
    assert not summary.interrupted
    assert summary.tasks_by_status == {}


async def make_cycle(closer: str, **kwargs: Any) -> None:
    # `closer` waits on this task's successor; making the successor wait on `closer`
    # closes a loop that nothing can ever break.
    kwargs["task_node"].prepend_to_successor("timed", closer)


async def test_dependency_cycle_raises_graph_stalled(
    autojump_clock: trio.testing.MockClock,
) -> None:
    graph = TaskGraph({"timed": timed, "cycle": make_cycle}, [WorkerLoop("default", 2)])
    # `first` must know the uid of a task created after it: choose that uid up front.
    closer_uid = new_uid("task")
    first = await graph.create_task("cycle", ((closer_uid,), None))
    successor = await graph.create_task("timed", None, waits_on=[first.uid])
    closer = graph.create_task_nowait("timed", None, waits_on=[successor.uid], uid=closer_uid)

    with trio.fail_after(TIME_LIMIT), pytest.RaisesGroup(GraphStalledError) as raised:
        await run_cluster(graph, 2)

    (error,) = raised.value.exceptions
    assert isinstance(error, GraphStalledError)
    assert set(error.stuck) == {successor.uid, closer.uid}
    assert first.task_status == "success"
    assert successor.task_status == closer.task_status == "waiting_for_predecessors"


# -- losing the connection ------------------------------------------------------------


async def test_worker_cut_off_reconnects_and_its_tasks_run_again(
    autojump_clock: trio.testing.MockClock,
) -> None:
    graph = await timed_graph(tasks=3, concurrency=3, seconds=5)
    start = trio.current_time()

    # Lost together, the three are suspects: they run again one at a time (3 x 5 s).
    with trio.fail_after(3 * TIME_LIMIT):
        async with open_cluster(graph) as cluster:
            worker = await cluster.join_worker()
            await trio.sleep(1)
            assert graph.statistics().loops["default"] == (0, 3, 3)
            await cluster.cut_connections()

    assert cluster.coordinator.summary is not None
    assert cluster.coordinator.summary.succeeded
    assert worker.statistics().connections == 2
    # The runs cut off were never counted; each task's one result is from its rerun.
    assert worker.statistics().tasks_succeeded == 3
    assert all(begun >= start + 1 for begun, _ in results_of(graph, "timed"))
    begun = sorted(begun for begun, _ in results_of(graph, "timed"))
    assert [later - earlier >= 5 for earlier, later in itertools.pairwise(begun)] == [True] * 2
    assert [node.losses for node in graph.nodes.values()] == [0] * 3  # nobody was blamed
