"""Pictures of a :class:`~.graph.TaskGraph`: Graphviz DOT text, or one self-contained HTML page.

Both draw the graph the same way: the graph itself as a yellow ``graph`` circle, tasks as
boxes, conditions as small dots, laid out left to right as work flows. Each task box is
labelled so that tasks can be told apart: its key when it has one, else its function,
and below that a short summary of its arguments (or of its uid); one that ran more than
once says how many times above its box (``2 runs``). Colours:

- a task's fill says its status, one colour per status (:data:`STATUS_COLOURS`; a task
  cancelled is told apart from one that failed, by its end reason);
- a condition's fill says whether it holds (:data:`CONDITION_COLOURS`);
- an edge says what it carries (:data:`EDGE_STYLES`): its *style* is its kind (dotted from
  the graph to each task that waits on nothing, solid from a task to each condition that
  counts it, dashed from a condition to each task it releases), its *colour* the outcome
  it carries (green: the task succeeded / the condition holds; red: the task did not
  succeed / the condition failed; grey: not decided yet). So a task that failed on a
  ``COMPLETE__ALL`` path shows a red edge into a green condition: the failure is real,
  and the path went on.

The HTML page is hand-written SVG with a legend and a few lines of script for the hover
tooltips: no library, nothing fetched, a few kilobytes for a small graph. It fits the
window's width (nothing is cut off; a wide graph is drawn smaller, and a checkbox shows
it at full size to scroll). The layout is layered (Sugiyama style): each node's column is
its longest path from the graph, an edge that spans several columns passes through a
placeholder in each, and the rows of each column are ordered by their neighbours' mean
row, so that edges run between the boxes, not through them, and end at their target.

Neither format needs anything beyond the standard library.
"""

from __future__ import annotations

import heapq
import html
import itertools
import reprlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

from ...shared.states import ConditionStatus, EndReason, TaskStatus
from ..core.results import result_type_name, result_whereabouts
from .pictures import BACKGROUND, FOREGROUND, UNKNOWN_COLOUR, truncate
from .wording import task_headline

if TYPE_CHECKING:
    from ..core.conditions import GenericSchedulingCondition
    from ..core.nodes import TaskNode
    from ..task_graph import TaskGraph

#: A task's look by what it shows: ``(fill, text colour, legend wording)``. Keys are the
#: statuses, plus ``cancelled`` (status ``failed``, end reason ``cancelled``).
STATUS_COLOURS: Final[dict[str, tuple[str, str, str]]] = {
    TaskStatus.WAITING_FOR_PREDECESSORS: ("#9a9a9a", "black", "waiting for predecessors"),
    TaskStatus.CREATED: ("#c6dbef", "black", "created (not started yet)"),
    TaskStatus.READY_FOR_EXECUTION: ("#4fa3e0", "black", "ready (queued, or waiting to retry)"),
    TaskStatus.IN_PROGRESS: ("#ff9f1c", "black", "running"),
    TaskStatus.SUCCESS: ("#2ca02c", "white", "succeeded"),
    TaskStatus.FAILED: ("#e41a1c", "white", "failed"),
    "cancelled": ("#8c564b", "white", "cancelled"),
    TaskStatus.PRECONDITION_FAILED: ("#9467bd", "white", "skipped (precondition failed)"),
}
#: Fill colour of a task by status (a cancelled task is drawn in ``STATUS_COLOURS["cancelled"]``).
TASK_COLOURS: Final[dict[TaskStatus, str]] = {s: STATUS_COLOURS[s][0] for s in TaskStatus}
CANCELLED_COLOUR: Final = STATUS_COLOURS["cancelled"][0]

