"""The run's journal (coordinator/journal.py) in-process: record, replay, refuse.

A crash is played here by cancelling a run part-way and then dropping what the journal had
not written yet; tests/e2e/test_e2e_journal.py kills real processes.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections import Counter
from typing import TYPE_CHECKING, Any

import msgpack
import pytest
import trio
import trio.lowlevel
import trio.testing

from trio_graph_scheduler import (
    GenericSchedulingCondition,
    JournalError,
    TaskGraph,
    TaskNode,
    TaskPolicy,
    WorkerLoop,
    execute_graph,
)
from trio_graph_scheduler.coordinator.journal import Journal, recorded_events

if TYPE_CHECKING:
    from pathlib import Path


class Calls:
    """Counts the calls of each task function by argument, and can stop a run."""

    def __init__(self, stop_after: int | None = None) -> None:
        self.calls: Counter[Any] = Counter()
        self.stop_after = stop_after
        self.stop = trio.Event()

    def note(self, what: Any) -> None:
        self.calls[what] += 1
        if self.stop_after is not None and sum(self.calls.values()) >= self.stop_after:
            self.stop.set()


def build(calls: Calls, *, width: int = 12) -> TaskGraph:
    """``start`` fans out to ``width`` ``square`` tasks (each of which makes one ``half``
    task and postpones ``total`` with it); ``total`` sums what succeeded."""

    async def start(**_: Any) -> str:
        calls.note("start")
        return "started"

    async def square(n: int, *, graph: TaskGraph, task_node: TaskNode, **_: Any) -> int:
        calls.note(("square", n))
        if n == 5:
            raise ValueError("five is not welcome")
        # By key: a square interrupted after this, and run again, finds its half.
        half = await graph.create_task("half", ((n,), {}), key=("half", n))
        task_node.prepend_to_successor("total", half)
        await trio.lowlevel.checkpoint()
        return n * n

    async def half(n: int, **_: Any) -> float:
        calls.note(("half", n))
        await trio.lowlevel.checkpoint()
        return n / 2

    async def total(*, task_node: TaskNode, **_: Any) -> float:
        calls.note("total")
        return sum(p.task_result for p in task_node.get_predecessor_task_nodes() if p.task_result)

    graph = TaskGraph(
        {"start": start, "square": square, "half": half, "total": total},
        [WorkerLoop("default", 3)],
    )
    first = graph.create_task_nowait("start")
    squares = [graph.create_task_nowait("square", ((n,), {}), [first.uid]) for n in range(width)]
    every = GenericSchedulingCondition(graph, "COMPLETE__ALL", [s.uid for s in squares])
    graph.create_task_nowait("total", None, [every.uid])
    return graph


def outcome(graph: TaskGraph) -> dict[str, tuple[Any, ...]]:
    """Each task's function, status, result and how its edges look, by uid."""
    return {
        uid: (
            node.task_handle,
            str(node.task_status),
            node.task_result,
            node.exception_trace is not None,
            tuple(c.uid for c in node.waits_on),
            tuple(c.uid for c in node.waited_on_by),
        )
        for uid, node in graph.nodes.items()
    }


async def run_until_stopped(graph: TaskGraph, calls: Calls, journal: Path) -> None:
    async with trio.open_nursery() as nursery:

        async def stopper() -> None:
            await calls.stop.wait()
            nursery.cancel_scope.cancel()

        nursery.start_soon(stopper)
        await execute_graph(graph, journal=journal)
        nursery.cancel_scope.cancel()


async def test_a_finished_run_resumes_to_the_same_outcome_without_running_anything(
    tmp_path: Path,
) -> None:
    path = tmp_path / "run.journal"
    first_calls = Calls()
    first = build(first_calls)
    await execute_graph(first, journal=path)
    assert first_calls.calls["total"] == 1

    again_calls = Calls()
    again = build(again_calls)
    await execute_graph(again, journal=path)
    assert again_calls.calls == Counter(), "a resumed finished run ran tasks again"
    assert outcome(again) == outcome(first)
    total = next(n for n in again.nodes.values() if n.task_handle == "total")
    assert total.task_result == sum(n * n + n / 2 for n in range(12) if n != 5)
    again.check_invariants()


