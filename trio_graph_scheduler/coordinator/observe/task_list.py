"""Listing a graph's tasks, filtered: ``tgs-status --tasks`` (and any dashboard).

Pure: it reads nodes and changes nothing. One pass over the graph, O(tasks) per query,
and nothing while nobody asks; the listing is bounded (``limit``) and says how many more
tasks matched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from ...shared.errors import ConfigError
from ...shared.states import TaskStatus
from .wording import STATUS_WORDS

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from ..core.nodes import TaskNode

#: How many tasks a listing shows when not told.
DEFAULT_TASK_LIMIT: Final = 50
#: The most a listing may show: a reply of that many rows stays far below a frame's limit.
MAX_TASK_LIMIT: Final = 10_000
#: Longest key shown; a key is the user's value, and could be anything.
MAX_KEY_CHARS: Final = 200


@dataclass(frozen=True, slots=True)
class TaskRow:
    """One task of a listing."""

    uid: str
    #: The task's key (``TaskNode.key``, when the graph gives it one) as text, or None.
    key: str | None
    function: str
    status: TaskStatus
    #: What ran it last: a worker's id, ``local`` in-process, or ``""`` if nothing did.
    worker: str
    #: When it last started and ended (``time.time()``), or None.
    started_at: float | None
    ended_at: float | None
    #: How many times it was started.
    attempts: int


@dataclass(frozen=True, slots=True)
class TaskListing:
    """The first ``limit`` tasks that match, in the order they were created."""

    rows: list[TaskRow]
    #: How many tasks matched in all (``matched - len(rows)`` were left out).
    matched: int


def parse_status(text: str) -> frozenset[TaskStatus]:
    """The statuses ``--status`` names: a status (``in_progress``) or the word the text
    views use for it (``running``; ``ready`` is both ``created`` and
    ``ready_for_execution``). Case is ignored.

    Raises:
        ConfigError: neither; the message lists what is accepted.
    """
    wanted = text.strip().lower()
    found = {status for status in TaskStatus if wanted in (status.value, STATUS_WORDS[status])}
    if not found:
        words = sorted({*TaskStatus, *STATUS_WORDS.values()})
        raise ConfigError(f"unknown task status {text!r}; one of: {', '.join(words)}")
    return frozenset(found)


def list_tasks(
    nodes: Iterable[TaskNode],
    *,
    statuses: frozenset[str] = frozenset(),
    function: str | None = None,
    limit: int = DEFAULT_TASK_LIMIT,
) -> TaskListing:
    """The tasks among ``nodes`` in one of ``statuses`` (any if empty) that run
    ``function`` (any if None): the first ``limit`` as rows, and how many matched."""
    rows: list[TaskRow] = []
    matched = 0
    for node in nodes:
        if statuses and node.task_status not in statuses:
            continue
        if function is not None and node.task_handle != function:
            continue
        matched += 1
        if len(rows) < limit:
            rows.append(task_row(node))
    return TaskListing(rows, matched)


def unknown_function(function: str, functions: Mapping[str, object]) -> str | None:
    """What to say when ``--function`` names no function of the graph, else None: an
    empty listing would hide the typo."""
    if function in functions:
        return None
    return f"the graph has no function {function!r}; it has: {', '.join(functions) or 'none'}"


def task_row(node: TaskNode) -> TaskRow:
    """The listing's row for one task."""
    key = node.key
    text = None if key is None else str(key)
    if text is not None and len(text) > MAX_KEY_CHARS:
        text = text[: MAX_KEY_CHARS - 1] + "…"
    return TaskRow(
        uid=node.uid,
        key=text,
        function=node.task_handle,
        status=node.task_status,
        worker=node.worker or "",
        started_at=node.started_at,
        ended_at=node.ended_at,
        attempts=node.attempts,
    )
