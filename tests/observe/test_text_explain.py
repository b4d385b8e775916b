"""explain_task: the exact sentence for every reason a task has not run, or how it ended."""

from __future__ import annotations

from typing import Any

import pytest
from text_graphs import Hand, make_graph, timed

from trio_graph_scheduler import (
    GenericSchedulingCondition,
    TaskGraph,
    TaskPolicy,
    UnknownUidError,
    WorkerLoop,
    execute_graph,
)
from trio_graph_scheduler.coordinator.observe.explain import explain_task
from trio_graph_scheduler.coordinator.worker_session import WorkerRecord

# -- ended --------------------------------------------------------------------------------


def test_unknown_uid_raises_unknown_uid_error() -> None:
    graph = make_graph()
    with pytest.raises(UnknownUidError, match="task-nope"):
        explain_task(graph, "task-nope")
    with pytest.raises(KeyError):
        graph.explain("task-nope")


def test_succeeded_says_where_which_attempt_and_how_long() -> None:
    graph = make_graph()
    a = graph.create_task_nowait("f")
    Hand(graph).run(a)
    timed(a, 100.0, 101.5)
    assert explain_task(graph, a.uid) == (
        f"{a.uid} (f) has run and succeeded (in this process, attempt 1, 1.50 s)."
    )


def test_failed_after_its_retries_gives_the_last_line_of_its_trace() -> None:
    graph = make_graph(policies={"f": TaskPolicy(attempts=2)})
    a = graph.create_task_nowait("f")
    hand = Hand(graph)
    hand.start(a, worker="worker-2")
    hand.fail(a)
    assert explain_task(graph, a.uid) == (
        f"{a.uid} (f) failed attempt 1 of 2 and waits out its retry backoff before it runs "
        "again; the last error: ValueError: boom"
    )
    graph.scheduler.requeue(a)
    hand.start(a, worker="worker-2")
    hand.fail(a)
    timed(a, 10.0, 10.25)
    assert explain_task(graph, a.uid) == (
        f"{a.uid} (f) has run and failed (on worker-2, attempt 2 of 2, 250.0 ms): ValueError: boom"
    )


def test_a_task_that_marked_itself_failed_has_no_error_line() -> None:
    graph = make_graph()
    a = graph.create_task_nowait("f")
    hand = Hand(graph)
    hand.start(a)
    hand.fail(a, trace=None)
    timed(a, 0.0, 2.0)
    assert explain_task(graph, a.uid) == (
        f"{a.uid} (f) has run and failed (in this process, attempt 1, 2.00 s); "
        "it marked itself failed, with no error."
    )


def test_cancelled_before_it_ran_and_while_running() -> None:
    graph = make_graph()
    a = graph.create_task_nowait("f")
    b = graph.create_task_nowait("f", None, [a.uid])
    hand = Hand(graph)
    graph.cancel_task(b.uid, "not needed")
    assert explain_task(graph, b.uid) == f"{b.uid} (f) was cancelled before it ran: not needed."

    hand.start(a)
    a.started_at = 1000.0
    graph.cancel_task(a.uid, "too slow")
    assert explain_task(graph, a.uid, now=1002.0) == (
        f"{a.uid} (f) is being cancelled (too slow) while it runs (in this process, "
        "attempt 1, started 2.00 s ago); it ends as failed once it has stopped, and keeps "
        "its slot in loop default until then."
    )
    graph.scheduler.task_cancelled(a)
    assert explain_task(graph, a.uid) == f"{a.uid} (f) was cancelled after 1 run: too slow."


def test_precondition_failed_names_the_condition_its_counts_and_the_first_failure() -> None:
    graph = make_graph()
    a, b, c = (graph.create_task_nowait("f") for _ in range(3))
    condition = GenericSchedulingCondition(graph, "SUCCESS__3", [a.uid, b.uid, c.uid])
    d = graph.create_task_nowait("g", None, [condition.uid])
    hand = Hand(graph)
    hand.run(a)
    hand.run(b, ok=False)
    # SUCCESS__3 fails at the first failure, without waiting for c.
    assert explain_task(graph, d.uid) == (
        f"{d.uid} (g) will not run: SUCCESS__3 ({condition.uid}) failed: 1 of 3 succeeded, "
        f"1 failed, 1 ready; the first failure: {b.uid} (f): ValueError: boom."
    )
    hand.run(c, ok=False)
    assert explain_task(graph, d.uid) == (
        f"{d.uid} (g) will not run: SUCCESS__3 ({condition.uid}) failed: 1 of 3 succeeded, "
        f"2 failed; the first failure: {b.uid} (f): ValueError: boom."
    )


