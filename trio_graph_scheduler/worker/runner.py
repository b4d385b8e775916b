"""A worker: connects to its coordinator, runs what it is assigned, reconnects if cut off."""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Final

import trio
import trio_websocket

from ..shared.errors import CoordinatorUnreachableError, LinkError
from ..shared.pump import RECEIVE_BUFFER_BYTES
from ..shared.watchdog import LoopWatchdog
from .connect import (
    CONNECT_ERRORS,
    CoordinatorAddress,
    EndWatchingStream,
    StreamOpener,
    describe_failure,
    in_connection_nursery,
    mismatched_scheme,
    retry_delays,
    speaks_tls,
    tls_failure,
)
from .link import CoordinatorLink, LinkEnd, WorkerCounts, WorkerStatistics, describe_served

if TYPE_CHECKING:
    from ..protocol.messages import Assign
    from ..shared.watchdog import BlockedLoop
    from .config import WorkerConfig

logger = logging.getLogger("tgs.worker")

#: Seconds between the "still no coordinator" lines while connection attempts fail.
STILL_WAITING_NOTE: Final = 10.0


class HandshakeEnded(ConnectionResetError):
    """The connection ended before the WebSocket handshake had an answer."""


class Worker:
    """One worker process's runtime: serve the coordinator until it dismisses us.

    Usage::

        worker = Worker(WorkerConfig(url="ws://127.0.0.1:8765"))
        await worker.run()          # returns once the graph has ended

    Args:
        config: where the coordinator is and what to serve.
        open_stream: opens the byte stream to the coordinator; by default a TCP
            connection to ``config.url``. Tests pass in-memory streams.

    Raises:
        ConfigError: ``config.url`` is not a ``ws://`` or ``wss://`` URL, or its CA file
            cannot be loaded.
    """

    def __init__(self, config: WorkerConfig, *, open_stream: StreamOpener | None = None) -> None:
        self.config = config
        self._address = CoordinatorAddress.parse(config.url)
        self._open_stream = open_stream or self._address.opener(config.tls_ca)
        self._link: CoordinatorLink | None = None
        # While connecting: cancelled to stop trying (a deadline bounds it too).
        self._connecting: trio.CancelScope | None = None
        self._stopping = False
        self._counts = WorkerCounts()
        # What blocked the loop, appended by the watchdog's thread; the links send it.
        self._blocked_loops: list[BlockedLoop] = []

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve the coordinator until it says the graph has ended, or :meth:`stop`.

        ``task_status.started()`` is called once the first connection is welcomed.

        Raises:
            CoordinatorUnreachableError: no connection within ``connect_timeout``, at
                start or after losing the coordinator.
            WorkerRejectedError: the coordinator refused this worker (a wrong token, a
                loop the graph does not have).
            LinkError: TLS failed (the coordinator's certificate is not trusted).
            RemoteProtocolError: the coordinator broke the protocol.
        """
        watchdog = None
        if self.config.blocked_loop_warning > 0:
            watchdog = LoopWatchdog(
                self.config.blocked_loop_warning,
                name_task=_name_assigned,
                logger=logger,
                on_blocked=self._blocked_loops.append,
            )
            watchdog.start()
        try:
            started = False
            while not self._stopping:
                end = await self._connect_and_serve(task_status if not started else None)
                started = True
                if end is not LinkEnd.LOST:
                    return
                logger.info("reconnecting to %s", self.config.url)
        finally:
            if watchdog is not None:
                watchdog.stop()

    def statistics(self) -> WorkerStatistics:
        """What this worker has done so far, over all its connections."""
        return self._counts.snapshot()

    def stop(self) -> None:
        """Hand the running tasks back to the coordinator and leave; :meth:`run` returns."""
        self._stopping = True
        if self._link is not None:
            self._link.stop()
        elif self._connecting is not None:
            self._connecting.cancel()  # nothing to hand back: stop trying at once

    async def _connect_and_serve(self, task_status: trio.TaskStatus[None] | None) -> LinkEnd:
        """Connect (retrying until ``connect_timeout``), then serve until the link ends."""
        config = self.config
        delays = retry_delays()
        last_error = "no attempt finished in time"
        # Say that we wait, once, then a line per STILL_WAITING_NOTE s: never per attempt.
        next_note: float | None = None
        # The deadline bounds connecting only: it is lifted once the coordinator welcomed us.
        connecting = trio.CancelScope(deadline=trio.current_time() + config.connect_timeout)
        self._connecting = connecting
        with connecting:
            while not self._stopping:
                try:
                    stream = await self._open_stream()
                except CONNECT_ERRORS as exc:
                    outcome: LinkEnd | Exception = exc
                else:
                    async with stream:  # we close it: trio-websocket would leak it
                        outcome = await self._serve(stream, connecting, task_status)
                if isinstance(outcome, LinkEnd):
                    return outcome
                if not isinstance(outcome, CONNECT_ERRORS):
                    raise outcome
                if (tls := tls_failure(outcome)) is not None:
                    said = mismatched_scheme(self._address, tls)
                    raise LinkError(
                        said or f"TLS with the coordinator at {config.url} failed: {tls}"
                    )
                if isinstance(outcome, HandshakeEnded) and not self._address.tls:
                    # Ended with no answer: a TLS port drops a plain HTTP request so.
                    address = self._address
                    if await speaks_tls(address.host, address.port):
                        raise LinkError(
                            f"the coordinator at {address.host}:{address.port} speaks TLS: "
                            f"connect with wss://{address.host}:{address.port}"
                        )
                last_error = describe_failure(outcome)
                now = trio.current_time()
                if next_note is None:
                    logger.info(
                        "waiting for the coordinator at %s (trying for %g s)",
                        config.url,
                        config.connect_timeout,
                    )
                    next_note = now + STILL_WAITING_NOTE
                elif now >= next_note:
                    logger.info("still no coordinator at %s (last: %s)", config.url, last_error)
                    next_note = now + STILL_WAITING_NOTE
                await trio.sleep(next(delays))
        if self._stopping:
            return LinkEnd.STOPPED
        raise CoordinatorUnreachableError(config.url, config.connect_timeout, last_error)

    async def _serve(
        self,
        stream: trio.abc.Stream,
        connecting: trio.CancelScope,
        task_status: trio.TaskStatus[None] | None,
    ) -> LinkEnd | Exception:
        """Run one connection; return how it ended, or the error that ended it."""
        try:
            return await in_connection_nursery(
                lambda nursery: self._serve_in(nursery, stream, connecting, task_status)
            )
        except Exception as exc:
            return exc

    async def _serve_in(
        self,
        nursery: trio.Nursery,
        stream: trio.abc.Stream,
        connecting: trio.CancelScope,
        task_status: trio.TaskStatus[None] | None,
    ) -> LinkEnd:
        config = self.config
        watched = EndWatchingStream(stream)
        # trio-websocket waits forever for a handshake whose connection ended under it:
        # the stream's end cancels the attempt instead, and it is retried.
        with trio.CancelScope() as attempt:
            watched.on_end = attempt.cancel
            ws = await trio_websocket.wrap_client_stream(
                nursery,
                watched,  # type: ignore[arg-type]  # any trio Stream works
                self._address.host,
                self._address.resource,
                max_message_size=config.max_frame_bytes,
                receive_buffer_size=RECEIVE_BUFFER_BYTES,
            )
            link = CoordinatorLink(config, ws, self._counts, self._blocked_loops)
            welcome = await link.handshake()
        watched.on_end = None
        if attempt.cancelled_caught:
            raise HandshakeEnded("the connection ended during the handshake")
        connecting.deadline = math.inf
        self._connecting = None
        served = describe_served(welcome.loops, config.max_tasks)
        logger.info("connected to %s as %s, serving %s", config.url, welcome.worker_id, served)
        if task_status is not None:
            task_status.started()
        self._link = link
        if self._stopping:
            link.stop()
        try:
            end = await link.run()
        finally:
            self._link = None
        if end is LinkEnd.LOST:
            self._blocked_loops.extend(link.doubtful_reports())
        return end


def _name_assigned(assign: Assign) -> tuple[str, str]:
    return assign.task_uid, assign.handle


async def run_worker(
    config: WorkerConfig, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    """Run a worker until the coordinator dismisses it: ``Worker(config).run()``.

    Raises:
        ConfigError: ``config.url`` is not a ``ws://`` or ``wss://`` URL.
        CoordinatorUnreachableError: no connection within ``config.connect_timeout``.
        WorkerRejectedError: the coordinator refused this worker.
        RemoteProtocolError: the coordinator broke the protocol.
    """
    await Worker(config).run(task_status=task_status)
