"""The run summary a terminal shows after a run: per function, then the distinct failures.

Plain text with aligned columns and no colour codes (the CLI may colour it)::

    5 tasks: 3 succeeded, 1 failed, 1 skipped
    function  loop     tasks  ok  failed  skipped  runs  retries  median     p95
    fetch     default      4   3       1        0     5        1  1.50 s  3.00 s
    join      default      1   0       0        1     0        0       -       -
    skipped: never ran, because a condition it waited on failed

    1 distinct failure:
      1x fetch: ValueError: bad row (e.g. task-…)

Durations are ``ended_at - started_at`` of each task's last run, for tasks that ran and
ended. The p95 is the nearest-rank percentile: the smallest duration that at least 95%
of them do not exceed. Building it is O(tasks).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from ...shared.states import FINAL_TASK_STATUSES, TaskStatus
from .text_table import Column, cut, format_table
from .wording import format_seconds, plural, task_headline, worker_lost_line

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from ..task_graph import TaskGraph
    from ..worker_session import WorkerRecord


@dataclass(frozen=True, slots=True)
class FunctionSummary:
    """How the tasks of one function fared."""

    name: str
    loop: str
    tasks: int
    succeeded: int
    #: Ended as ``failed`` (cancelled tasks included).
    failed: int
    #: Ended as ``precondition_failed``: never ran, because a condition failed.
    skipped: int
    #: Not ended (the run was interrupted).
    unfinished: int
    #: Runs started, in all (``TaskNode.attempts``).
    runs: int
    #: Runs beyond each task's first: retries after a failure, and reruns after a loss.
    retries: int
    #: Runs lost with their worker (distributed mode).
    lost: int
    #: Median and p95 duration in seconds of the tasks that ran and ended, or None.
    median: float | None
    p95: float | None


@dataclass(frozen=True, slots=True)
class FailureGroup:
    """Failed tasks of one function that failed the same way."""

    function: str
    #: The line that says what went wrong (see :func:`~.wording.task_headline`).
    headline: str
    count: int
    #: One of them, to look up (``tgs-status --why``, ``graph.explain``).
    example_uid: str


#: At most this many distinct failures are listed; errors that embed an id or a value
#: would otherwise list one line per task.
MAX_FAILURES_SHOWN: Final = 20

#: What summarize_functions counts per function: end states, then runs.
_COUNTED = (*FINAL_TASK_STATUSES, "unfinished", "runs", "retries", "lost")


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile of values sorted in ascending order (not empty)."""
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


def summarize_functions(graph: TaskGraph) -> list[FunctionSummary]:
    """One :class:`FunctionSummary` per function with tasks, in the graph's order."""
    by_function: dict[str, list[float]] = {}
    counts: dict[str, dict[str, int]] = {}
    for node in graph.nodes.values():
        tally = counts.setdefault(node.task_handle, dict.fromkeys(_COUNTED, 0))
        tally[node.task_status if node.task_status in FINAL_TASK_STATUSES else "unfinished"] += 1
        tally["runs"] += node.attempts
        tally["retries"] += max(0, node.attempts - 1)
        tally["lost"] += node.losses
        durations = by_function.setdefault(node.task_handle, [])
        ran = node.task_status in (TaskStatus.SUCCESS, TaskStatus.FAILED)
        if ran and node.started_at is not None and node.ended_at is not None:
            durations.append(max(0.0, node.ended_at - node.started_at))
    summaries = []
    for name, function in graph.task_functions.items():
        if name not in counts:
            continue
        tally = counts[name]
        durations = sorted(by_function[name])
        summaries.append(
            FunctionSummary(
                name=name,
                loop=function.loop,
                tasks=sum(tally[key] for key in (*FINAL_TASK_STATUSES, "unfinished")),
                succeeded=tally[TaskStatus.SUCCESS],
                failed=tally[TaskStatus.FAILED],
                skipped=tally[TaskStatus.PRECONDITION_FAILED],
                unfinished=tally["unfinished"],
                runs=tally["runs"],
                retries=tally["retries"],
                lost=tally["lost"],
                median=statistics.median(durations) if durations else None,
                p95=percentile(durations, 0.95) if durations else None,
            )
        )
    return summaries


def group_failures(graph: TaskGraph) -> list[FailureGroup]:
    """The distinct failures: failed tasks grouped by function and error line.

    The most frequent come first; ties keep the order in which tasks were created.
    """
    groups: dict[tuple[str, str], list[str]] = {}
    for node in graph.nodes.values():
        if node.task_status is TaskStatus.FAILED:
            headline = task_headline(node) or "failed, with no error"
            groups.setdefault((node.task_handle, headline), []).append(node.uid)
    ordered = sorted(groups.items(), key=lambda item: -len(item[1]))  # stable: ties keep order
    return [FailureGroup(function, line, len(uids), uids[0]) for (function, line), uids in ordered]