async def test_an_interrupted_run_resumes_where_it_stood(tmp_path: Path) -> None:
    path = tmp_path / "run.journal"
    calls = Calls(stop_after=14)
    graph = build(calls)
    await run_until_stopped(graph, calls, path)
    at_stop = outcome(graph)
    ended_at_stop = {uid for uid, o in at_stop.items() if o[1] in ("success", "failed")}
    assert 0 < len(ended_at_stop) < len(at_stop) - 1

    resumed_calls = Calls()
    resumed = build(resumed_calls)
    journal = Journal.open(path, resumed)
    try:
        journal.bind(resumed)
    finally:
        journal.close()
    # Rebuilt exactly as it stood: the same tasks, edges, statuses and results.
    assert outcome(resumed) == at_stop
    resumed.check_invariants()

    await execute_graph(resumed, journal=path)
    ran_again = {
        uid
        for uid in ended_at_stop
        if resumed.nodes[uid].task_handle == "square"
        and resumed_calls.calls[("square", resumed.nodes[uid].task_arguments[0][0])]
    }
    assert not ran_again, "tasks that had ended ran again"
    total = next(n for n in resumed.nodes.values() if n.task_handle == "total")
    assert total.task_result == sum(n * n + n / 2 for n in range(12) if n != 5)
    assert sum(1 for n in resumed.nodes.values() if n.task_handle == "half") == 11
    resumed.check_invariants()


async def test_events_not_yet_written_are_run_again_not_lost(tmp_path: Path) -> None:
    # A crash loses what was buffered but not committed: those tasks run again.
    path = tmp_path / "run.journal"
    calls = Calls(stop_after=9)
    graph = build(calls)
    journal = Journal.open(path, graph)
    journal.bind(graph)
    journal.flush()  # the graph as built is on disk
    async with trio.open_nursery() as nursery:
        nursery.start_soon(execute_graph, graph)
        await calls.stop.wait()
        nursery.cancel_scope.cancel()
    journal._pending.clear()  # the crash: nothing after the build was written
    journal.close()

    resumed_calls = Calls()
    resumed = build(resumed_calls)
    await execute_graph(resumed, journal=path)
    assert resumed_calls.calls["start"] == 1
    assert all(resumed_calls.calls[("square", n)] == 1 for n in range(12))
    total = next(n for n in resumed.nodes.values() if n.task_handle == "total")
    assert total.task_result == sum(n * n + n / 2 for n in range(12) if n != 5)


async def test_a_journal_of_another_graph_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "run.journal"
    await execute_graph(build(Calls()), journal=path)

    async def other(**_: Any) -> None:
        return None

    stranger = TaskGraph({"start": other, "fetch": other}, [WorkerLoop("default", 1)])
    stranger.create_task_nowait("fetch")
    with pytest.raises(JournalError, match=r"records another graph.*fetch"):
        await execute_graph(stranger, journal=path)
    assert stranger.nodes
    assert all(str(n.task_status) == "created" for n in stranger.nodes.values())


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda p: p.write_bytes(b"this is not a database at all" * 200), "no usable journal"),
        (lambda p: p.write_bytes(b""), None),  # empty: a new journal, not an error
    ],
)
async def test_a_file_that_is_no_journal_is_refused(
    tmp_path: Path, damage: Any, message: str | None
) -> None:
    path = tmp_path / "run.journal"
    damage(path)
    calls = Calls()
    if message is None:
        await execute_graph(build(calls), journal=path)
        assert calls.calls["total"] == 1
        return
    with pytest.raises(JournalError, match=message):
        await execute_graph(build(calls), journal=path)
    assert calls.calls == Counter()


@pytest.mark.parametrize(
    "damaged",
    [
        pytest.param(b"\xc1\xc1", id="batch-not-msgpack"),
        pytest.param(msgpack.packb([b"\xc1"]), id="event-not-msgpack"),
        pytest.param(msgpack.packb([msgpack.packb(["end", "task-unknown"])]), id="event-short"),
        pytest.param(msgpack.packb([msgpack.packb(["shrug"])]), id="event-of-no-kind"),
    ],
)
async def test_a_damaged_batch_is_refused_and_nothing_runs(tmp_path: Path, damaged: bytes) -> None:
    path = tmp_path / "run.journal"
    await execute_graph(build(Calls()), journal=path)
    with contextlib.closing(sqlite3.connect(path)) as connection, connection:
        (last,) = connection.execute("SELECT max(seq) FROM batches").fetchone()
        connection.execute("UPDATE batches SET events = ? WHERE seq = ?", (damaged, last))
    calls = Calls()
    with pytest.raises(JournalError, match=f"batch {last} is damaged"):
        await execute_graph(build(calls), journal=path)
    assert calls.calls == Counter()


async def test_a_task_whose_arguments_cannot_be_journaled_is_refused_at_creation(
    tmp_path: Path,
) -> None:
    async def use(lock: Any, **_: Any) -> None:
        return None

    graph = TaskGraph({"use": use}, [WorkerLoop("default", 1)])
    path = tmp_path / "run.journal"
    journal = Journal.open(path, graph)
    try:
        journal.bind(graph)
        with pytest.raises(JournalError, match="cannot be written to the journal"):
            graph.create_task_nowait("use", ((threading.Lock(),), {}))
        assert graph.nodes == {}
    finally:
        journal.close()


