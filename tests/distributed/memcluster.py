"""A coordinator and workers in this trio program, over in-memory streams.

Task functions defined here (and in the test modules) are user code: the coordinator
cloudpickles them by value, so they must not count on shared module state. They report
what they saw through their results instead.
"""

from __future__ import annotations

import itertools
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import trio

from trio_graph_scheduler import (
    Coordinator,
    CoordinatorConfig,
    RunSummary,
    TaskGraph,
    Worker,
    WorkerConfig,
)
from trio_graph_scheduler.testing import MemoryListener

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterable, Iterator

#: Every test runs under this bound (virtual seconds under the autojump clock).
TIME_LIMIT = 10


class RecordingListener(MemoryListener):
    """A :class:`MemoryListener` that keeps the coordinator's end of each connection."""

    def __init__(self) -> None:
        super().__init__()
        self.accepted: list[trio.abc.Stream] = []

    async def accept(self) -> trio.abc.Stream:
        stream = await super().accept()
        self.accepted.append(stream)
        return stream


@dataclass
class Cluster:
    """A serving coordinator, its in-memory listener, and the nursery workers run in."""

    coordinator: Coordinator
    listener: RecordingListener
    nursery: trio.Nursery
    workers: list[Worker] = field(default_factory=list)
    _names: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def worker(self, **settings: Any) -> Worker:
        """A new worker dialling this cluster's listener (not started)."""
        settings.setdefault("name", f"w{next(self._names)}")
        config = WorkerConfig(url=self.coordinator.url, **settings)
        worker = Worker(config, open_stream=self.listener.connect)
        self.workers.append(worker)
        return worker

    def start_worker(self, **settings: Any) -> Worker:
        """Start a worker; its ``run`` may still be connecting when this returns."""
        worker = self.worker(**settings)
        self.nursery.start_soon(worker.run)
        return worker

    async def cut_connections(self) -> None:
        """Break every connection accepted so far, as a network failure would."""
        for stream in self.listener.accepted:
            await stream.aclose()

    async def join_worker(self, **settings: Any) -> Worker:
        """Start a worker and wait until the coordinator has welcomed it."""
        worker = self.worker(**settings)
        await self.nursery.start(worker.run)
        return worker


@asynccontextmanager
async def open_cluster(
    graph: TaskGraph, config: CoordinatorConfig | None = None
) -> AsyncIterator[Cluster]:
    """Serve ``graph``; the block starts workers; leaving it waits for the run to end."""
    listener = RecordingListener()
    coordinator = Coordinator(graph, config or CoordinatorConfig())
    async with trio.open_nursery() as nursery:
        await nursery.start(coordinator.serve, [listener])
        yield Cluster(coordinator, listener, nursery)


async def run_cluster(
    graph: TaskGraph,
    workers: int = 2,
    *,
    config: CoordinatorConfig | None = None,
    **worker_settings: Any,
) -> tuple[RunSummary, list[Worker]]:
    """Run ``graph`` on ``workers`` identical workers; return the summary and the workers.

    Also checks the scheduler's invariants once the run is over.
    """
    async with open_cluster(graph, config) as cluster:
        for _ in range(workers):
            cluster.start_worker(**worker_settings)
    summary = cluster.coordinator.summary
    assert summary is not None
    graph.check_invariants()
    return summary, cluster.workers


def peak_overlap(intervals: Iterable[tuple[float, float]]) -> int:
    """The most half-open ``[start, end)`` intervals that overlap at one instant."""
    pairs = list(intervals)
    # At equal times an end (-1) sorts before a start (+1): back to back is no overlap.
    events = sorted([(start, 1) for start, _ in pairs] + [(end, -1) for _, end in pairs])
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


async def timed(seconds: float = 1.0, **_: Any) -> tuple[float, float]:
    """Sleep; return when the task started and ended (trio time)."""
    start = trio.current_time()
    await trio.sleep(seconds)
    return start, trio.current_time()


def results_of(graph: TaskGraph, handle: str) -> list[Any]:
    """The results of every task of ``graph`` running ``handle``, in creation order."""
    return [n.task_result for n in graph.nodes.values() if n.task_handle == handle]


def statuses(graph: TaskGraph) -> dict[str, str]:
    """Each task's status by handle (handles must be unique in the graph)."""
    return {n.task_handle: str(n.task_status) for n in graph.nodes.values()}
