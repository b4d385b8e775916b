"""The coordinator: owns the graph, serves workers over WebSocket until the graph ends."""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import trio
import trio_websocket

from ..protocol.session import HANDSHAKE_MAX_FRAME_BYTES, CloseCode
from ..shared.pump import RECEIVE_BUFFER_BYTES
from .config import CoordinatorConfig, server_tls_context
from .dashboard.server import Dashboard
from .dispatch import PrefetchLedger
from .journal import Journal
from .listeners import CappedListener
from .result_store import configure_results, format_size
from .run import GraphRun, RunSummary, summarize_run
from .shipping import pickle_for_workers
from .throttle import FailedHandshakes
from .unserved import warn_about_unserved_loops
from .worker_session import WorkerRecord, WorkerSession

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from .task_graph import TaskGraph

logger = logging.getLogger("tgs.coordinator")


@dataclass(frozen=True, slots=True)
class CoordinatorStatistics:
    """What happened to workers and results during a run, as
    :meth:`Coordinator.statistics` returns it (a snapshot)."""

    #: Workers welcomed, and workers dropped (connection lost, silent, or misbehaving).
    workers_joined: int = 0
    workers_lost: int = 0
    #: Runs lost with their worker (each runs again, or fails after too many losses).
    tasks_lost: int = 0
    #: Answers for leases their worker did not hold: never recorded (fencing).
    results_dropped: int = 0
    #: Tasks taken back from a worker that had not started them, for a waiting worker.
    tasks_taken_back: int = 0


#: The URL of a coordinator served on in-memory listeners (host and port mean nothing).
MEMORY_URL: Final = "ws://in-memory:0"


