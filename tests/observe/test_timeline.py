"""The run's timeline: lane assignment, the bars' data, and the HTML page's contents
(its SVG bars and their rows, the runs' table the hover texts come from, the legend).

What the page looks like in a browser is checked in test_pictures_browser.py.
"""

from __future__ import annotations

import itertools
import json
import re
import sys
from html import unescape
from typing import TYPE_CHECKING, Any
from xml.etree import ElementTree

import trio
from hypothesis import given
from hypothesis import strategies as st

from trio_graph_scheduler import TaskGraph, TaskPolicy, TaskStatus, WorkerLoop, execute_graph
from trio_graph_scheduler.coordinator.observe import timeline
from trio_graph_scheduler.coordinator.observe.timeline import (
    FAILED_COLOUR,
    PALETTE,
    assign_lanes,
    draw_timeline,
    function_colours,
    timeline_bars,
)

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    import pytest

    from trio_graph_scheduler.coordinator.core.nodes import TaskNode

REMOTE_ASSET = re.compile(r"""<(?:script|link)\b[^>]*\b(?:src|href)\s*=\s*["']?https?://""", re.I)

# -- lanes ----------------------------------------------------------------------------


def test_lanes_of_crafted_intervals() -> None:
    intervals = [
        (0.0, 4.0),  # a: lane 0
        (1.0, 3.0),  # b: lane 1, a is busy
        (3.0, 5.0),  # c: lane 1 again, b ended at 3 exactly (back to back)
        (4.0, 6.0),  # d: lane 0, a ended at 4
        (2.0, 7.0),  # e: lane 2, a and b are busy at 2
        (6.0, 8.0),  # f: lane 0, the lowest free one (1 is free too)
        (5.0, 5.0),  # g: an instant, in lane 1, free since c ended at 5
        (8.0, 9.0),  # h: lane 0, every lane free again
    ]
    assert assign_lanes(intervals) == [0, 1, 1, 0, 2, 0, 1, 0]


def test_lanes_edge_cases() -> None:
    assert assign_lanes([]) == []
    assert assign_lanes([(5.0, 6.0)]) == [0]
    # An end before its start (clocks) counts as an instant at the start.
    assert assign_lanes([(2.0, 1.0), (2.0, 3.0)]) == [0, 0]
    # Same start: both need a lane, the order given breaks the tie.
    assert assign_lanes([(1.0, 2.0), (1.0, 2.0), (1.0, 2.0)]) == [0, 1, 2]


@given(
    st.lists(
        # Positive lengths: an instant needs a lane only at its one moment (tested above).
        st.tuples(st.integers(0, 50), st.integers(1, 20)).map(lambda p: (p[0], p[0] + p[1])),
        max_size=40,
    )
)
def test_lanes_never_overlap_and_are_as_few_as_possible(intervals: list[tuple[int, int]]) -> None:
    spans = [(float(a), float(b)) for a, b in intervals]
    lanes = assign_lanes(spans)
    for lane in set(lanes):
        mine = sorted(span for span, at in zip(spans, lanes, strict=True) if at == lane)
        assert all(prev[1] <= nxt[0] for prev, nxt in itertools.pairwise(mine))
    # Lanes 0..k-1, k being the most intervals that overlap (measured at every start).
    most = max((sum(a <= s < b for a, b in spans) for s, _ in spans), default=0)
    assert sorted(set(lanes)) == list(range(most))


# -- colours --------------------------------------------------------------------------


def test_function_colours_are_stable_and_never_red() -> None:
    assert function_colours(["parse", "fetch", "boom"]) == {
        "boom": PALETTE[0],
        "fetch": PALETTE[1],
        "parse": PALETTE[2],
    }
    assert function_colours(["boom", "parse", "fetch", "boom"]) == function_colours(
        ["parse", "fetch", "boom"]
    )
    assert len(set(PALETTE)) == len(PALETTE) == 18
    assert {"#d62728", "#ff9896", FAILED_COLOUR} & set(PALETTE) == set()
    many = function_colours(f"f{i:02}" for i in range(20))
    assert many["f18"] == PALETTE[0]  # the palette repeats past 18 functions


# -- bars -----------------------------------------------------------------------------


async def noop(**_: Any) -> None:
    return None


