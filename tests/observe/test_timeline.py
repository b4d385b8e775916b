"""The run's timeline: lane assignment, the bars' data, and the HTML page's contents.

What the page looks like in a browser is checked in test_pictures_browser.py.
"""

from __future__ import annotations

import itertools
import json
import re
import sys
from typing import TYPE_CHECKING, Any

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from trio_graph_scheduler import TaskGraph, TaskPolicy, TaskStatus, WorkerLoop, execute_graph
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

    from trio_graph_scheduler.coordinator.core.nodes import TaskNode

REMOTE_ASSET = re.compile(r"""<(?:script|link)\b[^>]*\b(?:src|href)\s*=\s*["']?https?://""", re.I)
MISSING_EXTRA = (
    "graph.draw_timeline() needs the 'draw' extra: pip install 'trio-graph-scheduler[draw]'"
)

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
    html = (tmp_path / "t.html").read_text(encoding="utf-8")
    data = renderer_data(html)
    page = [
        (status, attempt)
        for uid, status, attempt in zip(
            data["bars"]["uid"], data["bars"]["status"], data["bars"]["attempt"], strict=True
        )
        if uid == retried.uid
    ]
    assert sorted(page) == [("raised, retried", "1 of 2"), ("success", "2 of 2")]
    assert len(data["failed"]["row"]) == 1  # the first run's red marking
    assert re.match(r"2 of 2 tasks ran \(3 runs\) on 1 worker", summary(html, graph))
    assert summary(html, graph).endswith(": 2 success")


def test_bars_of_a_graph_that_never_ran() -> None:
    graph = TaskGraph({"f": noop}, [WorkerLoop("default", 1, None)])
    assert timeline_bars(graph) == []
    graph.create_task_nowait("f")
    assert timeline_bars(graph) == []


# -- the page -------------------------------------------------------------------------


def bokeh_objects(html: str, name: str) -> list[dict[str, Any]]:
    """The attributes of every model called ``name`` in the page's embedded document."""
    return [item["attributes"] for item in _models(html).values() if item["name"] == name]


def renderer_data(html: str) -> dict[str, dict[str, list[Any]]]:
    """Each named glyph renderer's data columns."""
    models = _models(html)
    found = {}
    for renderer in bokeh_objects(html, "GlyphRenderer"):
        source = models[renderer["data_source"]["id"]]["attributes"]  # maybe a reference
        found[renderer["name"]] = dict(source["data"]["entries"])
    return found


def _models(html: str) -> dict[str, dict[str, Any]]:
    """Every model of the embedded document with attributes, by id."""
    match = re.search(r'<script type="application/json"[^>]*>(.*?)</script>', html, re.S)
    assert match, "no embedded Bokeh document"
    found: dict[str, dict[str, Any]] = {}

    def walk(item: object) -> None:
        if isinstance(item, dict):
            if item.get("type") == "object" and "attributes" in item:
                found[item["id"]] = item
            for value in item.values():
                walk(value)
        elif isinstance(item, list):
            for value in item:
                walk(value)

    walk(json.loads(match[1]))
    return found