_WAITING, _GOOD, _BAD = "#9a9a9a", "#2ca02c", "#e41a1c"
#: Fill colour of a condition by status.
CONDITION_COLOURS: Final[dict[ConditionStatus, str]] = {
    ConditionStatus.WAITING_ON_TASKS: _WAITING, ConditionStatus.SATISFIED: _GOOD,
    ConditionStatus.FAILED: _BAD,
}  # fmt: skip
#: Each kind of edge: ``(SVG dash pattern or "", DOT style, what it means)``.
EDGE_STYLES: Final[dict[str, tuple[str, str, str]]] = {
    "scheduled": ("2 4", "dotted", "graph → task: the task waits on nothing"),
    "waited_on_by": ("", "solid", "task → condition: the task counts toward it"),
    "waits_on": ("7 4", "dashed", "condition → task: the task waits on it"),
}
#: An edge's colour by the outcome it carries.
EDGE_COLOURS: Final[dict[str, str]] = {"good": _GOOD, "bad": _BAD, "open": "#8a8a8a"}
_EDGE_MEANINGS: Final = {
    "good": "succeeded / holds",
    "bad": "did not succeed / failed",
    "open": "not decided yet",
}
ROOT_COLOUR: Final = "#ffd700"

_DOT_SUFFIXES: Final = frozenset({".dot", ".gv"})
#: Above this many nodes boxes lose their text: it could not be read anyway, and the page
#: stays light; hovering still tells every node apart.
_LABEL_LIMIT: Final = 300
#: Above this many placeholders (edges spanning columns) long edges are drawn straight:
#: routing them would make the page heavy, and such a graph is read by hovering anyway.
_DUMMY_LIMIT: Final = 20_000
#: Characters of each line of a task's label.
_LABEL_CHARS: Final = 24
_CHAR_WIDTH: Final = 7.0  # pixels per character of 12-px sans-serif, a little generous
_BOX_HEIGHT: Final = 34.0
_SMALL_BOX: Final = 12.0  # unlabelled boxes, in a big graph
_ROW_GAP: Final = 14.0
_COLUMN_GAP: Final = 70.0
_MARGIN: Final = 24.0
_ROOT_RADIUS: Final = 22.0
_CONDITION_RADIUS: Final = 6.0

_PROGRESS: Final = "successes/completions of predecessors"
# reprlib, not repr(): its work is bounded even for a huge result (it sorts dict keys).
_short_repr = reprlib.Repr()
_short_repr.maxstring = _short_repr.maxother = 80
# Arguments in a label: a few characters of each.
_argument_repr = reprlib.Repr()
_argument_repr.maxstring = _argument_repr.maxother = 40
_argument_repr.maxlist = _argument_repr.maxtuple = _argument_repr.maxdict = 2
_argument_repr.maxlevel = 2


# -- what each part says --------------------------------------------------------------


def task_label(node: TaskNode) -> tuple[str, str]:
    """The two lines of a task's box, each at most 24 characters.

    With a key (``TaskNode.key``): the key, then the function. Without: the function,
    then a summary of its arguments (``'trio.html', n=3``), or its uid's start if it has
    none, so that two tasks of one function can be told apart.
    """
    key = node.key
    if key is not None:
        return truncate(str(key), _LABEL_CHARS), truncate(node.task_handle, _LABEL_CHARS)
    summary = argument_summary(node) or node.uid[:11]
    return truncate(node.task_handle, _LABEL_CHARS), truncate(summary, _LABEL_CHARS)


def argument_summary(node: TaskNode) -> str:
    """The task's arguments as a call would show them, each shortened: ``'a.txt', n=3``."""
    arguments = node.task_arguments
    if not arguments:
        return ""
    try:
        args, kwargs = arguments
        parts = [_argument_repr.repr(arg) for arg in args or ()]
        parts += [f"{name}={_argument_repr.repr(value)}" for name, value in (kwargs or {}).items()]
    except Exception:  # a broken __repr__ (or an odd shape) must not break the picture
        return "…"
    return ", ".join(parts)


def task_colour(node: TaskNode) -> str:
    """A task's fill: its status's colour, or the cancelled one."""
    if node.end_reason is EndReason.CANCELLED:
        return CANCELLED_COLOUR
    return TASK_COLOURS.get(node.task_status, UNKNOWN_COLOUR)


