"""Drawing a graph: DOT text and the self-contained SVG page.

What the page looks like in a browser is checked in tests/observe/test_pictures_browser.py.
"""

from __future__ import annotations

import re
import shutil
import sys
from html.parser import HTMLParser
from types import SimpleNamespace
from typing import cast

import pytest
import trio

from trio_graph_scheduler import (
    GenericSchedulingCondition,
    TaskGraph,
    TaskNode,
    TaskPolicy,
    WorkerLoop,
    execute_graph,
)
from trio_graph_scheduler.coordinator.observe.drawing import (
    CANCELLED_COLOUR,
    CONDITION_COLOURS,
    EDGE_COLOURS,
    STATUS_COLOURS,
    TASK_COLOURS,
    draw_graph,
    graph_to_dot,
    task_label,
)
from trio_graph_scheduler.shared.states import ConditionStatus, TaskStatus

# A <script src=...> or <link href=...> that reaches for the network (a CDN).
REMOTE_ASSET = re.compile(r"""<(?:script|link)\b[^>]*\b(?:src|href)\s*=\s*["']?https?://""", re.I)
NODE_LINE = re.compile(r'^\s*"(?P<uid>[^"]+)" \[(?P<attrs>.*)\];$')
EDGE_LINE = re.compile(r'^\s*"(?P<source>[^"]+)" -> "(?P<target>[^"]+)" \[(?P<attrs>.*)\];$')
GREEN, RED = TASK_COLOURS[TaskStatus.SUCCESS], TASK_COLOURS[TaskStatus.FAILED]
SKIPPED = TASK_COLOURS[TaskStatus.PRECONDITION_FAILED]


async def produce(value, *, task_node, graph, worker_context):
    return {"value": value, "padding": "x" * 500}


async def explode(*, task_node, graph, worker_context):
    raise ValueError("exploded on purpose")


async def after(*args, task_node, graph, worker_context, **kwargs):
    return "after"


FUNCTIONS = {"produce": produce, "explode": explode, "after": after}


def new_graph() -> TaskGraph:
    return TaskGraph(FUNCTIONS, [WorkerLoop("default", 2, None)])


async def build(graph: TaskGraph) -> dict[str, str]:
    """Five tasks and three conditions; returns their uids by role."""
    good = await graph.create_task("produce", ((1,), {}))
    bad = await graph.create_task("explode", None)
    skipped = await graph.create_task("after", None, waits_on=[bad.uid])  # precondition_failed
    follows = await graph.create_task("after", None, waits_on=[good.uid])
    complete = GenericSchedulingCondition(graph, "COMPLETE__ALL", [good.uid, bad.uid, skipped.uid])
    final = await graph.create_task("after", None, waits_on=[complete.uid])
    return {
        "good": good.uid,
        "bad": bad.uid,
        "skipped": skipped.uid,
        "follows": follows.uid,
        "final": final.uid,
        "complete": complete.uid,
        "on_bad": skipped.waits_on[0].uid,
        "on_good": follows.waits_on[0].uid,
    }


def parse_dot(dot: str) -> tuple[dict[str, str], list[tuple[str, str, str]]]:
    """Node attribute strings by uid, and ``(source, target, attrs)`` edges."""
    nodes: dict[str, str] = {}
    edges: list[tuple[str, str, str]] = []
    for line in dot.splitlines():
        if edge := EDGE_LINE.match(line):
            edges.append((edge["source"], edge["target"], edge["attrs"]))
        elif node := NODE_LINE.match(line):
            nodes[node["uid"]] = node["attrs"]
    return nodes, edges


def fill(attrs: str) -> str:
    match = re.search(r'fillcolor="([^"]+)"', attrs)
    assert match, attrs
    return match[1]


class Element:
    """One element of the page: its tag, attributes, children and text."""

    def __init__(self, tag: str, attrs: dict[str, str]) -> None:
        self.tag, self.attrs = tag, attrs
        self.children: list[Element] = []
        self.text = ""

    def find(self, tag: str) -> list[Element]:
        found = [child for child in self.children if child.tag == tag]
        for child in self.children:
            found += child.find(tag)
        return found


