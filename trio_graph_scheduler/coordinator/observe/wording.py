"""Small wording helpers shared by the text views of a run (explain, summary, progress).

They live in one place so that a duration, a count or an error reads the same in every
view: the explanation of one task, the summary after a run and the live progress line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from ...shared.states import TaskStatus

if TYPE_CHECKING:
    from ..core.nodes import TaskNode

#: How each task status reads in a list of counts ("1 running, 2 waiting").
STATUS_WORDS: Final[dict[str, str]] = {
    TaskStatus.CREATED: "ready",
    TaskStatus.WAITING_FOR_PREDECESSORS: "waiting",
    TaskStatus.READY_FOR_EXECUTION: "ready",
    TaskStatus.IN_PROGRESS: "running",
    TaskStatus.SUCCESS: "succeeded",
    TaskStatus.FAILED: "failed",
    TaskStatus.PRECONDITION_FAILED: "skipped",
}

#: Longest error headline shown in one line before it is cut with "...".
MAX_HEADLINE_CHARS: Final = 160


def task_label(node: TaskNode) -> str:
    """``task-… (fetch)``: the uid a user can look up, and the function it names."""
    return f"{node.uid} ({node.task_handle})"


def plural(count: int, word: str, many: str | None = None) -> str:
    """``1 task``, ``2 tasks``; ``many`` for irregular plurals."""
    return f"{count} {word if count == 1 else (many or word + 's')}"


def error_headline(trace: str | None) -> str | None:
    """The line of a traceback that says what went wrong, cut to one short line.

    Python prints the exception (``ValueError: bad row``) last, after the stack: that
    line, not the first (``Traceback (most recent call last):``), tells failures apart.
    A cancel or a lost worker has a one-line trace, which is returned as it is.
    """
    if trace is None:
        return None
    lines = [line.strip() for line in trace.splitlines() if line.strip()]
    if not lines:
        return None
    line = lines[-1]
    if len(line) > MAX_HEADLINE_CHARS:
        line = line[: MAX_HEADLINE_CHARS - 3] + "..."
    return line


def format_seconds(seconds: float) -> str:
    """A duration for people: ``0.3 ms``, ``4.20 s``, ``3 min 05 s``, ``2 h 07 min``."""
    if seconds < 1:
        return f"{seconds * 1000:.1f} ms"
    if seconds < 60:
        return f"{seconds:.2f} s"
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


def format_seconds_compact(seconds: float) -> str:
    """A duration for a status line, with no spaces: ``12.3s``, ``4m05s``, ``2h07m``."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