def ran(node: TaskNode, worker: str, start: float, end: float | None, **fields: Any) -> None:
    """Set a node's run by hand, as the scheduler would have."""
    node.worker, node.started_at, node.ended_at = worker, start, end
    node.attempts = fields.get("attempts", 1)
    node.task_status = fields.get("status", TaskStatus.SUCCESS)
    node.queued_at = fields.get("queued_at")


def test_bars_rows_and_order() -> None:
    graph = TaskGraph({"f": noop, "g": noop}, [WorkerLoop("default", 4, None)])
    n = [graph.create_task_nowait("f" if i % 2 else "g") for i in range(9)]
    ran(n[0], "worker-10", 100.0, 101.0)
    ran(n[1], "worker-2", 100.0, 102.0)
    ran(n[2], "worker-2", 100.5, 101.5, status=TaskStatus.FAILED, attempts=3)
    ran(n[3], "worker-2", 101.5, 103.0)  # reuses lane 1, free since 101.5
    ran(n[4], "local", 100.0, 100.0)  # an instant
    # Still running at "now" (110): its bar runs to now.
    ran(n[5], "worker-2", 102.0, None, status=TaskStatus.IN_PROGRESS)
    # Handed back when the run was interrupted, at queued_at: its bar ends there.
    ran(n[6], "worker-10", 100.5, None, status=TaskStatus.CREATED, queued_at=104.0)
    n[7].task_status = TaskStatus.PRECONDITION_FAILED  # never ran: no bar
    n[7].ended_at = 101.0
    # n[8] never ran either (waits in its queue)

    bars = timeline_bars(graph, now=110.0)
    # local, then worker-2 before worker-10: numbers in names compare as numbers.
    assert [(b.uid, b.row, b.start, b.end) for b in bars] == [
        (n[4].uid, "local #0", 100.0, 100.0),
        (n[1].uid, "worker-2 #0", 100.0, 102.0),
        (n[5].uid, "worker-2 #0", 102.0, 110.0),
        (n[2].uid, "worker-2 #1", 100.5, 101.5),
        (n[3].uid, "worker-2 #1", 101.5, 103.0),
        (n[0].uid, "worker-10 #0", 100.0, 101.0),
        (n[6].uid, "worker-10 #1", 100.5, 104.0),
    ]
    by_uid = {b.uid: b for b in bars}
    assert by_uid[n[2].uid].status == "failed"
    assert by_uid[n[2].uid].attempts == 3
    assert by_uid[n[2].uid].function == "g"
    assert [b.uid for b in bars if not b.finished] == [n[5].uid, n[6].uid]


async def flaky(**kwargs: Any) -> str:
    """Fails on its first run, succeeds on the next."""
    await trio.sleep(0.02)
    node: TaskNode = kwargs["task_node"]
    if node.attempts == 1:
        raise RuntimeError("flaky once")
    return "ok"


async def test_every_attempt_of_a_retried_task_has_a_bar(tmp_path: Path) -> None:
    graph = TaskGraph(
        {"flaky": flaky, "sleepy": sleepy},
        [WorkerLoop("default", 1, None)],
        task_policies={"flaky": TaskPolicy(attempts=2, backoff=0.0, max_backoff=0.0)},
    )
    retried = await graph.create_task("flaky")
    once = await graph.create_task("sleepy", ((0.01,), {}))
    await execute_graph(graph)
    assert retried.task_status == TaskStatus.SUCCESS

    bars = [bar for bar in timeline_bars(graph) if bar.uid == retried.uid]
    assert [(b.attempt, b.attempts, b.last, b.failed) for b in bars] == [
        (1, 2, False, True),  # the first run failed: marked as failed
        (2, 2, True, False),
    ]
    assert [b.status for b in bars] == ["raised, retried", "success"]
    assert retried.earlier_runs is not None
    assert bars[0].start == retried.earlier_runs[0].started_at
    assert bars[0].end == retried.earlier_runs[0].ended_at <= bars[1].start
    assert bars[1].start == retried.started_at
    assert [b.attempt for b in timeline_bars(graph) if b.uid == once.uid] == [1]

    graph.draw_timeline(tmp_path / "t.html")
    page = Page((tmp_path / "t.html").read_text(encoding="utf-8"))
    mine = [run for run in page.runs if run["uid"] == retried.uid]
    assert [(run["status"], run["attempt"], run["marking"]) for run in mine] == [
        ("raised, retried", "1 of 2", "earlier"),  # hatched red
        ("success", "2 of 2", ""),
    ]
    assert mine[0]["error"] == "RuntimeError: flaky once"
    assert mine[1]["error"] is None
    assert page.hatched == {mine[0]["index"]: "earlier"}  # the one red hatching
    assert re.match(r"2 of 2 tasks ran \(3 runs\) on 1 worker", page.summary)
    assert page.summary.endswith(": 2 success")
    assert page.legend == [
        "flaky (2 runs)", "sleepy (1 run)",
        "earlier attempt, then retried or run again (red hatching)",
    ]  # fmt: skip


