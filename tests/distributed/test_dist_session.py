"""The coordinator's session with one worker, driven by hand: what goes out, in what order.

No connection is needed for these: the session is given a graph and leases, and its
outbox is read the way its sender reads it.
"""

from __future__ import annotations

from typing import Any

from trio_graph_scheduler import Coordinator, CoordinatorConfig, TaskGraph, TaskNode, WorkerLoop
from trio_graph_scheduler.coordinator.worker_session import (
    LoopClaim,
    WorkerSession,
)
from trio_graph_scheduler.protocol import Assign, Cancel, Shutdown


async def noop(**_: Any) -> None:
    return None


def session_with_leases(count: int) -> tuple[TaskGraph, WorkerSession, list[TaskNode]]:
    """A session holding ``count`` leased tasks whose assignments were not sent yet."""
    graph = TaskGraph({"f": noop}, [WorkerLoop("default", count)])
    for _ in range(count):
        graph.create_task_nowait("f")
    coordinator = Coordinator(graph, CoordinatorConfig())
    coordinator.clock = lambda: 0.0  # no trio run here
    session = WorkerSession(coordinator, None)  # type: ignore[arg-type]  # never used here
    graph.scheduler.start()
    queue = graph.scheduler.loops["default"]
    claim = session._claims["default"] = LoopClaim(session, "default")
    claim.held = count
    nodes = []
    for lease in range(1, count + 1):
        node = queue.claim_nowait()
        assert node is not None
        # What the loop queue's dispatch does through WorkerSession._lease.
        node._claimant = session
        session.leases[lease] = node
        session._to_assign.append((lease, node))
        nodes.append(node)
    return graph, session, nodes


def test_shutdown_hands_back_what_was_not_sent_and_goes_out_alone() -> None:
    graph, session, nodes = session_with_leases(2)
    session.shutdown("the coordinator was stopped", graph_succeeded=False)
    messages = session._take_outbox()
    assert [type(message) for message in messages] == [Shutdown]
    assert [node.task_status for node in nodes] == ["ready_for_execution"] * 2
    assert session.leases == {}
    graph.check_invariants()


def test_assignments_go_out_before_what_was_queued_after_them() -> None:
    _, session, nodes = session_with_leases(2)
    session._outbox.append(Cancel(lease=99))
    messages = session._take_outbox()
    assert [type(message) for message in messages] == [Assign, Assign, Cancel]
    assigned = [message.task_uid for message in messages if isinstance(message, Assign)]
    assert assigned == [node.uid for node in nodes]


def test_cancelling_a_task_whose_assignment_was_not_sent_ends_it_here() -> None:
    graph, session, nodes = session_with_leases(2)
    claim = session._claims["default"] = LoopClaim(session, "default")
    assert graph.cancel_task(nodes[0].uid, "not wanted")
    assert nodes[0].task_status == "failed"
    assert nodes[0].exception_trace == "cancelled: not wanted\n"
    # The worker never saw it: no Cancel goes out, its credit is its own again.
    messages = session._take_outbox()
    assert [type(message) for message in messages] == [Assign]
    assert claim.credit == 1
    graph.check_invariants()
