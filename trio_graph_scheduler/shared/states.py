"""Task and condition states, with the seed's strings as their values.

Both are ``StrEnum``s, so ``node.task_status == "success"`` keeps working for code written
against the seed, while the set of states stays closed.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class TaskStatus(StrEnum):
    """Where a task is in its life. The last three are final."""

    #: Created before the graph started, with nothing to wait for.
    CREATED = "created"
    #: Waits on conditions that are not all satisfied yet.
    WAITING_FOR_PREDECESSORS = "waiting_for_predecessors"
    #: Every condition is satisfied; queued in its loop for a free slot.
    READY_FOR_EXECUTION = "ready_for_execution"
    #: Handed to a worker slot and running.
    IN_PROGRESS = "in_progress"
    #: The function returned; ``task_result`` holds its value.
    SUCCESS = "success"
    #: The function raised; ``exception_trace`` holds the traceback.
    FAILED = "failed"
    #: A condition it waited on failed, so it never ran.
    PRECONDITION_FAILED = "precondition_failed"


class ConditionStatus(StrEnum):
    """Where a scheduling condition is. The last two are final."""

    #: Some predecessors have not ended yet and the outcome is still open.
    WAITING_ON_TASKS = "waiting_on_tasks"
    #: The rule holds; tasks waiting on it may run.
    SATISFIED = "satisfied"
    #: The rule can no longer hold; tasks waiting on it end as precondition_failed.
    FAILED = "failed"


class EndReason(StrEnum):
    """Why a task ended: ``TaskNode.end_reason``, and ``reason`` in a ``task_failed`` message.

    ``exception_trace`` keeps the text (a traceback, or the sentence for the other
    reasons); this says which kind of end it was, so that nothing parses the text.
    """

    #: The function returned.
    SUCCEEDED = "succeeded"
    #: The function raised; ``exception_trace`` is its traceback.
    RAISED = "raised"
    #: It ran longer than its policy's timeout.
    TIMED_OUT = "timed_out"
    #: The task set its own status to ``failed`` and returned (the seed allowed it).
    MARKED_FAILED = "marked_failed"
    #: ``graph.cancel_task`` stopped it, or stopped it from starting.
    CANCELLED = "cancelled"
    #: Its worker was lost more often than ``max_lost_attempts`` allows.
    WORKER_LOST = "worker_lost"
    #: Its assignment or its result could not be serialised or sent.
    UNSENDABLE = "unsendable"
    #: A graph call it made without waiting for an answer failed.
    CALL_FAILED = "call_failed"
    #: The worker could not run it: its function or worker context failed to load.
    WORKER_ERROR = "worker_error"
    #: A condition it waited on failed, so it never ran.
    PRECONDITION_FAILED = "precondition_failed"


#: Task states after which nothing changes.
FINAL_TASK_STATUSES: Final = frozenset(
    {TaskStatus.SUCCESS, TaskStatus.FAILED, TaskStatus.PRECONDITION_FAILED}
)