def test_bars_of_a_graph_that_never_ran() -> None:
    graph = TaskGraph({"f": noop}, [WorkerLoop("default", 1, None)])
    assert timeline_bars(graph) == []
    graph.create_task_nowait("f")
    assert timeline_bars(graph) == []


# -- the page -------------------------------------------------------------------------

SVG = "{http://www.w3.org/2000/svg}"


class Page:
    """What a timeline page holds: its SVG's bars joined with the runs' JSON table (the
    hover texts' fields), the hatching over them, the row labels, legend and summary."""

    def __init__(self, html: str) -> None:
        self.html = html
        found = re.search(r"<svg xmlns=.*?</svg>", html, re.S)
        assert found, "no SVG in the page"
        self.svg = ElementTree.fromstring(found[0])  # well-formed XML, or this raises
        script = re.search(r'<script type="application/json" id="data">(.*?)</script>', html)
        assert script, "no runs table in the page"
        self.data: dict[str, Any] = json.loads(script[1])
        groups = {g.get("id"): g for g in self.svg.iter(f"{SVG}g")}
        rects = list(groups["bars"])
        assert len(rects) == len(self.data["runs"])  # a bar per run, in the table's order
        texts = self.data["texts"]
        fills = dict(re.findall(r"\.f(\d+) \{ fill: (#[0-9a-f]{6}); \}", html))
        self.runs: list[dict[str, Any]] = []
        for i, (rect, run) in enumerate(zip(rects, self.data["runs"], strict=True)):
            start, end, uid, function, row, attempt, attempts, status, error, key, done = run
            classes = rect.get("class", "").split()
            assert classes[:2] == ["b", f"f{function}"]
            self.runs.append({
                "index": i, "uid": uid, "function": self.data["functions"][function],
                "colour": fills[str(function)], "row": self.data["rows"][row],
                "start": start, "end": end, "attempt": f"{attempt} of {attempts}",
                "status": texts[status], "error": None if error < 0 else texts[error],
                "key": key, "finished": bool(done), "marking": " ".join(classes[2:]),
                "y": float(rect.get("y", "nan")), "x": float(rect.get("x", "nan")),
                "width": float(rect.get("width", "nan")),
            })  # fmt: skip
        #: Which bars are hatched, and how: {bar index: marking}.
        self.hatched = {
            int(mark.get("data-i", "-1")): mark.get("class", "").removeprefix("m ")
            for mark in groups["marks"]
        }
        self.row_labels = [t.text for t in self.svg.iter(f"{SVG}text") if t.get("class") == "row"]
        self.legend = [
            unescape(re.sub(r"<.*?>", "", item))
            for item in re.findall(r'<span class="key"[^>]*>(.*?)</span>', html)
        ]
        summary = re.search(r'<p id="summary">(.*?)</p>', html)
        assert summary
        self.summary = unescape(summary[1])
        self.notes = [unescape(n) for n in re.findall(r'<p class="note">(.*?)</p>', html)]


async def sleepy(seconds: float, **_: Any) -> str:
    await trio.sleep(seconds)
    return "done"


async def explode(**_: Any) -> None:
    await trio.sleep(0.02)
    raise ValueError("on purpose")


