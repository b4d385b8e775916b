"""Frame and value limits: what a worker accepts travels in its hello; a value larger
than a frame goes as a stream of frames each side accepts (issue 10), and a task whose
value is larger than the other side takes in (``--max-value-bytes``) fails alone and
cleanly, from the graph builder or from a task."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import trio
import trio.testing
from memcluster import TIME_LIMIT, open_cluster, run_cluster

from trio_graph_scheduler import CoordinatorConfig, TaskGraph, WorkerLoop
from trio_graph_scheduler.shared.errors import WorkerRejectedError
from trio_graph_scheduler.shared.states import EndReason

#: The smallest frame limit either program takes.
SMALL_FRAME = 2**16
#: Arguments that fit the coordinator's default limit but not ``SMALL_FRAME``.
MIDDLE = 100_000
#: Arguments that fit no frame of the default limit (16 MiB).
HUGE = 17 * 2**20
#: A value limit that ``MIDDLE`` is over.
SMALL_VALUE = 2**16


async def size(payload: bytes, **_: Any) -> int:
    await trio.sleep(1)
    return len(payload)


async def spawn(nbytes: int, awaited: bool, graph: Any, **_: Any) -> str:
    payload = b"x" * nbytes
    if not awaited:
        graph.create_task_nowait("size", ((payload,), {}))
        return "asked"
    try:
        await graph.create_task("size", ((payload,), {}))
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return "created"


def sizes_graph(concurrency: int = 8) -> TaskGraph:
    return TaskGraph({"size": size, "spawn": spawn}, [WorkerLoop("default", concurrency)])


async def test_builder_argument_over_the_workers_limit_fails_that_task_only(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # All five go out in one batch: the first carries the function and cannot be sent.
    # The others must still get the function (the worker used to crash on "function
    # 'size' was never sent") and run.
    graph = sizes_graph()
    big = await graph.create_task("size", ((b"x" * MIDDLE,), {}))
    small = [await graph.create_task("size", ((b"x" * n,), {})) for n in (1, 2, 3, 4)]

    with trio.fail_after(TIME_LIMIT):
        async with open_cluster(graph) as cluster:
            worker = cluster.start_worker(max_value_bytes=SMALL_VALUE)
    coordinator = cluster.coordinator

    assert big.task_status == "failed"
    assert big.end_reason is EndReason.UNSENDABLE
    assert big.exception_trace is not None
    assert "cannot send the task to a worker" in big.exception_trace
    assert "more than the peer takes in (65,536 bytes, --max-value-bytes)" in big.exception_trace
    assert [t.task_result for t in small] == [1, 2, 3, 4]
    # Nothing was lost and nobody was dropped: one connection did it all.
    assert coordinator.statistics().workers_lost == 0
    assert coordinator.statistics().tasks_lost == 0
    assert worker.statistics().connections == 1
    graph.check_invariants()


async def test_every_later_batch_still_carries_the_function_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Concurrency 1: the big task's assignment goes alone, fails, and the next one (in
    # a later batch) must carry the function that never went.
    graph = sizes_graph(concurrency=1)
    big = await graph.create_task("size", ((b"x" * MIDDLE,), {}))
    small = [await graph.create_task("size", ((b"x" * n,), {})) for n in (5, 6)]

    with trio.fail_after(TIME_LIMIT):
        summary, [worker] = await run_cluster(graph, 1, max_value_bytes=SMALL_VALUE)

    assert big.end_reason is EndReason.UNSENDABLE
    assert [t.task_result for t in small] == [5, 6]
    assert summary.tasks_by_status == {"success": 2, "failed": 1}
    assert worker.statistics().connections == 1


async def test_a_value_larger_than_both_frame_limits_goes_as_a_stream(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Issue 10: MIDDLE fits no frame either side takes (it used to fail the task); it
    # goes as a stream of frames the smaller side (the coordinator's) accepts.
    graph = sizes_graph()
    big = await graph.create_task("size", ((b"x" * MIDDLE,), {}))
    fine = await graph.create_task("size", ((b"x" * 10,), {}))
    config = CoordinatorConfig(max_frame_bytes=SMALL_FRAME)

    with trio.fail_after(TIME_LIMIT):
        summary, _ = await run_cluster(graph, 1, config=config, max_frame_bytes=SMALL_FRAME)

    assert big.task_result == MIDDLE
    assert fine.task_result == 10
    assert summary.tasks_by_status == {"success": 2}


async def test_awaited_create_task_over_the_limit_raises_in_the_calling_task(
    autojump_clock: trio.testing.MockClock,
) -> None:
    graph = sizes_graph()
    caller = await graph.create_task("spawn", ((HUGE, True), {}))
    beside = await graph.create_task("size", ((b"x" * 7,), {}))

    config = CoordinatorConfig(max_value_bytes=2**20)
    with trio.fail_after(TIME_LIMIT):
        summary, [worker] = await run_cluster(graph, 1, config=config)

    assert caller.task_status == "success"
    assert isinstance(caller.task_result, str)
    assert caller.task_result.startswith("ValueTooLargeError: the arguments of the new 'size'")
    assert "(1,048,576 bytes, --max-value-bytes)" in caller.task_result
    assert beside.task_result == 7
    # The task was never created on the coordinator.
    assert summary.tasks_by_status == {"success": 2}
    assert worker.statistics().connections == 1


async def test_unawaited_create_task_over_the_limit_fails_the_calling_task(
    autojump_clock: trio.testing.MockClock,
) -> None:
    graph = sizes_graph()
    caller = await graph.create_task("spawn", ((HUGE, False), {}))
    beside = await graph.create_task("size", ((b"x" * 7,), {}))

    config = CoordinatorConfig(max_value_bytes=2**20)
    with trio.fail_after(TIME_LIMIT):
        summary, [worker] = await run_cluster(graph, 1, config=config)

    assert caller.task_status == "failed"
    assert caller.end_reason is EndReason.CALL_FAILED
    assert caller.exception_trace is not None
    assert "a graph call by this task failed" in caller.exception_trace
    assert "too large to send to the coordinator" in caller.exception_trace
    assert beside.task_result == 7
    assert summary.tasks_by_status == {"success": 1, "failed": 1}
    assert worker.statistics().connections == 1


# -- workers that arrive too late ----------------------------------------------------


async def stubborn(**_: Any) -> None:
    """Ignores cancellation: its worker cannot leave when dismissed."""
    with trio.CancelScope(shield=True):
        await trio.sleep(1000)


async def test_a_worker_arriving_while_workers_are_dismissed_exits_at_once(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    graph = TaskGraph({"stubborn": stubborn}, [WorkerLoop("default", 1)])
    await graph.create_task("stubborn")
    with trio.fail_after(TIME_LIMIT * 200), caplog.at_level(logging.INFO, "tgs"):
        async with open_cluster(graph) as cluster:
            await cluster.join_worker(name="stubborn")
            while not graph.scheduler.loops["default"].running:  # noqa: ASYNC110
                await trio.sleep(0.1)
            cluster.coordinator.stop()
            await cluster.coordinator.wait_ended()
            # The stubborn worker holds the dismissal up (for shutdown_grace seconds);
            # a worker that arrives now is welcomed and told to leave at once.
            late = cluster.worker(name="late")
            arrived = trio.current_time()
            await late.run()  # returns: dismissed, not an error
            assert trio.current_time() - arrived < 1
    assert late.statistics().connections == 1
    assert late.statistics().tasks_succeeded == 0
    assert "dismissed by the coordinator: the run has ended" in caplog.text
    assert cluster.coordinator.summary is not None
    assert cluster.coordinator.summary.interrupted


def big_init(worker_index: int) -> bytes:
    return BIG_BLOB


BIG_BLOB = b"x" * (2 * SMALL_FRAME)


async def test_a_welcome_larger_than_the_worker_accepts_is_a_clear_refusal(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # The context init function drags a blob larger than the worker's frame limit.
    graph = TaskGraph(
        {"size": size},
        [WorkerLoop("default", 1)],
        worker_context_init_functions={"default": big_init},
    )
    await graph.create_task("size", ((b"x",), {}))
    with trio.fail_after(TIME_LIMIT):
        async with open_cluster(graph) as cluster:
            small = cluster.worker(max_frame_bytes=SMALL_FRAME)
            with pytest.raises(WorkerRejectedError, match="accepts at most 65536"):
                await small.run()
            cluster.start_worker()  # a worker that accepts it finishes the graph
    assert cluster.coordinator.summary is not None
    assert cluster.coordinator.summary.succeeded


async def big_result(**_: Any) -> bytes:
    await trio.sleep(1)
    return b"x" * MIDDLE


async def test_a_result_larger_than_the_coordinator_accepts_fails_that_task_only(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # The worker takes values of 1 GiB, the coordinator of 64 KiB: the welcome said so,
    # and the worker fails the task instead of sending it (its frames, of 64 KiB at
    # most, would carry the value as a stream).
    graph = TaskGraph({"big": big_result, "size": size}, [WorkerLoop("default", 4)])
    big = await graph.create_task("big")
    fine = [await graph.create_task("size", ((b"x" * n,), {})) for n in (1, 2)]
    config = CoordinatorConfig(max_frame_bytes=SMALL_FRAME, max_value_bytes=SMALL_VALUE)

    with trio.fail_after(TIME_LIMIT):
        async with open_cluster(graph, config) as cluster:
            worker = cluster.start_worker()

    assert big.end_reason is EndReason.UNSENDABLE
    assert big.exception_trace is not None
    assert "result cannot be sent to the coordinator" in big.exception_trace
    assert [t.task_result for t in fine] == [1, 2]
    assert cluster.coordinator.statistics().workers_lost == 0
    assert worker.statistics().connections == 1


async def test_values_larger_than_a_frame_travel_every_way(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Issue 10, with default settings: a task's 17 MiB arguments from the builder, from a
    # task (an awaited and an unawaited create_task), and a 17 MiB result read by a
    # successor, all over the 16 MiB frame limit.
    graph = TaskGraph(
        {"size": size, "spawn": spawn, "big": big_result_of, "read": read_size},
        [WorkerLoop("default", 4)],
    )
    given = await graph.create_task("size", ((b"x" * HUGE,), {}))
    awaited = await graph.create_task("spawn", ((HUGE, True), {}))
    unawaited = await graph.create_task("spawn", ((HUGE, False), {}))
    made = await graph.create_task("big", ((HUGE,), {}))
    read = await graph.create_task("read", None, [made.uid])
    with trio.fail_after(TIME_LIMIT):
        summary, [worker] = await run_cluster(graph, 1)
    assert summary.succeeded, summary
    assert (given.task_result, awaited.task_result, unawaited.task_result) == (
        HUGE,
        "created",
        "asked",
    )
    assert read.task_result == HUGE
    created = [n for n in graph.nodes.values() if n.task_handle == "size" and n is not given]
    assert [n.task_result for n in created] == [HUGE, HUGE]
    assert worker.statistics().connections == 1


async def big_result_of(nbytes: int, **_: Any) -> bytes:
    return b"y" * nbytes


async def read_size(*, task_node: Any, **_: Any) -> int:
    (made,) = task_node.get_predecessor_task_nodes()
    assert made.task_result == b"y" * len(made.task_result)
    return len(made.task_result)