def test_skipped_down_a_chain_points_at_the_skipped_predecessor() -> None:
    graph = make_graph()
    a = graph.create_task_nowait("f")
    b = graph.create_task_nowait("f", None, [a.uid])
    c = graph.create_task_nowait("g", None, [b.uid])
    Hand(graph).run(a, ok=False)
    (condition,) = c.waits_on
    assert explain_task(graph, c.uid) == (
        f"{c.uid} (g) will not run: SUCCESS__ALL ({condition.uid}) failed: 0 of 1 succeeded, "
        f"1 skipped; {b.uid} (f) was skipped too (explain it to see why)."
    )


# -- waiting on conditions ----------------------------------------------------------------


def test_waiting_on_a_mode_counts_its_predecessors_by_status() -> None:
    graph = make_graph()
    a, b = graph.create_task_nowait("f"), graph.create_task_nowait("f")
    early = graph.create_task_nowait("f")
    c = graph.create_task_nowait("f", None, [early.uid])
    condition = GenericSchedulingCondition(graph, "SUCCESS__3", [a.uid, b.uid, c.uid])
    d = graph.create_task_nowait("g", None, [condition.uid])
    hand = Hand(graph)
    hand.run(a)
    hand.start(b)
    assert explain_task(graph, d.uid) == (
        f"{d.uid} (g) has not run yet: it waits on SUCCESS__3 ({condition.uid}): "
        "1 of 3 succeeded, 1 running, 1 waiting."
    )


def test_waiting_on_one_task_reads_as_that_task() -> None:
    graph = make_graph()
    a = graph.create_task_nowait("f")
    b = graph.create_task_nowait("g", None, [a.uid])
    hand = Hand(graph)
    expected = f"{b.uid} (g) has not run yet: it waits for {a.uid} (f) to succeed, which "
    assert explain_task(graph, b.uid) == expected + "is ready to run."
    hand.start(a)
    assert explain_task(graph, b.uid) == expected + "is running."


def test_waiting_on_several_tasks_and_a_complete_condition() -> None:
    graph = make_graph()
    a, b, c = (graph.create_task_nowait("f") for _ in range(3))
    complete = GenericSchedulingCondition(graph, "COMPLETE__ALL", [a.uid, b.uid, c.uid])
    d = graph.create_task_nowait("g", None, [a.uid, b.uid, complete.uid])
    (implicit,) = (cond for cond in d.waits_on if cond is not complete)
    hand = Hand(graph)
    hand.run(a)
    hand.start(b)
    assert explain_task(graph, d.uid) == (
        f"{d.uid} (g) has not run yet: it waits on COMPLETE__ALL ({complete.uid}): "
        f"1 of 3 ended (1 succeeded), 1 running, 1 ready; and it waits for 2 tasks to "
        f"succeed ({implicit.uid}): 1 succeeded, 1 running."
    )


def test_a_predecessor_waiting_out_a_retry_counts_as_retrying() -> None:
    graph = make_graph(policies={"f": TaskPolicy(attempts=3)})
    a, b = graph.create_task_nowait("f"), graph.create_task_nowait("f")
    condition = GenericSchedulingCondition(graph, "COMPLETE__2", [a.uid, b.uid])
    c = graph.create_task_nowait("g", None, [condition.uid])
    hand = Hand(graph)
    hand.start(a)
    hand.fail(a)
    assert explain_task(graph, c.uid) == (
        f"{c.uid} (g) has not run yet: it waits on COMPLETE__2 ({condition.uid}): "
        "0 of 2 ended, 1 retrying, 1 ready."
    )


# -- ready, running -----------------------------------------------------------------------


def test_ready_behind_a_full_loop_gives_its_place_in_line() -> None:
    graph = make_graph({"html": 2})
    tasks = [graph.create_task_nowait("html") for _ in range(5)]
    hand = Hand(graph)
    hand.claim("html")
    hand.claim("html")
    assert explain_task(graph, tasks[4].uid) == (
        f"{tasks[4].uid} (html) is ready and waits for a free slot: loop html is full: "
        "2 of 2 running, 2 ready ahead of it."
    )
    assert explain_task(graph, tasks[2].uid) == (
        f"{tasks[2].uid} (html) is ready and waits for a free slot: loop html is full: "
        "2 of 2 running; it is next in line."
    )


def test_ready_with_a_free_slot_and_before_the_graph_runs() -> None:
    graph = make_graph()
    a = graph.create_task_nowait("f")
    assert explain_task(graph, a.uid) == (
        f"{a.uid} (f) is ready, queued in loop default (it is next in line); nothing runs "
        "until the graph is executed."
    )
    Hand(graph)
    assert explain_task(graph, a.uid) == (
        f"{a.uid} (f) is ready: loop default has a free slot (0 of 10 running) and it is next "
        "in line; it starts when a worker slot of the loop next asks for work."
    )