async def test_page_has_one_bar_per_task_run_coloured_by_function(tmp_path: Path) -> None:
    functions: dict[str, Callable[..., Any]] = {"sleepy": sleepy, "explode": explode}
    functions["unused"] = sleepy  # has a colour too, though it never runs
    graph = TaskGraph(functions, [WorkerLoop("default", 2, None)])
    first = await graph.create_task("sleepy", ((0.02,), {}))
    second = await graph.create_task("sleepy", ((0.03,), {}))
    failed = await graph.create_task("explode")
    skipped = await graph.create_task("sleepy", ((0,), {}), waits_on=[failed.uid])
    await execute_graph(graph)
    path = tmp_path / "timeline.html"
    graph.draw_timeline(path)
    html = path.read_text(encoding="utf-8")

    # Self-contained: no script or style fetched, no library (Bokeh was 1.29 MB).
    assert not REMOTE_ASSET.search(html)
    assert "<script src" not in html
    assert "bokeh" not in html.lower()
    assert len(html.encode()) < 20_000
    page = Page(html)
    assert sorted(run["uid"] for run in page.runs) == sorted([first.uid, second.uid, failed.uid])
    assert skipped.uid not in html
    colours = function_colours(functions)  # every function of the graph, not only those run
    by_uid = {run["uid"]: run for run in page.runs}
    assert by_uid[first.uid]["colour"] == by_uid[second.uid]["colour"] == colours["sleepy"]
    assert by_uid[failed.uid]["colour"] == colours["explode"]
    assert by_uid[first.uid]["function"] == "sleepy"
    # The final failure: a solid red outline (a class of its own), no hatching.
    assert by_uid[failed.uid]["marking"] == "failed"
    assert f".b.failed {{ stroke: {FAILED_COLOUR};" in html
    assert page.hatched == {}
    assert by_uid[first.uid]["marking"] == by_uid[second.uid]["marking"] == ""
    # The hover's fields.
    assert by_uid[failed.uid]["status"] == "failed"
    assert by_uid[failed.uid]["attempt"] == "1 of 1"
    assert by_uid[failed.uid]["error"] == "ValueError: on purpose"
    assert by_uid[failed.uid]["key"] is None
    assert by_uid[first.uid]["error"] is None
    assert by_uid[first.uid]["end"] - by_uid[first.uid]["start"] >= 0.02
    assert {run["row"] for run in page.runs} == {"local #0", "local #1"}
    assert page.row_labels == ["local #0", "local #1"]
    # Each bar in its row's band: rows are 28 px, under the axis.
    for run in page.runs:
        row = page.row_labels.index(run["row"])
        assert 26 + row * 28 < run["y"] < 26 + (row + 1) * 28
    assert min(run["start"] for run in page.runs) == 0  # seconds since the first start
    assert page.legend == [
        "explode (1 run)",
        "sleepy (2 runs)",
        "failed: the task's final run (solid red outline)",
    ]
    expected = r"3 of 4 tasks ran on 1 worker \(2 rows\) in \d+\.\d ms: 2 success, 1 failed"
    assert re.fullmatch(expected + "; 1 never ran", page.summary)
    assert page.notes == []


async def test_interrupted_run(tmp_path: Path) -> None:
    graph = TaskGraph({"sleepy": sleepy}, [WorkerLoop("default", 2, None)])
    quick = await graph.create_task("sleepy", ((0,), {}))
    slow = [await graph.create_task("sleepy", ((10,), {})) for _ in range(2)]
    never = await graph.create_task("sleepy", ((0,), {}))
    with trio.move_on_after(0.2):
        await execute_graph(graph)
    assert [node.task_status for node in slow] == [TaskStatus.CREATED] * 2  # handed back

    bars = {bar.uid: bar for bar in timeline_bars(graph)}
    assert set(bars) == {quick.uid, *(node.uid for node in slow)}
    for node in slow:
        # The bar ends where the run was given back, not at the time of drawing.
        assert not bars[node.uid].finished
        assert bars[node.uid].end == node.queued_at
        assert 0.1 < bars[node.uid].end - bars[node.uid].start < 1
    draw_timeline(graph, tmp_path / "t.html")
    page = Page((tmp_path / "t.html").read_text(encoding="utf-8"))
    assert page.summary.endswith(": 1 success; 1 never ran; 2 unfinished")
    unfinished = [run for run in page.runs if not run["finished"]]
    assert [run["status"] for run in unfinished] == ["created (unfinished)"] * 2
    assert [run["marking"] for run in unfinished] == ["unfinished"] * 2
    assert sorted(page.hatched.items()) == [(run["index"], "unfinished") for run in unfinished]
    assert never.uid not in {run["uid"] for run in page.runs}
    assert page.legend == ["sleepy (3 runs)", "unfinished (dashed white outline, white hatching)"]


