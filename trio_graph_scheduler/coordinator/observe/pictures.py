"""What the HTML pictures of a graph share: the look, the Bokeh page, the missing-extra hint.

``graph.draw()`` (drawing.py) writes its own SVG page; ``graph.draw_timeline()``
(timeline.py) a Bokeh page, made here self-contained (BokehJS inlined, nothing fetched).
Both use the same canvas colours, so they look like one family.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from bokeh.model import Model

#: The seed's dark canvas, behind every picture.
BACKGROUND: Final = "#222222"
#: Text and axes on that canvas.
FOREGROUND: Final = "#dddddd"
#: A colour for a status added later, so that it cannot break drawing.
UNKNOWN_COLOUR: Final = "grey"


def missing_extra(what: str) -> str:
    """The ImportError message for a picture that needs the ``draw`` extra."""
    return f"{what} needs the 'draw' extra: pip install 'trio-graph-scheduler[draw]'"


def html_page(model: Model, title: str) -> str:
    """One HTML page holding ``model`` with BokehJS inlined, so it opens with no network."""
    from bokeh.embed import file_html
    from bokeh.resources import INLINE

    return str(file_html(model, INLINE, title=title))


def truncate(text: str, limit: int = 80) -> str:
    """``text`` cut to ``limit`` characters, an ellipsis marking the cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
