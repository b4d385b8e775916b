"""``tgs-status --tasks``: the listing's filters and bound, and every text table within
the terminal's width (the run summary, the status, the listing)."""

from __future__ import annotations

import re
import time

import msgspec
import pytest
from text_graphs import Hand, make_graph, timed

from trio_graph_scheduler import TaskGraph, WorkerLoop
from trio_graph_scheduler.coordinator.observe.summary import format_summary
from trio_graph_scheduler.coordinator.observe.task_list import (
    TaskRow,
    list_tasks,
    parse_status,
    task_row,
    unknown_function,
)
from trio_graph_scheduler.coordinator.observe.text_table import Column, cut, format_table
from trio_graph_scheduler.protocol.messages import ListedTask, LoopStatus, StatusReply
from trio_graph_scheduler.shared.errors import ConfigError
from trio_graph_scheduler.shared.states import TaskStatus
from trio_graph_scheduler.status import format_status, format_tasks

UID = "task-" + "0" * 32


def started_graph() -> tuple[TaskGraph, list[str]]:
    """f: one succeeded, one running, one failed; g: one waiting, one skipped."""
    graph = make_graph()
    ok, running, failed = (graph.create_task_nowait("f", ((i,), {})) for i in range(3))
    waiting = graph.create_task_nowait("g", None, [running.uid])
    skipped = graph.create_task_nowait("g", None, [failed.uid])
    hand = Hand(graph)
    hand.run(ok, worker="worker-1")
    hand.start(running, worker="worker-2")
    hand.run(failed, ok=False, worker="worker-1")
    timed(ok, 100.0, 101.0)
    return graph, [n.uid for n in (ok, running, failed, waiting, skipped)]


def test_the_listing_filters_by_status_and_function_in_creation_order() -> None:
    graph, uids = started_graph()
    nodes = graph.nodes.values()
    every = list_tasks(nodes)
    assert [row.uid for row in every.rows] == uids
    assert every.matched == 5
    assert every.rows[0] == TaskRow(
        uid=uids[0],
        key=None,
        function="f",
        status=TaskStatus.SUCCESS,
        worker="worker-1",
        started_at=100.0,
        ended_at=101.0,
        attempts=1,
    )
    assert every.rows[3].worker == ""  # never ran
    failed = list_tasks(nodes, statuses=parse_status("failed"))
    assert [row.uid for row in failed.rows] == [uids[2]]
    of_g = list_tasks(nodes, function="g")
    assert [row.status for row in of_g.rows] == ["waiting_for_predecessors", "precondition_failed"]
    both = list_tasks(nodes, statuses=parse_status("running") | parse_status("skipped"))
    assert [row.uid for row in both.rows] == [uids[1], uids[4]]
    assert list_tasks(nodes, statuses=parse_status("running"), function="g").matched == 0


def test_the_listing_is_bounded_and_counts_what_it_left_out() -> None:
    graph, uids = started_graph()
    listing = list_tasks(graph.nodes.values(), limit=2)
    assert [row.uid for row in listing.rows] == uids[:2]
    assert listing.matched == 5


def test_status_words_and_statuses_are_both_accepted() -> None:
    assert parse_status("in_progress") == parse_status("Running") == {TaskStatus.IN_PROGRESS}
    assert parse_status("skipped") == {TaskStatus.PRECONDITION_FAILED}
    assert parse_status("ready") == {TaskStatus.CREATED, TaskStatus.READY_FOR_EXECUTION}
    with pytest.raises(ConfigError, match=r"unknown task status 'sleeping'; one of: .*running"):
        parse_status("sleeping")


def test_an_unknown_function_is_said_not_listed_as_nothing() -> None:
    graph, _ = started_graph()
    assert unknown_function("f", graph.task_functions) is None
    assert unknown_function("h", graph.task_functions) == (
        "the graph has no function 'h'; it has: f, g"
    )


class _Keyed:
    """A node with a key, as issue 12 adds them; the listing reads it when there."""

    def __init__(self, node: object, key: object) -> None:
        self._node = node
        self.key = key

    def __getattr__(self, name: str) -> object:
        return getattr(self._node, name)