def test_empty_graph(tmp_path: Path) -> None:
    graph = TaskGraph({"f": noop}, [WorkerLoop("default", 1, None)])
    graph.draw_timeline(tmp_path / "empty.html")
    page = Page((tmp_path / "empty.html").read_text(encoding="utf-8"))
    assert page.runs == []
    assert page.legend == []
    assert page.summary == "0 of 0 tasks ran"
    assert page.row_labels == ["no task has run"]

    graph.create_task_nowait("f")
    graph.draw_timeline(tmp_path / "not-run.html")
    page = Page((tmp_path / "not-run.html").read_text(encoding="utf-8"))
    assert page.summary == "0 of 1 tasks ran; 1 never ran"


def test_draws_with_bokeh_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The page is written by hand: Bokeh (once the ``draw`` extra) is needed no more.
    (This test used to expect an ImportError naming the extra.)"""
    graph = TaskGraph({"f": noop}, [WorkerLoop("default", 1, None)])
    ran(graph.create_task_nowait("f"), "local", 100.0, 101.0)
    for name in [*sys.modules]:
        if name.split(".")[0] == "bokeh":
            monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "bokeh", None)
    graph.draw_timeline(tmp_path / "t.html")
    assert len(Page((tmp_path / "t.html").read_text(encoding="utf-8")).runs) == 1


def test_names_cannot_break_the_page(tmp_path: Path) -> None:
    """A function or worker name with markup stays text: in the SVG, and in the JSON
    inside its <script> (where ``</script>`` would end the script); one that looks like
    a placeholder of the page's template is not filled in."""
    name = 'f</script><b x="1">&@DATA@'
    graph = TaskGraph({name: noop}, [WorkerLoop("default", 1, None)])
    ran(graph.create_task_nowait(name), "w</script>", 100.0, 101.0)
    graph.draw_timeline(tmp_path / "t.html")
    html = (tmp_path / "t.html").read_text(encoding="utf-8")
    assert html.count("</script>") == 2  # the JSON's and the program's
    page = Page(html)
    assert page.runs[0]["function"] == name
    assert page.row_labels == ["w</script> #0"]
    assert page.legend[0] == f"{name} (1 run)"


def test_a_very_large_run_draws_its_marked_runs_and_longest_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(timeline, "MAX_DRAWN_RUNS", 6)
    graph = TaskGraph({"f": noop}, [WorkerLoop("default", 1, None)])
    nodes = [graph.create_task_nowait("f") for _ in range(10)]
    for i, node in enumerate(nodes):  # back to back on one slot, the i-th i+1 s long
        start = 100.0 + i * (i + 1) / 2
        ran(node, "local", start, start + i + 1)
    nodes[0].task_status = nodes[1].task_status = TaskStatus.FAILED  # the two shortest
    graph.draw_timeline(tmp_path / "t.html")
    page = Page((tmp_path / "t.html").read_text(encoding="utf-8"))
    # The two failures, then the four longest: in their order on the timeline.
    assert [run["uid"] for run in page.runs] == [n.uid for n in nodes[:2] + nodes[6:]]
    assert page.notes == [
        "4 of 10 runs not drawn, to keep the page small: the shortest successful ones, "
        "each 6.000 s or less; every failed, earlier and unfinished run is drawn"
    ]
    assert page.summary.startswith("10 of 10 tasks ran on 1 worker")  # counts them all