class Page(HTMLParser):
    """The page as a tree of Elements (void and self-closed elements end at once)."""

    VOID = frozenset({"meta", "input", "br", "img", "link"})

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("root", {})
        self.stack = [self.root]
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(element)
        if tag not in self.VOID:
            self.stack.append(element)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(Element(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        while self.stack[-1].tag != tag:
            self.stack.pop()
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.stack[-1].text += data

    def groups(self, kind: str) -> dict[str, Element]:
        """The ``<g class=kind>`` of each task/condition/root, by uid."""
        return {g.attrs["id"]: g for g in self.root.find("g") if g.attrs.get("class") == kind}

    def edges(self) -> list[Element]:
        return [p for p in self.root.find("path") if "edge" in p.attrs.get("class", "").split()]


def box(group: Element) -> tuple[float, float, float, float]:
    """A task's box: left, top, right, bottom."""
    (rect,) = group.find("rect")
    x, y = float(rect.attrs["x"]), float(rect.attrs["y"])
    return x, y, x + float(rect.attrs["width"]), y + float(rect.attrs["height"])


def curve_points(d: str, steps: int = 24) -> list[tuple[float, float]]:
    """Points along an edge's path (``M x,y`` then cubic ``C`` segments only)."""
    numbers = [float(v) for v in re.findall(r"-?\d+(?:\.\d+)?", d)]
    assert d.startswith("M"), d
    assert set(re.findall(r"[A-Za-z]", d)) <= {"M", "C"}, d
    x, y = numbers[0], numbers[1]
    points = [(x, y)]
    for i in range(2, len(numbers), 6):
        x1, y1, x2, y2, x3, y3 = numbers[i : i + 6]
        for k in range(1, steps + 1):
            t = k / steps
            a, b, c, e = (1 - t) ** 3, 3 * (1 - t) ** 2 * t, 3 * (1 - t) * t**2, t**3
            points.append((a * x + b * x1 + c * x2 + e * x3, a * y + b * y1 + c * y2 + e * y3))
        x, y = x3, y3
    return points


@pytest.fixture
async def executed():
    graph = new_graph()
    uids = await build(graph)
    await execute_graph(graph)
    return graph, uids


async def test_dot_colours_shapes_and_edges(executed):
    graph, uids = executed
    dot = graph.to_dot()
    assert dot == graph_to_dot(graph)
    assert dot.startswith(f'digraph "{graph.uid}" {{')
    assert dot.endswith("}\n")
    assert "rankdir=LR" in dot
    assert "5 tasks (3 success, 1 failed, 1 precondition_failed)" in dot
    nodes, edges = parse_dot(dot)

    assert set(nodes) == {graph.uid, *graph.nodes, *graph.conditions}
    assert 'label="graph"' in nodes[graph.uid]  # quoted: graph is a DOT keyword
    for uid, node in graph.nodes.items():
        assert "shape=box" in nodes[uid]
        first, second = task_label(node)
        assert f'label="{first}\\n{second}"' in nodes[uid]
    assert 'label="produce\\n1"' in nodes[uids["good"]]
    for uid, condition in graph.conditions.items():
        assert "shape=point" in nodes[uid]
        assert f'xlabel="C-{condition.mode}"' in nodes[uid]
    # failed and precondition_failed (skipped) look different (issue 16).
    assert fill(nodes[uids["good"]]) == fill(nodes[uids["final"]]) == GREEN
    assert fill(nodes[uids["bad"]]) == RED
    assert fill(nodes[uids["skipped"]]) == SKIPPED != RED
    assert fill(nodes[uids["on_bad"]]) == CONDITION_COLOURS[ConditionStatus.FAILED]
    assert fill(nodes[uids["on_good"]]) == CONDITION_COLOURS[ConditionStatus.SATISFIED]
    assert fill(nodes[uids["complete"]]) == CONDITION_COLOURS[ConditionStatus.SATISFIED]

    styled = {(source, target): attrs for source, target, attrs in edges}
    assert len(styled) == len(edges)  # no edge twice
    # Graph -> the tasks that wait on nothing, and no others: dotted.
    scheduled = {t for (s, t) in styled if s == graph.uid}
    assert scheduled == {uids["good"], uids["bad"]}
    assert "style=dotted" in styled[graph.uid, uids["good"]]
    # Task -> the conditions that count it: solid, coloured by the task's outcome, so a
    # failure on a path that went on is red, and a success green.
    good, bad = f'color="{EDGE_COLOURS["good"]}"', f'color="{EDGE_COLOURS["bad"]}"'
    assert good in styled[uids["good"], uids["complete"]]
    assert bad in styled[uids["bad"], uids["complete"]]
    assert bad in styled[uids["skipped"], uids["complete"]]
    assert "style=solid" in styled[uids["bad"], uids["on_bad"]]
    # Condition -> the task that waits on it: dashed, coloured by the condition's status.
    assert "style=dashed" in styled[uids["complete"], uids["final"]]
    assert good in styled[uids["complete"], uids["final"]]
    assert bad in styled[uids["on_bad"], uids["skipped"]]
    assert len(edges) == 2 + 5 + 3  # scheduled + waited_on_by + waits_on


async def test_dot_order_is_creation_order(executed):
    graph, _ = executed
    dot = graph.to_dot()
    positions = [dot.index(f'"{uid}" [') for uid in [*graph.nodes, *graph.conditions]]
    assert positions == sorted(positions)
    assert dot == graph.to_dot()


def test_dot_escapes_labels():
    weird = 'say "hi"\\\nnow'
    graph = TaskGraph({weird: after}, [WorkerLoop("default", 1, None)])
    graph.create_task_nowait(weird)
    dot = graph.to_dot()
    assert r'label="say \"hi\"\\\nnow\n' in dot
    # The newline did not leak into the text: every line is a whole statement.
    assert all(line.endswith((";", "{", "}")) for line in dot.splitlines())


def test_one_colour_per_status():
    fills = [fill for fill, _, _ in STATUS_COLOURS.values()]
    assert len(set(fills)) == len(fills)  # cancelled and skipped included
    assert set(STATUS_COLOURS) == {*TaskStatus, "cancelled"}
    assert len({*EDGE_COLOURS.values()}) == 3


def test_labels_tell_tasks_apart():
    long_name = "a_function_with_a_very_long_name"
    graph = TaskGraph({long_name: after, "after": after}, [WorkerLoop("default", 1, None)])
    named = graph.create_task_nowait(long_name)
    assert task_label(named) == ("a_function_with_a_very_…", named.uid[:11])
    assert f'label="a_function_with_a_very_…\\n{named.uid[:11]}"' in graph.to_dot()
    one = graph.create_task_nowait("after", (("pages/trio.html", 3), {"lang": "en"}))
    assert task_label(one) == ("after", "'pages/trio.html', 3, l…")
    other = graph.create_task_nowait("after", (("b.html",), None))
    assert task_label(other) == ("after", "'b.html'")
    # A task key (issue 12) comes first, the function under it.
    keyed = SimpleNamespace(key="page-3", task_handle="after", uid=one.uid, task_arguments=None)
    assert task_label(cast("TaskNode", keyed)) == ("page-3", "after")


@pytest.mark.skipif(
    shutil.which("dot") is None, reason="Graphviz is not installed: apt-get install graphviz"
)
async def test_graphviz_accepts_the_dot(executed, tmp_path):
    graph, _ = executed
    path = tmp_path / "g.gv"
    graph.draw(path)
    result = await trio.run_process(["dot", "-Tsvg", str(path)], capture_stdout=True)
    assert b"<svg" in result.stdout
    weird = 'say "hi"\\\nnow'  # quotes, a backslash and a newline must all be escaped
    odd = TaskGraph({weird: after}, [WorkerLoop("default", 1, None)])
    odd.create_task_nowait(weird)
    result = await trio.run_process(
        ["dot", "-Tsvg"], stdin=odd.to_dot().encode(), capture_stdout=True
    )
    # The label survives as the text it was: quotes, backslash, and a line break.
    assert b"say &quot;hi&quot;\\</text>" in result.stdout
    assert b">now</text>" in result.stdout


async def test_html_is_self_contained_small_and_says_everything(executed, tmp_path):
    graph, uids = executed
    path = tmp_path / "graph.html"
    graph.draw(path)
    html = path.read_text(encoding="utf-8")
    assert not REMOTE_ASSET.search(html)
    assert len(html.encode()) < 30_000  # the Bokeh page was 1.29 MB for 11 tasks
    page = Page(html)
    (heading,) = page.root.find("h1")
    assert heading.text == f"{graph.uid}: 5 tasks (3 success, 1 failed, 1 precondition_failed)"

    tasks, conditions = page.groups("task"), page.groups("condition")
    assert list(tasks) == list(graph.nodes)
    assert list(conditions) == list(graph.conditions)
    assert list(page.groups("root")) == [graph.uid]
    fills = {uid: g.find("rect")[0].attrs["fill"] for uid, g in tasks.items()}
    assert (fills[uids["good"]], fills[uids["bad"]], fills[uids["skipped"]]) == (
        GREEN,
        RED,
        SKIPPED,
    )
    assert tasks[uids["bad"]].attrs["data-status"] == "failed"
    # Each box says which task it is: the function, then its arguments (or uid).
    texts = {uid: [t.text for t in g.find("text")] for uid, g in tasks.items()}
    assert texts[uids["good"]] == ["produce", "1"]
    assert texts[uids["final"]] == ["after", uids["final"][:11]]
    # The hover text, line by line.
    tips = {uid: g.attrs["data-tip"].split("\n") for uid, g in tasks.items()}
    assert tips[uids["bad"]] == [
        f"task: {uids['bad']}",
        "function: explode",
        "status: failed",
        "outcome: ValueError: exploded on purpose",  # the traceback's last line
    ]
    good_tip = tips[uids["good"]]
    assert good_tip[:4] == [f"task: {uids['good']}", "function: produce", "arguments: 1",
                            "status: success"]  # fmt: skip
    assert good_tip[4].startswith("outcome: {'padding': 'xxx")  # reprlib sorts keys
    assert len(good_tip[4]) <= len("outcome: ") + 80  # a 500-character result, cut short
    assert tips[uids["skipped"]][-1] == "status: precondition_failed"
    condition_tip = conditions[uids["complete"]].attrs["data-tip"].split("\n")
    assert condition_tip[1:] == [
        "mode: COMPLETE__ALL",
        "status: satisfied",
        "successes/completions of predecessors: 1/3 of 3",  # 1 succeeded, 3 ended, of 3
    ]
    circle = conditions[uids["on_bad"]].find("circle")[0]
    assert circle.attrs["fill"] == CONDITION_COLOURS[ConditionStatus.FAILED]

    # The legend names every status (with how many tasks have it) and every edge.
    legend = " ".join(" ".join(span.text.split()) for span in page.root.find("span"))
    for words in ("succeeded (3)", "failed (1)", "skipped (precondition failed) (1)",
                  "cancelled (0)", "running (0)", "waiting for predecessors (0)",
                  "task → condition: the task counts toward it", "did not succeed / failed",
                  "condition failed"):  # fmt: skip
        assert words in legend, words

    edges = {(e.attrs["data-from"], e.attrs["data-to"]): e for e in page.edges()}
    assert len(edges) == len(page.edges()) == 2 + 5 + 3
    assert "bad" in edges[uids["bad"], uids["complete"]].attrs["class"].split()
    assert "good" in edges[uids["good"], uids["complete"]].attrs["class"].split()
    assert edges[uids["bad"], uids["complete"]].attrs["stroke"] == EDGE_COLOURS["bad"]


def ends(edge: Element) -> tuple[tuple[float, float], tuple[float, float]]:
    points = curve_points(edge.attrs["d"])
    return points[0], points[-1]


async def test_edges_run_between_boxes_and_end_at_their_target(tmp_path):
    """The browser test's graph: a failed task whose edge spans the parse column to a
    COMPLETE__ALL condition used to cross rows and point beside the wrong box."""
    graph = TaskGraph(FUNCTIONS, [WorkerLoop("default", 3, None)])
    fetched = [await graph.create_task("produce", ((i,), {})) for i in range(4)]
    parsed = [await graph.create_task("after", None, waits_on=[f.uid]) for f in fetched]
    failed = await graph.create_task("explode")
    await graph.create_task("after", None, waits_on=[failed.uid])
    everything = GenericSchedulingCondition(
        graph, "COMPLETE__ALL", [*(p.uid for p in parsed), failed.uid]
    )
    await graph.create_task("after", None, waits_on=[everything.uid])
    await execute_graph(graph)
    graph.draw(tmp_path / "g.html")
    page = Page((tmp_path / "g.html").read_text(encoding="utf-8"))
    boxes = {uid: box(g) for uid, g in page.groups("task").items()}
    dots = {}
    for uid, g in page.groups("condition").items():
        (circle,) = g.find("circle")
        dots[uid] = (float(circle.attrs["cx"]), float(circle.attrs["cy"]), float(circle.attrs["r"]))
    for edge in page.edges():
        source, target = edge.attrs["data-from"], edge.attrs["data-to"]
        (x0, y0), (x1, y1) = ends(edge)
        if target in boxes:  # the arrow's tip on the middle of the box's left side
            left, top, _, bottom = boxes[target]
            assert (round(x1, 1), round(y1, 1)) == (left, (top + bottom) / 2), (source, target)
        else:  # on the dot's left side
            cx, cy, r = dots[target]
            assert (round(x1, 1), round(y1, 1)) == (cx - r, cy), (source, target)
        if source in boxes:  # from the middle of the source's right side
            _, top, right, bottom = boxes[source]
            assert (round(x0, 1), round(y0, 1)) == (right, (top + bottom) / 2)
        # ... and it passes through no box on the way.
        for uid, (left, top, right, bottom) in boxes.items():
            if uid in (source, target):
                continue
            inside = [p for p in curve_points(edge.attrs["d"])
                      if left < p[0] < right and top < p[1] < bottom]  # fmt: skip
            assert not inside, f"{source} -> {target} crosses {uid} at {inside[0]}"


async def test_a_task_that_ran_more_than_once_says_so_on_its_box(tmp_path):
    flaky_runs: list[int] = []

    async def flaky(*, task_node, graph, worker_context):
        flaky_runs.append(task_node.attempts)
        if len(flaky_runs) == 1:
            raise RuntimeError("flaky once")

    graph = TaskGraph(
        {"flaky": flaky, "after": after},
        [WorkerLoop("default", 1, None)],
        task_policies={"flaky": TaskPolicy(attempts=2, backoff=0.0, max_backoff=0.0)},
    )
    retried = await graph.create_task("flaky")
    once = await graph.create_task("after")
    await execute_graph(graph)
    graph.draw(tmp_path / "g.html")
    tasks = Page((tmp_path / "g.html").read_text(encoding="utf-8")).groups("task")
    runs = {uid: [t.text for t in g.find("text") if t.attrs.get("class") == "runs"]
            for uid, g in tasks.items()}  # fmt: skip
    assert runs == {retried.uid: ["2 runs"], once.uid: []}
    assert "attempts: 2" in tasks[retried.uid].attrs["data-tip"].split("\n")


def test_a_cancelled_task_has_its_own_colour(tmp_path):
    graph = new_graph()
    cancelled = graph.create_task_nowait("after")
    waiting = graph.create_task_nowait("after", None, [cancelled.uid])
    assert graph.cancel_task(cancelled.uid, "not needed")
    assert (cancelled.task_status, waiting.task_status) == ("failed", "precondition_failed")
    graph.draw(tmp_path / "g.html")
    page = Page((tmp_path / "g.html").read_text(encoding="utf-8"))
    fills = {uid: g.find("rect")[0].attrs["fill"] for uid, g in page.groups("task").items()}
    assert fills == {cancelled.uid: CANCELLED_COLOUR, waiting.uid: SKIPPED}
    assert CANCELLED_COLOUR not in (RED, SKIPPED)
    tip = page.groups("task")[cancelled.uid].attrs["data-tip"].split("\n")
    assert "status: failed (cancelled)" in tip
    legend = " ".join(" ".join(span.text.split()) for span in page.root.find("span"))
    assert "cancelled (1)" in legend
    assert "failed (0)" in legend  # a cancelled task is counted apart


async def test_html_of_a_graph_not_yet_run(tmp_path):
    graph = new_graph()
    uids = await build(graph)
    nodes, _ = parse_dot(graph.to_dot())
    assert {fill(nodes[uid]) for uid in graph.nodes} == {
        TASK_COLOURS[TaskStatus.CREATED],
        TASK_COLOURS[TaskStatus.WAITING_FOR_PREDECESSORS],
    }
    assert {fill(nodes[uid]) for uid in graph.conditions} == {
        CONDITION_COLOURS[ConditionStatus.WAITING_ON_TASKS]
    }
    draw_graph(graph, str(tmp_path / "before.html"))
    page = Page((tmp_path / "before.html").read_text(encoding="utf-8"))
    statuses = {uid: g.attrs["data-status"] for uid, g in page.groups("task").items()}
    assert statuses == {
        uids["good"]: "created",  # waits on nothing: ready once the graph runs
        uids["bad"]: "created",
        uids["skipped"]: "waiting_for_predecessors",
        uids["follows"]: "waiting_for_predecessors",
        uids["final"]: "waiting_for_predecessors",
    }
    assert {g.attrs["data-status"] for g in page.groups("condition").values()} == {
        "waiting_on_tasks"
    }
    assert {e.attrs["stroke"] for e in page.edges()} == {EDGE_COLOURS["open"]}


async def test_dot_suffixes_write_dot(executed, tmp_path):
    graph, _ = executed
    for name in ("g.dot", "g.gv", "G.DOT"):
        graph.draw(tmp_path / name)
        assert (tmp_path / name).read_text(encoding="utf-8") == graph.to_dot()


def test_empty_graph(tmp_path):
    graph = new_graph()
    assert f"{graph.uid}: 0 tasks" in graph.to_dot()
    graph.draw(tmp_path / "empty.html")
    page = Page((tmp_path / "empty.html").read_text(encoding="utf-8"))
    assert list(page.groups("root")) == [graph.uid]
    assert page.groups("task") == {}


async def test_html_needs_no_extra(executed, tmp_path, monkeypatch):
    """The page is written by hand: it draws without the draw extra (it needed bokeh and
    networkx before issue 16)."""
    graph, _ = executed
    for name in [*sys.modules]:
        if name.split(".")[0] in ("bokeh", "networkx"):
            monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "bokeh", None)
    monkeypatch.setitem(sys.modules, "networkx", None)
    graph.draw(tmp_path / "g.dot")
    assert graph.uid in (tmp_path / "g.dot").read_text(encoding="utf-8")
    graph.draw(tmp_path / "g.html")
    assert set(Page((tmp_path / "g.html").read_text(encoding="utf-8")).groups("task")) == set(
        graph.nodes
    )


async def test_cycles_still_draw(tmp_path):
    """prepend_to_successor can close a dependency cycle; the drawing copes."""
    for size in (3, 600):
        graph = TaskGraph({"after": after}, [WorkerLoop("default", 1, None)])
        for _ in range(size):
            await graph.create_task("after")
        first = await graph.create_task("after")
        second = await graph.create_task("after", None, waits_on=[first.uid])
        third = await graph.create_task("after", None, waits_on=[second.uid])
        first.prepend_to_successor("after", third)  # second waits on third waits on second
        assert (third.uid, second.waits_on[0].uid) in {
            (s, t) for s, t, _ in parse_dot(graph.to_dot())[1]
        }
        graph.draw(tmp_path / f"cycle{size}.html")
        page = Page((tmp_path / f"cycle{size}.html").read_text(encoding="utf-8"))
        assert list(page.groups("task")) == list(graph.nodes)
        assert len(page.edges()) == len(parse_dot(graph.to_dot())[1])


async def test_large_graph_draws(tmp_path):
    graph = new_graph()
    uids: list[str] = []
    for i in range(2_000):
        waits_on = [uids[(i - 1) // 2]] if i else None  # a binary tree of tasks
        uids.append((await graph.create_task("after", ((i,), {}), waits_on=waits_on)).uid)
    await execute_graph(graph)
    graph.draw(tmp_path / "large.html")
    html = (tmp_path / "large.html").read_text(encoding="utf-8")
    page = Page(html)
    assert list(page.groups("task")) == uids
    assert page.root.find("h1")[0].text.endswith("2000 tasks (2000 success)")
    assert not REMOTE_ASSET.search(html)
    # Too many to label: boxes without text, told apart by hovering.
    assert all(not g.find("text") for g in page.groups("task").values())
