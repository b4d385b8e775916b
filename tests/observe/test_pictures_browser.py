"""Both HTML pictures of a run, opened in a real headless Chromium and checked as drawn.

The graph picture is SVG: the test reads where the browser laid out each box, dot, label
and edge (``getBoundingClientRect``, the edges' own geometry), at 1400 and 1900 pixels
wide, and checks that nothing is cut off, each label fits its box, each edge ends at its
target, the pixels there have the status's colour, and hovering a task shows its tooltip.

The timeline is SVG too, with a script that fits it to the window and moves its bars
when the time axis zooms: the test reads where each bar, row label and tick label was
drawn at both widths and checks that nothing is cut off and every bar lies inside the
plot; that the pixels are each function's colour, a red outline on the final failure and
red hatching on the earlier attempt of a retried task; that hovering shows a run's
text; and that the mouse wheel zooms the time axis (the range and the ticks change, a
bar grows), dragging pans it, and "whole run" shows all of it again.

The screenshots are written next to the pages (``tmp_path``), and also into the
directory ``$TGS_SCREENSHOTS`` names, if set, for a person to look at.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import trio
from browser import CHROMIUM, Page, chromium
from PIL import Image

from trio_graph_scheduler import (
    GenericSchedulingCondition,
    TaskGraph,
    TaskPolicy,
    WorkerLoop,
    execute_graph,
)
from trio_graph_scheduler.coordinator.observe.drawing import (
    CONDITION_COLOURS,
    ROOT_COLOUR,
    task_colour,
)
from trio_graph_scheduler.coordinator.observe.timeline import FAILED_COLOUR, function_colours

if TYPE_CHECKING:
    from trio_graph_scheduler.coordinator.core.nodes import TaskNode

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="needs Chromium for the browser test: apt-get install -y chromium",
    ),
]

WIDTH, HEIGHT = 1400, 900
#: The widths the graph picture must fit (issue 16: the right-most node was cut off).
WIDTHS = (1400, 1900)
Colour = tuple[int, int, int]

# -- the run --------------------------------------------------------------------------


async def fetch(i: int, *, task_node: TaskNode, graph: TaskGraph, worker_context: Any) -> int:
    await trio.sleep(0.12)
    return i


def parse(*, task_node: TaskNode, graph: TaskGraph, worker_context: Any) -> str:
    time.sleep(0.08)  # a sync function: it runs in a worker thread
    return "parsed"


async def boom(*, task_node: TaskNode, graph: TaskGraph, worker_context: Any) -> None:
    await trio.sleep(0.1)
    raise ValueError("exploded on purpose")


async def flaky(*, task_node: TaskNode, graph: TaskGraph, worker_context: Any) -> str:
    await trio.sleep(0.06)
    if task_node.attempts == 1:
        raise RuntimeError("failed once")
    return "fine"


async def report(*, task_node: TaskNode, graph: TaskGraph, worker_context: Any) -> str:
    await trio.sleep(0.05)
    return "reported"


async def run_graph() -> tuple[TaskGraph, dict[str, str]]:
    """Five functions on two loops: 4 fetch -> parse pairs, a failure, a task it skips,
    a task that fails once and is retried, and a report once everything has ended.
    Returns the graph and some uids by role."""
    graph = TaskGraph(
        {"fetch": fetch, "parse": parse, "boom": boom, "report": report, "flaky": flaky},
        [WorkerLoop("default", 3, None), WorkerLoop("parsing", 2, ["parse"])],
        task_policies={"flaky": TaskPolicy(attempts=2, backoff=0.0, max_backoff=0.0)},
    )
    fetched = [await graph.create_task("fetch", ((i,), {})) for i in range(4)]
    parsed = [await graph.create_task("parse", None, waits_on=[f.uid]) for f in fetched]
    failed = await graph.create_task("boom")
    skipped = await graph.create_task("report", None, waits_on=[failed.uid])
    everything = GenericSchedulingCondition(
        graph, "COMPLETE__ALL", [*(p.uid for p in parsed), failed.uid]
    )
    final = await graph.create_task("report", None, waits_on=[everything.uid])
    retried = await graph.create_task("flaky")
    await execute_graph(graph)
    uids = {"failed": failed.uid, "skipped": skipped.uid, "final": final.uid}
    return graph, {**uids, "retried": retried.uid}


# -- screenshots ----------------------------------------------------------------------


async def screenshot(page: Page, path: Path) -> Image.Image:
    """The viewport, saved (see :func:`save_png`), as RGB pixels."""
    return save_png(await page.screenshot(path), path)


def save_png(data: bytes, path: Path) -> Image.Image:
    """Copy a screenshot into ``$TGS_SCREENSHOTS`` if set; return its pixels."""
    if directory := os.environ.get("TGS_SCREENSHOTS"):
        Path(directory).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(directory) / path.name)
    return Image.open(io.BytesIO(data)).convert("RGB")


# -- what the page drew ---------------------------------------------------------------


def near(pixel: Colour, colour: Colour, tolerance: int = 30) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, colour, strict=True))


def hex_rgb(colour: str) -> Colour:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def pixel(image: Image.Image, x: float, y: float) -> Colour:
    value = image.getpixel((round(x), round(y)))
    assert isinstance(value, tuple)
    return value[0], value[1], value[2]


def share_near(image: Image.Image, box: tuple[float, float, float, float], colour: Colour) -> float:
    """The share of the pixels in ``box`` (left, top, right, bottom) close to ``colour``."""
    left, top, right, bottom = (round(v) for v in box)
    pixels = [pixel(image, x, y) for x in range(left, right) for y in range(top, bottom)]
    return sum(near(p, colour, 60) for p in pixels) / len(pixels)


# -- the test -------------------------------------------------------------------------


async def test_both_pictures_render_in_chromium(tmp_path: Path) -> None:
    graph, uids = await run_graph()
    graph_page, timeline_page = tmp_path / "graph.html", tmp_path / "timeline.html"
    graph.draw(graph_page)
    graph.draw_timeline(timeline_page)
    ran = {uid for uid, node in graph.nodes.items() if node.started_at is not None}
    assert uids["skipped"] not in ran
    assert len(ran) == len(graph.nodes) - 1

    began = time.perf_counter()
    with trio.fail_after(90):
        async with chromium(tmp_path / "profile", WIDTH, HEIGHT) as page:
            await page.open(graph_page)
            await check_graph_picture(page, graph, uids, tmp_path)
            await check_wide_graph(page, tmp_path)
            await page.open(timeline_page)
            await check_timeline(page, graph, uids, ran, tmp_path)
            assert page.errors() == []
    print(f"browser checks took {time.perf_counter() - began:.2f} s")


#: Where the browser drew the graph picture: each task's box and label lines, each
#: condition's dot, the root, each edge's two ends (in page pixels, through the SVG's own
#: transform, so the scaling that fits it to the window is included), and the page's width
#: against the window's.
GRAPH_DRAWN = """
(() => {
  const rect = (el) => { const r = el.getBoundingClientRect();
                         return [r.left, r.top, r.right, r.bottom]; };
  const svg = document.querySelector("#picture svg");
  const matrix = svg.getScreenCTM();
  const at = (path, length) => {
    const p = path.getPointAtLength(length).matrixTransform(matrix);
    return [p.x, p.y];
  };
  const groups = (kind) => Array.from(document.querySelectorAll("g." + kind));
  return {
    tasks: groups("task").map((g) => ({
      uid: g.id, box: rect(g.querySelector("rect")),
      labels: Array.from(g.querySelectorAll("text")).map(rect),
    })),
    conditions: groups("condition").map((g) => ({uid: g.id,
                                                 dot: rect(g.querySelector("circle"))})),
    root: rect(document.querySelector("g.root circle")),
    edges: Array.from(document.querySelectorAll("path.edge")).map((path) => ({
      from: path.dataset.from, to: path.dataset.to,
      start: at(path, 0), end: at(path, path.getTotalLength()),
    })),
    svg: rect(svg),
    window: [window.innerWidth, document.documentElement.scrollWidth],
  };
})()
"""


async def graph_drawn(page: Page) -> dict[str, Any]:
    result: dict[str, Any] = await page.evaluate(GRAPH_DRAWN)
    return result


def centre(box: list[float]) -> tuple[float, float]:
    return (box[0] + box[2]) / 2, (box[1] + box[3]) / 2


def assert_fits(info: dict[str, Any], width: int) -> None:
    """Nothing of the picture is cut off, and nothing scrolls sideways."""
    inner, scroll = info["window"]
    assert inner == width
    assert scroll <= inner, f"the page scrolls sideways at {width} px ({scroll} px wide)"
    left, _, right, _ = info["svg"]
    assert left >= 0, f"the picture starts at {left:.0f} px"
    assert right <= width, f"the picture ends at {right:.0f} px, beyond {width} px"
    for task in info["tasks"]:
        box = task["box"]
        assert box[0] >= 0, f"{task['uid']} cut off: {box}"
        assert box[2] <= width, f"{task['uid']} cut off: {box}"
        for label in task["labels"]:  # every label line inside its box
            assert box[0] <= label[0], (task["uid"], box, label)
            assert label[2] <= box[2], (task["uid"], box, label)


async def check_graph_picture(
    page: Page, graph: TaskGraph, uids: dict[str, str], tmp_path: Path
) -> None:
    for width in WIDTHS:
        await page.resize(width)
        info = await graph_drawn(page)
        tasks = {task["uid"]: task for task in info["tasks"]}
        dots = {condition["uid"]: condition["dot"] for condition in info["conditions"]}
        assert list(tasks) == list(graph.nodes)
        assert list(dots) == list(graph.conditions)
        assert_fits(info, width)

        image = await screenshot(page, tmp_path / f"graph-{width}.png")
        for uid, task in tasks.items():
            # 4 px inside the box's left side, half-way down: clear of the centred labels.
            box = task["box"]
            colour = hex_rgb(task_colour(graph.nodes[uid]))
            assert near(pixel(image, box[0] + 4, (box[1] + box[3]) / 2), colour), uid
        for uid, dot in dots.items():
            colour = hex_rgb(CONDITION_COLOURS[graph.conditions[uid].condition_status])
            assert near(pixel(image, *centre(dot)), colour), uid
        root_x, root_y = centre(info["root"])
        assert near(pixel(image, root_x, root_y + 12), hex_rgb(ROOT_COLOUR))

        # Every edge ends where its target is (issue 16: the failed task's arrow to
        # COMPLETE__ALL landed beside a parse box).
        for edge in info["edges"]:
            x, y = edge["end"]
            if edge["to"] in tasks:
                box = tasks[edge["to"]]["box"]
                assert abs(x - box[0]) < 2, edge
                assert box[1] < y < box[3], edge
            else:
                dot = dots[edge["to"]]
                assert abs(x - dot[0]) < 2, edge
                assert abs(y - centre(dot)[1]) < 2, edge
        failed_edge = [e for e in info["edges"] if e["from"] == uids["failed"]]
        assert {e["to"] for e in failed_edge} == {
            c.uid for c in graph.nodes[uids["failed"]].waited_on_by
        }

    box = tasks[uids["failed"]]["box"]
    await page.hover(box[0] + 4, (box[1] + box[3]) / 2)
    text = await page.evaluate(
        'document.getElementById("tip").checkVisibility() && '
        'document.getElementById("tip").textContent'
    )
    assert text == "\n".join([
        f"task: {uids['failed']}", "function: boom", "status: failed",
        "outcome: ValueError: exploded on purpose",
    ])  # fmt: skip
    await page.hover(1, 1)
    await page.resize(WIDTH)


async def check_wide_graph(page: Page, tmp_path: Path) -> None:
    """A graph far wider than the window is drawn smaller to fit, whole; "full size" shows
    it at its size, to scroll."""
    name = "a_function_with_a_long_name"
    graph = TaskGraph({name: report}, [WorkerLoop("default", 1, None)])
    previous = None
    for _ in range(12):
        waits_on = [previous.uid] if previous else None
        previous = await graph.create_task(name, None, waits_on=waits_on)
    path = tmp_path / "wide.html"
    graph.draw(path)
    await page.open(path)
    for width in WIDTHS:
        await page.resize(width)
        info = await graph_drawn(page)
        assert len(info["tasks"]) == 12
        assert_fits(info, width)
    await page.evaluate('document.getElementById("full").click()')
    info = await graph_drawn(page)
    inner, _ = info["window"]
    assert info["svg"][2] - info["svg"][0] > 2 * inner  # its own size, far wider
    await screenshot(page, tmp_path / "graph-wide-full.png")
    await page.resize(WIDTH)


#: Where the browser drew the timeline: each bar (its run's uid and how it is marked),
#: the plot's left and right edges, the row labels, the tick labels, the legend's items,
#: the from/to range, the SVG's box and the page's width against the window's.
TIMELINE_DRAWN = """
(() => {
  const rect = (el) => { const r = el.getBoundingClientRect();
                         return [r.left, r.top, r.right, r.bottom]; };
  const data = JSON.parse(document.getElementById("data").textContent);
  const svg = document.getElementById("timeline");
  const clip = document.getElementById("clip-rect");
  const left = svg.getBoundingClientRect().left;
  const plot = [left + clip.x.baseVal.value,
                left + clip.x.baseVal.value + clip.width.baseVal.value];
  return {
    bars: Array.from(document.querySelectorAll("#bars rect")).map((bar, i) => ({
      uid: data.runs[i][2], row: data.rows[data.runs[i][4]],
      marking: bar.getAttribute("class").split(" ").slice(2).join(" "), box: rect(bar),
    })),
    plot,
    rows: Array.from(document.querySelectorAll("text.row")).map(rect),
    ticks: Array.from(document.querySelectorAll("#axis text")).map(
      (t) => ({text: t.textContent, box: rect(t)})),
    legend: Array.from(document.querySelectorAll(".key")).map(
      (k) => ({text: k.textContent, box: rect(k)})),
    range: [+document.getElementById("from").value, +document.getElementById("to").value],
    svg: rect(svg),
    window: [window.innerWidth, document.documentElement.scrollWidth],
  };
})()
"""
#: Resolves after two frames: the script redraws on the next one.
NEXT_FRAMES = (
    "new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve)))"
)
#: The tooltip's text while it shows, else false.
TIP = (
    'document.getElementById("tip").checkVisibility() && document.getElementById("tip").textContent'
)


async def timeline_drawn(page: Page) -> dict[str, Any]:
    await page.evaluate(NEXT_FRAMES)
    result: dict[str, Any] = await page.evaluate(TIMELINE_DRAWN)
    return result


def assert_timeline_fits(info: dict[str, Any], width: int) -> None:
    """Nothing cut off: the page is no wider than the window, every row label, tick label
    and legend item is inside it, and every bar inside the plot."""
    inner, scroll = info["window"]
    assert inner == width
    assert scroll <= inner, f"the page scrolls sideways at {width} px ({scroll} px wide)"
    svg_left, _, svg_right, _ = info["svg"]
    assert svg_left >= 0, info["svg"]
    assert svg_right <= width, info["svg"]
    plot_left, plot_right = info["plot"]
    assert plot_right > svg_right - 60, "the plot does not use the window's width"
    for bar in info["bars"]:
        left, _, right, _ = bar["box"]
        assert plot_left - 0.5 <= left, (width, bar)
        assert right <= plot_right + 0.5, (width, bar)
    for label in info["rows"]:
        assert label[0] >= 0, (width, label)
        assert label[2] <= plot_left, (width, label)
    assert len(info["ticks"]) >= 4, info["ticks"]
    # Readable: 1, 2 or 5 times a power of ten, in ms for a run this short ("100 ms").
    texts = [tick["text"] for tick in info["ticks"]]
    assert all(re.fullmatch(r"\d+ ms", text) for text in texts), texts
    for tick in info["ticks"]:
        assert svg_left <= tick["box"][0], (width, tick)
        assert tick["box"][2] <= svg_right, (width, tick)
    for item in info["legend"]:
        assert item["box"][2] <= width, (width, item)


async def check_timeline(
    page: Page, graph: TaskGraph, uids: dict[str, str], ran: set[str], tmp_path: Path
) -> None:
    colours = function_colours(graph.task_functions)
    red = hex_rgb(FAILED_COLOUR)
    for width in WIDTHS:
        await page.resize(width)
        info = await timeline_drawn(page)
        bars = info["bars"]
        # A bar per run: one per task that ran, and two for the retried one.
        assert sorted(bar["uid"] for bar in bars) == sorted([*ran, uids["retried"]])
        rows = {bar["row"] for bar in bars}
        assert all(re.fullmatch(r"local #\d", row) for row in rows), rows
        assert 2 <= len(rows) == len(info["rows"]) <= 5  # never more than 3 + 2 slots
        assert [item["text"] for item in info["legend"]] == [
            "boom (1 run)", "fetch (4 runs)", "flaky (2 runs)", "parse (4 runs)",
            "report (1 run)", "failed: the task's final run (solid red outline)",
            "earlier attempt, then retried or run again (red hatching)",
        ]  # fmt: skip
        assert_timeline_fits(info, width)

        image = await screenshot(page, tmp_path / f"timeline_{width}.png")
        for bar in bars:
            function = graph.nodes[bar["uid"]].task_handle
            x0, y0, x1, y1 = bar["box"]
            y = (y0 + y1) / 2
            assert x1 - x0 > 20, f"{bar['uid']}'s bar is too short to check: {x1 - x0:.1f} px"
            reds = share_near(image, (x0 + 5, y - 5, x1 - 5, y + 5), red)
            if bar["marking"] == "earlier":  # red hatching over its colour
                assert bar["uid"] == uids["retried"]
                assert reds > 0.15, f"the earlier attempt is not hatched red ({reds:.0%})"
            else:
                assert reds == 0, f"{bar['uid']} ({function}) has red inside it"
                centre = pixel(image, (x0 + x1) / 2, y)
                assert near(centre, hex_rgb(colours[function]), 8), (bar, centre)
            if bar["marking"] == "failed":  # a solid red outline, on its edges
                assert bar["uid"] == uids["failed"]
                assert near(pixel(image, x0, y), red, 40), pixel(image, x0, y)
                assert near(pixel(image, (x0 + x1) / 2, y0), red, 40)
        assert sorted(bar["marking"] for bar in bars if bar["marking"]) == ["earlier", "failed"]

    # Hovering a bar shows its run: the final failure, and the retried task's first run.
    by_marking = {bar["marking"]: bar for bar in bars}
    box = by_marking["failed"]["box"]
    await page.hover((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
    text = await page.evaluate(TIP)
    failed = f"task: {uids['failed']}\nfunction: boom\nattempt: 1 of 1\n"
    # boom sleeps 0.1 s: its run took 100 ms or more (much more on a loaded machine: no
    # upper bound, and the start may come after a second too).
    assert re.fullmatch(
        rf"{failed}worker: local #\d\nstart: \d+\.\d{{3}} s\n"
        r"duration: ([1-9]\d\d\.\d ms|\d+\.\d{3} s)\n"
        r"status: failed\nerror: ValueError: exploded on purpose",
        text,
    ), text
    await screenshot(page, tmp_path / "timeline_hover.png")
    box = by_marking["earlier"]["box"]
    await page.hover((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
    text = await page.evaluate(TIP)
    assert f"task: {uids['retried']}\nfunction: flaky\nattempt: 1 of 2\n" in text, text
    assert text.endswith("status: raised, retried\nerror: RuntimeError: failed once"), text

    # The wheel zooms the time axis where the mouse is; dragging pans; "whole run" resets.
    before = info
    plot_left, plot_right = before["plot"]
    middle = (plot_left + plot_right) / 2
    await page.call(
        "Input.dispatchMouseEvent", type="mouseWheel", x=middle, y=box[1], deltaX=0,
        deltaY=-600,
    )  # fmt: skip
    zoomed = await timeline_drawn(page)
    (a, b), (c, d) = before["range"], zoomed["range"]
    assert d - c < (b - a) / 2, ("the wheel did not zoom in", before["range"], zoomed["range"])
    assert a <= c
    assert d <= b
    assert [t["text"] for t in zoomed["ticks"]] != [t["text"] for t in before["ticks"]]
    wide = {bar["uid"] for bar in zoomed["bars"] if bar["box"][2] - bar["box"][0] > 60}
    assert wide, "no bar grew when zoomed in"
    await screenshot(page, tmp_path / "timeline_zoomed.png")
    for kind, x in (("mousePressed", middle), ("mouseMoved", middle - 200)):
        await page.call("Input.dispatchMouseEvent", type=kind, x=x, y=box[1], button="left",
                        buttons=1, clickCount=1)  # fmt: skip
    await page.call("Input.dispatchMouseEvent", type="mouseReleased", x=middle - 200,
                    y=box[1], button="left", clickCount=1)  # fmt: skip
    panned = await timeline_drawn(page)
    (e, f) = panned["range"]
    assert e > c, ("dragging did not pan", zoomed["range"], panned["range"])
    assert abs((f - e) - (d - c)) < (d - c) / 100  # the same span (the boxes round it)
    await page.evaluate('document.getElementById("reset").click()')
    assert (await timeline_drawn(page))["range"] == before["range"]
