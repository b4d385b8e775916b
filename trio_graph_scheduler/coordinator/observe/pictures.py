"""What the HTML pictures of a graph share: the canvas colours, truncation.

``graph.draw()`` (drawing.py) and ``graph.draw_timeline()`` (timeline.py) each write one
self-contained page of hand-written SVG (nothing fetched, no library); they use the same
canvas colours, so they look like one family.
"""

from __future__ import annotations

from typing import Final

#: The seed's dark canvas, behind every picture.
BACKGROUND: Final = "#222222"
#: Text and axes on that canvas.
FOREGROUND: Final = "#dddddd"
#: A colour for a status added later, so that it cannot break drawing.
UNKNOWN_COLOUR: Final = "grey"


def truncate(text: str, limit: int = 80) -> str:
    """``text`` cut to ``limit`` characters, an ellipsis marking the cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