async def test_a_result_that_cannot_be_journaled_runs_again_on_resume(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    runs = Counter[str]()

    def make() -> TaskGraph:
        async def lock(**_: Any) -> Any:
            runs["lock"] += 1
            return threading.Lock()

        async def plain(**_: Any) -> int:
            runs["plain"] += 1
            return 1

        graph = TaskGraph({"lock": lock, "plain": plain}, [WorkerLoop("default", 1)])
        graph.create_task_nowait("lock")
        graph.create_task_nowait("plain")
        return graph

    path = tmp_path / "run.journal"
    await execute_graph(make(), journal=path)
    assert "cannot be written" in caplog.text
    await execute_graph(make(), journal=path)
    assert runs == Counter({"lock": 2, "plain": 1})


async def test_without_a_journal_nothing_is_recorded() -> None:
    graph = build(Calls())
    await execute_graph(graph)
    assert graph.scheduler.recorder is None


async def test_a_batch_taken_as_the_run_is_cancelled_is_still_written(tmp_path: Path) -> None:
    # The flusher is woken by an event, and the run is cancelled before it resumes: the
    # batch it then takes off the buffer must reach the file, not vanish with the cancel.
    graph = build(Calls())
    path = tmp_path / "run.journal"
    journal = Journal.open(path, graph)
    try:
        journal.bind(graph)
        journal.flush()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(journal.keep_flushed)
            await trio.testing.wait_all_tasks_blocked()  # the flusher waits for events
            created = graph.create_task_nowait("start")
            nursery.cancel_scope.cancel()
        assert journal._pending == [], "the batch was not taken"
        assert any(e[1] == created.uid for e in recorded_events(path)), "the batch was lost"
    finally:
        journal.close()


async def test_earlier_runs_of_a_retried_task_survive_a_resume(tmp_path: Path) -> None:
    tries = Counter[str]()

    def make() -> TaskGraph:
        async def flaky(**_: Any) -> str:
            tries["flaky"] += 1
            if tries["flaky"] == 1:
                raise RuntimeError("first try fails")
            return "ok"

        graph = TaskGraph(
            {"flaky": flaky},
            [WorkerLoop("default", 1)],
            task_policies={"flaky": TaskPolicy(attempts=2, backoff=0.0)},
        )
        graph.create_task_nowait("flaky")
        return graph

    path = tmp_path / "run.journal"
    first = make()
    await execute_graph(first, journal=path)
    (ran,) = first.nodes.values()
    assert ran.earlier_runs is not None
    assert len(ran.earlier_runs) == 1
    resumed = make()
    await execute_graph(resumed, journal=path)
    assert tries["flaky"] == 2, "the resumed run ran the task again"
    (again,) = resumed.nodes.values()
    assert again.earlier_runs == ran.earlier_runs
    assert str(again.task_status) == "success"


async def test_a_truncated_journal_is_refused_and_nothing_runs(tmp_path: Path) -> None:
    path = tmp_path / "run.journal"
    await execute_graph(build(Calls(), width=400), journal=path)
    data = path.read_bytes()
    assert len(data) > 8192, "too small a journal to cut"
    path.write_bytes(data[: len(data) // 2])  # a copy cut short, a full disk
    calls = Calls()
    with pytest.raises(JournalError, match=r"damaged|no usable journal|cannot be replayed"):
        await execute_graph(build(calls, width=400), journal=path)
    assert calls.calls == Counter()


class HTTPError(Exception):
    """An error with an attribute a user acts on."""

    def __init__(self, message: str, status_code: int) -> None:
        super().__init__(message, status_code)
        self.status_code = status_code


async def test_a_failed_tasks_exception_survives_a_resume(tmp_path: Path) -> None:
    runs = Counter[str]()

    def make() -> TaskGraph:
        async def fetch(**_: Any) -> None:
            runs["fetch"] += 1
            raise HTTPError("not found", 404)

        graph = TaskGraph({"fetch": fetch}, [WorkerLoop("default", 1)])
        graph.create_task_nowait("fetch")
        return graph

    path = tmp_path / "run.journal"
    await execute_graph(make(), journal=path)
    resumed = make()
    await execute_graph(resumed, journal=path)
    assert runs["fetch"] == 1
    (node,) = resumed.nodes.values()
    assert isinstance(node.task_exception, HTTPError)
    assert node.task_exception.status_code == 404
