"""The run summary: its numbers per function, its grouped failures, and its exact text."""

from __future__ import annotations

from text_graphs import Hand, make_graph, timed

from trio_graph_scheduler import TaskGraph, TaskPolicy
from trio_graph_scheduler.coordinator.observe.summary import (
    MAX_FAILURES_SHOWN,
    FailureGroup,
    FunctionSummary,
    format_summary,
    group_failures,
    percentile,
    summarize_functions,
)
from trio_graph_scheduler.coordinator.worker_session import WorkerRecord

KEY_ERROR = "Traceback (most recent call last):\n  ...\nKeyError: 'x'\n"


def finished_graph() -> tuple[TaskGraph, dict[str, str]]:
    """A run with successes, a retry, failures, a skipped task and a cancelled one."""
    graph = make_graph({"html": 2}, policies={"f": TaskPolicy(attempts=2)})
    a, b, c, d = (graph.create_task_nowait("f") for _ in range(4))
    e = graph.create_task_nowait("g", None, [d.uid])
    h1, h2, h3 = (graph.create_task_nowait("html") for _ in range(3))
    hand = Hand(graph)
    hand.run(a)
    hand.run(b, ok=False)  # retried, then succeeds
    hand.run(c)
    hand.run(d, ok=False)
    graph.scheduler.requeue(b)
    graph.scheduler.requeue(d)
    hand.run(b)
    hand.run(d, ok=False)  # its second and last attempt: e is skipped
    for node in (h1, h2):
        hand.start(node)
        hand.fail(node, KEY_ERROR)
    graph.cancel_task(h3.uid, "not needed")
    for node, seconds in ((a, 1.0), (b, 2.0), (c, 3.0), (d, 0.5), (h1, 0.1), (h2, 0.3)):
        timed(node, 0.0, seconds)  # from 0: the sums are exact
    return graph, {"d": d.uid, "e": e.uid, "h1": h1.uid, "h3": h3.uid}


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 21)]
    assert percentile(values, 0.95) == 19.0
    assert percentile(values, 0.5) == 10.0
    assert percentile([4.0], 0.95) == 4.0


def test_numbers_per_function() -> None:
    graph, _ = finished_graph()
    assert summarize_functions(graph) == [
        FunctionSummary(
            name="f",
            loop="default",
            tasks=4,
            succeeded=3,
            failed=1,
            skipped=0,
            unfinished=0,
            runs=6,
            retries=2,
            lost=0,
            median=1.5,
            p95=3.0,
        ),
        FunctionSummary("g", "default", 1, 0, 0, 1, 0, 0, 0, 0, None, None),
        FunctionSummary("html", "html", 3, 0, 3, 0, 0, 2, 0, 0, 0.2, 0.3),
    ]


def test_failures_are_grouped_by_function_and_error_line() -> None:
    graph, uids = finished_graph()
    assert group_failures(graph) == [
        FailureGroup("html", "KeyError: 'x'", 2, uids["h1"]),
        FailureGroup("f", "ValueError: boom", 1, uids["d"]),
        FailureGroup("html", "cancelled: not needed", 1, uids["h3"]),
    ]


def test_the_text_has_aligned_columns_and_no_colour_codes() -> None:
    graph, uids = finished_graph()
    text = format_summary(graph)
    assert "\x1b" not in text
    assert text == "\n".join(
        [
            "8 tasks: 3 succeeded, 4 failed, 1 skipped",
            "function  loop     tasks  ok  failed  skipped  runs  retries    median       p95",
            "f         default      4   3       1        0     6        2    1.50 s    3.00 s",
            "g         default      1   0       0        1     0        0         -         -",
            "html      html         3   0       3        0     2        0  200.0 ms  300.0 ms",
            "total                  8   3       4        1     8        2",
            "skipped: never ran, because a condition it waited on failed",
            "",
            "3 distinct failures:",
            f"  2x html: KeyError: 'x' (e.g. {uids['h1']})",
            f"  1x f: ValueError: boom (e.g. {uids['d']})",
            f"  1x html: cancelled: not needed (e.g. {uids['h3']})",
        ]
    )


def test_an_empty_graph() -> None:
    assert format_summary(make_graph()) == "No tasks were created."


