"""Plain-text tables that fit a terminal's width: cells cut with an ellipsis, never wrapped.

Used by the run summary and ``tgs-status``. A wrapped table is unreadable (each row
breaks into pieces that no longer line up), so a table too wide for the terminal is
narrowed instead: first the columns that may be cut (names: a function, a loop, a
worker), each down to its minimum, widest first; then columns that may go are left out;
what still does not fit is cut at the edge.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, TextIO

if TYPE_CHECKING:
    from collections.abc import Sequence

#: Marks a cut cell or line.
ELLIPSIS: Final = "…"
#: Between two columns.
GAP: Final = "  "


@dataclass(frozen=True, slots=True)
class Column:
    """How one column of a :func:`format_table` behaves.

    Attributes:
        title: the header cell.
        right: right-aligned (numbers), else left-aligned.
        min_width: the narrowest it may be cut to, ellipsis included; None: never cut
            (a uid, which is useless cut).
        drop: when a table still does not fit, columns with a drop rank go, the lowest
            rank first; None: never dropped.
    """

    title: str
    right: bool = False
    min_width: int | None = None
    drop: int | None = None


def output_width(stream: TextIO) -> int | None:
    """The width to fit text written to ``stream``: a terminal's (``$COLUMNS`` if set, as
    :func:`shutil.get_terminal_size` reads it), or None (no limit) for a file or a pipe:
    a log, or a program reading the output, keeps every character."""
    try:
        terminal = stream.isatty()
    except ValueError:  # closed
        return None
    return shutil.get_terminal_size().columns if terminal else None


def cut(text: str, width: int) -> str:
    """``text``, cut to ``width`` characters with an ellipsis if it is longer."""
    if len(text) <= width:
        return text
    return text[: max(0, width - 1)] + ELLIPSIS if width > 0 else ""


def format_table(
    columns: Sequence[Column], rows: Sequence[Sequence[str]], width: int | None = None
) -> list[str]:
    """The header and rows as lines, aligned, each at most ``width`` characters (None:
    no limit), trailing spaces removed."""
    table = [[column.title for column in columns], *[list(row) for row in rows]]
    widths = [max(len(row[i]) for row in table) for i in range(len(columns))]
    shown = list(range(len(columns)))
    if width is not None:
        natural = list(widths)
        _narrow(columns, widths, width)
        droppable = sorted(
            (c.drop, i) for i, c in enumerate(columns) if c.drop is not None
        )  # lowest rank first
        while _total(widths, shown) > width and droppable:
            shown.remove(droppable.pop(0)[1])
        # What the dropped columns left free goes back to the cut ones, left first.
        spare = width - _total(widths, shown)
        for i in shown:
            grow = max(0, min(spare, natural[i] - widths[i]))
            widths[i] += grow
            spare -= grow
    lines = []
    for row in table:
        cells = []
        for i in shown:
            cell = cut(row[i], widths[i])
            cells.append(cell.rjust(widths[i]) if columns[i].right else cell.ljust(widths[i]))
        line = GAP.join(cells).rstrip()
        lines.append(line if width is None else cut(line, width))
    return lines


def _total(widths: list[int], shown: list[int]) -> int:
    return sum(widths[i] for i in shown) + len(GAP) * (len(shown) - 1)


def _narrow(columns: Sequence[Column], widths: list[int], width: int) -> None:
    """Cut the cuttable columns, widest first, until the table fits or none can give."""
    shown = list(range(len(columns)))
    excess = _total(widths, shown) - width
    while excess > 0:
        slack = [
            (widths[i] - c.min_width, i)
            for i, c in enumerate(columns)
            if c.min_width is not None and widths[i] > c.min_width
        ]
        if not slack:
            return
        _, widest = max(slack, key=lambda item: (widths[item[1]], item[0]))
        widths[widest] -= 1
        excess -= 1