def _task_look(node: TaskNode) -> tuple[str, str]:
    """``(fill, text colour)``."""
    key = "cancelled" if node.end_reason is EndReason.CANCELLED else str(node.task_status)
    fill, text, _ = STATUS_COLOURS.get(key, (UNKNOWN_COLOUR, "black", ""))
    return fill, text


def _task_outcome(node: TaskNode) -> str:
    """``good`` (succeeded), ``bad`` (ended otherwise) or ``open``: what its edges carry."""
    if node.task_status is TaskStatus.SUCCESS:
        return "good"
    if node.task_status in (TaskStatus.FAILED, TaskStatus.PRECONDITION_FAILED):
        return "bad"
    return "open"


_CONDITION_OUTCOME: Final = {
    ConditionStatus.SATISFIED: "good", ConditionStatus.FAILED: "bad",
    ConditionStatus.WAITING_ON_TASKS: "open",
}  # fmt: skip


# -- DOT ------------------------------------------------------------------------------


def graph_to_dot(graph: TaskGraph) -> str:
    """Render the graph as Graphviz DOT text, coloured by status.

    Args:
        graph: the graph to draw; it is only read.

    Returns:
        A ``digraph`` laid out left to right: the graph as a yellow ``graph`` circle, tasks
        as boxes with their two label lines (see :func:`task_label`), conditions as dots
        labelled ``C-<mode>``; colours and edge styles as in the HTML page. Nodes come in
        creation order, then edges, so the same graph gives the same text.
    """
    q = _quote
    lines = [
        f"digraph {q(graph.uid)} {{",
        f'  rankdir=LR; labelloc=t; fontname="Helvetica"; label={q(_title(graph))};',
        # Room between ranks and rows for the conditions' labels, which sit beside them.
        "  ranksep=1.2; nodesep=0.45;",
        '  node [fontname="Helvetica", fontsize=11]; edge [arrowsize=0.6];',
        f"  {q(graph.uid)} [label={q('graph')}, shape=circle, style=filled, "
        f"fillcolor={q(ROOT_COLOUR)}, tooltip={q(graph.uid)}];",
    ]
    for node in graph.nodes.values():
        fill, text = _task_look(node)
        tooltip = f"{node.uid}\n{node.task_status}"
        lines.append(
            f"  {q(node.uid)} [label={q(chr(10).join(task_label(node)))}, shape=box, "
            f"style=filled, fillcolor={q(fill)}, fontcolor={q(text)}, tooltip={q(tooltip)}];"
        )
    for condition in graph.conditions.values():
        colour = CONDITION_COLOURS.get(condition.condition_status, UNKNOWN_COLOUR)
        tooltip = f"{condition.uid}\n{condition.condition_status}"
        # A point cannot hold a label, so the mode goes beside it.
        lines.append(
            f"  {q(condition.uid)} [xlabel={q(_condition_label(condition))}, shape=point, "
            f"width=0.15, color={q(colour)}, fillcolor={q(colour)}, tooltip={q(tooltip)}];"
        )
    for edge in _edges(graph):
        colour = EDGE_COLOURS[edge.outcome]
        style = EDGE_STYLES[edge.kind][1]
        lines.append(
            f"  {q(edge.source)} -> {q(edge.target)} "
            f"[color={q(colour)}, style={style}, tooltip={q(edge.kind)}];"
        )
    lines.append("}")
    return "\n".join(lines) + "\n"


def draw_graph(graph: TaskGraph, path: str | Path) -> None:
    """Draw the graph into a file: DOT for ``.dot``/``.gv``, else a self-contained HTML page.

    The HTML page is SVG with a legend (see the module's docstring); it opens with no
    network. Hovering shows a task's uid, key, function, arguments, status and result (or
    the last line of its traceback), or a condition's uid, mode, status and how many
    predecessors succeeded/ended.

    Args:
        graph: the graph to draw; it is only read.
        path: the file to write (overwritten).
    """
    path = Path(path)
    dot = path.suffix.lower() in _DOT_SUFFIXES
    path.write_text(graph_to_dot(graph) if dot else graph_to_html(graph), encoding="utf-8")


