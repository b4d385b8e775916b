"""Answering a status query (``tgs-status``): the run's state, as one message.

Built on demand from the graph and the connected sessions, so it costs O(tasks) per
query and nothing while nobody asks.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Final

import msgspec

from ...protocol.codec import FrameTooLargeError, encode_frame
from ...protocol.messages import (
    ListedTask,
    LoopStatus,
    RunningTask,
    StatusReply,
    TaskFilter,
    WorkerStatus,
)
from ...shared.errors import UnknownUidError
from ...shared.states import TaskStatus
from .task_list import list_tasks, unknown_function
from .wording import worker_lost_line

if TYPE_CHECKING:
    from ..server import Coordinator

#: How many of the longest-running tasks a reply lists.
SLOWEST_SHOWN: Final = 10
#: How many of the workers lost while running tasks a reply names (the latest).
LOST_SHOWN: Final = 10


def build_status_reply(
    coordinator: Coordinator, why: str | None, tasks: TaskFilter | None = None
) -> StatusReply:
    """The coordinator's state now, the answer to ``why`` (a task's uid or key, or a
    condition's uid) if asked, and the tasks ``tasks`` selects if asked."""
    graph = coordinator.graph
    now = time.time()
    sessions = sorted(coordinator.sessions, key=lambda session: session.worker_id)
    serving = {
        name: sum(1 for session in sessions if name in session.loops)
        for name in graph.scheduler.loops
    }
    running = [node for node in graph.nodes.values() if node.task_status is TaskStatus.IN_PROGRESS]
    running.sort(key=lambda node: node.started_at or now)
    wanted = coordinator.config.min_workers
    waiting = 0
    if coordinator.started_at is None and wanted:
        # As Coordinator.wait_for_workers counts: the workers ready for work.
        waiting = max(0, wanted - sum(session.claimed for session in sessions))
    reply = StatusReply(
        elapsed=max(0.0, now - (coordinator.started_at or now)),
        tasks_by_status=dict(graph.statistics().tasks_by_status),
        loops=[
            LoopStatus(
                name=name,
                concurrency=queue.concurrency,
                ready=len(queue.ready),
                running=queue.running,
                workers=serving[name],
            )
            for name, queue in graph.scheduler.loops.items()
        ],
        workers=[
            WorkerStatus(
                worker_id=session.worker_id,
                name=session.worker_name,
                loops=list(session.loops),
                joined_at=coordinator.workers[session.worker_id].joined_at,
                running=[node.uid for node in session.leases.values()],
            )
            for session in sessions
        ],
        slowest=[
            RunningTask(
                task_uid=node.uid,
                handle=node.task_handle,
                worker=node.worker or "",
                running_for=max(0.0, now - (node.started_at or now)),
                attempt=node.attempts,
            )
            for node in running[:SLOWEST_SHOWN]
        ],
        explanation=None if why is None else _explain(coordinator, why),
        why_unknown=why is not None
        and why not in graph.nodes
        and why not in graph.conditions
        and graph.get_task_by_key(why) is None,
        lost=[
            worker_lost_line(r.worker_id, r.name, r.lost_while_running, r.left_because)
            for r in coordinator.workers.values()
            if r.lost_while_running
        ][-LOST_SHOWN:],
        waiting_for_workers=waiting,
        min_workers=wanted,
        **({} if tasks is None else _listing(coordinator, tasks)),
    )
    return reply if tasks is None else _within_frame(reply, coordinator.config.max_frame_bytes)


def _within_frame(reply: StatusReply, limit: int) -> StatusReply:
    """``reply``, with fewer listed tasks if that many would not fit in one frame of
    ``limit`` bytes (``--max-frame-bytes``, 64 KiB at the least: about 800 rows).
    ``tasks_matched`` stays, so the client says how many more matched."""
    while True:
        try:
            encode_frame([reply], max_frame_bytes=limit)
        except FrameTooLargeError:
            if not reply.tasks:
                raise  # nothing left to take out: a bug, not a long listing
            reply = msgspec.structs.replace(reply, tasks=reply.tasks[: len(reply.tasks) // 2])
        else:
            return reply


def _listing(coordinator: Coordinator, query: TaskFilter) -> dict[str, Any]:
    """The reply's fields for ``tgs-status --tasks``."""
    graph = coordinator.graph
    if query.function is not None:
        error = unknown_function(query.function, graph.task_functions)
        if error is not None:
            return {"tasks_error": error}
    listing = list_tasks(
        graph.nodes.values(),
        statuses=frozenset(query.statuses),
        function=query.function,
        limit=query.limit,
    )
    entries = [
        ListedTask(
            task_uid=row.uid,
            key=row.key,
            handle=row.function,
            status=row.status,
            worker=row.worker,
            started_at=row.started_at,
            ended_at=row.ended_at,
            attempts=row.attempts,
        )
        for row in listing.rows
    ]
    return {"tasks": entries, "tasks_matched": listing.matched}


def _explain(coordinator: Coordinator, uid: str) -> str:
    try:
        return coordinator.graph.explain(
            uid, workers=list(coordinator.sessions), lost_workers=coordinator.workers.values()
        )
    except UnknownUidError as exc:
        return str(exc)