class Coordinator:
    """Serves one graph to remote workers. Start it with :func:`serve_coordinator`.

    Args:
        graph: the graph to run, with its first tasks created.
        config: where to listen and how to treat workers.

    Raises:
        GraphDefinitionError: a function or context init function of the graph cannot be
            pickled, so it could not be shipped to workers.

    Attributes:
        graph: the graph being run.
        config: its settings.
        url: ``ws://host:port`` once listening.
        sessions: the welcomed workers' sessions (each adds and removes itself).
        workers: every worker welcomed during the run, including those that left.
        summary: how the run ended, once it has.
        dashboard: the live web dashboard, while one is served (``config.dashboard``).
    """

    def __init__(self, graph: TaskGraph, config: CoordinatorConfig) -> None:
        self.graph = graph
        self.config = config
        self.url = ""
        #: When serving began (``time.time()``), once it has.
        self.started_at: float | None = None
        #: When the run ended (every task ended, or it was stopped), once it has; the
        #: dismissal of the workers comes after.
        self.ended_at: float | None = None
        self.summary: RunSummary | None = None
        self.sessions: set[WorkerSession] = set()
        #: Every worker welcomed during the run, by id, including those that left.
        self.workers: dict[str, WorkerRecord] = {}
        #: Tasks a worker reported blocking its event loop, with the longest block in
        #: seconds: a loss they are charged with says so (at most one entry per task).
        self.loop_blockers: dict[str, float] = {}
        self._statistics = CoordinatorStatistics()
        self._leases = itertools.count(1)
        self._worker_ids = itertools.count(1)
        # Pickled once, up front: a function that cannot travel is an error now, not
        # when the first worker asks for it.
        self._pickled_functions = pickle_for_workers(graph.expected_functions, "function")
        self._pickled_inits = pickle_for_workers(
            graph.worker_context_init_functions, "worker context init function of loop"
        )
        self._run: GraphRun | None = None
        self.dashboard: Dashboard | None = None
        self._interrupted = False
        # Resumed from a journal: workers of the dead coordinator may still be between
        # two connection attempts when the run ends, so it listens a little longer.
        self._resumed = False
        # Set (and replaced) whenever a worker joins or leaves.
        self._membership = trio.Event()
        self._started = trio.Event()
        self._finished = trio.Event()
        self._waiting_for_workers: trio.CancelScope | None = None
        #: Wrong tokens by peer address: each makes the next refusal wait longer.
        self.failed_handshakes = FailedHandshakes()
        # Per loop, the worker_index numbers free below the lowest never given (a heap),
        # and that one: the numbers connected workers' slots hold are the others.
        self._free_indexes: dict[str, list[int]] = {}
        self._next_index: dict[str, int] = {}
        #: The clock of the dispatch's timestamps (trio's: a test's autojump clock too).
        self.clock: Callable[[], float] = trio.current_time
        #: Tasks sent to workers and not started there, oldest first (see dispatch.py).
        self.prefetched = PrefetchLedger(after=config.heartbeat_interval)

    def statistics(self) -> CoordinatorStatistics:
        """What happened to workers and results so far."""
        return self._statistics

    def count(self, **increments: int) -> None:
        """Add to the run's statistics, e.g. ``count(workers_lost=1)`` (rare events only:
        each call copies the snapshot)."""
        current = self._statistics
        self._statistics = dataclasses.replace(
            current, **{name: getattr(current, name) + n for name, n in increments.items()}
        )

    @property
    def stopped(self) -> bool:
        """True once :meth:`stop` ended the run (a signal, say) before every task ended."""
        return self._interrupted

    @property
    def ended(self) -> bool:
        """True once every task has ended, or the run was stopped."""
        return self._run is not None and self._run.ended.is_set()

    def new_lease(self) -> int:
        """A lease id never used before by this coordinator."""
        return next(self._leases)

    def new_worker_id(self) -> str:
        """A worker id never used before by this coordinator."""
        return f"worker-{next(self._worker_ids)}"

    def take_slot_indexes(self, loop: str, count: int) -> list[int]:
        """``count`` ``worker_index`` numbers for a joining worker's slots of ``loop``: the
        lowest that no connected worker's slot of that loop holds. O(count log freed):
        150 workers of a loop of 3,000 used to cost a scan of every number held per join."""
        free = self._free_indexes.setdefault(loop, [])
        taken = [heapq.heappop(free) for _ in range(min(count, len(free)))]
        first = self._next_index.get(loop, 0)
        fresh = count - len(taken)
        taken += range(first, first + fresh)
        self._next_index[loop] = first + fresh
        return taken

    def free_slot_indexes(self, loop: str, indexes: list[int]) -> None:
        """A worker left: its slots' numbers may go to the next worker that joins."""
        free = self._free_indexes.setdefault(loop, [])
        for number in indexes:
            heapq.heappush(free, number)

    def pickled_function(self, handle: str) -> bytes:
        """The graph function ``handle``, cloudpickled."""
        return self._pickled_functions[handle]

    def pickled_context_inits(self, loops: Sequence[str]) -> dict[str, bytes]:
        """The worker-context init functions of ``loops`` that have one, cloudpickled."""
        return {loop: self._pickled_inits[loop] for loop in loops if loop in self._pickled_inits}

    def stop(self) -> None:
        """End the run now: workers are told to stop (cancelling their tasks) and
        :meth:`serve` returns a summary marked ``interrupted``."""
        if not self.ended:
            self._interrupted = True
            if self._run is not None:
                self._run.end()
            if self._waiting_for_workers is not None:
                self._waiting_for_workers.cancel()

    async def wait_started(self) -> None:
        """Return once tasks are being handed out (after ``min_workers`` joined)."""
        await self._started.wait()

    async def wait_ended(self) -> None:
        """Return once every task has ended, or the run was stopped."""
        await self._finished.wait()

    async def wait_for_workers(self, count: int) -> None:
        """Return once at least ``count`` workers are connected and ready for work."""
        while sum(session.claimed for session in self.sessions) < count:
            await self._membership.wait()

    def membership_changed(self) -> None:
        """A worker joined, became ready for work, or left (called by its session)."""
        self._membership.set()
        self._membership = trio.Event()

    async def serve(
        self,
        listeners: Sequence[trio.abc.Listener[trio.abc.Stream]] | None = None,
        *,
        task_status: trio.TaskStatus[Coordinator] = trio.TASK_STATUS_IGNORED,
    ) -> RunSummary:
        """Serve workers until the graph has ended and they have been told so.

        Args:
            listeners: serve on these instead of TCP listeners on ``config.host`` and
                ``config.port`` (tests pass in-memory listeners).

        Raises:
            GraphStalledError: tasks remain that can never run (a dependency cycle).
            OSError: the address cannot be listened on (in use, not local, ...).
            TGSError: the graph is already executing.
            JournalError: ``config.journal`` records another graph, or is damaged.
        """
        config = self.config
        # Before the journal is replayed: the results it holds respect the limit too.
        configure_results(
            self.graph,
            memory_limit=config.memory_limit,
            release_results=config.release_results,
            spill_dir=config.spill_dir,
        )
        journal = None if config.journal is None else Journal.open(config.journal, self.graph)
        try:
            return await self._serve(listeners, journal, task_status)
        finally:
            if journal is not None:
                journal.close()

    async def _serve(
        self,
        listeners: Sequence[trio.abc.Listener[trio.abc.Stream]] | None,
        journal: Journal | None,
        task_status: trio.TaskStatus[Coordinator],
    ) -> RunSummary:
        run = GraphRun(self.graph, journal)
        if run.resumed is not None and run.resumed.events:
            self._resumed = True
            logger.info(
                "resumed from the journal %s: %d task(s), %d of them ended before",
                self.config.journal,
                run.resumed.tasks,
                run.resumed.ended,
            )
        if listeners is None:
            listeners = await self._open_listeners()
        dashboard_listeners: Sequence[trio.abc.Listener[trio.abc.Stream]] = ()
        if self.config.dashboard is not None and self.dashboard is None:
            dashboard_listeners = await self.make_dashboard().listen()
        self._run = run
        self.graph.scheduler.max_lost_attempts = self.config.max_lost_attempts
        try:
            async with trio.open_nursery() as nursery:
                capped = [CappedListener(each, self.config.max_connections) for each in listeners]
                server = trio_websocket.WebSocketServer(
                    self._handle_connection,
                    capped,  # type: ignore[arg-type]  # any trio Listener works
                    handler_nursery=nursery,
                    # Small until the worker proved it holds the token (see
                    # WorkerSession._welcome): a stranger cannot make us buffer 16 MiB.
                    max_message_size=HANDSHAKE_MAX_FRAME_BYTES,
                    receive_buffer_size=RECEIVE_BUFFER_BYTES,
                    connect_timeout=self.config.handshake_timeout,
                    disconnect_timeout=self.config.handshake_timeout,
                )
                await nursery.start(server.run)
                self.url = _url_of(listeners[0], self.config.host)
                unfinished = self.graph.scheduler.unfinished
                logger.info("listening on %s, %d task(s) to run", self.url, unfinished)
                if dashboard_listeners and self.dashboard is not None:
                    nursery.start_soon(self.dashboard.serve, dashboard_listeners)
                task_status.started(self)
                await self._wait_for_enough_workers()
                self.started_at = time.time()
                run.start(nursery)
                nursery.start_soon(warn_about_unserved_loops, self)
                self._started.set()
                if self._interrupted:  # stopped before it started
                    run.end()
                await run.ended.wait()
                self.ended_at = time.time()
                run.stop()  # hand out nothing more, while workers are dismissed
                self._finished.set()
                await self._dismiss_workers()
                nursery.cancel_scope.cancel()
        finally:
            run.stop()
            if dashboard_listeners:  # its own dashboard ended with the nursery
                self.dashboard = None
        run.raise_if_stalled()
        self.summary = summarize_run(self.graph, interrupted=self._interrupted)
        _log_results(self.graph)
        return self.summary

    def make_dashboard(self) -> Dashboard:
        """The live web dashboard for ``config.dashboard``, to serve (:attr:`dashboard`).

        :meth:`serve` makes and serves one by itself for as long as it runs;
        ``tgs-coordinator`` makes it first instead, so that it outlives the run (and
        links the files the run wrote).
        """
        host, port = self.config.dashboard_address
        self.dashboard = Dashboard(
            self, host=host, port=port, token=self.config.token, tls=server_tls_context(self.config)
        )
        return self.dashboard

    async def _open_listeners(self) -> Sequence[trio.abc.Listener[trio.abc.Stream]]:
        config = self.config
        tls = server_tls_context(config)
        if tls is None:
            return await trio.open_tcp_listeners(config.port, host=config.host)
        return await trio.open_ssl_over_tcp_listeners(
            config.port,
            tls,
            host=config.host,
            # No TLS close_notify exchange at close: the WebSocket closing handshake
            # already says the stream ended on purpose, and a peer that vanished could
            # otherwise hold the close up.
            https_compatible=True,
        )

    @property
    def graph_succeeded(self) -> bool:
        """True when the run ended and every task succeeded. O(tasks)."""
        return summarize_run(self.graph, interrupted=self._interrupted).succeeded

    async def _wait_for_enough_workers(self) -> None:
        wanted = self.config.min_workers
        if wanted == 0:
            return
        logger.info("waiting for %d worker(s) before handing out tasks", wanted)
        with trio.CancelScope() as self._waiting_for_workers:  # stop() cancels it
            await self.wait_for_workers(wanted)
        self._waiting_for_workers = None

    async def _dismiss_workers(self) -> None:
        reason = "the coordinator was stopped" if self._interrupted else "the graph has ended"
        succeeded = self.graph_succeeded
        for session in self.sessions:
            session.shutdown(reason, succeeded)
        # After a resumed run, the whole grace: a worker retrying its connection (every
        # 2 s at most) joins, is dismissed at once and exits 0, instead of retrying on
        # after the coordinator has gone.
        with trio.move_on_after(self.config.shutdown_grace):
            while self.sessions or self._resumed:
                await self._membership.wait()
        if self.sessions:
            logger.warning("%d worker(s) did not leave in time", len(self.sessions))

    async def _handle_connection(self, request: trio_websocket.WebSocketRequest) -> None:
        try:
            ws = await request.accept()
        except trio_websocket.ConnectionClosed:
            return  # the peer left during the WebSocket handshake
        try:
            await WorkerSession(self, ws).run()
        except Exception:
            # A bug in serving one worker: say so loudly, and drop only that worker (its
            # tasks were handed back); the run goes on.
            logger.exception("internal error while serving a worker; it was dropped")
            with trio.move_on_after(1):
                await ws.aclose(CloseCode.INTERNAL_ERROR, "internal error")