# -- the edges and the layout -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Edge:
    """One edge of the picture."""

    source: str
    target: str
    #: ``scheduled``, ``waited_on_by`` or ``waits_on`` (the seed's edge labels).
    kind: str
    #: What it carries: ``good``, ``bad`` or ``open``.
    outcome: str


def _edges(graph: TaskGraph) -> list[Edge]:
    """Every edge, in creation order."""
    nodes = graph.nodes.items()
    edges = [
        Edge(graph.uid, uid, "scheduled", "open" if node.attempts == 0 else "good")
        for uid, node in nodes
        if not node.waits_on
    ]
    for uid, node in nodes:
        outcome = _task_outcome(node)
        edges.extend(Edge(uid, c.uid, "waited_on_by", outcome) for c in node.waited_on_by)
    for uid, condition in graph.conditions.items():
        outcome = _CONDITION_OUTCOME.get(condition.condition_status, "open")
        edges.extend(Edge(uid, node.uid, "waits_on", outcome) for node in condition.successors)
    return edges


@dataclass(slots=True)
class _Item:
    """A node of the layout: a task, a condition, the root, or a placeholder an edge
    passes through. ``x`` is its column's left side, ``y`` its centre."""

    width: float
    height: float
    #: Where edges meet it, from its centre down (a condition's dot is above its label).
    dy: float = 0.0
    layer: int = 0
    order: float = 0.0
    x: float = 0.0
    y: float = 0.0
    #: Its column's left and right sides: an edge runs straight from the item to them,
    #: so that it never cuts through a wider box of the same column.
    column_left: float = 0.0
    column_right: float = 0.0


def _layers(names: list[str], edges: list[tuple[str, str]]) -> dict[str, int]:
    """Each node's column: its longest path from a node nothing points to.

    Kahn's algorithm; when only cycles are left (``prepend_to_successor`` can make one),
    the earliest-created node left is taken as if its unplaced predecessors were not
    there, so every node gets a column and edges of a cycle point backwards.
    """
    successors: dict[str, list[str]] = {n: [] for n in names}
    waiting = dict.fromkeys(names, 0)
    for source, target in edges:
        successors[source].append(target)
        waiting[target] += 1
    layer = dict.fromkeys(names, 0)
    order = {n: i for i, n in enumerate(names)}
    ready = [(order[n], n) for n in names if waiting[n] == 0]
    heapq.heapify(ready)
    placed: set[str] = set()
    rest = iter(names)  # for breaking cycles, in creation order
    while len(placed) < len(names):
        if not ready:
            name = next(n for n in rest if n not in placed)
            waiting[name] = 0
            ready.append((order[name], name))
        _, name = heapq.heappop(ready)
        if name in placed:
            continue
        placed.add(name)
        for successor in successors[name]:
            if successor in placed:
                continue  # an edge of a cycle
            layer[successor] = max(layer[successor], layer[name] + 1)
            waiting[successor] -= 1
            if waiting[successor] == 0:
                heapq.heappush(ready, (order[successor], successor))
    return layer


