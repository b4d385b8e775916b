"""Pictures of a :class:`~.graph.TaskGraph`: Graphviz DOT text, or one self-contained HTML page.

Both draw what the seed drew with pyvis: the graph itself as a yellow ``root``, tasks as
boxes, conditions as small dots, coloured by status (orange while open, green for
success, red for failure). Edges run the way work flows: root → each task that waits on
nothing ("scheduled", purple), task → each condition that waits on it ("waited_on_by",
red), condition → each task that waits on it ("waits_on", blue).

DOT needs only the standard library. HTML needs the ``draw`` extra (bokeh, networkx),
imported on first use so that running graphs never pays for them.
"""

from __future__ import annotations

import reprlib
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from ...shared.states import ConditionStatus, TaskStatus
from .pictures import BACKGROUND, UNKNOWN_COLOUR, html_page, missing_extra, truncate
from .wording import task_headline

if TYPE_CHECKING:
    from ..core.conditions import GenericSchedulingCondition
    from ..core.nodes import TaskNode
    from ..task_graph import TaskGraph

_OPEN, _GOOD, _BAD = "orange", "green", "red"
#: Fill colour of a task by status: orange until it has ended.
TASK_COLOURS: Final[dict[TaskStatus, str]] = dict.fromkeys(TaskStatus, _OPEN) | {
    TaskStatus.SUCCESS: _GOOD,
    TaskStatus.FAILED: _BAD,
    TaskStatus.PRECONDITION_FAILED: _BAD,
}
#: Fill colour of a condition by status.
CONDITION_COLOURS: Final[dict[ConditionStatus, str]] = {
    ConditionStatus.WAITING_ON_TASKS: _OPEN, ConditionStatus.SATISFIED: _GOOD,
    ConditionStatus.FAILED: _BAD,
}  # fmt: skip
#: Colour of each kind of edge, by the seed's edge labels.
EDGE_COLOURS: Final = {"scheduled": "purple", "waited_on_by": "red", "waits_on": "blue"}
ROOT_COLOUR: Final = "yellow"

_DOT_SUFFIXES: Final = frozenset({".dot", ".gv"})
#: Above this many nodes the HTML drops text labels: they would pile up unreadably and
#: slow the browser; hovering still tells every node apart.
_LABEL_LIMIT: Final = 300
#: networkx's spring_layout needs scipy from 500 nodes on, which the extra does not bring.
_SPRING_LIMIT: Final = 500
_MISSING_EXTRA: Final = missing_extra("graph.draw() to HTML") + " (or write .dot)"

_PROGRESS: Final = "successes/completions of predecessors"
# reprlib, not repr(): its work is bounded even for a huge result (it sorts dict keys).
_short_repr = reprlib.Repr()
_short_repr.maxstring = _short_repr.maxother = 80


def graph_to_dot(graph: TaskGraph) -> str:
    """Render the graph as Graphviz DOT text, coloured by status.

    Args:
        graph: the graph to draw; it is only read.

    Returns:
        A ``digraph`` laid out left to right: the graph as a yellow ``root`` circle, tasks
        as boxes labelled ``T-<function>``, conditions as dots labelled ``C-<mode>``.
        Nodes come in creation order, then edges, so the same graph gives the same text.
    """
    q = _quote
    lines = [
        f"digraph {q(graph.uid)} {{",
        f'  rankdir=LR; labelloc=t; fontname="Helvetica"; label={q(_title(graph))};',
        # Room between ranks and rows for the conditions' labels, which sit beside them.
        "  ranksep=1.2; nodesep=0.45;",
        '  node [fontname="Helvetica", fontsize=11]; edge [arrowsize=0.6];',
        f"  {q(graph.uid)} [label=root, shape=circle, style=filled, "
        f"fillcolor={q(ROOT_COLOUR)}, tooltip={q(graph.uid)}];",
    ]
    for node in graph.nodes.values():
        colour = TASK_COLOURS.get(node.task_status, UNKNOWN_COLOUR)
        tooltip = f"{node.uid}\n{node.task_status}"
        lines.append(
            f"  {q(node.uid)} [label={q(_task_label(node))}, shape=box, style=filled, "
            f"fillcolor={q(colour)}, tooltip={q(tooltip)}];"
        )
    for condition in graph.conditions.values():
        colour = CONDITION_COLOURS.get(condition.condition_status, UNKNOWN_COLOUR)
        tooltip = f"{condition.uid}\n{condition.condition_status}"
        # A point cannot hold a label, so the mode goes beside it.
        lines.append(
            f"  {q(condition.uid)} [xlabel={q(_condition_label(condition))}, shape=point, "
            f"width=0.15, color={q(colour)}, fillcolor={q(colour)}, tooltip={q(tooltip)}];"
        )
    for source, target, kind in _edges(graph):
        lines.append(
            f"  {q(source)} -> {q(target)} [color={q(EDGE_COLOURS[kind])}, tooltip={q(kind)}];"
        )
    lines.append("}")
    return "\n".join(lines) + "\n"