def test_ready_but_no_connected_worker_serves_its_loop() -> None:
    graph = make_graph({"html": 2})
    a = graph.create_task_nowait("html")
    Hand(graph)
    default_only = [WorkerRecord("worker-1", "host:1", ["default"], 0.0)]
    assert explain_task(graph, a.uid, workers=default_only) == (
        f"{a.uid} (html) is ready, but no connected worker serves loop html (1 worker "
        "connected, serving default); it runs once one that does joins."
    )
    assert explain_task(graph, a.uid, workers=[]) == (
        f"{a.uid} (html) is ready, but no connected worker serves loop html (no worker is "
        "connected); it runs once one that does joins."
    )
    html_too = [*default_only, WorkerRecord("worker-2", "host:2", ["html"], 0.0)]
    assert "has a free slot" in explain_task(graph, a.uid, workers=html_too)


def test_running_says_where_which_attempt_and_since_when() -> None:
    graph = make_graph(policies={"f": TaskPolicy(attempts=3)})
    a = graph.create_task_nowait("f")
    Hand(graph).start(a, worker="worker-2")
    a.started_at = 500.0
    workers = [WorkerRecord("worker-2", "host:42", ["default"], 0.0)]
    assert explain_task(graph, a.uid, workers=workers, now=503.0) == (
        f"{a.uid} (f) is running (on worker-2 (host:42), attempt 1 of 3, started 3.00 s ago)."
    )
    assert explain_task(graph, a.uid, now=623.0) == (
        f"{a.uid} (f) is running (on worker-2, attempt 1 of 3, started 2 min 03 s ago)."
    )


def test_a_condition_uid_says_what_the_condition_needs() -> None:
    graph = make_graph()
    a, b = graph.create_task_nowait("f"), graph.create_task_nowait("f")
    condition = GenericSchedulingCondition(graph, "SUCCESS__1", [a.uid, b.uid])
    graph.create_task_nowait("g", None, [condition.uid])
    hand = Hand(graph)
    hand.run(a, ok=False)
    assert explain_task(graph, condition.uid) == (
        f"{condition.uid} (SUCCESS__1) is still open: 0 of 2 succeeded, 1 failed, 1 ready; "
        "1 task waits on it."
    )


# -- through TaskGraph.explain, on a real run ---------------------------------------------


async def test_graph_explain_after_a_real_run() -> None:
    async def parse(row: str, **_: Any) -> str:
        if row == "bad":
            raise ValueError(f"cannot parse {row!r}")
        return row

    graph = TaskGraph({"parse": parse, "join": parse}, [WorkerLoop("default", 2, None)])
    good = await graph.create_task("parse", (("ok",), {}))
    bad = await graph.create_task("parse", (("bad",), {}))
    join = await graph.create_task("join", (("x",), {}), [good.uid, bad.uid])
    await execute_graph(graph)
    (condition,) = join.waits_on
    assert graph.explain(join.uid) == (
        f"{join.uid} (join) will not run: SUCCESS__ALL ({condition.uid}) failed: 1 of 2 "
        f"succeeded, 1 failed; the first failure: {bad.uid} (parse): "
        "ValueError: cannot parse 'bad'."
    )
    assert graph.explain(bad.uid).startswith(f"{bad.uid} (parse) has run and failed (")
    assert graph.explain(bad.uid).endswith("): ValueError: cannot parse 'bad'")


def test_a_task_lost_with_its_workers_names_them() -> None:
    graph = make_graph()
    a, b = graph.create_task_nowait("f"), graph.create_task_nowait("f")
    hand = Hand(graph)
    hand.start(a, worker="worker-1")
    hand.start(b, worker="worker-1")
    for node in (a, b):
        graph.scheduler.task_lost(node, "worker-1 (h:1): connection lost", alone=False)
    lost = [
        WorkerRecord(
            "worker-1",
            "h:1",
            ["default"],
            0.0,
            1.0,
            "connection lost",
            [
                (a.uid, "f"),
                (b.uid, "f"),
            ],
        )
    ]
    answer = explain_task(graph, a.uid, workers=[], lost_workers=lost)
    assert answer.endswith(
        f" Worker worker-1 (h:1) was lost while running task {a.uid} (function f), beside "
        "1 other task: connection lost. It is a suspect: it runs again alone, on the next "
        "worker that has nothing else to do."
    )
    hand.run(a, worker="worker-2")
    answer = explain_task(graph, a.uid, lost_workers=lost)
    assert answer.startswith(f"{a.uid} (f) has run and succeeded")
    assert answer.endswith("beside 1 other task: connection lost.")