def format_summary(
    graph: TaskGraph, workers: Iterable[WorkerRecord] = (), width: int | None = None
) -> str:
    """The summary as text (several lines, no trailing newline), ready to print.

    ``workers`` are a distributed run's workers (``Coordinator.workers.values()``): those
    lost while running tasks are listed with what they ran. The first line and the table
    fit ``width`` characters (a terminal's; None: no limit): long names are cut, never
    wrapped. The failures and lost workers stay whole: they end with the uids to look up.
    """
    summaries = summarize_functions(graph)
    if not summaries:
        return "No tasks were created."
    total = sum(s.tasks for s in summaries)
    outcome = [
        f"{sum(s.succeeded for s in summaries)} succeeded",
        f"{sum(s.failed for s in summaries)} failed",
        f"{sum(s.skipped for s in summaries)} skipped",
    ]
    unfinished = sum(s.unfinished for s in summaries)
    if unfinished:
        outcome.append(f"{unfinished} unfinished")
    head = f"{plural(total, 'task')}: {', '.join(outcome)}"
    lines = [head if width is None else cut(head, width), *_table(summaries, width)]
    if any(s.skipped for s in summaries):
        lines.append("skipped: never ran, because a condition it waited on failed")
    failures = group_failures(graph)
    if failures:
        width = len(str(failures[0].count))
        lines += ["", f"{plural(len(failures), 'distinct failure')}:"]
        lines += [
            f"  {g.count:>{width}}x {g.function}: {g.headline} (e.g. {g.example_uid})"
            for g in failures[:MAX_FAILURES_SHOWN]
        ]
        if len(failures) > MAX_FAILURES_SHOWN:
            hidden = failures[MAX_FAILURES_SHOWN:]
            tasks = plural(sum(g.count for g in hidden), "task")
            lines.append(f"  ... and {len(hidden)} more ({tasks}); the report lists them all")
    lost = [record for record in workers if record.lost_while_running]
    if lost:
        lines += ["", f"{plural(len(lost), 'worker')} lost:"]
        lines += [
            "  " + worker_lost_line(r.worker_id, r.name, r.lost_while_running, r.left_because)
            for r in lost
        ]
    return "\n".join(lines)


def _table(summaries: list[FunctionSummary], width: int | None) -> list[str]:
    """The per-function table: text columns left-aligned, numbers right-aligned."""
    # Columns for what happens only sometimes are shown only when it happened.
    unfinished = any(s.unfinished for s in summaries)
    lost = any(s.lost for s in summaries)
    names = ["function", "loop", "tasks", "ok", "failed", "skipped"]
    names += ["unfinished"] * unfinished + ["runs", "retries"] + ["lost"] * lost
    names += ["median", "p95"]
    # Names may be cut to fit a terminal; numbers never (a cut number lies): columns of
    # numbers go instead, the least telling first, and the outcome counts stay.
    drops = {"retries": 0, "runs": 1, "p95": 2, "median": 3, "loop": 4}
    columns = [Column("function", min_width=8), Column("loop", min_width=8, drop=4)]
    columns += [Column(name, right=True, drop=drops.get(name)) for name in names[2:]]
    rows = []
    for s in summaries:
        row = [s.name, s.loop, str(s.tasks), str(s.succeeded), str(s.failed), str(s.skipped)]
        row += [str(s.unfinished)] * unfinished + [str(s.runs), str(s.retries)]
        row += [str(s.lost)] * lost
        row += [_duration(s.median), _duration(s.p95)]
        rows.append(row)
    if len(summaries) > 1:
        rows.append(_total_row(summaries, unfinished=unfinished, lost=lost))
    return format_table(columns, rows, width)


def _total_row(summaries: list[FunctionSummary], *, unfinished: bool, lost: bool) -> list[str]:
    def total(field: str) -> str:
        return str(sum(getattr(s, field) for s in summaries))

    row = ["total", "", total("tasks"), total("succeeded"), total("failed"), total("skipped")]
    row += [total("unfinished")] * unfinished + [total("runs"), total("retries")]
    row += [total("lost")] * lost
    # Durations of different functions do not mix into one meaningful median.
    return [*row, "", ""]


def _duration(seconds: float | None) -> str:
    return "-" if seconds is None else format_seconds(seconds)
