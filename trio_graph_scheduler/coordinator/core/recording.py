"""What the core tells a recorder: the graph's growth and every task's end.

The core does no I/O, so it does not write a journal itself: it calls a
:class:`GraphRecorder` (``Scheduler.recorder``) synchronously at each change a resumed run
needs, and the recorder (the shell's journal) buffers and writes. Replaying the calls in
the order they were made rebuilds the graph: see :meth:`Scheduler.restore_end`.

Only *final* ends are recorded. A task ended by a failed condition
(``precondition_failed``) is not: replaying its predecessors' ends derives it again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .conditions import GenericSchedulingCondition
    from .nodes import TaskNode


class GraphRecorder(Protocol):
    """Receives the changes of a graph a resumed run must replay, in order."""

    def condition_created(self, condition: GenericSchedulingCondition) -> None:
        """A condition was created (its predecessors are linked)."""

    def task_created(self, node: TaskNode, conditions: list[GenericSchedulingCondition]) -> None:
        """A task is about to be added, waiting on ``conditions``.

        Raising here (a value that cannot be recorded) refuses the task: it is called
        before the task joins the graph.
        """

    def predecessor_added(self, condition: GenericSchedulingCondition, node: TaskNode) -> None:
        """``node`` became one more predecessor of ``condition`` (``prepend_to_successor``)."""

    def task_ended(self, node: TaskNode) -> None:
        """A task reached a final status by itself (not ``precondition_failed``)."""
