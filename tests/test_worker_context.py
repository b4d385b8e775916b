"""worker_context: teardown, worker_index numbering and init failures, the same
in-process and on workers (issue 12).

Each test runs its graph with ``execute_graph`` and with
``run_local_cluster(in_memory=True)``. The init functions here are shipped to workers by
value, so they report through files, never through module state.
"""

from __future__ import annotations

import contextlib
import logging
import pathlib
from typing import TYPE_CHECKING, Any

import pytest
import trio
import trio.lowlevel

from trio_graph_scheduler import (
    Coordinator,
    CoordinatorConfig,
    RunSummary,
    TaskGraph,
    WorkerConfig,
    WorkerContextError,
    WorkerLoop,
    execute_graph,
)
from trio_graph_scheduler.shared.states import EndReason
from trio_graph_scheduler.testing import run_local_cluster

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

MODES = ["in-process", "cluster"]


async def run(graph: TaskGraph, mode: str, workers: int = 1, **settings: Any) -> RunSummary:
    """Run ``graph`` in ``mode``; return its summary."""
    if mode == "in-process":
        return await execute_graph(graph)
    worker_config = WorkerConfig(url="ws://unused", **settings) if settings else None
    with trio.fail_after(60):
        return await run_local_cluster(
            graph, workers=workers, in_memory=True, worker_config=worker_config
        )


def context_init(directory: str) -> Callable[[int], Any]:
    """An init (an async context manager) that records each slot's open and close."""

    @contextlib.asynccontextmanager
    async def init(worker_index: int) -> AsyncIterator[dict[str, int]]:
        folder = pathlib.Path(directory)
        (folder / f"open-{worker_index}").touch()
        try:
            yield {"index": worker_index}
        finally:
            await (
                trio.lowlevel.checkpoint()
            )  # a teardown may await: the slot's stop does not cancel it
            (folder / f"closed-{worker_index}").touch()

    return init


async def where(**kwargs: Any) -> int:
    await trio.sleep(0.01)  # long enough for every slot to take one
    index: int = kwargs["worker_context"]["index"]
    return index


def marks(folder: pathlib.Path, prefix: str) -> set[int]:
    return {int(p.name.split("-")[1]) for p in folder.glob(f"{prefix}-*")}


@pytest.mark.parametrize("mode", MODES)
async def test_an_async_context_manager_init_is_exited_when_its_slot_stops(
    mode: str, tmp_path: pathlib.Path
) -> None:
    graph = TaskGraph(
        {"where": where},
        [WorkerLoop("default", 3)],
        worker_context_init_functions={"default": context_init(str(tmp_path))},
    )
    nodes = [await graph.create_task("where") for _ in range(6)]
    summary = await run(graph, mode)
    assert summary.succeeded
    assert {n.task_result for n in nodes} <= {0, 1, 2}
    assert marks(tmp_path, "open") == marks(tmp_path, "closed") == {0, 1, 2}


@pytest.mark.parametrize("mode", MODES)
async def test_a_plain_init_still_gives_its_value(mode: str) -> None:
    def init(worker_index: int) -> dict[str, int]:
        return {"index": worker_index}

    graph = TaskGraph(
        {"where": where},
        [WorkerLoop("default", 2)],
        worker_context_init_functions={"default": init},
    )
    nodes = [await graph.create_task("where") for _ in range(4)]
    await run(graph, mode)
    assert {n.task_result for n in nodes} == {0, 1}


async def test_worker_index_is_unique_across_the_cluster(tmp_path: pathlib.Path) -> None:
    graph = TaskGraph(
        {"where": where},
        [WorkerLoop("default", 2)],
        worker_context_init_functions={"default": context_init(str(tmp_path))},
    )
    for _ in range(4):
        await graph.create_task("where")
    await run(graph, "cluster", workers=3)
    # Three workers of two slots each: numbered 0 to 5 across the cluster, none twice.
    assert marks(tmp_path, "open") == marks(tmp_path, "closed") == set(range(6))