def test_a_page_costs_little_per_run(tmp_path: Path) -> None:
    """2,000 runs on 40 slots: well under 200 bytes a run (Bokeh's page was 225)."""
    graph = TaskGraph({"f": noop, "g": noop}, [WorkerLoop("default", 1, None)])
    for i in range(2000):
        node = graph.create_task_nowait("f" if i % 3 else "g")
        ran(node, f"worker-{i % 10}", 100.0 + i // 40 * 0.01, 100.0 + i // 40 * 0.01 + 0.0095)
    graph.draw_timeline(tmp_path / "t.html")
    html = (tmp_path / "t.html").read_text(encoding="utf-8")
    page = Page(html)
    assert len(page.runs) == 2000
    assert len(page.row_labels) == 40  # 4 runs at once on each of 10 workers
    assert len(html.encode()) < 2000 * 200


def test_many_rows_grow_the_page_then_lose_their_labels(tmp_path: Path) -> None:
    # workers (one row each), the SVG's height (axis + rows + 4), whether rows are labelled.
    cases = [(5, 26 + 5 * 28 + 4, True), (400, 26 + 4800 + 4, True), (500, 26 + 4800 + 4, False)]
    for workers, height, labelled in cases:
        graph = TaskGraph({"f": noop}, [WorkerLoop("default", 1, None)])
        for w in range(workers):
            ran(graph.create_task_nowait("f"), f"worker-{w}", 100.0, 101.0)
        graph.draw_timeline(tmp_path / "t.html")
        page = Page((tmp_path / "t.html").read_text(encoding="utf-8"))
        assert len(page.runs) == workers
        assert page.svg.get("height") == str(height)  # 28 px a row, or down to 12
        assert len(page.row_labels) == (workers if labelled else 0)
    assert page.notes == ["500 worker slots: too many to label, hover a bar"]


class Runner:
    """A claimant standing for a worker that takes a suspect alone."""

    def deliver(self, node: TaskNode) -> bool:
        return False

    def cancel(self, node: TaskNode) -> None:
        pass

    def keeps_freed_slot(self) -> bool:
        return False


def test_a_run_lost_with_its_worker_has_its_own_bar_on_that_worker() -> None:
    now = [100.0]
    graph = TaskGraph({"f": noop}, [WorkerLoop("default", 2, None)], clock=lambda: now[0])
    node = graph.create_task_nowait("f")
    scheduler = graph.scheduler
    scheduler.start()
    queue = scheduler.loops["default"]
    assert queue.claim_nowait() is node
    node.worker = "worker-1"
    now[0] = 103.0
    scheduler.task_lost(node, "worker-1: connection lost")
    now[0] = 104.0
    assert queue.claim_suspect(Runner()) is node  # run again, alone, on another worker
    node.worker = "worker-2"
    now[0] = 105.0
    scheduler.task_succeeded(node, None)
    graph.check_invariants()

    bars = timeline_bars(graph)
    assert [(b.row, b.start, b.end, b.status, b.attempt, b.failed) for b in bars] == [
        ("worker-1 #0", 100.0, 103.0, "worker_lost, run again", 1, True),
        ("worker-2 #0", 104.0, 105.0, "success", 2, False),
    ]


def test_a_task_waiting_to_run_again_has_no_bar_beyond_its_recorded_runs() -> None:
    now = [100.0]
    graph = TaskGraph(
        {"f": noop},
        [WorkerLoop("default", 1, None)],
        task_policies={"f": TaskPolicy(attempts=3, backoff=0.0, max_backoff=0.0)},
        clock=lambda: now[0],
    )
    graph.scheduler.on_retry = lambda node, delay: None
    node = graph.create_task_nowait("f")
    graph.scheduler.start()
    queue = graph.scheduler.loops["default"]

    def rows() -> list[tuple[float, float, str, bool]]:
        return [(b.start, b.end, b.status, b.finished) for b in timeline_bars(graph, now=120.0)]

    assert queue.claim_nowait() is node
    node.worker = "local"
    now[0] = 101.0
    graph.scheduler.task_failed(node, "Traceback: boom")
    # Waiting out its retry delay: the failed run, and nothing running.
    assert rows() == [(100.0, 101.0, "raised, retried", True)]
    graph.scheduler.requeue(node)
    now[0] = 102.0
    assert rows() == [(100.0, 101.0, "raised, retried", True)]  # queued, not started
    assert queue.claim_nowait() is node
    assert rows() == [
        (100.0, 101.0, "raised, retried", True),
        (102.0, 120.0, "in_progress", False),  # running now
    ]
    assert timeline_bars(graph, now=120.0)[1].attempt == 2


def test_a_tasks_key_is_in_its_hover(tmp_path: Path) -> None:
    graph = TaskGraph({"f": noop}, [WorkerLoop("default", 1, None)])
    keyed = graph.create_task_nowait("f", key=("page", 7))
    plain = graph.create_task_nowait("f")
    ran(keyed, "local", 100.0, 101.0)
    ran(plain, "local", 101.0, 102.0)
    graph.draw_timeline(tmp_path / "t.html")
    page = Page((tmp_path / "t.html").read_text(encoding="utf-8"))
    assert [run["key"] for run in page.runs] == ["('page', 7)", None]
