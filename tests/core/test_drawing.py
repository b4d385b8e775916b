"""Drawing a graph: DOT text and the self-contained Bokeh HTML page."""

from __future__ import annotations

import json
import re
import shutil
import sys

import pytest
import trio

from trio_graph_scheduler import (
    GenericSchedulingCondition,
    TaskGraph,
    WorkerLoop,
    execute_graph,
)
from trio_graph_scheduler.coordinator.observe.drawing import draw_graph, graph_to_dot

# A <script src=...> or <link href=...> that reaches for the network (a CDN).
REMOTE_ASSET = re.compile(r"""<(?:script|link)\b[^>]*\b(?:src|href)\s*=\s*["']?https?://""", re.I)
NODE_LINE = re.compile(r'^\s*"(?P<uid>[^"]+)" \[(?P<attrs>.*)\];$')
EDGE_LINE = re.compile(r'^\s*"(?P<source>[^"]+)" -> "(?P<target>[^"]+)" \[(?P<attrs>.*)\];$')
MISSING_EXTRA = (
    "graph.draw() to HTML needs the 'draw' extra: "
    "pip install 'trio-graph-scheduler[draw]' (or write .dot)"
)


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


def html_sources(html: str) -> dict[str, dict[str, list]]:
    """The page's embedded ColumnDataSources, by their first uid's kind (task, ...)."""
    match = re.search(r'<script type="application/json"[^>]*>(.*?)</script>', html, re.S)
    assert match, "no embedded Bokeh document"
    sources: dict[str, dict[str, list]] = {}

    def walk(item):
        if isinstance(item, dict):
            if item.get("name") == "ColumnDataSource":
                columns = dict(item["attributes"]["data"]["entries"])
                if columns.get("uid"):
                    sources[columns["uid"][0].split("-")[0]] = columns
            for value in item.values():
                walk(value)
        elif isinstance(item, list):
            for value in item:
                walk(value)

    walk(json.loads(match[1]))
    return sources


def by_uid(columns: dict[str, list], column: str) -> dict[str, object]:
    return dict(zip(columns["uid"], columns[column], strict=True))


def fill(attrs: str) -> str:
    match = re.search(r'fillcolor="([^"]+)"', attrs)
    assert match, attrs
    return match[1]


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
    assert "label=root" in nodes[graph.uid]
    assert fill(nodes[graph.uid]) == "yellow"
    for uid, node in graph.nodes.items():
        assert "shape=box" in nodes[uid]
        assert f'label="T-{node.task_handle}"' in nodes[uid]
    for uid, condition in graph.conditions.items():
        assert "shape=point" in nodes[uid]
        assert f'xlabel="C-{condition.mode}"' in nodes[uid]
    assert fill(nodes[uids["good"]]) == "green"
    assert fill(nodes[uids["final"]]) == "green"
    assert fill(nodes[uids["bad"]]) == "red"
    assert fill(nodes[uids["skipped"]]) == "red"
    assert fill(nodes[uids["on_bad"]]) == "red"  # failed condition
    assert fill(nodes[uids["on_good"]]) == "green"  # satisfied
    assert fill(nodes[uids["complete"]]) == "green"

    coloured = {(source, target): attrs for source, target, attrs in edges}
    assert len(coloured) == len(edges)  # no edge twice
    # Root -> the tasks that wait on nothing, and no others.
    scheduled = {t for (s, t) in coloured if s == graph.uid}
    assert scheduled == {uids["good"], uids["bad"]}
    assert 'color="purple"' in coloured[graph.uid, uids["good"]]
    # Task -> the conditions that wait on it.
    for predecessor in ("good", "bad", "skipped"):
        assert 'color="red"' in coloured[uids[predecessor], uids["complete"]]
    assert (uids["bad"], uids["on_bad"]) in coloured
    # Condition -> the task that waits on it.
    assert 'color="blue"' in coloured[uids["complete"], uids["final"]]
    assert 'color="blue"' in coloured[uids["on_bad"], uids["skipped"]]
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
    assert r'label="T-say \"hi\"\\\nnow"' in dot
    # The newline did not leak into the text: every line is a whole statement.
    assert all(line.endswith((";", "{", "}")) for line in dot.splitlines())


def test_dot_truncates_long_function_names():
    long_name = "a_function_with_a_very_long_name"
    graph = TaskGraph({long_name: after}, [WorkerLoop("default", 1, None)])
    graph.create_task_nowait(long_name)
    assert f'label="T-{long_name[:15]}"' in graph.to_dot()


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