def _layout(
    sizes: dict[str, tuple[float, float, float]], edges: list[tuple[str, str]]
) -> tuple[dict[str, _Item], list[list[tuple[float, float]]], float, float]:
    """Place every node (``sizes``: width, height, and where edges meet it from its
    centre down); route every edge.

    Returns:
        The items by name; each edge's points (source, the placeholders it passes, target;
        in the order of ``edges``); the drawing's width and height.
    """
    names = list(sizes)
    layer_of = _layers(names, edges)
    items = {n: _Item(*sizes[n], layer=layer_of[n]) for n in names}
    # Placeholders for edges that span columns, so they are ordered (and given room) like
    # nodes and the edge passes between boxes, never through one.
    span = sum(max(0, layer_of[t] - layer_of[s] - 1) for s, t in edges)
    routed = span <= _DUMMY_LIMIT
    paths: list[list[str]] = []
    for i, (source, target) in enumerate(edges):
        path = [source]
        if routed:
            for layer in range(layer_of[source] + 1, layer_of[target]):
                dummy = f"\0{i}:{layer}"
                items[dummy] = _Item(0.0, 8.0, layer=layer)
                path.append(dummy)
        path.append(target)
        paths.append(path)
    last = max((item.layer for item in items.values()), default=0)
    columns: list[list[str]] = [[] for _ in range(last + 1)]
    for name, item in items.items():  # creation order, so ties below stay stable
        columns[item.layer].append(name)
    before: dict[str, list[str]] = {n: [] for n in items}
    after: dict[str, list[str]] = {n: [] for n in items}
    for path in paths:
        for a, b in itertools.pairwise(path):
            if items[a].layer < items[b].layer:
                before[b].append(a)
                after[a].append(b)
    for column in columns:
        for j, name in enumerate(column):
            items[name].order = j - (len(column) - 1) / 2

    def sweep(order: list[list[str]], neighbours: dict[str, list[str]]) -> None:
        # Each node to its neighbours' mean row: far fewer crossing edges. O(n log n).
        for column in order:

            def key(name: str) -> float:
                seen = neighbours[name]
                if not seen:
                    return items[name].order
                return sum(items[n].order for n in seen) / len(seen)

            column.sort(key=key)
            for j, name in enumerate(column):
                items[name].order = j - (len(column) - 1) / 2

    sweep(columns, before)
    sweep(columns[::-1], after)
    sweep(columns, before)

    # Columns as wide as their widest item; rows stacked, each column centred.
    heights = [sum(items[n].height for n in c) + _ROW_GAP * max(0, len(c) - 1) for c in columns]
    tallest = max(heights, default=0.0)
    x = _MARGIN
    for column, height in zip(columns, heights, strict=True):
        width = max((items[n].width for n in column), default=0.0)
        y = _MARGIN + (tallest - height) / 2
        for name in column:
            item = items[name]
            item.x = x + (width - item.width) / 2
            item.y = y + item.height / 2
            item.column_left, item.column_right = x, x + width
            y += item.height + _ROW_GAP
        x += width + _COLUMN_GAP
    return (
        items,
        [_route(items, path) for path in paths],
        x - _COLUMN_GAP + _MARGIN,
        tallest + 2 * _MARGIN,
    )


def _route(items: dict[str, _Item], path: list[str]) -> list[tuple[float, float]]:
    """The points an edge passes: out of the source's right side to its column's edge,
    across each placeholder's column, then from the target's column edge to its left side.
    Between those points it curves through the gap between two columns, where no box is."""
    source, target = items[path[0]], items[path[-1]]
    y = source.y + source.dy
    points = [(source.x + source.width, y)]
    if source.column_right > points[-1][0]:
        points.append((source.column_right, y))
    for name in path[1:-1]:
        placeholder = items[name]
        points += [
            (placeholder.column_left, placeholder.y),
            (placeholder.column_right, placeholder.y),
        ]
    y = target.y + target.dy
    if target.column_left < target.x:
        points.append((target.column_left, y))
    points.append((target.x, y))
    return points


# -- the HTML page ----------------------------------------------------------------------


