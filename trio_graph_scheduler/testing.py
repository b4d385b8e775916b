"""Running a coordinator and workers inside one trio program, for tests and experiments.

:func:`run_local_cluster` runs a graph the distributed way (coordinator, workers, the
wire protocol, every value serialised) without starting processes: over loopback TCP on a
port the OS picks, or over in-memory streams. Use it to test task code that will run on
remote workers. For real processes, run ``tgs-coordinator`` and ``tgs-worker``.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import trio
import trio.testing

from .coordinator.config import CoordinatorConfig
from .coordinator.server import Coordinator
from .worker.config import WorkerConfig
from .worker.runner import Worker

if TYPE_CHECKING:
    from .coordinator.run import RunSummary
    from .coordinator.task_graph import TaskGraph


class MemoryListener(trio.abc.Listener[trio.abc.Stream]):
    """A listener whose connections are in-memory stream pairs; :meth:`connect` dials it."""

    def __init__(self) -> None:
        self._send, self._receive = trio.open_memory_channel[trio.abc.Stream](0)
        self._closed = False

    async def connect(self) -> trio.abc.Stream:
        """Open a connection to this listener; return the client's end.

        Raises:
            OSError: the listener is closed (as a refused TCP connection would).
        """
        client, server = trio.testing.memory_stream_pair()
        try:
            await self._send.send(server)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            raise ConnectionRefusedError("the in-memory listener is closed") from None
        return client

    async def accept(self) -> trio.abc.Stream:
        """Wait for the next connection; return the server's end."""
        return await self._receive.receive()

    async def aclose(self) -> None:
        """Refuse further connections."""
        self._receive.close()
        await trio.lowlevel.checkpoint()


async def run_local_cluster(
    graph: TaskGraph,
    workers: int = 2,
    *,
    config: CoordinatorConfig | None = None,
    worker_config: WorkerConfig | None = None,
    in_memory: bool = False,
) -> RunSummary:
    """Run ``graph`` on a coordinator and ``workers`` workers, all in this trio program.

    Args:
        graph: the graph, with its first tasks created.
        workers: how many workers to start.
        config: the coordinator's settings (default: 127.0.0.1, a port the OS picks).
        worker_config: the workers' settings; its ``url`` is replaced by the coordinator's.
            Each worker is named ``worker-N``.
        in_memory: connect over in-memory streams instead of loopback TCP.

    Returns:
        How the run ended.
    """
    coordinator = Coordinator(graph, config or CoordinatorConfig())
    listener = MemoryListener() if in_memory else None
    async with trio.open_nursery() as nursery:
        await nursery.start(coordinator.serve, [listener] if listener else None)
        for index in range(workers):
            settings = _worker_settings(worker_config, coordinator.url, index)
            worker = Worker(settings, open_stream=listener.connect if listener else None)
            nursery.start_soon(worker.run)
    assert coordinator.summary is not None
    return coordinator.summary


def _worker_settings(base: WorkerConfig | None, url: str, index: int) -> WorkerConfig:
    config = WorkerConfig(url=url) if base is None else base
    # The workers share this program's one event loop: one watchdog is enough.
    watch = config.blocked_loop_warning if index == 0 else 0.0
    return dataclasses.replace(
        config, url=url, name=f"worker-{index + 1}", blocked_loop_warning=watch
    )
