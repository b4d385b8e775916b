"""A timeline of a run (a "task stream"): when each task ran, and where.

One row per worker slot, one bar per run of a task, from when it started to when it
ended: a task that was retried, or run again after its worker was lost, has a bar for each
attempt. Bars are coloured by function (a fixed palette, with a legend) and marked by how
they ended: a failed run has a red outline and red cross-hatching, a run that has not
ended (still running, waiting to retry, or handed back when the run was interrupted) a
white outline and white diagonal hatching. An earlier attempt ended badly, or there would
have been no other: it is marked as failed too, its status saying how it ended
(``raised, retried``, ``worker_lost, run again``). Hovering over a bar shows the task's
uid, function, status, row, start, duration and which attempt it was (``2 of 3``).

The data come from the task nodes alone: ``worker`` (``local`` in-process, else the
worker's id), ``started_at``, ``ended_at``, ``attempts`` and ``earlier_runs`` (kept by the
core only for tasks that ran more than once). What they cannot say:

- *which slot* of a worker ran a task. The rows are derived instead: each worker's runs
  are packed into lanes by greedy interval partitioning (:func:`assign_lanes`), which
  needs as few lanes as the worker ever ran tasks at once, so the rows match its busy
  slots even though a task may have run in another slot than its row's number;
- exact times on remote workers: the coordinator stamps a task when it hands it out and
  when the result arrives, so a remote bar includes the network's round trip.

A task that never ran (``precondition_failed``, cancelled while waiting, or not reached)
has no bar; the title counts them.
"""

from __future__ import annotations

import heapq
import math
import re
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from ...shared.states import EndReason, TaskStatus
from .pictures import BACKGROUND, FOREGROUND, html_page, missing_extra

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from bokeh.models.renderers import GlyphRenderer

    from ..core.nodes import EarlierRun, TaskNode
    from ..task_graph import TaskGraph

#: Fill colours by function, assigned in sorted function-name order: Category20 without its
#: two reds (red marks failure), strong shades first so that small graphs get distinct ones.
PALETTE: Final = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
    "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#c5b0d5", "#c49c94", "#f7b6d2", "#c7c7c7",
    "#dbdb8d", "#9edae5",
)  # fmt: skip
FAILED_COLOUR: Final = "#ff2a2a"
UNFINISHED_COLOUR: Final = "white"
_FAILED_HATCH: Final = "diagonal_cross"
_UNFINISHED_HATCH: Final = "right_diagonal_line"
#: A run shorter than this share of the whole timeline is drawn this wide (about 3 pixels
#: at first), or it would vanish; the hover still gives its real duration.
_MIN_BAR_SHARE: Final = 0.003
_ROW_HEIGHT: Final = 28  # pixels per slot row, while they fit in _COMFORTABLE
_MIN_LABELLED_ROW: Final = 12  # thinner rows than this get no labels: they would overlap
_COMFORTABLE: Final = 1470  # pixels of plot frame: with titles and axis, about 1600
_MAX_FRAME: Final = 4800  # many rows make a tall page to scroll, up to this much
_CHROME: Final = 130  # pixels for the titles, the toolbar and the time axis
_LEGEND_ITEM_HEIGHT: Final = 22
_SCREEN: Final = 1000  # a page taller than this scrolls, so the wheel must not zoom
_EMPTY_ROW: Final = "no task has run"
_MISSING_EXTRA: Final = missing_extra("graph.draw_timeline()")


@dataclass(frozen=True, slots=True)
class TimelineBar:
    """One run of a task, placed on a row of the timeline."""

    uid: str
    function: str
    status: str
    #: What ran it: ``local`` in-process, else a worker's id.
    worker: str
    #: Which of the worker's derived slot rows it is drawn on, from 0.
    lane: int
    #: When the run started and ended (``time.time()``). An unfinished run ends at the
    #: moment it was handed back if that is known, else at the time of drawing.
    start: float
    end: float
    #: False while the run has not ended (see ``end``).
    finished: bool
    #: How many times the task was started in all (its runs, with this one).
    attempts: int
    #: Which run of the task this is, from 1; ``attempt == attempts`` for its last run.
    attempt: int = 1
    #: False for a run followed by another (retried, or run again after a loss).
    last: bool = True

    @property
    def failed(self) -> bool:
        """The run ended badly: the task failed, or this run was not its last."""
        return not self.last or self.status == TaskStatus.FAILED

    @property
    def row(self) -> str:
        """The row's label, like ``worker-2 #0``."""
        return f"{self.worker} #{self.lane}"


