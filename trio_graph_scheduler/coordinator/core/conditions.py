"""Scheduling conditions: a rule over a set of predecessor tasks.

A condition counts how its predecessors ended, so deciding whether it holds is O(1) per
predecessor that ends, never a scan. The counts stay truthful after the condition is final,
so "2 of 3 succeeded" can always be read off it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from ...shared.errors import GraphDefinitionError
from ...shared.states import ConditionStatus
from ...shared.uids import new_uid

if TYPE_CHECKING:
    from collections.abc import Iterable

    from .graph import TaskGraphCore
    from .nodes import TaskNode

# The statuses, read once: reading one off its enum class costs about 250 ns
# (EnumType.__getattr__), and a condition is evaluated each time a predecessor ends.
_WAITING: Final = ConditionStatus.WAITING_ON_TASKS
_SATISFIED: Final = ConditionStatus.SATISFIED
_FAILED: Final = ConditionStatus.FAILED

#: The modes' two halves: what counts, and how many must.
_CRITERIA: Final = {"SUCCESS": True, "COMPLETE": False}


@dataclass(frozen=True, slots=True)
class ConditionMode:
    """A parsed mode string such as ``SUCCESS__ALL`` or ``COMPLETE__2``."""

    #: True for ``SUCCESS__*``: only successes count. False for ``COMPLETE__*``.
    require_success: bool
    #: How many predecessors must count; ``None`` means all of them.
    target: int | None

    @staticmethod
    def parse(mode: str) -> ConditionMode:
        """Parse ``SUCCESS__ALL``, ``COMPLETE__ALL``, ``SUCCESS__<N>`` or ``COMPLETE__<N>``.

        Raises:
            GraphDefinitionError: the string is none of those, or N < 1.
        """
        if not isinstance(mode, str):
            raise GraphDefinitionError(f"a condition mode is a string, got {mode!r}")
        return _parse_mode(mode)

    def __str__(self) -> str:
        criterion = "SUCCESS" if self.require_success else "COMPLETE"
        return f"{criterion}__{'ALL' if self.target is None else self.target}"


#: The most digits N may have in ``SUCCESS__<N>``: any more is beyond 2**63, far beyond
#: any graph, and Python refuses to parse an int of over 4300 digits anyway.
MAX_MODE_DIGITS: Final = 18


@functools.lru_cache(maxsize=64)  # a graph uses a handful of modes, a million times each
def _parse_mode(mode: str) -> ConditionMode:
    criterion, sep, amount = mode.partition("__")
    valid = sep and criterion in _CRITERIA and (amount == "ALL" or amount.isdecimal())
    shown = _clip(mode)  # a mode can come from a worker: never echo a huge one whole
    if not valid:
        raise GraphDefinitionError(
            f"bad condition mode {shown}: expected SUCCESS__ALL, COMPLETE__ALL, "
            "SUCCESS__<N> or COMPLETE__<N>"
        )
    if amount != "ALL" and len(amount.lstrip("0")) > MAX_MODE_DIGITS:
        raise GraphDefinitionError(f"bad condition mode {shown}: N is too large")
    target = None if amount == "ALL" else int(amount)
    if target is not None and target < 1:
        raise GraphDefinitionError(f"bad condition mode {shown}: N must be at least 1")
    return ConditionMode(require_success=_CRITERIA[criterion], target=target)


#: The mode of the condition ``create_task(..., waits_on)`` makes of task uids.
_SUCCESS_ALL: Final = ConditionMode(require_success=True, target=None)


def _clip(mode: str, limit: int = 60) -> str:
    return repr(mode) if len(mode) <= limit else f"{mode[:limit]!r}... ({len(mode)} characters)"


class GenericSchedulingCondition:
    """A rule over predecessor tasks that tasks can wait on.

    ``SUCCESS__ALL``: every predecessor succeeded. ``COMPLETE__ALL``: every predecessor
    ended, however. ``SUCCESS__N``: at least N succeeded; the condition fails as soon as N
    successes are no longer possible. ``COMPLETE__N``: at least N ended. A task waiting on a
    failed condition ends as ``precondition_failed``.

    Args:
        graph: the graph the condition belongs to; it registers itself in
            ``graph.conditions``.
        mode: one of the four modes above.
        waits_on: uids of the predecessor tasks (no condition uids).
        uid: the condition's uid, when a remote worker chose it; normally left out.

    Raises:
        GraphDefinitionError: a bad mode, a uid that is not a task's, N larger than the
            number of predecessors, or a uid already in use.
        UnknownUidError: a uid this graph does not know.
    """

    __slots__ = (
        "_completions",
        "_successes",
        "condition_status",
        "graph",
        "mode",
        "predecessors",
        "successors",
        "uid",
    )

    def __init__(
        self,
        graph: TaskGraphCore,
        mode: str,
        waits_on: Iterable[str] | None = None,
        *,
        uid: str | None = None,
    ) -> None:
        self.mode = ConditionMode.parse(mode)
        self.graph = graph
        self.uid = uid or new_uid("condition")
        self.condition_status = _WAITING
        #: Tasks this condition waits on, in the order given.
        self.predecessors: list[TaskNode] = []
        #: Tasks that wait on this condition.
        self.successors: list[TaskNode] = []
        self._successes = 0
        self._completions = 0
        graph._add_condition(self, waits_on or ())

    @classmethod
    def _all_succeeded(
        cls, graph: TaskGraphCore, predecessors: list[TaskNode]
    ) -> tuple[GenericSchedulingCondition]:
        """The implicit ``SUCCESS__ALL`` condition of ``create_task(..., waits_on)``, over
        predecessors the graph has resolved already (a list it hands over): the
        constructor's steps without parsing the mode or looking the uids up a second
        time (a graph of chains makes one per task). Returns it in a 1-tuple, which a
        task waiting on it alone takes as its ``waits_on`` (see
        ``Scheduler.add_condition``)."""
        self = cls.__new__(cls)
        self.mode = _SUCCESS_ALL
        self.graph = graph
        # A uid of this process's own: no need to check that it is free, as for a task.
        self.uid = uid = new_uid("condition")
        self.condition_status = _WAITING
        self.predecessors = predecessors  # the graph's fresh list, adopted
        self.successors = []
        self._successes = 0
        self._completions = 0
        graph.conditions[uid] = self
        return graph.scheduler.add_condition(self, predecessors)

    def __repr__(self) -> str:
        handles = ",".join(node.task_handle for node in self.predecessors)
        return f"<Condition {self.mode} {self.uid} [{handles}] {self.condition_status}>"

    # -- counting, used by the scheduler ------------------------------------------------

    def _record_end(self, succeeded: bool) -> None:
        """Count one predecessor that has ended."""
        self._completions += 1
        if succeeded:
            self._successes += 1

    def _evaluate(self) -> ConditionStatus:
        """What the counts say now: satisfied, failed, or still waiting."""
        total = len(self.predecessors)
        needed = total if self.mode.target is None else self.mode.target
        if self.mode.require_success:
            if self._successes >= needed:
                return _SATISFIED
            failures = self._completions - self._successes
            if total - failures < needed:
                return _FAILED
        elif self._completions >= needed:
            return _SATISFIED
        return _WAITING

    # -- read-only views ----------------------------------------------------------------

    @property
    def successes(self) -> int:
        """How many predecessors have succeeded so far."""
        return self._successes

    @property
    def completions(self) -> int:
        """How many predecessors have ended so far, in any way."""
        return self._completions

    @property
    def predecessor_statuses(self) -> list[str]:
        """The predecessors' statuses, in order (as in the seed)."""
        return [node.task_status for node in self.predecessors]

    @property
    def edges_by_label(self) -> dict[str, list[str]]:
        """The seed's edge view: ``waits_on`` and ``waited_on_by`` task uids."""
        return {
            "waits_on": [node.uid for node in self.predecessors],
            "waited_on_by": [node.uid for node in self.successors],
        }