async def test_worker_index_counts_the_slots_a_worker_runs(tmp_path: pathlib.Path) -> None:
    graph = TaskGraph(
        {"where": where},
        [WorkerLoop("default", 4)],
        worker_context_init_functions={"default": context_init(str(tmp_path))},
    )
    await graph.create_task("where")
    await run(graph, "cluster", workers=2, max_tasks=1)
    assert marks(tmp_path, "open") == {0, 1}


def test_a_leaving_worker_frees_its_numbers_for_the_next() -> None:
    graph = TaskGraph({"where": where}, [WorkerLoop("default", 2)])
    coordinator = Coordinator(graph, CoordinatorConfig())
    first = coordinator.take_slot_indexes("default", 2)
    second = coordinator.take_slot_indexes("default", 2)
    assert (first, second) == ([0, 1], [2, 3])
    coordinator.free_slot_indexes("default", first)
    assert coordinator.take_slot_indexes("default", 3) == [0, 1, 4]


def failing_init(worker_index: int) -> None:
    raise OSError(f"no database for slot {worker_index}")


async def plain(**_: Any) -> None:
    return None


@pytest.mark.parametrize("mode", MODES)
async def test_a_failing_init_fails_the_loops_tasks_with_one_clear_message(mode: str) -> None:
    graph = TaskGraph(
        {"plain": plain, "other": plain},
        [WorkerLoop("default", 1, ["plain"]), WorkerLoop("other", 1, ["other"])],
        worker_context_init_functions={"default": failing_init},
    )
    failed = [await graph.create_task("plain") for _ in range(2)]
    fine = await graph.create_task("other")
    summary = await run(graph, mode)  # no ExceptionGroup in-process
    assert fine.task_status == "success"
    assert [t.headline for t in summary.failed_tasks] == [
        "WorkerContextError: worker context init of loop 'default' (worker 0) failed: "
        "OSError: no database for slot 0"
    ] * 2
    for node in failed:
        assert node.end_reason is EndReason.WORKER_ERROR
        assert isinstance(node.task_exception, WorkerContextError)
        assert node.task_exception.loop == "default"
        # The init's own traceback is part of the text, in both modes.
        assert node.exception_trace is not None
        assert 'in failing_init\n    raise OSError(f"no database' in node.exception_trace


def failing_enter(worker_index: int) -> Any:
    @contextlib.asynccontextmanager
    async def manager() -> AsyncIterator[None]:
        if worker_index >= 0:  # always: the yield below keeps this a generator
            raise ValueError("cannot open")
        yield

    return manager()


@pytest.mark.parametrize("mode", MODES)
async def test_a_context_manager_that_cannot_enter_fails_like_an_init(mode: str) -> None:
    graph = TaskGraph(
        {"plain": plain},
        [WorkerLoop("default", 1)],
        worker_context_init_functions={"default": failing_enter},
    )
    await graph.create_task("plain")
    summary = await run(graph, mode)
    assert summary.failed_tasks[0].headline == (
        "WorkerContextError: worker context init of loop 'default' (worker 0) failed: "
        "ValueError: cannot open"
    )


def failing_teardown(worker_index: int) -> Any:
    @contextlib.asynccontextmanager
    async def manager() -> AsyncIterator[dict[str, int]]:
        yield {"index": worker_index}
        raise RuntimeError("close failed")

    return manager()


async def test_a_failing_teardown_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    graph = TaskGraph(
        {"where": where},
        [WorkerLoop("default", 1)],
        worker_context_init_functions={"default": failing_teardown},
    )
    node = await graph.create_task("where")
    with caplog.at_level(logging.WARNING, logger="tgs"):
        summary = await execute_graph(graph)
    assert summary.succeeded
    assert node.task_result == 0
    assert [r.getMessage() for r in caplog.records] == [
        "the worker context of loop 'default' (worker 0) raised when exited: "
        "RuntimeError: close failed"
    ]