def summary(html: str, graph: TaskGraph) -> str:
    """The timeline's second title line (the first names the graph)."""
    titles: set[str] = {t["text"] for t in bokeh_objects(html, "Title")}
    assert len(titles) == 2
    titles.remove(f"{graph.uid}: timeline")
    return titles.pop()


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

    assert not REMOTE_ASSET.search(html)
    assert "root.Bokeh = bokeh" in html  # BokehJS inlined: opens with no network
    data = renderer_data(html)
    bars, legend = data["bars"], data["legend"]
    assert sorted(bars["uid"]) == sorted([first.uid, second.uid, failed.uid])
    assert skipped.uid not in html
    colours = function_colours(functions)  # every function of the graph, not only those run
    by_uid = dict(zip(bars["uid"], zip(bars["function"], bars["colour"], strict=True), strict=True))
    assert by_uid[first.uid] == by_uid[second.uid] == ("sleepy", colours["sleepy"])
    assert by_uid[failed.uid] == ("explode", colours["explode"])
    i = bars["uid"].index(failed.uid)
    assert bars["line_colour"][i] == FAILED_COLOUR
    # The failed bar, and only it, is hatched: by a renderer drawing over it.
    assert data["failed"] == {c: [bars[c][i]] for c in ("row", "left", "right")}
    assert data["unfinished"] == {"row": [], "left": [], "right": []}
    j = bars["uid"].index(first.uid)
    assert bars["line_colour"][j] == "#222222"  # the background: plain bars stay apart
    assert bars["status"][i] == "failed"
    assert bars["attempt"][i] == "1 of 1"
    assert all(row == "local #0" or row == "local #1" for row in bars["row"])
    assert min(bars["left"]) == 0  # seconds since the first start
    assert legend["colour"][:2] == [colours["explode"], colours["sleepy"]]
    assert legend["hatch"] == ["blank", "blank", "diagonal_cross"]
    labels = [item["label"]["value"] for item in bokeh_objects(html, "LegendItem")]
    assert labels == ["explode", "sleepy", "failed (red, cross-hatched)"]
    expected = r"3 of 4 tasks ran on 1 worker \(2 rows\) in \d+\.\d ms: 2 success, 1 failed"
    assert re.fullmatch(expected + "; 1 never ran", summary(html, graph))


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
    html = (tmp_path / "t.html").read_text(encoding="utf-8")
    assert summary(html, graph).endswith(": 1 success; 1 never ran; 2 unfinished")
    page_bars = renderer_data(html)["bars"]
    unfinished = [s for s in page_bars["status"] if s.endswith("(unfinished)")]
    assert unfinished == ["created (unfinished)"] * 2
    assert never.uid not in page_bars["uid"]
    assert len(renderer_data(html)["unfinished"]["row"]) == 2
    labels = [item["label"]["value"] for item in bokeh_objects(html, "LegendItem")]
    assert labels == ["sleepy", "unfinished (white, hatched)"]


def test_empty_graph(tmp_path: Path) -> None:
    graph = TaskGraph({"f": noop}, [WorkerLoop("default", 1, None)])
    graph.draw_timeline(tmp_path / "empty.html")
    html = (tmp_path / "empty.html").read_text(encoding="utf-8")
    data = renderer_data(html)
    assert data["bars"]["uid"] == []
    assert "legend" not in data
    assert summary(html, graph) == "0 of 0 tasks ran"
    (factors,) = [r["factors"] for r in bokeh_objects(html, "FactorRange")]
    assert factors == ["no task has run"]

    graph.create_task_nowait("f")
    graph.draw_timeline(tmp_path / "not-run.html")
    html = (tmp_path / "not-run.html").read_text(encoding="utf-8")
    assert summary(html, graph) == "0 of 1 tasks ran; 1 never ran"


def test_without_the_draw_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    graph = TaskGraph({"f": noop}, [WorkerLoop("default", 1, None)])
    for name in [*sys.modules]:
        if name.split(".")[0] == "bokeh":
            monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "bokeh", None)
    with pytest.raises(ImportError) as caught:
        graph.draw_timeline(tmp_path / "t.html")
    assert str(caught.value) == MISSING_EXTRA
    assert not (tmp_path / "t.html").exists()


def test_many_rows_grow_the_page_then_lose_their_labels(tmp_path: Path) -> None:
    # workers (one row each): the page's height, the row labels' font size (None: the
    # default 11 px), and whether the mouse wheel zooms.
    cases = [(5, 320, None, True), (400, 4800 + 130, "9px", False), (500, 4800 + 130, "0px", False)]
    for workers, height, font, wheel_zooms in cases:
        graph = TaskGraph({"f": noop}, [WorkerLoop("default", 1, None)])
        for w in range(workers):
            ran(graph.create_task_nowait("f"), f"worker-{w}", 100.0, 101.0)
        graph.draw_timeline(tmp_path / "t.html")
        html = (tmp_path / "t.html").read_text(encoding="utf-8")
        assert len(renderer_data(html)["bars"]["uid"]) == workers
        (figure,) = bokeh_objects(html, "Figure")
        assert figure["height"] == height  # 28 px a row, or down to 12 on a tall page
        (toolbar,) = bokeh_objects(html, "Toolbar")
        # On a page taller than the screen the wheel must scroll the page, not zoom.
        assert (toolbar["active_scroll"] is not None) == wheel_zooms
        (y_axis,) = bokeh_objects(html, "CategoricalAxis")
        assert y_axis.get("major_label_text_font_size") == font
    assert y_axis["axis_label"] == "500 worker slots: too many to label, hover a bar"


class Runner:
    """A claimant standing for a worker that takes a suspect alone."""

    def deliver(self, node: TaskNode) -> bool:
        return False

    def cancel(self, node: TaskNode) -> None:
        pass


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
