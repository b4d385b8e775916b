"""The live progress view of a running graph: a rich table for terminals, a line for logs.

Three layers, so that the views are pure and tested without a terminal or a clock:

- :func:`snapshot_of` counts the graph into a frozen :class:`ProgressSnapshot`. It scans
  every task, O(tasks): fine at a few times a second (a million tasks take well under a
  second), and it runs only while someone watches.
- :func:`render_progress` (a ``rich`` renderable) and :func:`status_line` (one line of
  plain text) draw a snapshot, and nothing else.
- :func:`run_progress` takes a snapshot every ``interval`` seconds and redraws a
  ``rich.live.Live`` view in place, or prints one status line per interval (for CI logs
  and files, where a redraw would only garble). It measures the rate of tasks ending over
  a recent window (:class:`RateWindow`), not over the whole run, so the estimate of the
  time left follows the run's current pace.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import sys
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, TextIO

import trio
from rich.console import Console, Group
from rich.file_proxy import FileProxy
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from .wording import STATUS_WORDS, format_seconds, format_seconds_compact, plural

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Iterator

    from rich.console import RenderableType

    from ..task_graph import TaskGraph

#: Seconds of history the rate of tasks per second is measured over.
RATE_WINDOW_SECONDS: Final = 10.0

#: The counts of a loop: one per word of ``STATUS_WORDS`` (the summary's words too, so
#: that a task skipped behind a failed condition reads ``skipped`` in every view).
_COUNTS: Final = ("waiting", "ready", "running", "succeeded", "failed", "skipped")


@dataclass(frozen=True, slots=True)
class LoopProgress:
    """The tasks of one loop, counted by where they are."""

    name: str
    concurrency: int
    waiting: int = 0
    ready: int = 0
    running: int = 0
    succeeded: int = 0
    #: Ran and failed (cancelled tasks included).
    failed: int = 0
    #: Never ran, because a condition they waited on failed (``precondition_failed``).
    skipped: int = 0

    @property
    def ended(self) -> int:
        """Tasks ended in any way."""
        return self.succeeded + self.failed + self.skipped

    @property
    def total(self) -> int:
        """Every task of the loop so far (the graph may grow)."""
        return self.waiting + self.ready + self.running + self.ended


@dataclass(frozen=True, slots=True)
class ProgressSnapshot:
    """A running graph at one moment: what every progress view draws."""

    #: Seconds since the run started.
    elapsed: float
    #: One entry per loop, in the graph's order.
    loops: tuple[LoopProgress, ...]
    #: Workers connected now; ``None`` in-process (no workers to speak of).
    workers: int | None = None
    #: Tasks ended per second over a recent window; ``None`` until it can be measured.
    #: Once the run has ended, the whole run's rate.
    rate: float | None = None
    #: True once the run has ended: ``elapsed`` then stops at the end (the shutdown that
    #: follows is not the run's), and the rate is the whole run's.
    finished: bool = False

    @property
    def ended(self) -> int:
        """Tasks done so far, in any way."""
        return sum(loop.ended for loop in self.loops)

    @property
    def total(self) -> int:
        """Tasks in the graph so far."""
        return sum(loop.total for loop in self.loops)

    @property
    def failed(self) -> int:
        """Tasks that ran and failed."""
        return sum(loop.failed for loop in self.loops)

    @property
    def skipped(self) -> int:
        """Tasks that never ran because a condition failed."""
        return sum(loop.skipped for loop in self.loops)

    def failures(self) -> list[str]:
        """``["1 failed", "1 skipped"]``: the unsuccessful ends, as the summary says them
        (what is zero is left out)."""
        counts = (("failed", self.failed), ("skipped", self.skipped))
        return [f"{count} {word}" for word, count in counts if count]

    @property
    def time_left(self) -> float | None:
        """Seconds until every task known now has ended at the current rate, if known.

        A lower bound when tasks create more tasks: only the tasks that exist count.
        """
        remaining = self.total - self.ended
        if remaining == 0:
            return 0.0
        if not self.rate:
            return None
        return remaining / self.rate


def snapshot_of(
    graph: TaskGraph, *, workers: Collection[object] | None, started_at: float, now: float
) -> ProgressSnapshot:
    """Count ``graph``'s tasks into a snapshot. O(tasks): call it a few times a second.

    Args:
        graph: the running graph (the coordinator's, in distributed mode).
        workers: the connected workers (only their number counts); ``None`` in-process.
        started_at: when the run started, on the same clock as ``now``.
        now: the time now.

    Returns:
        The snapshot, with no ``rate`` yet (:func:`run_progress` measures it).
    """
    counts = {name: dict.fromkeys(_COUNTS, 0) for name in graph.scheduler.loops}
    for node in graph.nodes.values():
        counts[node._loop.name][STATUS_WORDS[node.task_status]] += 1
    loops = tuple(
        LoopProgress(name, queue.concurrency, **counts[name])
        for name, queue in graph.scheduler.loops.items()
    )
    return ProgressSnapshot(
        elapsed=max(0.0, now - started_at),
        loops=loops,
        workers=None if workers is None else len(workers),
    )


class RateWindow:
    """Tasks ended per second over the last ``seconds``, from successive counts."""

    def __init__(self, seconds: float = RATE_WINDOW_SECONDS) -> None:
        self.seconds = seconds
        self._samples: deque[tuple[float, int]] = deque()

    def add(self, elapsed: float, ended: int) -> float | None:
        """Record that ``ended`` tasks had ended at ``elapsed``; return the rate, if known."""
        samples = self._samples
        samples.append((elapsed, ended))
        # Keep one sample at or before the window's start, as the base to measure from.
        while len(samples) > 2 and samples[1][0] <= elapsed - self.seconds:
            samples.popleft()
        start, ended_then = samples[0]
        if elapsed <= start:
            return None
        return max(0, ended - ended_then) / (elapsed - start)


# -- the views --------------------------------------------------------------------------


def status_line(snapshot: ProgressSnapshot, width: int | None = None) -> str:
    """One line for logs, e.g. ``[12.3s] 4512/10000 done (367/s, ~15s left) | default
    3/3 running, 120 ready | 2 workers | 1 failed, 1 skipped``.

    Args:
        snapshot: what to say.
        width: the most characters the line may take (a terminal's width), or ``None``
            for no limit (a log file). The least important parts go first: each loop's
            details, last loop first, then the number of workers; a line still too long
            is cut with ``…``.
    """
    # (separator before it, what it says, rank): the highest rank goes first when the
    # width is short (the later first among equals).
    parts = [("", f"[{format_seconds_compact(snapshot.elapsed)}]", 0)]
    parts.append((" ", f"{snapshot.ended}/{snapshot.total} done", 0))
    if snapshot.rate is not None:
        left = snapshot.time_left
        pace = f"{_rate(snapshot.rate)}/s"
        if left is not None and left > 0:
            pace += f", ~{_eta(left)} left"
        parts.append((" ", f"({pace})", 2))
    parts += [
        (" | ", f"{loop.name} {loop.running}/{loop.concurrency} running, {loop.ready} ready", 4)
        for loop in snapshot.loops
    ]
    if snapshot.workers is not None:
        parts.append((" | ", plural(snapshot.workers, "worker"), 3))
    if failures := snapshot.failures():
        parts.append((" | ", ", ".join(failures), 1))
    return _fit(parts, width)


def render_progress(snapshot: ProgressSnapshot, width: int | None = None) -> RenderableType:
    """The terminal view: a headline, then a table with a bar per loop.

    Args:
        snapshot: what to show.
        width: the terminal's width, or ``None`` for no limit. Within it, the headline
            drops its least important parts (the rate, the workers, the time elapsed)
            and the table its bar, then the columns of waiting, ready and skipped tasks.
    """
    head = [("", f"{format_seconds(snapshot.elapsed)} elapsed", 3)]
    head.append((" | ", f"{snapshot.ended} of {snapshot.total} tasks done", 0))
    if snapshot.rate is not None:
        head.append((" | ", f"{_rate(snapshot.rate)} tasks/s", 5))
        left = snapshot.time_left
        head.append((" | ", "time left unknown" if left is None else f"about {_eta(left)} left", 2))
    if snapshot.workers is not None:
        head.append((" | ", plural(snapshot.workers, "worker"), 4))
    if failures := snapshot.failures():
        head.append((" | ", ", ".join(failures), 1))
    return Group(Text(_fit(head, width)), _loop_table(snapshot.loops, width))


#: The widest a loop's progress bar is drawn, and the narrowest worth drawing.
BAR_WIDTH: Final = 24
MIN_BAR_WIDTH: Final = 8
#: The widest a loop's name is shown before it is cut with "…".
MAX_LOOP_NAME: Final = 20
#: The columns a narrow terminal drops, first to last (the bar goes before them).
_DROPPABLE: Final = ("waiting", "ready", "skipped")


def _loop_table(loops: tuple[LoopProgress, ...], width: int | None) -> Table:
    columns: dict[str, list[str]] = {
        "loop": [_cut(loop.name, MAX_LOOP_NAME) for loop in loops],
        "done": [f"{loop.ended}/{loop.total}" for loop in loops],
        "running": [f"{loop.running}/{loop.concurrency}" for loop in loops],
        "ready": [str(loop.ready) for loop in loops],
        "waiting": [str(loop.waiting) for loop in loops],
        "failed": [str(loop.failed) for loop in loops],
        "skipped": [str(loop.skipped) for loop in loops],
    }
    sizes = {name: max(len(name), *map(len, cells)) for name, cells in columns.items()}
    bar = BAR_WIDTH
    if width is not None:
        # The bar goes first (the done column says the same in numbers), then columns.
        droppable = list(_DROPPABLE)
        while _table_width(sizes) > width and droppable:
            del sizes[droppable.pop(0)]
        bar = min(BAR_WIDTH, width - _table_width(sizes) - 2 * _PAD)
        if bar < MIN_BAR_WIDTH:
            bar = 0
    table = Table(box=None, padding=(0, _PAD), show_edge=False, pad_edge=False)
    for name in sizes:
        table.add_column(name, justify="left" if name == "loop" else "right", no_wrap=True)
        if name == "loop" and bar:
            table.add_column("progress", width=bar)
    for index, loop in enumerate(loops):
        row: list[RenderableType] = []
        for name in sizes:
            style = "red" if name in ("failed", "skipped") and columns[name][index] != "0" else ""
            row.append(Text(columns[name][index], style=style))
            if name == "loop" and bar:
                row.append(ProgressBar(total=max(loop.total, 1), completed=loop.ended, width=bar))
        table.add_row(*row)
    return table


#: Spaces on either side of a column (but the outer sides of the outer ones).
_PAD: Final = 1


def _table_width(sizes: dict[str, int]) -> int:
    return sum(sizes.values()) + 2 * _PAD * (len(sizes) - 1)


def _fit(parts: list[tuple[str, str, int]], width: int | None) -> str:
    """Join ``(separator, text, rank)`` parts, dropping the highest ranks (the later
    first among equals) until the line fits ``width``; cut what still does not fit."""

    def join() -> str:
        # The first part kept needs no separator, whichever it is.
        return "".join(sep + text for sep, text, _ in parts).removeprefix(parts[0][0])

    parts = list(parts)
    line = join()
    if width is None:
        return line
    while len(line) > width:
        worst = max(range(len(parts)), key=lambda i: (parts[i][2], i))
        if parts[worst][2] == 0:
            break
        del parts[worst]
        line = join()
    return _cut(line, width)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(0, width - 1)].rstrip() + "…"


def _rate(rate: float) -> str:
    return f"{rate:.0f}" if rate >= 10 else f"{rate:.1f}"


def _eta(seconds: float) -> str:
    # Whole seconds: a fraction of a second promises a precision an estimate lacks.
    return f"{math.ceil(seconds)}s" if seconds < 60 else format_seconds_compact(seconds)


# -- the loop ---------------------------------------------------------------------------


async def run_progress(
    snapshot_fn: Callable[[], ProgressSnapshot],
    *,
    file: TextIO,
    interval: float = 1.0,
    live: bool,
    window: float = RATE_WINDOW_SECONDS,
) -> None:
    """Show progress on ``file`` until cancelled; the last view shows the final state.

    Args:
        snapshot_fn: takes a snapshot now, e.g. ``lambda: snapshot_of(graph, ...)``.
        file: where to draw (``sys.stderr`` keeps stdout clean for the user's output).
        interval: seconds between two views.
        live: True redraws one ``rich`` view in place (for a terminal); False prints
            one :func:`status_line` per interval and never redraws (CI logs, files).
        window: seconds over which the rate of tasks per second is measured.
    """
    meter = RateWindow(window)

    def take() -> ProgressSnapshot:
        snapshot = snapshot_fn()
        if snapshot.finished and snapshot.elapsed > 0:
            # The recent window would count the idle shutdown: say the run's own pace.
            return dataclasses.replace(snapshot, rate=snapshot.ended / snapshot.elapsed)
        return dataclasses.replace(snapshot, rate=meter.add(snapshot.elapsed, snapshot.ended))

    if live:
        await _run_live(take, Console(file=file), interval)
    else:
        await _run_lines(take, file, interval)


async def _run_live(
    take: Callable[[], ProgressSnapshot], console: Console, interval: float
) -> None:
    # auto_refresh off: rich would redraw from a thread of its own; here the trio task
    # redraws, once per interval.
    # The width is read at each frame: a resized terminal gets a view that fits.
    def frame() -> RenderableType:
        return render_progress(take(), console.width)

    with Live(frame(), console=console, auto_refresh=False) as view, _logs_above_the_view():
        try:
            while True:
                await trio.sleep(interval)
                view.update(frame(), refresh=True)
        finally:
            # Cancelled (the run ended): the frame left on screen shows the final state.
            view.update(frame(), refresh=True)


@contextlib.contextmanager
def _logs_above_the_view() -> Iterator[None]:
    """While a live view is shown, log lines go above it instead of tearing it.

    On a terminal, ``Live`` replaces ``sys.stderr`` with a proxy that prints each line
    above the view; but a logging handler holds the stream it was given at start (the
    real stderr), which wrote over the view's lines. Such handlers write to the proxy
    until the view ends.
    """
    proxy = sys.stderr
    if not isinstance(proxy, FileProxy):
        yield  # not a terminal: Live redirects nothing, and draws only at the end
        return
    moved = [
        handler
        for handler in logging.getLogger().handlers
        if isinstance(handler, logging.StreamHandler) and handler.stream is proxy.rich_proxied_file
    ]
    for handler in moved:
        handler.setStream(proxy)
    try:
        yield
    finally:
        for handler in moved:
            handler.setStream(proxy.rich_proxied_file)


async def _run_lines(take: Callable[[], ProgressSnapshot], file: TextIO, interval: float) -> None:
    last = ""
    try:
        while True:
            last = status_line(take())
            print(last, file=file, flush=True)
            await trio.sleep(interval)
    finally:
        final = status_line(take())
        if final != last:  # cancelled right after a line: do not print it twice
            print(final, file=file, flush=True)