def graph_to_html(graph: TaskGraph) -> str:
    """The graph as one self-contained HTML page of SVG (see :func:`draw_graph`)."""
    edges = _edges(graph)
    labelled = len(graph.nodes) + len(graph.conditions) <= _LABEL_LIMIT
    labels = {uid: task_label(node) for uid, node in graph.nodes.items()} if labelled else {}
    sizes = {graph.uid: (2 * _ROOT_RADIUS, 2 * _ROOT_RADIUS, 0.0)}
    for uid in graph.nodes:
        if labelled:
            width = _CHAR_WIDTH * max(len(line) for line in labels[uid]) + 16
            sizes[uid] = (width, _BOX_HEIGHT, 0.0)
        else:
            sizes[uid] = (_SMALL_BOX * 2, _SMALL_BOX, 0.0)
    # As tall as a box, the dot (where edges meet it) in the middle and the mode under
    # it: rows of tasks and conditions line up, so a chain runs straight.
    for uid in graph.conditions:
        sizes[uid] = (2 * _CONDITION_RADIUS, _BOX_HEIGHT if labelled else _SMALL_BOX, 0.0)
    items, routes, width, height = _layout(sizes, [(e.source, e.target) for e in edges])

    svg: list[str] = []
    add = svg.append
    for edge, route in zip(edges, routes, strict=True):
        # Dashes and arrowheads come from the classes (the page's style): a big graph's
        # page is mostly edges. Their ends are named only while the nodes are labelled.
        ends = f'data-from="{edge.source}" data-to="{edge.target}" ' if labelled else ""
        add(
            f'<path class="edge {edge.kind} {edge.outcome}" {ends}d="{_curve(route)}" '
            f'stroke="{EDGE_COLOURS[edge.outcome]}"/>'
        )
    esc = _escape
    root = items[graph.uid]
    add(
        f'<g class="root" id="{graph.uid}" data-tip="{esc("graph: " + graph.uid)}">'
        f'<circle cx="{root.x + _ROOT_RADIUS:.1f}" cy="{root.y:.1f}" r="{_ROOT_RADIUS}" '
        f'fill="{ROOT_COLOUR}" stroke="black"/>'
        f'<text x="{root.x + _ROOT_RADIUS:.1f}" y="{root.y + 4:.1f}" fill="black" '
        f'class="small">graph</text></g>'
    )
    for uid, node in graph.nodes.items():
        item = items[uid]
        fill, text = _task_look(node)
        add(
            f'<g class="task" id="{uid}" data-status="{node.task_status}" '
            f'data-tip="{esc(_task_tip(node))}"><rect x="{item.x:.1f}" '
            f'y="{item.y - item.height / 2:.1f}" width="{item.width:.1f}" '
            f'height="{item.height:.1f}" rx="4" fill="{fill}" stroke="black"/>'
        )
        if labelled:
            first, second = labels[uid]
            cx = item.x + item.width / 2
            add(
                f'<text x="{cx:.1f}" y="{item.y - 3:.1f}" fill="{text}" '
                f'class="bold">{esc(first)}</text>'
                f'<text x="{cx:.1f}" y="{item.y + 11:.1f}" fill="{text}">{esc(second)}</text>'
            )
            if node.attempts > 1:  # retried, or run again after a loss: say so above it
                add(
                    f'<text class="runs" x="{item.x + item.width - 2:.1f}" '
                    f'y="{item.y - item.height / 2 - 2:.1f}" fill="{FOREGROUND}">'
                    f"{node.attempts} runs</text>"
                )
        add("</g>")
    for uid, condition in graph.conditions.items():
        item = items[uid]
        colour = CONDITION_COLOURS.get(condition.condition_status, UNKNOWN_COLOUR)
        cx, cy = item.x + _CONDITION_RADIUS, item.y + item.dy
        add(
            f'<g class="condition" id="{uid}" data-status="{condition.condition_status}" '
            f'data-tip="{esc(_condition_tip(condition))}"><circle cx="{cx:.1f}" '
            f'cy="{cy:.1f}" r="{_CONDITION_RADIUS}" fill="{colour}" stroke="black"/>'
        )
        if labelled:
            add(
                f'<text x="{cx:.1f}" y="{cy + 19:.1f}" fill="{FOREGROUND}" '
                f'class="small">{esc(_condition_label(condition))}</text>'
            )
        add("</g>")
    markers = "".join(
        f'<marker id="head-{name}" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        f'markerHeight="7" orient="auto-start-reverse"><path d="M0,0L10,5L0,10z" '
        f'fill="{colour}"/></marker>'
        for name, colour in EDGE_COLOURS.items()
    )
    edge_styles = "\n".join(
        [f"svg .edge.{kind} {{ stroke-dasharray: {dash}; }}"
         for kind, (dash, _, _) in EDGE_STYLES.items() if dash]
        + [f"svg .edge.{name} {{ marker-end: url(#head-{name}); }}" for name in EDGE_COLOURS]
    )  # fmt: skip
    return _PAGE.format(
        edge_styles=edge_styles,
        title=esc(f"{graph.uid}: graph"),
        heading=esc(_title(graph)),
        legend=_legend(graph),
        width=f"{width:.0f}",
        height=f"{height:.0f}",
        markers=markers,
        body="\n".join(svg),
        background=BACKGROUND,
        foreground=FOREGROUND,
    )