def test_a_key_is_listed_when_the_node_has_one() -> None:
    graph, uids = started_graph()
    node = graph.nodes[uids[0]]
    assert task_row(node).key is None
    assert task_row(_Keyed(node, ("page", 3))).key == "('page', 3)"  # type: ignore[arg-type]
    long_key = task_row(_Keyed(node, "k" * 500)).key  # type: ignore[arg-type]
    assert long_key is not None
    assert len(long_key) == 200
    assert long_key.endswith("…")


# -- fitting the width -----------------------------------------------------------------


def test_a_table_is_cut_never_wrapped() -> None:
    columns = [Column("name", min_width=6), Column("n", right=True), Column("x", drop=0)]
    rows = [["a-rather-long-function-name", "12", "extra"], ["b", "3", "y"]]
    assert format_table(columns, rows) == [
        "name                          n  x",
        "a-rather-long-function-name  12  extra",
        "b                             3  y",
    ]
    # Names are cut first (numbers never), down to their minimum ...
    assert format_table(columns, rows, width=20) == [
        "name        n  x",
        "a-rather…  12  extra",
        "b           3  y",
    ]
    # ... then droppable columns go ...
    assert format_table(columns, rows, width=10) == ["name     n", "a-rat…  12", "b        3"]
    # ... and what still does not fit is cut at the edge.
    assert format_table(columns, rows, width=4) == ["nam…", "a-r…", "b  …"]
    assert cut("abcdef", 4) == "abc…"
    assert cut("abc", 4) == "abc"


LONG = "combine_pages_with_a_very_long_function_name"


def long_named_graph() -> TaskGraph:
    graph = TaskGraph(
        {LONG: noop_task, "f": noop_task},
        [WorkerLoop("default", 2, None), WorkerLoop("an_html_loop_named_at_length", 3, [LONG])],
    )
    a, b = graph.create_task_nowait(LONG), graph.create_task_nowait("f")
    hand = Hand(graph)
    hand.run(a, worker="worker-1")
    hand.run(b)
    timed(a, 0.0, 1.5)
    timed(b, 0.0, 0.25)
    return graph


async def noop_task(**_: object) -> None:
    return None


@pytest.mark.parametrize("width", [100, 80, 60, 40])
def test_the_summary_fits_the_width(width: int) -> None:
    lines = format_summary(long_named_graph(), width=width).splitlines()
    assert all(len(line) <= width for line in lines), lines
    header = lines[1].split()
    assert header[:1] == ["function"]
    assert {"tasks", "ok", "failed", "skipped"} <= set(header)  # the outcome stays
    # Numbers are never cut: a column of them goes whole, or stays whole.
    cut_tokens = [token for line in lines for token in line.split() if "…" in token]
    assert all(re.search(r"[a-z]", token) for token in cut_tokens), cut_tokens
    assert lines[2].startswith("combine")


def test_the_summary_is_not_cut_without_a_width() -> None:
    lines = format_summary(long_named_graph()).splitlines()
    assert lines[2].startswith(f"{LONG}  an_html_loop_named_at_length ")
    assert lines[2].split()[-2:] == ["1.50", "s"]


def a_reply(tasks: int = 2) -> StatusReply:
    uid = "task-" + "0" * 31
    return StatusReply(
        elapsed=2.0,
        tasks_by_status={"success": 3, "in_progress": 1, "waiting_for_predecessors": 4},
        loops=[
            LoopStatus(
                name="an_html_loop_named_at_length", concurrency=3, ready=2, running=1, workers=2
            )
        ],
        workers=[],
        slowest=[],
        explanation="why: a line that is kept whole, however long it is. " * 3,
        tasks=[
            ListedTask(
                task_uid=f"{uid}{i}",
                key=None,
                handle=LONG if i == 0 else "f",
                status=TaskStatus.IN_PROGRESS if i == 0 else TaskStatus.SUCCESS,
                worker=f"worker-{i + 10}",
                started_at=time.time(),
                ended_at=None if i == 0 else time.time(),
                attempts=i + 1,
            )
            for i in range(tasks)
        ],
        tasks_matched=5,
    )