def assign_lanes(intervals: Sequence[tuple[float, float]]) -> list[int]:
    """Pack intervals into as few lanes as possible, none overlapping within a lane.

    Greedy interval partitioning: intervals are taken by start time and each goes to the
    lowest-numbered lane that is free by then. A lane is free again at the moment its last
    interval ends, so back-to-back runs share a lane. This uses exactly as many lanes as
    the most intervals that overlap at one moment. O(n log n).

    Args:
        intervals: ``(start, end)`` pairs; an end before its start counts as the start.

    Returns:
        The lane of each interval, in the order given.
    """
    order = sorted(range(len(intervals)), key=lambda i: intervals[i])
    lanes = [0] * len(intervals)
    busy: list[tuple[float, int]] = []  # (end, lane) of lanes in use: a min-heap by end
    free: list[int] = []  # lanes free again: a min-heap, so the lowest is reused first
    for i in order:
        start, end = intervals[i]
        while busy and busy[0][0] <= start:
            heapq.heappush(free, heapq.heappop(busy)[1])
        # Every lane is either busy or free, so a new one is numbered len(busy).
        lane = heapq.heappop(free) if free else len(busy)
        lanes[i] = lane
        heapq.heappush(busy, (max(start, end), lane))
    return lanes


def function_colours(functions: Iterable[str]) -> dict[str, str]:
    """A fill colour per function name, from :data:`PALETTE` in sorted-name order.

    Names sort with numbers compared as numbers (``f2`` before ``f10``). Sorting makes the
    colours depend on the set of names only, so every timeline of the same graph colours
    a function alike. Past 18 functions the palette repeats.
    """
    names = sorted(set(functions), key=_natural_key)
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}


def timeline_bars(graph: TaskGraph, now: float | None = None) -> list[TimelineBar]:
    """One bar for each run of each task of ``graph`` that has started, in row order then by
    start: the earlier runs of a task that ran again, and its last run.

    Args:
        graph: the graph; it is only read.
        now: where a run that is still going ends (default: ``time.time()``).

    Returns:
        Bars sorted by worker (numbers in names compared as numbers), lane and start.
    """
    now = time.time() if now is None else now
    # Per worker: (node, start, end, which run, the earlier run or None for the last).
    runs: defaultdict[str, list[tuple[TaskNode, float, float, int, EarlierRun | None]]]
    runs = defaultdict(list)
    for node in graph.nodes.values():
        number = 0
        earlier_runs = node.earlier_runs or ()
        for earlier in earlier_runs:
            number += 1
            if earlier.started_at is not None:
                start = earlier.started_at
                end = max(earlier.ended_at, start)
                runs[earlier.worker or "unknown"].append((node, start, end, number, earlier))
        # A task waiting to run again (its retry delay, or its queue after a loss) still
        # has the start of the run just recorded as earlier: that run has its bar already.
        again = not earlier_runs or earlier_runs[-1].started_at != node.started_at
        if node.started_at is not None and again:
            start = node.started_at
            run = (node, start, _run_end(node, start, now), number + 1, None)
            runs[node.worker or "unknown"].append(run)
    bars: list[TimelineBar] = []
    for worker in sorted(runs, key=_natural_key):
        worker_runs = runs[worker]
        lanes = assign_lanes([(start, end) for _, start, end, _, _ in worker_runs])
        bars.extend(
            TimelineBar(
                uid=node.uid,
                function=node.task_handle,
                status=str(node.task_status) if earlier is None else _ran_again(earlier),
                worker=worker,
                lane=lane,
                start=start,
                end=end,
                finished=earlier is not None or node.ended_at is not None,
                # A handed-back run is no attempt, yet it has a bar: count it.
                attempts=max(node.attempts, number),
                attempt=number,
                last=earlier is None,
            )
            for (node, start, end, number, earlier), lane in zip(worker_runs, lanes, strict=True)
        )
    bars.sort(key=lambda bar: (_natural_key(bar.worker), bar.lane, bar.start))
    return bars