def _curve(route: list[tuple[float, float]]) -> str:
    """An SVG path through the points: a curve leaving and entering each horizontally."""
    (x, y), *rest = route
    parts = [f"M{x:.1f},{y:.1f}"]
    for nx, ny in rest:
        bend = (nx - x) / 2 if nx > x else 60.0  # a backward edge loops round
        parts.append(f"C{x + bend:.1f},{y:.1f} {nx - bend:.1f},{ny:.1f} {nx:.1f},{ny:.1f}")
        x, y = nx, ny
    return " ".join(parts)


def _legend(graph: TaskGraph) -> str:
    """The key: every task colour (with how many tasks have it), conditions, edges."""
    counts = Counter(
        "cancelled" if n.end_reason is EndReason.CANCELLED else str(n.task_status)
        for n in graph.nodes.values()
    )
    items = [
        f'<span class="key task-key" data-status="{status}"><i style="background:{fill}">'
        f"</i>{_escape(words)} ({counts[status]})</span>"
        for status, (fill, _, words) in STATUS_COLOURS.items()
    ]
    conditions = [
        f'<span class="key"><i class="dot" style="background:{colour}"></i>'
        f"condition {_escape(str(status).replace('_', ' '))}</span>"
        for status, colour in CONDITION_COLOURS.items()
    ]
    kinds = [
        f'<span class="key"><svg width="34" height="10"><path d="M1,5H33" stroke="{FOREGROUND}"'
        + (f' stroke-dasharray="{dash}"' if dash else "")
        + f"/></svg>{_escape(words)}</span>"
        for dash, _, words in EDGE_STYLES.values()
    ]
    colours = [
        f'<span class="key"><svg width="34" height="10"><path d="M1,5H33" stroke="{colour}" '
        f'stroke-width="3"/></svg>{_escape(_EDGE_MEANINGS[name])}</span>'
        for name, colour in EDGE_COLOURS.items()
    ]
    return (
        f'<div class="row"><b>tasks</b>{"".join(items)}</div>'
        f'<div class="row"><b>conditions</b>{"".join(conditions)}</div>'
        f'<div class="row"><b>edges</b>{"".join(kinds)}</div>'
        f'<div class="row"><b>edge colours</b>{"".join(colours)}</div>'
    )


def _task_tip(node: TaskNode) -> str:
    lines = [f"task: {node.uid}"]
    key = node.key
    if key is not None:
        lines.append(f"key: {truncate(str(key))}")
    lines.append(f"function: {node.task_handle}")
    if arguments := argument_summary(node):
        lines.append(f"arguments: {truncate(arguments)}")
    status = str(node.task_status)
    if node.end_reason is not None and node.end_reason not in (
        EndReason.SUCCEEDED, EndReason.RAISED, EndReason.PRECONDITION_FAILED
    ):  # fmt: skip
        status += f" ({node.end_reason})"
    lines.append(f"status: {status}")
    if node.attempts > 1:
        lines.append(f"attempts: {node.attempts}")
    if outcome := _outcome(node):
        lines.append(f"outcome: {outcome}")
    return "\n".join(lines)


def _condition_tip(condition: GenericSchedulingCondition) -> str:
    progress = f"{condition.successes}/{condition.completions} of {len(condition.predecessors)}"
    return "\n".join([
        f"condition: {condition.uid}", f"mode: {condition.mode}",
        f"status: {condition.condition_status}", f"{_PROGRESS}: {progress}",
    ])  # fmt: skip


def _title(graph: TaskGraph) -> str:
    counts = Counter(node.task_status for node in graph.nodes.values())
    by_status = ", ".join(f"{counts[s]} {s}" for s in TaskStatus if counts[s])
    total = len(graph.nodes)
    title = f"{graph.uid}: {total} task{'' if total == 1 else 's'}"
    return f"{title} ({by_status})" if by_status else title