async def test_html_is_self_contained(executed, tmp_path):
    graph, uids = executed
    path = tmp_path / "graph.html"
    graph.draw(path)
    html = path.read_text(encoding="utf-8")
    for uid in [graph.uid, *graph.nodes, *graph.conditions]:
        assert uid in html
    assert not REMOTE_ASSET.search(html)
    assert "root.Bokeh = bokeh" in html  # BokehJS itself is inlined...
    assert "Bokeh.embed.embed_items" in html  # ...and the plot is embedded with it
    assert len(html) > 500_000
    assert f"{graph.uid}: 5 tasks (3 success, 1 failed, 1 precondition_failed)" in html

    sources = html_sources(html)
    tasks, conditions = sources["task"], sources["condition"]
    assert sources["graph"]["uid"] == [graph.uid]
    assert tasks["uid"] == list(graph.nodes)
    assert conditions["uid"] == list(graph.conditions)
    colours, statuses = by_uid(tasks, "colour"), by_uid(tasks, "status")
    assert (statuses[uids["good"]], colours[uids["good"]]) == ("success", "green")
    assert (statuses[uids["bad"]], colours[uids["bad"]]) == ("failed", "red")
    assert (statuses[uids["skipped"]], colours[uids["skipped"]]) == ("precondition_failed", "red")
    assert by_uid(tasks, "function")[uids["good"]] == "produce"
    outcomes = by_uid(tasks, "outcome")
    assert outcomes[uids["bad"]] == "ValueError: exploded on purpose"  # last traceback line
    assert outcomes[uids["good"]].startswith("{'padding': 'xxx")  # reprlib sorts keys
    assert len(outcomes[uids["good"]]) <= 80  # a 500-character result, cut short
    assert outcomes[uids["final"]] == "'after'"
    assert outcomes[uids["skipped"]] == ""
    assert by_uid(conditions, "colour") == {
        uids["on_good"]: "green",
        uids["on_bad"]: "red",
        uids["complete"]: "green",
    }
    assert by_uid(conditions, "mode")[uids["complete"]] == "COMPLETE__ALL"
    progress = by_uid(conditions, "progress")
    assert progress[uids["complete"]] == "1/3 of 3"  # 1 succeeded, 3 ended, of 3
    assert progress[uids["on_bad"]] == "0/1 of 1"


async def test_html_of_a_graph_not_yet_run(tmp_path):
    graph = new_graph()
    uids = await build(graph)
    nodes, _ = parse_dot(graph.to_dot())
    assert {fill(nodes[uid]) for uid in graph.nodes} == {"orange"}
    assert {fill(nodes[uid]) for uid in graph.conditions} == {"orange"}
    draw_graph(graph, str(tmp_path / "before.html"))
    sources = html_sources((tmp_path / "before.html").read_text(encoding="utf-8"))
    assert set(sources["task"]["colour"]) == set(sources["condition"]["colour"]) == {"orange"}
    assert by_uid(sources["task"], "status") == {
        uids["good"]: "created",  # waits on nothing: ready once the graph runs
        uids["bad"]: "created",
        uids["skipped"]: "waiting_for_predecessors",
        uids["follows"]: "waiting_for_predecessors",
        uids["final"]: "waiting_for_predecessors",
    }
    assert set(sources["condition"]["status"]) == {"waiting_on_tasks"}


async def test_dot_suffixes_write_dot(executed, tmp_path):
    graph, _ = executed
    for name in ("g.dot", "g.gv", "G.DOT"):
        graph.draw(tmp_path / name)
        assert (tmp_path / name).read_text(encoding="utf-8") == graph.to_dot()


def test_empty_graph(tmp_path):
    graph = new_graph()
    assert f"{graph.uid}: 0 tasks" in graph.to_dot()
    graph.draw(tmp_path / "empty.html")
    assert graph.uid in (tmp_path / "empty.html").read_text(encoding="utf-8")


async def test_without_the_draw_extra(executed, tmp_path, monkeypatch):
    graph, _ = executed
    # Make every bokeh and networkx import fail, as if the extra were not installed.
    for name in [*sys.modules]:
        if name.split(".")[0] in ("bokeh", "networkx"):
            monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "bokeh", None)
    monkeypatch.setitem(sys.modules, "networkx", None)
    graph.draw(tmp_path / "g.dot")
    assert graph.uid in (tmp_path / "g.dot").read_text(encoding="utf-8")
    with pytest.raises(ImportError) as caught:
        graph.draw(tmp_path / "g.html")
    assert str(caught.value) == MISSING_EXTRA
    assert not (tmp_path / "g.html").exists()


async def test_cycles_still_draw(tmp_path):
    """prepend_to_successor can close a dependency cycle; the drawing copes."""
    for size in (3, 600):  # spring layout when small, layered components when large
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
        assert second.uid in (tmp_path / f"cycle{size}.html").read_text(encoding="utf-8")


async def test_large_graph_draws(tmp_path):
    graph = new_graph()
    uids: list[str] = []
    for i in range(2_000):
        waits_on = [uids[(i - 1) // 2]] if i else None  # a binary tree of tasks
        uids.append((await graph.create_task("after", ((i,), {}), waits_on=waits_on)).uid)
    await execute_graph(graph)
    graph.draw(tmp_path / "large.html")
    html = (tmp_path / "large.html").read_text(encoding="utf-8")
    assert html_sources(html)["task"]["uid"] == uids
    assert "2000 tasks (2000 success)" in html
    assert not REMOTE_ASSET.search(html)
