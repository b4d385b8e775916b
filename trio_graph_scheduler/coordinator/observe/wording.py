"""Small wording helpers shared by the text views of a run (explain, summary, progress).

They live in one place so that a duration, a count or an error reads the same in every
view: the explanation of one task, the summary after a run and the live progress line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from ...shared.errors import MAX_HEADLINE_CHARS, exception_headline
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

#: Longest task key shown in a task's label before it is cut with "...".
KEY_CHARS: Final = 80


def clip(text: str, limit: int) -> str:
    """``text``, cut to ``limit`` characters with "..." when it is longer."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def task_label(node: TaskNode) -> str:
    """``task-… (fetch)``: the uid a user can look up, and the function it names; with
    its key when it has one: ``task-… (fetch, key 'https://example.org/')``."""
    if node.key is None:
        return f"{node.uid} ({node.task_handle})"
    return f"{node.uid} ({node.task_handle}, key {clip(repr(node.key), KEY_CHARS)})"


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


def task_headline(node: TaskNode) -> str | None:
    """What went wrong with a task, in one line; ``None`` if nothing did.

    ``Type: message`` of its exception when it has one (see
    :func:`~trio_graph_scheduler.shared.errors.exception_headline`), else the line of its
    ``exception_trace`` that says why (a cancel, a lost worker).
    """
    if node.task_exception is not None:
        return exception_headline(node.task_exception)
    return error_headline(node.exception_trace)


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


#: How many of a lost worker's tasks are named before "and N more".
MAX_LOST_TASKS_NAMED: Final = 5


def lost_while_running(tasks: list[tuple[str, str]]) -> str:
    """What a lost worker was running, from ``(uid, function)`` pairs:
    ``task task-… (function f)``, or ``3 tasks: task-… (function f), ...``."""
    named = [f"task {uid} (function {function})" for uid, function in tasks]
    if len(named) == 1:
        return named[0]
    shown = ", ".join(named[:MAX_LOST_TASKS_NAMED])
    more = len(named) - MAX_LOST_TASKS_NAMED
    return f"{len(named)} tasks: {shown}" + (f" and {more} more" if more > 0 else "")


def worker_lost_line(
    worker_id: str, name: str, tasks: list[tuple[str, str]], reason: str | None
) -> str:
    """One line for a worker lost while running ``tasks`` (the log, the summary, --why):
    ``worker worker-2 (host:pid) lost while running task task-… (function f): silent``."""
    return f"worker {worker_id} ({name}) lost while running {lost_while_running(tasks)}: {reason}"