def _condition_label(condition: GenericSchedulingCondition) -> str:
    return f"C-{condition.mode}"


def _outcome(node: TaskNode) -> str:
    """A short result repr for a success, the traceback's last line for a failure."""
    if node.task_status == TaskStatus.SUCCESS:
        away = result_whereabouts(node)
        if away is not None:  # not read back from disk for a picture (nor readable)
            return f"<{result_type_name(node)}, {away}>"
        try:
            return truncate(_short_repr.repr(node.task_result))
        except Exception:  # a broken __repr__ must not break the picture
            return "<unrepresentable result>"
    if node.task_status == TaskStatus.FAILED:
        return truncate(task_headline(node) or "")
    return ""


def _escape(text: str) -> str:
    """Text for HTML/SVG content or a double-quoted attribute; newlines kept (as &#10;)."""
    return html.escape(text, quote=True).replace("\n", "&#10;")


def _quote(text: str) -> str:
    """A DOT double-quoted string; newlines become DOT's centred line breaks."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("\r\n", "\n").replace("\n", "\\n").replace("\r", "\\n") + '"'


#: The page. The SVG fits the window's width (never cut off) unless "full size" is
#: ticked; the script shows each node's ``data-tip`` beside the mouse.
_PAGE: Final = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ background: {background}; color: {foreground}; font: 13px sans-serif; margin: 12px; }}
h1 {{ font-size: 15px; margin: 0 0 6px; }}
.legend .row {{ margin: 3px 0; }}
.legend b {{ display: inline-block; width: 95px; }}
.key {{ display: inline-block; margin-right: 14px; white-space: nowrap; }}
.key i {{ display: inline-block; width: 14px; height: 12px; margin-right: 4px;
  vertical-align: -2px; border: 1px solid black; }}
.key i.dot {{ border-radius: 50%; }}
.key svg {{ vertical-align: middle; margin-right: 4px; }}
#picture {{ overflow: auto; margin-top: 8px; }}
#picture svg {{ display: block; }}
body:not(.full) #picture svg {{ max-width: 100%; height: auto; }}
svg text {{ font: 12px sans-serif; text-anchor: middle; }}
svg text.small {{ font-size: 10px; }}
svg text.bold {{ font-weight: bold; }}
svg text.runs {{ font-size: 10px; text-anchor: end; }}
svg .edge {{ fill: none; stroke-width: 1.6; }}
{edge_styles}
svg g[data-tip]:hover {{ filter: brightness(1.2); }}
#tip {{ position: fixed; display: none; background: #fffff0; color: black;
  border: 1px solid #888; padding: 4px 6px; white-space: pre; pointer-events: none;
  font: 12px monospace; z-index: 1; }}
</style></head>
<body>
<h1>{heading}</h1>
<div class="legend">{legend}</div>
<label><input type="checkbox" id="full"> full size (scroll to see it all)</label>
<div id="picture">
<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}"
 viewBox="0 0 {width} {height}">
<defs>{markers}</defs>
{body}
</svg></div>
<div id="tip"></div>
<script>
const tip = document.getElementById("tip");
document.getElementById("full").addEventListener("change",
  (e) => document.body.classList.toggle("full", e.target.checked));
document.addEventListener("mousemove", (e) => {{
  const node = e.target.closest ? e.target.closest("[data-tip]") : null;
  if (!node) {{ tip.style.display = "none"; return; }}
  tip.textContent = node.dataset.tip;
  tip.style.display = "block";
  const x = Math.min(e.clientX + 14, window.innerWidth - tip.offsetWidth - 4);
  const y = e.clientY + 14 + tip.offsetHeight > window.innerHeight
    ? e.clientY - tip.offsetHeight - 8 : e.clientY + 14;
  tip.style.left = Math.max(0, x) + "px";
  tip.style.top = Math.max(0, y) + "px";
}});
</script>
</body></html>
"""
