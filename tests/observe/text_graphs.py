"""Graphs and a hand driver for the text views' tests (explain, summary, report, progress).

The :class:`Hand` plays the worker slots, as ``tests/core/test_scheduler.py``'s Driver
does, so that a test puts tasks into exact states and sets their times by hand.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from trio_graph_scheduler import TaskGraph, TaskPolicy, WorkerLoop

if TYPE_CHECKING:
    from collections.abc import Mapping

    from trio_graph_scheduler import TaskNode

#: What a failing function's traceback looks like, for tasks failed by hand.
BOOM = 'Traceback (most recent call last):\n  File "x.py", line 1\nValueError: boom\n'


async def noop(**_: Any) -> None:
    return None


def make_graph(
    loops: Mapping[str, int] | None = None,
    *,
    default: int = 10,
    policies: Mapping[str, TaskPolicy] | None = None,
) -> TaskGraph:
    """Functions ``f`` and ``g`` in ``default``; one function per extra loop, named after it."""
    loops = dict(loops or {})
    specs = [WorkerLoop("default", default, None)]
    specs += [WorkerLoop(name, concurrency, [name]) for name, concurrency in loops.items()]
    functions = {"f": noop, "g": noop} | dict.fromkeys(loops, noop)
    return TaskGraph(functions, specs, task_policies=dict(policies or {}))


class _Alone:
    """The lone claimant of a suspect; its cancels go to the hand."""

    def __init__(self, hand: Hand) -> None:
        self.hand = hand

    def cancel(self, node: TaskNode) -> None:
        self.hand.cancel(node)


class Hand:
    """Claims tasks and reports their outcomes, checking the core's invariants each step."""

    def __init__(self, graph: TaskGraph, *, start: bool = True) -> None:
        self.graph = graph
        self.scheduler = graph.scheduler
        #: Tasks whose cancel the scheduler asked for, in order.
        self.cancelled: list[TaskNode] = []
        # Retries are requeued by hand (requeue), never by a timer.
        self.scheduler.on_retry = lambda node, delay: None
        if start:
            self.scheduler.start()
        graph.check_invariants()

    def cancel(self, node: TaskNode) -> None:  # the Claimant protocol
        self.cancelled.append(node)

    def claim(self, loop: str = "default", *, worker: str = "local") -> TaskNode:
        queue = self.scheduler.loops[loop]
        node = queue.claim_nowait(self)
        if node is None:  # a suspect runs alone: a claimant of its own, that cancels here
            node = queue.claim_suspect(_Alone(self))
        assert node is not None, f"nothing ready in {loop}"
        node.worker = worker
        self.graph.check_invariants()
        return node

    def start(self, node: TaskNode, *, worker: str = "local") -> TaskNode:
        """Claim exactly ``node`` (it must be first in its loop's queue)."""
        claimed = self.claim(node._loop.name, worker=worker)
        assert claimed is node, (claimed, node)
        return node

    def succeed(self, node: TaskNode, result: object = None) -> None:
        self.scheduler.task_succeeded(node, result)
        self.graph.check_invariants()

    def fail(self, node: TaskNode, trace: str | None = BOOM) -> None:
        self.scheduler.task_failed(node, trace)
        self.graph.check_invariants()

    def run(self, node: TaskNode, *, ok: bool = True, worker: str = "local") -> None:
        self.start(node, worker=worker)
        if ok:
            self.succeed(node)
        else:
            self.fail(node)


def timed(node: TaskNode, started_at: float, ended_at: float | None) -> None:
    """Set a task's run times by hand, so durations are exact."""
    node.started_at = started_at
    node.ended_at = ended_at