def draw_graph(graph: TaskGraph, path: str | Path) -> None:
    """Draw the graph into a file: DOT for ``.dot``/``.gv``, else a self-contained HTML page.

    The HTML inlines Bokeh's JavaScript, so it opens with no network. Nodes are laid out
    left to right by dependency depth; hovering shows a task's uid, function, status and
    result (or the last line of its traceback), or a condition's uid, mode, status and
    how many predecessors succeeded/ended.

    Args:
        graph: the graph to draw; it is only read.
        path: the file to write (overwritten).

    Raises:
        ImportError: HTML was asked for but bokeh or networkx is not installed.
    """
    path = Path(path)
    dot = path.suffix.lower() in _DOT_SUFFIXES
    path.write_text(graph_to_dot(graph) if dot else _html(graph), encoding="utf-8")


def _html(graph: TaskGraph) -> str:
    """The Bokeh page: one vectorised glyph per kind of thing, never one per node."""
    try:
        import networkx  # noqa: F401 - only to fail here, with the hint, if it is missing
        from bokeh.core.properties import field
        from bokeh.models import ColumnDataSource, DataRange1d, HoverTool
        from bokeh.models.annotations.arrows import Arrow, NormalHead
        from bokeh.models.annotations.labels import Title
        from bokeh.plotting import figure
    except ImportError as error:
        raise ImportError(_MISSING_EXTRA) from error
    edges = _edges(graph)
    pos, rows = _layout(graph, edges)
    labelled = len(pos) <= _LABEL_LIMIT
    # Black outlines make small graphs crisp but would paint a crowded graph black.
    outline = "black" if labelled else None
    plot = figure(
        title=Title(text=_title(graph), text_color="white"),
        width=1200, height=min(1000, max(400, 120 + 40 * rows)),
        tools="pan,wheel_zoom,box_zoom,reset,save", active_scroll="wheel_zoom",
        background_fill_color=BACKGROUND, border_fill_color=BACKGROUND,
        # A row of margin above and below, so the top condition's label is not cut off.
        y_range=DataRange1d(range_padding=1, range_padding_units="absolute"),
    )  # fmt: skip
    plot.axis.visible = plot.grid.visible = False

    # Heads sit 60% along each edge: at its end they would hide under the target node.
    x0, y0 = zip(*(pos[s] for s, _, _ in edges), strict=True) if edges else ((), ())
    x1, y1 = zip(*(pos[t] for _, t, _ in edges), strict=True) if edges else ((), ())
    edge_source = ColumnDataSource({
        "x0": x0, "y0": y0, "x1": x1, "y1": y1,
        "xm": [a + 0.6 * (b - a) for a, b in zip(x0, x1, strict=True)],
        "ym": [a + 0.6 * (b - a) for a, b in zip(y0, y1, strict=True)],
        "colour": [EDGE_COLOURS[kind] for _, _, kind in edges],
    })  # fmt: skip
    plot.segment("x0", "y0", "x1", "y1", color="colour", line_width=1.5, source=edge_source)
    head = NormalHead(size=9, fill_color=field("colour"), line_color=field("colour"))
    # No body: the segment is the body. (Bokeh 3.9's stubs call it body_line_alpha, its
    # runtime line_alpha; the dict keeps mypy out of that disagreement.)
    no_body: dict[str, Any] = {"line_alpha": 0}
    plot.add_layout(Arrow(end=head, x_start="x0", y_start="y0", x_end="xm", y_end="ym",
                          source=edge_source, **no_body))  # fmt: skip

    tasks = list(graph.nodes.values())
    task_labels = [_task_label(node) for node in tasks]
    task_source = ColumnDataSource({
        "x": [pos[n.uid][0] for n in tasks], "y": [pos[n.uid][1] for n in tasks],
        "uid": [n.uid for n in tasks], "function": [n.task_handle for n in tasks],
        "status": [str(n.task_status) for n in tasks],
        "colour": [TASK_COLOURS.get(n.task_status, UNKNOWN_COLOUR) for n in tasks],
        "outcome": [_outcome(n) for n in tasks], "label": task_labels,
        # Boxes as wide as their label, in pixels, so zooming never makes text overflow.
        "w": [7 * len(label) + 14 if labelled else 10 for label in task_labels],
    })  # fmt: skip
    task_boxes = plot.rect(
        "x", "y", width="w", height=24 if labelled else 10, width_units="screen",
        height_units="screen", fill_color="colour", line_color=outline, source=task_source,
    )  # fmt: skip

    conditions = list(graph.conditions.values())
    condition_source = ColumnDataSource({
        "x": [pos[c.uid][0] for c in conditions], "y": [pos[c.uid][1] for c in conditions],
        "uid": [c.uid for c in conditions], "mode": [str(c.mode) for c in conditions],
        "status": [str(c.condition_status) for c in conditions],
        "colour": [CONDITION_COLOURS.get(c.condition_status, UNKNOWN_COLOUR) for c in conditions],
        "progress": [f"{c.successes}/{c.completions} of {len(c.predecessors)}" for c in conditions],
        "label": [_condition_label(c) for c in conditions],
    })  # fmt: skip
    dots = plot.scatter(
        "x", "y", size=12, fill_color="colour", line_color=outline, source=condition_source
    )
    root_source = ColumnDataSource({"x": [pos[graph.uid][0]], "y": [pos[graph.uid][1]],
                                    "uid": [graph.uid], "label": ["root"]})  # fmt: skip
    root = plot.scatter("x", "y", size=40, fill_color=ROOT_COLOUR, source=root_source)

    if labelled:
        text: dict[str, Any] = {"text": "label", "text_align": "center", "text_font_size": "11px"}
        plot.text("x", "y", text_baseline="middle", source=task_source, **text)
        plot.text("x", "y", text_baseline="middle", source=root_source, **text)
        plot.text("x", "y", y_offset=-9, text_color="#dddddd", source=condition_source, **text)
    # Bokeh escapes tooltip values, so results and tracebacks show as plain text.
    task_tips = [("task", "@uid"), ("function", "@function"), ("status", "@status")]
    condition_tips = [("condition", "@uid"), ("mode", "@mode"), ("status", "@status")]
    plot.add_tools(
        HoverTool(renderers=[task_boxes], tooltips=[*task_tips, ("outcome", "@outcome")]),
        HoverTool(renderers=[dots], tooltips=[*condition_tips, (_PROGRESS, "@progress")]),
        HoverTool(renderers=[root], tooltips=[("graph", "@uid")]),
    )
    return html_page(plot, graph.uid)