def test_tasks_that_never_ran_and_lost_runs() -> None:
    graph = make_graph()
    a = graph.create_task_nowait("f")
    graph.create_task_nowait("f", None, [a.uid])
    hand = Hand(graph)
    graph.scheduler.max_lost_attempts = 2
    hand.start(a, worker="worker-1")
    graph.scheduler.task_lost(a, "connection lost")
    hand.start(a, worker="worker-2")
    graph.scheduler.task_lost(a, "silent")  # the second loss fails it
    timed(a, 0.0, 4.0)
    assert format_summary(graph) == "\n".join(
        [
            "2 tasks: 0 succeeded, 1 failed, 1 skipped",
            "function  loop     tasks  ok  failed  skipped  runs  retries  lost  median     p95",
            "f         default      2   0       1        1     2        1     2  4.00 s  4.00 s",
            "skipped: never ran, because a condition it waited on failed",
            "",
            "1 distinct failure:",
            f"  1x f: killed its worker 2 times (the last: silent) (e.g. {a.uid})",
        ]
    )


def test_workers_lost_while_running_tasks_are_named() -> None:
    graph = make_graph()
    a, b = graph.create_task_nowait("f"), graph.create_task_nowait("g")
    hand = Hand(graph)
    hand.start(a, worker="worker-1")
    hand.start(b, worker="worker-1")
    for node in (a, b):
        graph.scheduler.task_lost(node, "worker-1 (h:1): connection lost", alone=False)
    hand.run(a, worker="worker-2")
    graph.scheduler.task_lost(hand.start(b, worker="worker-3"), "worker-3 (h:3): silent")
    hand.run(b, worker="worker-2")
    workers = [
        WorkerRecord(
            "worker-1",
            "h:1",
            ["default"],
            0.0,
            1.0,
            "connection lost",
            [
                (a.uid, "f"),
                (b.uid, "g"),
            ],
        ),
        WorkerRecord("worker-2", "h:2", ["default"], 0.0, 2.0, "dismissed"),
        WorkerRecord("worker-3", "h:3", ["default"], 0.0, 2.0, "silent for 10 s", [(b.uid, "g")]),
    ]
    lines = format_summary(graph, workers).splitlines()
    assert lines[-3:] == [
        "2 workers lost:",
        f"  worker worker-1 (h:1) lost while running 2 tasks: task {a.uid} (function f), "
        f"task {b.uid} (function g): connection lost",
        f"  worker worker-3 (h:3) lost while running task {b.uid} (function g): silent for 10 s",
    ]
    # Only the loss on worker-3, where b ran alone, was charged.
    assert (a.losses, b.losses) == (0, 1)
    assert "lost" not in format_summary(graph).splitlines()[-1]


def test_an_interrupted_run_shows_unfinished_tasks() -> None:
    graph = make_graph()
    a = graph.create_task_nowait("f")
    graph.create_task_nowait("g", None, [a.uid])
    assert format_summary(graph) == "\n".join(
        [
            "2 tasks: 0 succeeded, 0 failed, 0 skipped, 2 unfinished",
            "function  loop     tasks  ok  failed  skipped  unfinished  runs  retries  median  p95",
            "f         default      1   0       0        0           1     0        0       -    -",
            "g         default      1   0       0        0           1     0        0       -    -",
            "total                  2   0       0        0           2     0        0",
        ]
    )


def test_a_long_list_of_distinct_failures_is_cut() -> None:
    graph = make_graph()
    nodes = [graph.create_task_nowait("f") for _ in range(MAX_FAILURES_SHOWN + 3)]
    hand = Hand(graph)
    for index, node in enumerate(nodes):
        hand.start(node)
        hand.fail(node, f"KeyError: 'row {index}'\n")
    lines = format_summary(graph).splitlines()
    assert lines[4] == f"{MAX_FAILURES_SHOWN + 3} distinct failures:"
    assert len(lines) == 5 + MAX_FAILURES_SHOWN + 1
    assert lines[5] == f"  1x f: KeyError: 'row 0' (e.g. {nodes[0].uid})"
    assert lines[-1] == "  ... and 3 more (3 tasks); the report lists them all"