async def serve_coordinator(
    graph: TaskGraph,
    config: CoordinatorConfig | None = None,
    *,
    listeners: Sequence[trio.abc.Listener[trio.abc.Stream]] | None = None,
    task_status: trio.TaskStatus[Coordinator] = trio.TASK_STATUS_IGNORED,
) -> RunSummary:
    """Run ``graph`` on remote workers: serve them until every task has ended.

    Use with ``nursery.start`` to learn the address once listening (port 0 lets the OS
    choose)::

        coordinator = await nursery.start(serve_coordinator, graph)
        nursery.start_soon(run_worker, WorkerConfig(url=coordinator.url))

    Args:
        graph: the graph, with its first tasks created.
        config: where to listen and how to treat workers; defaults to 127.0.0.1, port 0.
        listeners: serve on these trio listeners instead of opening TCP ones (tests use
            in-memory listeners).

    Returns:
        How the run ended (also left in ``coordinator.summary``).

    Raises:
        GraphStalledError: tasks remain that can never run (a dependency cycle).
    """
    coordinator = Coordinator(graph, config or CoordinatorConfig())
    return await coordinator.serve(listeners, task_status=task_status)


def _log_results(graph: TaskGraph) -> None:
    """Say what the memory limit and release did, if anything."""
    holder = graph.scheduler.results
    if holder is None or not (holder.spilled or holder.released):
        return
    logger.info(
        "results: %d moved to disk, %d read back from it, %d released; at most %s held in memory",
        holder.spilled,
        holder.loaded,
        holder.released,
        format_size(holder.peak_held),
    )


def _url_of(listener: trio.abc.Listener[trio.abc.Stream], host: str) -> str:
    scheme = "ws"
    if isinstance(listener, trio.SSLListener):
        scheme = "wss"
        listener = listener.transport_listener
    socket = getattr(listener, "socket", None)
    if socket is None:
        return MEMORY_URL
    address, port = socket.getsockname()[:2]
    return f"{scheme}://{address if ':' not in address else f'[{address}]'}:{port}"
