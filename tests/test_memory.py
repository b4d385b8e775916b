"""Results under a memory limit and release, in-process (execute_graph), with the real
spill (SQLite in a temporary directory) and the journal.

tests/core/test_results.py holds the rules without a disk; tests/distributed/
test_dist_memory.py the same with remote workers; tests/e2e/test_e2e_memory.py the
coordinator's peak memory with real processes.
"""

from __future__ import annotations

import gc
import hashlib
import os
from typing import TYPE_CHECKING, Any

import pytest

from trio_graph_scheduler import (
    ConfigError,
    ResultReleasedError,
    TaskGraph,
    WorkerLoop,
    execute_graph,
)
from trio_graph_scheduler.coordinator.core.results import result_whereabouts
from trio_graph_scheduler.coordinator.result_store import (
    DiskSpill,
    default_memory_limit,
    parse_size,
)

if TYPE_CHECKING:
    from pathlib import Path

KIB = 1024


def entries(directory: Path) -> list[str]:
    return sorted(os.listdir(directory))


def blob(index: int) -> bytes:
    return hashlib.sha256(str(index).encode()).digest() * (16 * KIB // 32)


async def make(index: int, **_: Any) -> bytes:
    return blob(index)


async def digest(**kwargs: Any) -> list[str]:
    return [
        hashlib.sha256(p.task_result).hexdigest()
        for p in kwargs["task_node"].get_predecessor_task_nodes()
    ]


async def late(uid: str, **kwargs: Any) -> None:
    """Make a task wait on ``uid`` while the graph runs."""
    await kwargs["graph"].create_task("digest", None, [uid])


def make_graph() -> TaskGraph:
    functions = {"make": make, "digest": digest, "late": late}
    return TaskGraph(functions, [WorkerLoop("default", 4, None)])


async def test_results_past_the_limit_spill_to_disk_and_read_back(tmp_path: Path) -> None:
    graph = make_graph()
    makers = [await graph.create_task("make", ((i,), None)) for i in range(40)]
    readers = [
        await graph.create_task("digest", None, [m.uid for m in makers[i : i + 4]])
        for i in range(0, 40, 4)
    ]

    summary = await execute_graph(graph, memory_limit="64KiB", spill_dir=tmp_path)

    assert summary.succeeded
    holder = graph.scheduler.results
    assert holder is not None
    assert holder.peak_held <= 64 * KIB
    assert holder.spilled >= 40 - 4
    (directory,) = entries(tmp_path)
    assert directory.startswith("tgs-results-")
    for index, reader in enumerate(readers):
        wanted = [hashlib.sha256(blob(i)).hexdigest() for i in range(4 * index, 4 * index + 4)]
        assert reader.task_result == wanted
    assert [m.task_result for m in makers] == [blob(i) for i in range(40)]
    assert holder.held <= 64 * KIB
    assert isinstance(holder.spill, DiskSpill)
    holder.spill.close()
    assert entries(tmp_path) == []


def digest_in_a_thread(**kwargs: Any) -> list[str]:
    """The sync twin of digest: it runs in a worker thread, and reads from there."""
    return [
        hashlib.sha256(p.task_result).hexdigest()
        for p in kwargs["task_node"].get_predecessor_task_nodes()
    ]


async def test_a_sync_task_reads_spilled_results_from_its_thread(tmp_path: Path) -> None:
    graph = TaskGraph(
        {"make": make, "digest": digest_in_a_thread}, [WorkerLoop("default", 4, None)]
    )
    makers = [await graph.create_task("make", ((i,), None)) for i in range(8)]
    reader = await graph.create_task("digest", None, [m.uid for m in makers])

    summary = await execute_graph(graph, memory_limit="16KiB", spill_dir=tmp_path)

    assert summary.succeeded, reader.exception_trace
    assert reader.task_result == [hashlib.sha256(blob(i)).hexdigest() for i in range(8)]
    holder = graph.scheduler.results
    assert holder is not None
    # Read in the task's thread, the results stayed on disk: the counts are the loop's.
    assert holder.loaded == 0
    graph.check_invariants()


async def test_a_run_under_its_limit_touches_no_disk(tmp_path: Path) -> None:
    graph = make_graph()
    maker = await graph.create_task("make", ((1,), None))
    await execute_graph(graph, memory_limit=10 * 2**20, spill_dir=tmp_path)
    assert maker.task_result == blob(1)
    assert entries(tmp_path) == []


async def test_release_drops_intermediates_and_keeps_sinks_and_kept_ones() -> None:
    graph = make_graph()
    dropped = await graph.create_task("make", ((1,), None))
    kept = await graph.create_task("make", ((2,), None), keep_result=True)
    sink = await graph.create_task("digest", None, [dropped.uid, kept.uid])

    summary = await execute_graph(graph, release_results=True)

    assert summary.succeeded
    assert sink.task_result == [hashlib.sha256(blob(i)).hexdigest() for i in (1, 2)]
    assert kept.task_result == blob(2)
    with pytest.raises(ResultReleasedError, match="--release-results"):
        _ = dropped.task_result
    assert result_whereabouts(dropped) == "released"
    # The report names the type of a released result without reading it.
    from trio_graph_scheduler.coordinator.observe.report import build_report

    report = build_report(graph, started_at=0.0, ended_at=1.0)
    types = {task["uid"]: task["result_type"] for task in report["tasks"]}
    assert types[dropped.uid] == "bytes"


async def test_a_task_that_waits_on_a_released_result_is_refused_where_it_is_made() -> None:
    graph = make_graph()
    first = await graph.create_task("make", ((1,), None))
    reader = await graph.create_task("digest", None, [first.uid])
    # Runs after reader (it waits on it), so first's result is gone by then.
    maker = await graph.create_task("late", ((first.uid,), {}), [reader.uid])

    summary = await execute_graph(graph, release_results=True)

    assert maker.task_status == "failed"
    assert isinstance(maker.task_exception, ResultReleasedError)
    assert maker.task_exception.uid == first.uid
    assert not summary.succeeded


async def test_a_resumed_journal_reads_its_results_back_under_the_limit(tmp_path: Path) -> None:
    journal = tmp_path / "run.sqlite"
    graph = make_graph()
    for i in range(20):
        await graph.create_task("make", ((i,), None), keep_result=i == 0)
    await execute_graph(graph, journal=journal)

    again = make_graph()
    for i in range(20):
        await again.create_task("make", ((i,), None))
    spill = tmp_path / "spill"
    spill.mkdir()
    await execute_graph(again, journal=journal, memory_limit="40KiB", spill_dir=spill)

    holder = again.scheduler.results
    assert holder is not None
    assert holder.peak_held <= 40 * KIB
    assert holder.spilled >= 20 - 2
    results = {n.task_arguments[0][0]: n.task_result for n in again.nodes.values()}  # type: ignore[index]
    assert results == {i: blob(i) for i in range(20)}
    # keep_result was journaled with its task.
    (kept,) = (n for n in again.nodes.values() if n.task_arguments[0][0] == 0)  # type: ignore[index]
    assert again._kept == {kept}


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("128MiB", 128 * 2**20),
        ("2GiB", 2 * 2**30),
        ("500MB", 500 * 10**6),
        ("1.5 gib", int(1.5 * 2**30)),
        ("4096", 4096),
        ("64k", 64_000),
    ],
)
def test_sizes_are_read_with_units(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "lots", "12 furlongs", "-5MiB", "MiB"])
def test_a_bad_size_is_a_config_error(text: str) -> None:
    with pytest.raises(ConfigError, match="--memory-limit"):
        parse_size(text)


async def test_a_limit_must_be_positive() -> None:
    with pytest.raises(ConfigError, match="positive"):
        await execute_graph(make_graph(), memory_limit=0)


def test_the_default_limit_is_a_share_of_the_machine() -> None:
    assert default_memory_limit() > 0


def test_the_spill_round_trips_values_and_cleans_up(tmp_path: Path) -> None:
    spill = DiskSpill(tmp_path)
    value = {"a": (1, 2), "b": {3}, "c": b"\x00" * 1000}
    assert spill.measure(value) is not None
    assert spill.measure(b"abc") == 3
    assert spill.measure(lambda: None) is not None  # cloudpickle carries it
    assert spill.path is None
    assert spill.write("task-1", value)
    assert spill.path is not None
    assert spill.read("task-1") == value
    spill.delete("task-1")
    spill.close()
    assert entries(tmp_path) == []
    # Dropped without a close (a graph let go of), it cleans up all the same, silently.
    spill = DiskSpill(tmp_path)
    assert spill.write("task-2", b"x")
    del spill
    gc.collect()
    assert entries(tmp_path) == []