def draw_timeline(graph: TaskGraph, path: str | Path) -> None:
    """Draw the graph's run as a timeline into one self-contained HTML file.

    One row per worker slot, one bar per task run, coloured by function and marked by
    status (see the module's docstring). BokehJS is inlined, so the page opens with no
    network. Works on a graph that has not run (an empty timeline), is running, or was
    interrupted.

    Args:
        graph: the graph to draw; it is only read.
        path: the file to write (overwritten).

    Raises:
        ImportError: bokeh is not installed (the ``draw`` extra).
    """
    Path(path).write_text(_html(graph), encoding="utf-8")


def _html(graph: TaskGraph) -> str:
    """The Bokeh page: every bar is one row of one ColumnDataSource, drawn by one glyph."""
    try:
        from bokeh.models import ColumnDataSource, DataRange1d, FactorRange, HoverTool, Range1d
        from bokeh.models.annotations.labels import Title
        from bokeh.models.annotations.legends import Legend, LegendItem
        from bokeh.plotting import figure
    except ImportError as error:
        raise ImportError(_MISSING_EXTRA) from error
    bars = timeline_bars(graph)
    colours = function_colours(graph.task_functions)
    t0 = min((bar.start for bar in bars), default=0.0)
    span = max((bar.end for bar in bars), default=t0) - t0
    # A run of one instant (span 0) still gets a bar a millisecond wide.
    min_width = span * _MIN_BAR_SHARE or 1e-3
    # The first row at the top: a categorical axis lists its factors from the bottom up.
    rows = list(dict.fromkeys(bar.row for bar in bars))[::-1] or [_EMPTY_ROW]
    looks = [_look(colours.get(b.function, PALETTE[0]), b.failed, b.finished) for b in bars]
    source = ColumnDataSource({
        "uid": [b.uid for b in bars], "function": [b.function for b in bars],
        "status": [b.status if b.finished else f"{b.status} (unfinished)" for b in bars],
        "row": [b.row for b in bars],
        "left": [b.start - t0 for b in bars],
        "right": [max(b.end - t0, b.start - t0 + min_width) for b in bars],
        # Outlines only: hatching is drawn over the marked bars by renderers of their own.
        **_look_columns(looks, hatched=False),
        "start_text": [f"{b.start - t0:.3f} s" for b in bars],
        "duration": [_duration(b.end - b.start) + ("" if b.finished else " so far")
                     for b in bars],
        "attempt": [f"{b.attempt} of {b.attempts}" for b in bars],
    })  # fmt: skip
    key = _key(bars, colours)

    frame = _frame_height(len(rows))
    height = max(frame, _LEGEND_ITEM_HEIGHT * len(key)) + _CHROME
    plot = figure(
        # Time starts at the first start; a little room after the last end.
        # With nothing to draw, a fixed second: an automatic range of no data draws no axes.
        x_range=DataRange1d(start=0, range_padding=0.02) if bars else Range1d(start=0, end=1),
        y_range=FactorRange(factors=rows),
        width=1200, height=max(320, height),
        # Time is the axis worth zooming; the rows stay put.
        tools="xpan,xwheel_zoom,box_zoom,reset,save",
        active_scroll="xwheel_zoom" if height <= _SCREEN else None,
        background_fill_color=BACKGROUND, border_fill_color=BACKGROUND,
        title=Title(text=f"{graph.uid}: timeline", text_color="white", text_font_size="14px"),
        # Above, not right: on the right it crowded the legend's longest labels.
        x_axis_label="seconds since the first task started", toolbar_location="above",
    )  # fmt: skip
    # The second title line: Bokeh puts the figure's own title above what is added.
    plot.add_layout(Title(text=_summary(graph, bars, span), text_color=FOREGROUND), "above")
    for axis in (plot.xaxis, plot.yaxis):
        axis.axis_line_color = axis.major_tick_line_color = FOREGROUND
        axis.major_label_text_color = axis.axis_label_text_color = FOREGROUND
        axis.minor_tick_line_color = None
    plot.ygrid.grid_line_color = None
    row_pixels = frame / len(rows)
    if row_pixels < _MIN_LABELLED_ROW:
        plot.yaxis.major_label_text_font_size = "0px"
        plot.yaxis.axis_label = f"{len(rows)} worker slots: too many to label, hover a bar"
    elif row_pixels < 16:
        plot.yaxis.major_label_text_font_size = "9px"
    plot.xgrid.grid_line_color = "#3a3a3a"

    bar: dict[str, Any] = {"y": "row", "left": "left", "right": "right", "height": 0.8}
    outlined: dict[str, Any] = {
        **bar, "fill_color": "colour", "line_color": "line_colour", "line_width": "line_width"
    }  # fmt: skip
    renderer = plot.hbar(source=source, **outlined, name="bars")
    # A hatch pattern that varies per bar makes BokehJS draw 50 times slower (a minute for
    # 20,000 bars), so each marking is one pattern over just the bars it marks.
    for name, marked, pattern, colour in (
        ("failed", [b.failed for b in bars], _FAILED_HATCH, FAILED_COLOUR),
        ("unfinished", [not b.finished for b in bars], _UNFINISHED_HATCH, UNFINISHED_COLOUR),
    ):  # fmt: skip
        columns = ("row", "left", "right")
        subset = {c: [v for v, m in zip(source.data[c], marked, strict=True) if m] for c in columns}
        plot.hbar(source=ColumnDataSource(subset), **bar, fill_alpha=0, line_color=None,
                  hatch_pattern=pattern, hatch_color=colour, hatch_scale=8, name=name)  # fmt: skip
    if key:
        # The legend draws its samples from a renderer of its own whose bars sit at NaN,
        # so they are never on the plot: a function whose every run failed still shows
        # its plain colour, and "failed" its marking alone.
        key_source = ColumnDataSource({
            "row": [rows[0]] * len(key), "left": [math.nan] * len(key),
            "right": [math.nan] * len(key), **_look_columns([look for _, look in key]),
        })  # fmt: skip
        # (Annotated: Bokeh's stubs want a list of GlyphRenderer[Glyph], and lists are
        # invariant.)
        samples: GlyphRenderer[Any] = plot.hbar(
            source=key_source, **outlined, hatch_pattern="hatch", hatch_color="hatch_colour",
            hatch_scale=8, name="legend",
        )  # fmt: skip
        legend = Legend(
            items=[LegendItem(label=label, renderers=[samples], index=i)
                   for i, (label, _) in enumerate(key)],
            location="top_left", background_fill_color=BACKGROUND, border_line_color=None,
            label_text_color=FOREGROUND,
            # Several columns rather than entries cut off at the bottom.
            nrows=max(1, (height - _CHROME) // _LEGEND_ITEM_HEIGHT),
        )  # fmt: skip
        plot.add_layout(legend, "right")
    tooltips = [("task", "@uid"), ("function", "@function"), ("status", "@status"),
                ("worker", "@row"), ("start", "@start_text"), ("duration", "@duration"),
                ("attempt", "@attempt")]  # fmt: skip
    plot.add_tools(HoverTool(renderers=[renderer], tooltips=tooltips))
    return html_page(plot, f"{graph.uid} timeline")


def _frame_height(rows: int) -> int:
    """The plot frame's height in pixels for this many rows.

    28 pixels a row while that fits in about a screen and a half; then thinner rows down
    to 12 pixels (still labelled) on a taller page, up to 4800 pixels; past that
    (400 rows), the rows share those.
    """
    if rows * _ROW_HEIGHT <= _COMFORTABLE:
        return rows * _ROW_HEIGHT
    return max(_COMFORTABLE, min(rows * _MIN_LABELLED_ROW, _MAX_FRAME))


#: How a bar is drawn: fill, outline colour, outline width, hatch pattern, hatch colour.
_Look = tuple[str, str, float, str, str]


def _look(colour: str, failed: bool, finished: bool) -> _Look:
    if failed:
        return colour, FAILED_COLOUR, 3.0, _FAILED_HATCH, FAILED_COLOUR
    if not finished:
        return colour, UNFINISHED_COLOUR, 2.0, _UNFINISHED_HATCH, UNFINISHED_COLOUR
    # Outlined in the background colour, so back-to-back runs stay apart.
    return colour, BACKGROUND, 1.0, "blank", BACKGROUND


def _look_columns(looks: Sequence[_Look], *, hatched: bool = True) -> dict[str, list[Any]]:
    names = ("colour", "line_colour", "line_width", "hatch", "hatch_colour")
    return {
        name: [look[i] for look in looks] for i, name in enumerate(names[: 5 if hatched else 3])
    }


def _key(bars: list[TimelineBar], colours: dict[str, str]) -> list[tuple[str, _Look]]:
    """The legend: each function that ran, then "failed" and "unfinished" if any bar is."""
    key = [(name, _look(colours.get(name, PALETTE[0]), False, True))
           for name in sorted({bar.function for bar in bars}, key=_natural_key)]  # fmt: skip
    if any(bar.failed for bar in bars):
        key.append(("failed (red, cross-hatched)", _look(BACKGROUND, True, True)))
    if not all(bar.finished for bar in bars):
        key.append(("unfinished (white, hatched)", _look(BACKGROUND, False, False)))
    return key


def _run_end(node: TaskNode, start: float, now: float) -> float:
    """When the node's last run ended, or the best known bound if it has not."""
    if node.ended_at is not None:
        return max(node.ended_at, start)
    queued = node.queued_at
    if node.task_status != TaskStatus.IN_PROGRESS and queued is not None and queued >= start:
        # Handed back (an interrupted run, a lost worker): queued again at that moment.
        return queued
    return max(now, start)


def _summary(graph: TaskGraph, bars: list[TimelineBar], span: float) -> str:
    """Like ``12 of 14 tasks ran (13 runs) on 2 workers (6 rows) in 3.2 s: 11 success, ..."""
    ran = len({bar.uid for bar in bars})
    text = f"{ran} of {len(graph.nodes)} tasks ran"
    if len(bars) != ran:
        text += f" ({len(bars)} runs)"
    if bars:
        workers = len({bar.worker for bar in bars})
        rows = len({bar.row for bar in bars})
        text += f" on {workers} worker{'s' * (workers != 1)} ({rows} rows) in {_duration(span)}"
    counts = Counter(bar.status for bar in bars if bar.finished and bar.last)
    if counts:
        text += ": " + ", ".join(f"{counts[s]} {s}" for s in TaskStatus if counts[s])
    if never := len(graph.nodes) - ran:
        text += f"; {never} never ran"
    if unfinished := sum(not bar.finished for bar in bars):
        text += f"; {unfinished} unfinished"
    return text


def _ran_again(run: EarlierRun) -> str:
    """The status of a run followed by another: how it ended, and what came next."""
    if run.end_reason is EndReason.WORKER_LOST:
        return f"{run.end_reason}, run again"
    return f"{run.end_reason}, retried"


def _duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.1f} ms"
    return f"{seconds:.3f} s"


def _natural_key(name: str) -> tuple[str | int, ...]:
    """Sort ``worker-10`` after ``worker-9``: digit runs compare as numbers."""
    # re.split with a group alternates text and digits, so positions never mix types.
    return tuple(int(part) if i % 2 else part for i, part in enumerate(re.split(r"(\d+)", name)))