def _edges(graph: TaskGraph) -> list[tuple[str, str, str]]:
    """Every edge as ``(source uid, target uid, kind)``, in creation order."""
    nodes = graph.nodes.items()
    edges = [(graph.uid, uid, "scheduled") for uid, node in nodes if not node.waits_on]
    for uid, node in nodes:
        edges.extend((uid, condition.uid, "waited_on_by") for condition in node.waited_on_by)
    for uid, condition in graph.conditions.items():
        edges.extend((uid, node.uid, "waits_on") for node in condition.successors)
    return edges


def _layout(
    graph: TaskGraph, edges: list[tuple[str, str, str]]
) -> tuple[dict[str, tuple[float, float]], int]:
    """Position every node; also return how many rows the tallest layer needs."""
    import networkx as nx

    dag = nx.DiGraph()
    dag.add_nodes_from([graph.uid, *graph.nodes, *graph.conditions])
    dag.add_edges_from((source, target) for source, target, _ in edges)
    if nx.is_directed_acyclic_graph(dag):
        layer_of = {n: i for i, gen in enumerate(nx.topological_generations(dag)) for n in gen}
    elif len(dag) < _SPRING_LIMIT:
        spring = nx.spring_layout(dag, seed=0)
        rows = max(1, int(len(dag) ** 0.5))
        return {n: (float(x) * rows, float(y) * rows) for n, (x, y) in spring.items()}, rows
    else:
        # A big graph with a cycle: layer its strongly connected components instead.
        condensed = nx.condensation(dag)
        member_of = condensed.graph["mapping"]
        layer_of_scc = {
            scc: i for i, gen in enumerate(nx.topological_generations(condensed)) for scc in gen
        }
        layer_of = {n: layer_of_scc[member_of[n]] for n in dag}
    layers: list[list[str]] = [[] for _ in range(max(layer_of.values()) + 1)]
    for n in dag:  # creation order, so ties below stay stable
        layers[layer_of[n]].append(n)
    pos: dict[str, tuple[float, float]] = {}

    def height(n: str) -> float:
        ys = [pos[p][1] for p in dag.predecessors(n) if p in pos]
        return sum(ys) / len(ys) if ys else 0.0

    for x, layer in enumerate(layers):
        # Order each layer by its predecessors' mean height: far fewer crossing edges.
        layer.sort(key=height, reverse=True)
        top = (len(layer) - 1) / 2
        pos.update((n, (x * 3.0, top - i)) for i, n in enumerate(layer))
    return pos, max(len(layer) for layer in layers)


def _title(graph: TaskGraph) -> str:
    counts = Counter(node.task_status for node in graph.nodes.values())
    by_status = ", ".join(f"{counts[s]} {s}" for s in TaskStatus if counts[s])
    total = len(graph.nodes)
    title = f"{graph.uid}: {total} task{'' if total == 1 else 's'}"
    return f"{title} ({by_status})" if by_status else title


def _task_label(node: TaskNode) -> str:
    return f"T-{node.task_handle[:15]}"


def _condition_label(condition: GenericSchedulingCondition) -> str:
    return f"C-{condition.mode}"


def _outcome(node: TaskNode) -> str:
    """A short result repr for a success, the traceback's last line for a failure."""
    if node.task_status == TaskStatus.SUCCESS:
        try:
            return truncate(_short_repr.repr(node.task_result))
        except Exception:  # a broken __repr__ must not break the picture
            return "<unrepresentable result>"
    if node.task_status == TaskStatus.FAILED:
        return truncate(task_headline(node) or "")
    return ""


def _quote(text: str) -> str:
    """A DOT double-quoted string; newlines become DOT's centred line breaks."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("\r\n", "\n").replace("\n", "\\n").replace("\r", "\\n") + '"'
