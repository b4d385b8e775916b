"""A timeline of a run (a "task stream"): when each task ran, and where.

One row per worker slot, one bar per run of a task, from when it started to when it
ended: a task that was retried, or run again after its worker was lost, has a bar for each
attempt. Bars are coloured by function (a fixed palette, with a legend) and marked by how
they ended, three markings the legend names:

- a task's **final failure** (its last run, and the task failed): a solid red outline;
- an **earlier attempt** (a run followed by another: it raised and was retried, or its
  worker was lost and it ran again): red diagonal hatching, its status saying how it
  ended (``raised, retried``, ``worker_lost, run again``);
- an **unfinished** run (still running, waiting to retry, or handed back when the run was
  interrupted): a dashed white outline and white hatching.

Hovering over a bar shows the task's uid, key (if it has one), function, which attempt it
was (``2 of 3``), its row, start, duration, status and error headline.

The page is hand-written SVG with a few lines of script, like the graph picture: no
library, nothing fetched. It fits the window's width, and the time axis zooms and pans
(the mouse wheel over the plot, dragging, or a from/to range; reset shows the whole run):
the script moves the bars, which the page holds as SVG rects, and redraws the ticks. The
hover texts are assembled by the script from one JSON table of the runs, which keeps a
20,000-run page at a few MB; past :data:`MAX_DRAWN_RUNS` runs the page draws every marked
run and the longest others, and says how many short ones it left out.

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
import html
import json
import re
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from ...shared.states import EndReason, TaskStatus
from .pictures import BACKGROUND, FOREGROUND, truncate
from .wording import error_headline

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

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
UNFINISHED_COLOUR: Final = "#ffffff"
#: The most runs one page draws: at about 150 bytes a run, a page of some 8 MB that a
#: browser still zooms smoothly. A bigger run keeps its marked runs and its longest.
MAX_DRAWN_RUNS: Final = 50_000
_ROW_HEIGHT: Final = 28  # pixels per slot row, while they fit in _COMFORTABLE
_MIN_LABELLED_ROW: Final = 12  # thinner rows than this get no labels: they would overlap
_COMFORTABLE: Final = 1470  # pixels of rows: with the titles and axis, about 1600
_MAX_FRAME: Final = 4800  # many rows make a tall page to scroll, up to this much
_WIDTH: Final = 1200  # the SVG's width as written; the script fits it to the window
_AXIS: Final = 26  # pixels above the rows for the time axis' labels
_RIGHT: Final = 36  # pixels right of the plot: room for half the last tick's label
_CHAR_WIDTH: Final = 7  # pixels per character of an 11 px row label, a little generous
_MIN_BAR: Final = 2  # pixels: a shorter run is drawn this wide, or it would vanish
_EMPTY_ROW: Final = "no task has run"


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
    #: The task's key, if it has one (cut to 80 characters).
    key: str | None = None
    #: The error's headline (the traceback's last line) of a run that ended badly.
    error: str | None = None
    #: How the task's last run ended (``timed_out``, ``cancelled``, ...), else ``None``.
    reason: str | None = None

    @property
    def failed(self) -> bool:
        """The run ended badly: the task failed, or this run was not its last."""
        return not self.last or self.status == TaskStatus.FAILED

    @property
    def marking(self) -> str:
        """How the page marks the bar: ``failed`` (the task's final failure), ``earlier``
        (an attempt followed by another), ``unfinished``, or ``""``."""
        if not self.last:
            return "earlier"
        if not self.finished:
            return "unfinished"
        return "failed" if self.status == TaskStatus.FAILED else ""

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
        mine = [
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
                key=_key_text(node),
                error=_error(node, earlier),
                reason=_reason(node) if earlier is None else None,
            )
            for (node, start, end, number, earlier), lane in zip(worker_runs, lanes, strict=True)
        ]
        # The workers are in order already: only each one's own bars need sorting.
        mine.sort(key=lambda bar: (bar.lane, bar.start))
        bars.extend(mine)
    return bars


def draw_timeline(graph: TaskGraph, path: str | Path) -> None:
    """Draw the graph's run as a timeline into one self-contained HTML file.

    One row per worker slot, one bar per task run, coloured by function and marked by
    how it ended (see the module's docstring); the time axis zooms and pans. Nothing is
    fetched: the page opens with no network. Works on a graph that has not run (an empty
    timeline), is running, or was interrupted.

    Args:
        graph: the graph to draw; it is only read.
        path: the file to write (overwritten).
    """
    Path(path).write_text(timeline_to_html(graph), encoding="utf-8")


def timeline_to_html(graph: TaskGraph, now: float | None = None) -> str:
    """The run's timeline as one self-contained HTML page of SVG (see :func:`draw_timeline`).

    Args:
        graph: the graph; it is only read.
        now: where a run that is still going ends (default: ``time.time()``).
    """
    bars = timeline_bars(graph, now)
    drawn, left_out = _drawn(bars)
    colours = function_colours(graph.task_functions)
    t0 = min((bar.start for bar in bars), default=0.0)
    span = max((bar.end for bar in bars), default=t0) - t0
    # The whole run and a little room after the last end; a run of one instant gets 1 ms.
    full = span * 1.02 or 1e-3
    rows = list(dict.fromkeys(bar.row for bar in bars)) or [_EMPTY_ROW]
    row_index = {row: i for i, row in enumerate(rows)}
    frame = _frame_height(len(rows))
    row_height = frame / len(rows)
    labelled = row_height >= _MIN_LABELLED_ROW
    left = _CHAR_WIDTH * max(len(row) for row in rows) + 14 if labelled else 14
    height = _AXIS + frame + 4
    scale = (_WIDTH - left - _RIGHT) / full  # pixels per second, as written
    functions = sorted({bar.function for bar in bars}, key=_natural_key)
    function_index = {name: i for i, name in enumerate(functions)}
    texts: dict[str, int] = {}  # statuses and error headlines, each written once

    def text(value: str) -> int:
        return texts.setdefault(value, len(texts))

    runs: list[list[Any]] = []
    rects: list[str] = []
    marks: list[str] = []
    for i, bar in enumerate(drawn):
        start, end = bar.start - t0, bar.end - t0
        status = bar.status
        if bar.reason and bar.reason not in _PLAIN_REASONS:
            status += f" ({bar.reason})"
        if not bar.finished:
            status += " (unfinished)"
        runs.append([
            round(start, 6), round(end, 6), bar.uid, function_index[bar.function],
            row_index[bar.row], bar.attempt, bar.attempts, text(status),
            -1 if bar.error is None else text(bar.error), bar.key, int(bar.finished),
        ])  # fmt: skip
        x = left + start * scale
        width = max((end - start) * scale, _MIN_BAR)
        if width > 4:  # a pixel's gap between back-to-back runs, as the script leaves
            width -= 1
        y = _AXIS + row_index[bar.row] * row_height + row_height * 0.1
        place = f'x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" height="{row_height * 0.8:.1f}"'
        marking = bar.marking
        rects.append(f'<rect class="b f{function_index[bar.function]}'
                     f'{" " + marking if marking else ""}" {place}/>')  # fmt: skip
        if marking in ("earlier", "unfinished"):  # hatching, over the bar
            marks.append(f'<rect class="m {marking}" data-i="{i}" {place}/>')
    stripes = "".join(
        f'<rect class="stripe" x="{left}" y="{_AXIS + i * row_height:.1f}" '
        f'width="{_WIDTH - left - _RIGHT}" height="{row_height:.1f}"/>'
        for i in range(1, len(rows), 2)
    )
    labels = (
        "".join(
            f'<text class="row" x="{left - 6}" y="{_AXIS + (i + 0.5) * row_height:.1f}">'
            f"{_escape(row)}</text>"
            for i, row in enumerate(rows)
        )
        if labelled
        else ""
    )
    data = {
        "span": full, "left": left, "right": _RIGHT, "minBar": _MIN_BAR, "axis": _AXIS,
        "functions": functions, "rows": rows, "texts": list(texts), "runs": runs,
    }  # fmt: skip
    notes = []
    if not labelled:
        notes.append(f"{len(rows)} worker slots: too many to label, hover a bar")
    if left_out:
        notes.append(left_out)
    style = "\n".join(
        [f".f{i} {{ fill: {colours.get(name, PALETTE[0])}; }}" for i, name in enumerate(functions)]
    )
    fills: dict[str, str] = {
        "STYLE": style, "BACKGROUND": BACKGROUND, "FOREGROUND": FOREGROUND,
        "FAILED": FAILED_COLOUR, "UNFINISHED": UNFINISHED_COLOUR,
        "TITLE": _escape(f"{graph.uid}: timeline"),
        "SUMMARY": _escape(_summary(graph, bars, span)),
        "NOTES": "".join(f'<p class="note">{_escape(n)}</p>' for n in notes),
        "LEGEND": _legend(drawn, functions, colours),
        "WIDTH": str(_WIDTH), "HEIGHT": f"{height:.0f}", "LEFT": str(left),
        "PLOT": str(_WIDTH - left - _RIGHT), "ROWS": stripes + labels,
        "BARS": "\n".join(rects), "MARKS": "\n".join(marks),
        # The JSON goes into a <script>: "<" escaped, so no "</script>" can end it.
        "DATA": json.dumps(data, separators=(",", ":")).replace("<", "\\u003c"),
    }  # fmt: skip
    # One pass: a name that holds "@DATA@" is text, never filled in itself.
    return _SLOT.sub(lambda slot: fills[slot[1]], _PAGE)


#: Where :data:`_PAGE` is filled in.
_SLOT: Final = re.compile(r"@([A-Z]+)@")
#: End reasons a status already says: ``success`` succeeded, ``failed`` raised.
_PLAIN_REASONS: Final = (EndReason.SUCCEEDED, EndReason.RAISED)


def _drawn(bars: list[TimelineBar]) -> tuple[list[TimelineBar], str]:
    """The bars the page draws, in their order, and what it says about those it left out.

    Up to :data:`MAX_DRAWN_RUNS`, all of them. Past that, every marked one (failed,
    earlier, unfinished: what a reader looks for) and then the longest of the others;
    what is left out is the shortest successful runs, which at the whole run's scale are
    under a pixel wide anyway.
    """
    if len(bars) <= MAX_DRAWN_RUNS:
        return bars, ""
    every_marked = [i for i, bar in enumerate(bars) if bar.marking]
    marked = every_marked[:MAX_DRAWN_RUNS]
    room = MAX_DRAWN_RUNS - len(marked)
    others = [i for i, bar in enumerate(bars) if not bar.marking]
    others.sort(key=lambda i: bars[i].end - bars[i].start, reverse=True)
    keep = {*marked, *others[:room]}
    drawn = [bar for i, bar in enumerate(bars) if i in keep]
    text = f"{len(bars) - len(drawn):,} of {len(bars):,} runs not drawn, to keep the page small: "
    if len(marked) < len(every_marked):
        return drawn, text + (
            f"every successful run, and the failed, earlier or unfinished ones after the "
            f"first {MAX_DRAWN_RUNS:,}"
        )
    longest = bars[others[room]]  # the longest run left out
    return drawn, text + (
        f"the shortest successful ones, each {_duration(longest.end - longest.start)} or "
        f"less; every failed, earlier and unfinished run is drawn"
    )


def _legend(bars: Sequence[TimelineBar], functions: list[str], colours: dict[str, str]) -> str:
    """The key: each function that ran (with its runs), then each marking a bar has."""
    runs = Counter(bar.function for bar in bars)
    items = [
        f'<span class="key"><i style="background:{colours.get(name, PALETTE[0])}"></i>'
        f"{_escape(name)} ({runs[name]} run{'s' * (runs[name] != 1)})</span>"
        for name in functions
    ]
    present = {bar.marking for bar in bars}
    for marking, words in _MARKINGS.items():
        if marking in present:
            sample = f'<rect class="b sample {marking}" x="2" y="2" width="30" height="12"/>'
            if marking != "failed":
                sample += f'<rect class="m {marking}" x="2" y="2" width="30" height="12"/>'
            items.append(
                f'<span class="key" data-marking="{marking}"><svg width="34" height="16">'
                f"{sample}</svg>{_escape(words)}</span>"
            )
    return "".join(items)


#: What each marking means, as the legend says it.
_MARKINGS: Final = {
    "failed": "failed: the task's final run (solid red outline)",
    "earlier": "earlier attempt, then retried or run again (red hatching)",
    "unfinished": "unfinished (dashed white outline, white hatching)",
}


def _escape(text: str) -> str:
    return html.escape(text, quote=True)


def _key_text(node: TaskNode) -> str | None:
    key = node.key
    return None if key is None else truncate(str(key))


def _reason(node: TaskNode) -> str | None:
    return None if node.end_reason is None else str(node.end_reason)


def _error(node: TaskNode, earlier: EarlierRun | None) -> str | None:
    """The headline of what went wrong in this run, if it went wrong."""
    if earlier is not None:
        return error_headline(earlier.error)
    if node.task_status == TaskStatus.SUCCESS:
        return None
    return error_headline(node.exception_trace)


def _frame_height(rows: int) -> int:
    """The plot frame's height in pixels for this many rows.

    28 pixels a row while that fits in about a screen and a half; then thinner rows down
    to 12 pixels (still labelled) on a taller page, up to 4800 pixels; past that
    (400 rows), the rows share those.
    """
    if rows * _ROW_HEIGHT <= _COMFORTABLE:
        return rows * _ROW_HEIGHT
    return max(_COMFORTABLE, min(rows * _MIN_LABELLED_ROW, _MAX_FRAME))


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
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1000:.1f} ms"
    return f"{seconds:.3f} s"


def _natural_key(name: str) -> tuple[str | int, ...]:
    """Sort ``worker-10`` after ``worker-9``: digit runs compare as numbers."""
    # re.split with a group alternates text and digits, so positions never mix types.
    return tuple(int(part) if i % 2 else part for i, part in enumerate(re.split(r"(\d+)", name)))


#: The page. ``@NAME@`` marks what :func:`timeline_to_html` fills in (not ``str.format``:
#: the style and the script are full of braces; and no other "@" may appear here). The
#: script fits the SVG to the window, moves the bars when the time axis is zoomed or
#: panned, draws the ticks, and shows a bar's hover text, assembled from the JSON table
#: of runs.
_PAGE: Final = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>@TITLE@</title>
<style>
body { background: @BACKGROUND@; color: @FOREGROUND@; font: 13px sans-serif; margin: 12px; }
h1 { font-size: 15px; margin: 0 0 4px; }
p { margin: 2px 0 6px; }
p.note { color: #ffcc66; }
.key { display: inline-block; margin: 2px 14px 2px 0; white-space: nowrap; }
.key i { display: inline-block; width: 14px; height: 12px; margin-right: 4px;
  vertical-align: -2px; border: 1px solid black; }
.key svg { vertical-align: middle; margin-right: 4px; }
#controls { margin: 6px 0; }
#controls input { width: 8em; background: #333; color: @FOREGROUND@; border: 1px solid #666; }
#controls button { background: #333; color: @FOREGROUND@; border: 1px solid #666; }
#controls .hint { color: #999; margin-left: 10px; }
#plot { width: 100%; overflow: hidden; cursor: grab; user-select: none; }
#plot.dragging { cursor: grabbing; }
#plot svg { display: block; width: 100%; height: auto; }
svg text { font: 11px sans-serif; fill: @FOREGROUND@; }
text.row { text-anchor: end; dominant-baseline: middle; }
#axis text { text-anchor: middle; }
#axis line { stroke: #444; }
#axis line.base { stroke: @FOREGROUND@; }
.stripe { fill: #2b2b2b; }
.b.failed { stroke: @FAILED@; stroke-width: 3; }
.b.unfinished { stroke: @UNFINISHED@; stroke-width: 2; stroke-dasharray: 4 2; }
.b.sample { fill: #777; }
.m { pointer-events: none; }
.m.earlier { fill: url(#hatch-earlier); }
.m.unfinished { fill: url(#hatch-unfinished); }
#bars rect:hover { filter: brightness(1.3); }
@STYLE@
#tip { position: fixed; display: none; background: #fffff0; color: black;
  border: 1px solid #888; padding: 4px 6px; white-space: pre; pointer-events: none;
  font: 12px monospace; z-index: 1; }
</style></head>
<body>
<h1>@TITLE@</h1>
<p id="summary">@SUMMARY@</p>
@NOTES@<div class="legend">@LEGEND@</div>
<div id="controls">seconds since the first task started: from
<input id="from" type="number" step="any"> to <input id="to" type="number" step="any">
<button id="zoom-in" type="button">zoom in</button>
<button id="zoom-out" type="button">zoom out</button>
<button id="reset" type="button">whole run</button>
<span class="hint">mouse wheel over the plot: zoom the time axis (with Ctrl on a page
taller than the window); drag: pan</span></div>
<div id="plot">
<svg xmlns="http://www.w3.org/2000/svg" id="timeline" width="@WIDTH@" height="@HEIGHT@"
 viewBox="0 0 @WIDTH@ @HEIGHT@">
<defs>
<pattern id="hatch-earlier" patternUnits="userSpaceOnUse" width="7" height="7"
 patternTransform="rotate(45)"><rect width="2.5" height="7" fill="@FAILED@"/></pattern>
<pattern id="hatch-unfinished" patternUnits="userSpaceOnUse" width="7" height="7"
 patternTransform="rotate(-45)"><rect width="2" height="7" fill="@UNFINISHED@"/></pattern>
<clipPath id="clip"><rect id="clip-rect" x="@LEFT@" y="0" width="@PLOT@"
 height="@HEIGHT@"/></clipPath>
</defs>
<g id="rows">@ROWS@</g>
<g id="axis"></g>
<g clip-path="url(#clip)">
<g id="bars">
@BARS@
</g>
<g id="marks">
@MARKS@
</g>
</g>
</svg></div>
<div id="tip"></div>
<script type="application/json" id="data">@DATA@</script>
<script>
"use strict";
(() => {
  const data = JSON.parse(document.getElementById("data").textContent);
  const NS = "http://www.w3.org/2000/svg";
  const svg = document.getElementById("timeline");
  const plot = document.getElementById("plot");
  const axis = document.getElementById("axis");
  const tip = document.getElementById("tip");
  const from = document.getElementById("from");
  const to = document.getElementById("to");
  const bars = Array.from(document.getElementById("bars").children);
  const marks = Array.from(document.getElementById("marks").children);
  const widen = Array.from(document.querySelectorAll("#clip-rect, #rows rect"));
  const index = new Map(bars.map((bar, i) => [bar, i]));
  const height = +svg.getAttribute("height");
  const full = [0, data.span];
  let view = full.slice(), width = 0, plotWidth = 1, pending = false, drag = null;

  const x = (t) => data.left + (t - view[0]) * plotWidth / (view[1] - view[0]);
  const time = (clientX) => view[0] + (clientX - svg.getBoundingClientRect().left
    - data.left) * (view[1] - view[0]) / plotWidth;
  function place(rect, run) {
    // Clamped a little outside the plot: a deep zoom must not make huge coordinates.
    const a = Math.max(x(run[0]), data.left - 10);
    const b = Math.min(Math.max(x(run[1]), x(run[0]) + data.minBar), width + 10);
    rect.setAttribute("x", a.toFixed(1));
    // A pixel's gap between back-to-back runs; a bar a few pixels wide keeps them all.
    const w = b - a > 4 ? b - a - 1 : Math.max(b - a, 0);
    rect.setAttribute("width", w.toFixed(1));
  }
  function step(span) {
    // About one tick per 110 pixels, at 1, 2 or 5 times a power of ten (of seconds, or
    // of days past half a day), or whole minutes and hours in between.
    const raw = span / Math.max(2, plotWidth / 110);
    const nice = (r) => {
      const power = 10 ** Math.floor(Math.log10(r));
      return [1, 2, 5, 10].map((m) => m * power).find((s) => s >= r * 0.999);
    };
    if (raw > 43200) return 86400 * nice(raw / 86400);
    if (raw > 30) {
      return [60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200]
        .find((s) => s >= raw);
    }
    return nice(raw);
  }
  function label(t, size) {
    if (size >= 86400) return `${+(t / 86400).toFixed(1)} d`;
    if (size >= 60) {
      const h = Math.floor(t / 3600), m = Math.floor(t / 60) % 60;
      const s = String(Math.round(t % 60)).padStart(2, "0");
      return h ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
    }
    const [value, unit] = size < 0.1 ? [t * 1000, size * 1000] : [t, size];
    const digits = Math.max(0, Math.ceil(-Math.log10(unit) - 1e-9));
    return value.toFixed(digits) + (size < 0.1 ? " ms" : " s");
  }
  function ticks() {
    const size = step(view[1] - view[0]);
    const parts = [];
    const line = (x1, y1, x2, y2, cls) => `<line class="${cls}" x1="${x1}" y1="${y1}" `
      + `x2="${x2}" y2="${y2}"/>`;
    parts.push(line(data.left, data.axis - 2, data.left + plotWidth, data.axis - 2, "base"));
    for (let k = Math.ceil(view[0] / size); k * size <= view[1]; k++) {
      const at = x(k * size).toFixed(1);
      parts.push(line(at, data.axis - 6, at, height, "grid"));
      parts.push(`<text x="${at}" y="${data.axis - 10}">${label(k * size, size)}</text>`);
    }
    axis.innerHTML = parts.join("");
  }
  // Which bars were in view when last drawn: a zoomed-in redraw moves only those and
  // the ones in view now (setting attributes is what costs, at 20,000 bars).
  const placed = [new Uint8Array(bars.length).fill(1), new Uint8Array(marks.length).fill(1)];
  const marked = marks.map((mark) => data.runs[+mark.dataset.i]);
  function draw() {
    pending = false;
    [[bars, data.runs, placed[0]], [marks, marked, placed[1]]].forEach(([rects, runs, was]) => {
      for (let i = 0; i < rects.length; i++) {
        const inView = runs[i][1] >= view[0] && runs[i][0] <= view[1] ? 1 : 0;
        if (inView || was[i]) place(rects[i], runs[i]);
        was[i] = inView;
      }
    });
    ticks();
    const digits = Math.max(3, Math.ceil(-Math.log10(view[1] - view[0])) + 3);
    from.value = view[0].toFixed(digits);
    to.value = view[1].toFixed(digits);
  }
  function show(a, b) {
    // Within the whole run, and never narrower than a microsecond.
    const span = Math.min(Math.max(b - a, 1e-6), full[1] - full[0]);
    a = Math.min(Math.max(a, full[0]), full[1] - span);
    view = [a, a + span];
    if (!pending) { pending = true; requestAnimationFrame(draw); }
  }
  function zoom(factor, at) {
    const span = (view[1] - view[0]) * factor;
    const a = at - (at - view[0]) * factor;
    show(a, a + span);
  }
  function fit() {
    width = Math.max(plot.clientWidth, data.left + data.right + 100);
    plotWidth = width - data.left - data.right;
    svg.setAttribute("width", width);
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    widen.forEach((rect) => rect.setAttribute("width", plotWidth));
    placed.forEach((was) => was.fill(1));  // every bar moves with the plot's width
    draw();
  }
  plot.addEventListener("wheel", (e) => {
    // On a page taller than the window the wheel scrolls it, unless Ctrl is held.
    const tall = document.documentElement.scrollHeight > window.innerHeight + 1;
    if (tall && !e.ctrlKey) return;
    e.preventDefault();
    const span = view[1] - view[0];
    if (Math.abs(e.deltaX) > Math.abs(e.deltaY)) {  // a sideways swipe pans
      show(view[0] + e.deltaX * span / plotWidth, view[1] + e.deltaX * span / plotWidth);
    } else {
      zoom(Math.exp(e.deltaY * 0.002), Math.min(Math.max(time(e.clientX), view[0]), view[1]));
    }
  }, {passive: false});
  plot.addEventListener("mousedown", (e) => {
    drag = {x: e.clientX, view: view.slice()};
    plot.classList.add("dragging");
  });
  window.addEventListener("mouseup", () => { drag = null; plot.classList.remove("dragging"); });
  function duration(s) {
    return s < 1 ? (s * 1000).toFixed(1) + " ms" : s.toFixed(3) + " s";
  }
  function tipText(run) {
    const [start, end, uid, fn, row, attempt, attempts, status, error, key, done] = run;
    const lines = [`task: ${uid}`];
    if (key !== null) lines.push(`key: ${key}`);
    lines.push(`function: ${data.functions[fn]}`, `attempt: ${attempt} of ${attempts}`,
               `worker: ${data.rows[row]}`, `start: ${start.toFixed(3)} s`,
               `duration: ${duration(end - start)}${done ? "" : " so far"}`,
               `status: ${data.texts[status]}`);
    if (error >= 0) lines.push(`error: ${data.texts[error]}`);
    return lines.join("\\n");
  }
  document.addEventListener("mousemove", (e) => {
    if (drag) {
      const shift = (drag.x - e.clientX) * (drag.view[1] - drag.view[0]) / plotWidth;
      show(drag.view[0] + shift, drag.view[1] + shift);
    }
    const i = index.get(e.target);
    if (i === undefined || drag) { tip.style.display = "none"; return; }
    tip.textContent = tipText(data.runs[i]);
    tip.style.display = "block";
    const left = Math.min(e.clientX + 14, window.innerWidth - tip.offsetWidth - 4);
    const top = e.clientY + 14 + tip.offsetHeight > window.innerHeight
      ? e.clientY - tip.offsetHeight - 8 : e.clientY + 14;
    tip.style.left = Math.max(0, left) + "px";
    tip.style.top = Math.max(0, top) + "px";
  });
  const typed = () => { if (+to.value > +from.value) show(+from.value, +to.value); };
  from.addEventListener("change", typed);
  to.addEventListener("change", typed);
  const centre = () => (view[0] + view[1]) / 2;
  document.getElementById("zoom-in").addEventListener("click", () => zoom(0.5, centre()));
  document.getElementById("zoom-out").addEventListener("click", () => zoom(2, centre()));
  document.getElementById("reset").addEventListener("click", () => show(full[0], full[1]));
  window.addEventListener("resize", fit);
  svg.style.width = "auto";  // the script sizes it from now on
  fit();
})();
</script>
</body></html>
"""