@pytest.mark.parametrize("width", [140, 80, 60])
def test_the_task_listing_fits_the_width_and_keeps_uids_whole(width: int) -> None:
    reply = a_reply()
    lines = format_tasks(reply, width).splitlines()
    assert all(len(line) <= width for line in lines), lines
    assert lines[0].split()[:3] == ["uid", "function", "status"]
    assert [line.split()[0] for line in lines[1:3]] == [t.task_uid for t in reply.tasks]
    assert lines[1].split()[2] == "running"
    assert lines[2].split()[1:3] == ["f", "succeeded"]
    assert lines[-1] == "... and 3 more tasks matched (--limit 5 shows them)"
    if width == 140:  # room for everything
        assert lines[0].split() == [
            "uid", "function", "status", "runs", "worker", "started", "ended"
        ]  # fmt: skip
        assert LONG in lines[1]
        assert lines[1].split()[-1] == "-"  # not ended
    else:
        # Ids are never cut: the whole column goes instead.
        assert ("worker-10" in lines[1]) == ("worker" in lines[0].split())
        assert "worker-1…" not in lines[1]


def test_a_key_gets_a_column_when_a_task_has_one() -> None:
    reply = a_reply()
    keyed = [msgspec.structs.replace(reply.tasks[0], key="page-3"), reply.tasks[1]]
    lines = format_tasks(msgspec.structs.replace(reply, tasks=keyed)).splitlines()
    assert lines[0].split()[:3] == ["uid", "key", "function"]
    assert lines[1].split()[1] == "page-3"


def test_an_empty_listing_says_so() -> None:
    reply = msgspec.structs.replace(a_reply(), tasks=[], tasks_matched=0)
    assert format_tasks(reply) == "no task matches"


@pytest.mark.parametrize("width", [80, 50])
def test_the_status_fits_the_width_but_the_explanation_stays_whole(width: int) -> None:
    reply = a_reply()
    text = format_status(reply, width)
    assert reply.explanation is not None
    head, explanation = text.split("\n\n")[:-1], text.split("\n\n")[-1]
    assert explanation == reply.explanation
    lines = "\n\n".join(head).splitlines()
    assert all(len(line) <= width for line in lines), lines
    assert lines[0].startswith("running for 2.00 s: 3 success")
    assert lines[3].split()[-3:] == ["1/3", "2", "2"]  # numbers whole, the name cut
    assert format_status(reply).splitlines()[0].endswith("4 waiting_for_predecessors")


def test_why_before_a_coordinator_starts_names_min_workers() -> None:
    # The uid a listing gives, asked about while the coordinator waits for workers: the
    # reason is --min-workers, not a graph nobody executes (issue 16's walkthrough).
    from trio_graph_scheduler.coordinator.observe.explain import explain_task

    graph = make_graph()
    a = graph.create_task_nowait("f")
    assert explain_task(graph, a.uid, workers=[]) == (
        f"{a.uid} (f) is ready, queued in loop default (it is next in line); nothing runs "
        "until the coordinator starts the run (it waits for --min-workers to join)."
    )


def test_a_listing_too_large_for_a_frame_is_shortened_not_lost() -> None:
    from trio_graph_scheduler import CoordinatorConfig
    from trio_graph_scheduler.coordinator.observe.status_reply import build_status_reply
    from trio_graph_scheduler.coordinator.server import Coordinator
    from trio_graph_scheduler.protocol.codec import encode_frame
    from trio_graph_scheduler.protocol.messages import TaskFilter

    graph = make_graph()
    for i in range(3000):
        graph.create_task_nowait("f", ((i,), {}))
    smallest = 2**16  # the least --max-frame-bytes allows
    coordinator = Coordinator(graph, CoordinatorConfig(max_frame_bytes=smallest))
    query = TaskFilter(statuses=[], function=None, limit=3000)
    reply = build_status_reply(coordinator, None, query)
    assert 0 < len(reply.tasks) < 3000
    assert reply.tasks_matched == 3000  # the client says how many more matched
    assert len(encode_frame([reply])) <= smallest
    roomy = Coordinator(graph, CoordinatorConfig())
    assert len(build_status_reply(roomy, None, query).tasks) == 3000
    assert format_tasks(reply, asked=3000).splitlines()[-1] == (
        f"... and {3000 - len(reply.tasks)} more tasks matched (more than a frame holds; "
        "narrow with --status or --function)"
    )
