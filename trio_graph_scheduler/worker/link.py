"""The worker's end of one connection to the coordinator.

Theory of operation
-------------------
After the handshake the worker serves each loop the coordinator welcomed it for with up
to a number of *slots* (the loop's concurrency, capped by the worker's ``max_tasks``),
and grants the coordinator that much credit on the loop: the coordinator never sends
more assignments than granted, so an assignment always finds a slot that is free or
about to be. Each finished task hands one credit back. A loop with a worker-context init
starts all its slots at once (each sets up its context); one without starts a slot when
an assignment finds none idle, and lets a slot go after :data:`SLOT_IDLE_SECONDS`
without a task (:class:`_SlotPool`). The next frame after a slot starts a task says so
(``started``): the coordinator sends a worker only a small prefetch beyond what it runs.

Three kinds of trio task serve the connection:

- the receiver decodes each inbound frame and handles its messages synchronously: an
  ``Assign`` is queued for its loop (:class:`_Intake`), a ``Reply`` wakes the task that asked;
- the slots take assignments off their loop's queue and run them, without a
  checkpoint between tasks while work is queued;
- the sender sends everything queued since its last send (results, credit, graph
  calls) in as few frames as possible, or a heartbeat when there was nothing to say.

The receiver and the sender are the loops of a
:class:`~trio_graph_scheduler.shared.pump.ConnectionPump`, as on the coordinator's end;
the link gives it its handlers and its outbox.

The connection ends when the coordinator says ``Shutdown`` (the graph is done), when it
breaks or goes silent (the worker reconnects), or when the worker is stopped: then the
tasks it holds are handed back at once, so they run elsewhere without waiting for a
timeout.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import logging
import time
from collections import deque
from dataclasses import dataclass
from enum import Enum
from functools import partial
from typing import TYPE_CHECKING, Any, Final

import outcome
import trio
import trio_websocket

from ..protocol.batching import encode_batches
from ..protocol.chunks import CACHED_FROM, result_size
from ..protocol.messages import (
    MAX_SECONDS,
    PROTOCOL_VERSION,
    Assign,
    Cancel,
    Cancelled,
    Claim,
    HandBack,
    Heartbeat,
    Hello,
    LoopBlocked,
    Message,
    PredecessorRecord,
    Reject,
    Reply,
    ResultsDropped,
    Shutdown,
    SlotFreed,
    Started,
    TaskFailed,
    TaskSucceeded,
    Welcome,
)
from ..protocol.session import CloseCode, ProtocolSession, Role, SessionState
from ..protocol.values import UnreadableValue, find_unreadable, unreadable_values_decoded
from ..shared.errors import RemoteProtocolError, WorkerRejectedError
from ..shared.invoke import failure_reason, format_exception_trace, invoke_task_function
from ..shared.pump import ConnectionPump
from ..shared.shipped_code import load_shipped
from ..shared.slots import ContextFailure, Slot, run_slot, slot_context
from ..shared.states import EndReason
from ..shared.task_calls import is_async_function
from ..shared.task_errors import pickle_exception
from .remote_graph import RemoteGraph
from .result_cache import MISSING, ResultCache

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Coroutine, Mapping

    from ..shared.errors import LocalProtocolError
    from ..shared.watchdog import BlockedLoop
    from .config import WorkerConfig
    from .remote_graph import RemoteTaskNode

logger = logging.getLogger("tgs.worker")

_Answer = TaskSucceeded | TaskFailed | Cancelled
_OUTCOMES: Final = {TaskSucceeded: "succeeded", TaskFailed: "failed", Cancelled: "cancelled"}


class LinkEnd(Enum):
    """Why a connection to the coordinator ended."""

    #: The coordinator said the graph is done: the worker exits.
    DISMISSED = "dismissed"
    #: The connection broke or went silent: the worker reconnects.
    LOST = "lost"
    #: The coordinator broke the protocol: the worker gives up on it.
    PROTOCOL_ERROR = "protocol_error"
    #: The worker was told to stop; its tasks were handed back.
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class WorkerStatistics:
    """What one worker has done, over all its connections (``Worker.statistics()``)."""

    #: Tasks whose function ran to an end here, by outcome.
    tasks_succeeded: int = 0
    tasks_failed: int = 0
    #: Tasks given back unfinished (on stop) or cancelled by the coordinator.
    tasks_handed_back: int = 0
    tasks_cancelled: int = 0
    #: Connections the coordinator welcomed.
    connections: int = 0
    #: Predecessors' large results a task took from this worker's cache instead of the
    #: assignment, and those it had to ask the coordinator for (dropped meanwhile).
    results_from_cache: int = 0
    results_fetched: int = 0


@dataclass(slots=True)
class WorkerCounts:
    """The running counts behind :class:`WorkerStatistics`, which its links add to (one
    per task: too often to copy a frozen snapshot each time)."""

    tasks_succeeded: int = 0
    tasks_failed: int = 0
    tasks_handed_back: int = 0
    tasks_cancelled: int = 0
    connections: int = 0
    results_from_cache: int = 0
    results_fetched: int = 0

    def snapshot(self) -> WorkerStatistics:
        """The counts as they are now."""
        return WorkerStatistics(**dataclasses.asdict(self))


class _LoadedFunction:
    """A task function as unpickled on this worker, or why it could not be."""

    __slots__ = ("error", "function", "is_async")

    def __init__(self, pickled: bytes) -> None:
        self.function: Callable[..., Any] | None = None
        self.is_async = False
        #: The error that unpickling it raised.
        self.error: Exception | None = None
        try:
            self.function = load_shipped(pickled)
            self.is_async = is_async_function(self.function)
        except Exception as exc:  # unpickling a user's function can raise anything
            self.error = exc


class CoordinatorLink:
    """One connection to the coordinator, from hello to its end.

    Implements the ``GraphCallLink`` that tasks' :class:`RemoteGraph` calls go through.
    """

    def __init__(
        self,
        config: WorkerConfig,
        ws: trio_websocket.WebSocketConnection,
        counts: WorkerCounts,
        blocked_loops: list[BlockedLoop] | None = None,
    ) -> None:
        self._config = config
        #: What blocked the worker's loop (the watchdog appends, from its thread): each is
        #: over once this link's sender runs, which reports it with the next frame.
        self._blocked_loops = blocked_loops if blocked_loops is not None else []
        self._doubtful: list[tuple[float, BlockedLoop]] = []
        self._ws = ws
        self._counts = counts
        # Looked at once per connection, not in two calls per task.
        self._debug = logger.isEnabledFor(logging.DEBUG)
        self._protocol = ProtocolSession(
            Role.WORKER,
            max_frame_bytes=config.max_frame_bytes,
            max_value_bytes=config.max_value_bytes,
        )
        self.welcome: Welcome | None = None
        self._outbox: list[Message] = []
        self._credit: dict[str, int] = {}
        #: Where each served loop's assignments go until a slot takes them.
        self._intakes: dict[str, _Intake] = {}
        # The slots of each loop that has no worker context, started on demand.
        self._pools: dict[str, _SlotPool] = {}
        self._functions: dict[str, _LoadedFunction] = {}
        #: Leases assigned here and not yet answered, with the slot running each, if any.
        self._leases: dict[int, Slot[Assign] | None] = {}
        #: The loop of each lease assigned here and not started yet.
        self._queued: dict[int, str] = {}
        #: Leases started since the last frame: the coordinator hears of those still
        #: running in the next one (``started``); an answer says it for the others.
        self._started: list[int] = []
        self._cancelled: set[int] = set()
        #: Leases answered with ``slot_busy``: their thread runs on, their slot is taken.
        self._busy: set[int] = set()
        # Leases whose arguments or predecessors' results could not be unpickled here,
        # with why: they fail at start instead of running with a marker for a value.
        self._unreadable: dict[int, UnreadableValue] = {}
        self._unreadable_in_frame = False
        self._replies: dict[int, tuple[trio.Event, list[Reply]]] = {}
        #: Large results of tasks run here or sent here (see result_cache.py).
        self._results = ResultCache(config.result_cache_bytes)
        # Unawaited graph calls that failed here, by lease: they fail the calling task.
        self._call_errors: dict[int, Exception] = {}
        self._request_ids = itertools.count(1)
        self._end: LinkEnd | None = None
        self._protocol_error: RemoteProtocolError | None = None
        self._nursery: trio.Nursery | None = None
        self._pump = ConnectionPump[Message](
            ws,
            decode=self._decode,
            encode=partial(encode_batches, self._protocol, on_unsendable=self._on_unsendable),
            heartbeat=Heartbeat,  # sent when idle; received, it restarts the silence timer
            take_outbox=self._take_outbox,
            # Dismissed (the Shutdown may come while the sender waits): nothing may go.
            may_send=lambda: self._end is None and self._protocol.state is SessionState.ACTIVE,
            handlers={
                Assign: self._on_assign,
                Reply: self._on_reply,
                Cancel: self._on_cancel,
                Shutdown: self._on_shutdown,
            },
            streaming=lambda: self._protocol.streaming,
            stream_frames=self._protocol.stream_frames,
        )

    # -- life --------------------------------------------------------------------------

    async def handshake(self) -> Welcome:
        """Say hello and wait for the coordinator's answer.

        Raises:
            WorkerRejectedError: the coordinator refused this worker.
            RemoteProtocolError: it answered with something that is not a welcome.
            trio_websocket.ConnectionClosed: the connection closed first.
        """
        config = self._config
        hello = Hello(
            version=PROTOCOL_VERSION,
            token=config.token,
            worker_name=config.name,
            loops=list(config.loops),
            max_tasks=config.max_tasks or 0,  # 0 on the wire: no cap of its own
            max_frame_bytes=config.max_frame_bytes,
            max_value_bytes=config.max_value_bytes,
            result_cache_bytes=config.result_cache_bytes,
        )
        await self._ws.send_message(self._protocol.send([hello]))
        (answer,) = self._protocol.receive(await self._ws.get_message())
        if isinstance(answer, Reject):
            raise WorkerRejectedError(answer.reason)
        assert isinstance(answer, Welcome)  # the protocol session admits nothing else
        for loop, indexes in answer.slot_indexes.items():
            slots = loop_slots(answer.loops[loop], config.max_tasks)
            if len(indexes) != slots:
                raise RemoteProtocolError(
                    f"welcome: {len(indexes)} slot indexes for loop {loop!r}, which runs "
                    f"{slots} slot(s) here"
                )
        self.welcome = answer
        self._counts.connections += 1
        return answer

    async def run(self) -> LinkEnd:
        """Serve the coordinator until the connection ends; say why it ended.

        Raises:
            RemoteProtocolError: the coordinator broke the protocol (the connection is
                closed with a reason first).
        """
        welcome = self.welcome
        assert welcome is not None, "handshake() first"
        inits = {loop: _load_context_init(data) for loop, data in welcome.context_inits.items()}
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            if self._end is not None:  # stopped during the handshake
                nursery.cancel_scope.cancel()
            for loop, concurrency in welcome.loops.items():
                indexes = welcome.slot_indexes.get(loop)
                self._start_loop(nursery, loop, concurrency, inits.get(loop), indexes)
            nursery.start_soon(self._send_loop, welcome.heartbeat_interval)
            await self._receive_loop(welcome.heartbeat_timeout)
        end = self._end or LinkEnd.LOST
        # Values half received (or half sent) die with the connection.
        self._protocol.release_streams()
        if end is LinkEnd.PROTOCOL_ERROR:
            await self._pump.close(CloseCode.PROTOCOL_ERROR, "protocol error")
            assert self._protocol_error is not None
            raise self._protocol_error
        if end is LinkEnd.STOPPED:
            await self._hand_back_all()
        await self._pump.close(
            CloseCode.NORMAL if end is LinkEnd.DISMISSED else CloseCode.GOING_AWAY, ""
        )
        return end

    def stop(self) -> None:
        """Stop running tasks and hand them back to the coordinator, then close."""
        self._finish(LinkEnd.STOPPED)

    def _finish(self, end: LinkEnd) -> None:
        if self._end is None:
            self._end = end
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()

    def _start_loop(
        self,
        nursery: trio.Nursery,
        loop: str,
        concurrency: int,
        init: Any | None,
        indexes: list[int] | None,
    ) -> None:
        slots = loop_slots(concurrency, self._config.max_tasks)
        intake = self._intakes[loop] = _Intake()
        # The coordinator numbers the slots across the cluster (checked at the welcome).
        numbers = list(indexes if indexes is not None else range(slots))
        if init is None:
            # No worker context to set up per slot: slots start as work comes.
            pool = self._pools[loop] = _SlotPool(self, nursery, loop, intake, numbers)
            nursery.start_soon(pool.expire_idle)
        else:
            # Each slot's context is set up once, up front, for its worker_index.
            for index in numbers:
                nursery.start_soon(self._run_slot, loop, index, intake, init)
        self._grant(loop, slots)

    async def _hand_back_all(self) -> None:
        """Send what is finished, then give back every lease still held."""
        messages = self._outbox
        # Sent even with no lease: it tells the coordinator that this worker stops on
        # purpose, so that its close reads as leaving, not as a lost connection.
        messages.append(HandBack(leases=list(self._leases)))
        if self._leases:
            self._counts.tasks_handed_back += len(self._leases)
            logger.info("handing back %d unfinished task(s)", len(self._leases))
        self._leases.clear()
        self._queued.clear()
        if self._protocol.state is not SessionState.ACTIVE:
            return  # dismissed meanwhile: nothing may follow the coordinator's Shutdown
        with trio.move_on_after(1):
            await self._pump.send(messages)

    # -- receiving ---------------------------------------------------------------------

    async def _receive_loop(self, silence_limit: float) -> None:
        try:
            closed = await self._pump.receive_loop(silence_limit)
        except RemoteProtocolError as exc:
            # Ended here, not raised: out of the nursery it would be an ExceptionGroup.
            logger.error("the coordinator broke the protocol: %s", exc)
            self._protocol_error = exc
            self._finish(LinkEnd.PROTOCOL_ERROR)
            return
        if closed is None:
            logger.warning("the coordinator was silent for %g s", silence_limit)
        else:
            logger.warning("lost the coordinator: %s", _describe_close(closed))
        self._finish(LinkEnd.LOST)

    def _decode(self, data: bytes | str) -> list[Message]:
        before = unreadable_values_decoded()
        messages = self._protocol.receive(data)
        # Values are searched for unreadable markers only in the rare frame that has one.
        self._unreadable_in_frame = unreadable_values_decoded() != before
        return messages

    def _on_assign(self, assign: Assign) -> None:
        if self._unreadable_in_frame:
            bad = find_unreadable(assign.arguments) or find_unreadable(
                [(p.arguments, p.result) for p in assign.predecessors]
            )
            if bad is not None:
                self._unreadable[assign.lease] = bad
        intake = self._intakes.get(assign.loop)
        if intake is None:
            raise RemoteProtocolError(f"assign: loop {assign.loop!r} is not served here")
        if assign.lease in self._leases:
            raise RemoteProtocolError(f"assign: lease {assign.lease} is already running here")
        if assign.function is not None:
            self._functions[assign.handle] = _LoadedFunction(assign.function)
        elif assign.handle not in self._functions:
            raise RemoteProtocolError(f"assign: function {assign.handle!r} was never sent")
        self._leases[assign.lease] = None
        self._queued[assign.lease] = assign.loop
        intake.put(assign)
        pool = self._pools.get(assign.loop)
        if pool is not None:
            pool.start_wanted()

    def _on_reply(self, reply: Reply) -> None:
        waiter = self._replies.pop(reply.request_id, None)
        if waiter is None:
            raise RemoteProtocolError(f"reply: request {reply.request_id} was never made")
        event, box = waiter
        box.append(reply)
        event.set()

    def _on_shutdown(self, shutdown: Shutdown) -> None:
        logger.info("dismissed by the coordinator: %s", shutdown.reason)
        self._finish(LinkEnd.DISMISSED)

    def _on_cancel(self, cancel: Cancel) -> None:
        if cancel.lease not in self._leases:
            return  # it ended already; its result is on the way
        slot = self._leases[cancel.lease]
        if slot is None:
            # Not started: answered now, and the slot that takes it skips it. Either the
            # task was cancelled, or the coordinator took it back to give it to a worker
            # with a free slot: it hears at once that this one will not start it.
            self._cancelled.add(cancel.lease)
            self._queue_answer(self._queued.pop(cancel.lease), Cancelled(lease=cancel.lease))
        else:
            slot.cancel()

    # -- running tasks -----------------------------------------------------------------

    async def _run_slot(
        self,
        loop: str,
        index: int,
        intake: _Intake,
        init: Any | None,
    ) -> None:
        async with slot_context(loop, init, index, logger) as context:
            await run_slot(Slot(), _LinkSlot(self, loop, intake, context))

    def _queue_answer(self, loop: str, answer: _Answer, *, slot_busy: bool = False) -> None:
        """Queue ``answer``, and the credit of its slot unless the slot stays busy (its
        thread runs on: the credit goes back with the :class:`SlotFreed`)."""
        if answer.lease not in self._leases:
            return  # handed back already: the coordinator no longer waits for it
        del self._leases[answer.lease]
        if self._call_errors:  # rare: only after a graph call failed here
            answer = self._failed_call(answer)
        counts = self._counts
        if isinstance(answer, TaskSucceeded):
            counts.tasks_succeeded += 1
        elif isinstance(answer, TaskFailed):
            counts.tasks_failed += 1
        else:
            counts.tasks_cancelled += 1
        self._outbox.append(answer)
        if slot_busy:
            self._busy.add(answer.lease)
            self._pump.wake()
        else:
            self._grant(loop, 1)

    def _keep_result(self, uid: str, value: Any) -> None:
        """Keep a large result (the coordinator keeps the same account); tell it what
        had to go to make room."""
        size = result_size(value)
        if size >= CACHED_FROM:
            dropped = self._results.put(uid, value, size)
            if dropped:
                self.send_nowait(ResultsDropped(uids=dropped))

    def _take_cached(self, records: list[PredecessorRecord]) -> tuple[dict[str, Any], list[str]]:
        """The results of the predecessors marked ``cached``, from the cache, by uid, and
        the uids of those it no longer holds; and keep the large results that came."""
        results: dict[str, Any] = {}
        missing = []
        cached = False
        for record in records:
            if record.cached:
                cached = True
                value = self._results.get(record.task_uid)
                if value is MISSING:
                    missing.append(record.task_uid)
                else:
                    results[record.task_uid] = value
                    self._counts.results_from_cache += 1
        # Then what came: keeping it may drop what was just taken, never before. A join
        # has thousands of records: the size is looked at here, not in a call each.
        for record in records:
            if not (cached and record.cached) and result_size(record.result) >= CACHED_FROM:
                self._keep_result(record.task_uid, record.result)
        return results, missing

    async def _fetch_then(
        self, graph: RemoteGraph, missing: list[str], call: Coroutine[Any, Any, Any]
    ) -> Any:
        """Ask the coordinator for the results the cache dropped, then run the task."""
        try:
            for uid in missing:
                # The reply brings the node up to date (RemoteGraph._known).
                predecessor = await graph.aget_task(uid, with_result=True)
                self._counts.results_fetched += 1
                self._keep_result(uid, predecessor.task_result)
        except BaseException:
            call.close()
            raise
        return await call

    def _slot_freed(self, loop: str, lease: int) -> None:
        """The thread of ``lease``'s task returned: its slot, and its credit, are free."""
        if lease in self._busy:
            self._busy.discard(lease)
            self._outbox.append(SlotFreed(lease=lease))
            self._grant(loop, 1)

    # -- sending -----------------------------------------------------------------------

    def _grant(self, loop: str, credit: int) -> None:
        self._credit[loop] = self._credit.get(loop, 0) + credit
        self._pump.wake()

    def send_nowait(self, message: Message) -> None:
        """Queue ``message`` for the coordinator (a graph call that needs no answer)."""
        self._outbox.append(message)
        self._pump.wake()

    async def request(self, message: Message) -> Reply:
        """Send a graph call and wait for the coordinator's reply to it."""
        request_id: int = message.request_id  # type: ignore[attr-defined]
        event = trio.Event()
        box: list[Reply] = []
        self._replies[request_id] = (event, box)
        self.send_nowait(message)
        await event.wait()
        return box[0]

    def next_request_id(self) -> int:
        """A request id not used before on this connection."""
        return next(self._request_ids)

    def check_sendable(self, message: Message) -> None:
        """Raise if ``message`` cannot be sent (the coordinator accepts no larger frame,
        and no larger value, than its welcome said).

        Raises:
            ValueEncodeError: a value in it cannot be serialised, or is larger than the
                coordinator takes in.
            FrameTooLargeError: it needs a larger frame than may be sent.
        """
        self._protocol.check_sendable(message)

    def fail_call(self, lease: int, error: Exception) -> None:
        """An unawaited graph call of the task of ``lease`` failed here: the task fails
        with ``call_failed`` when it ends, as when the coordinator refuses such a call."""
        logger.warning("a graph call of lease %d failed: %s", lease, error)
        self._call_errors.setdefault(lease, error)

    def _failed_call(self, answer: _Answer) -> _Answer:
        error = self._call_errors.pop(answer.lease, None)
        if error is None or not isinstance(answer, TaskSucceeded):
            return answer
        message = f"a graph call by this task failed: {error}"
        return _failed_here(answer.lease, type(error).__name__, message, EndReason.CALL_FAILED)

    async def _send_loop(self, interval: float) -> None:
        try:
            await self._pump.send_loop(interval)
        except trio_websocket.ConnectionClosed as exc:
            logger.warning("lost the coordinator: %s", _describe_close(exc))
            self._finish(LinkEnd.LOST)

    def _take_outbox(self) -> list[Message]:
        # The credit that answered tasks' slots gave back goes ahead of the answers: the
        # coordinator hands the slots each answer frees back to this worker while it
        # holds less than its share of the loop, which it can only with credit for them.
        messages: list[Message] = []
        if self._started:
            # Said only of the tasks still running: an answer says it of the others.
            leases = self._leases
            running = [lease for lease in self._started if lease in leases]
            self._started = []
            if running:
                messages.append(Started(leases=running))
        if self._credit:
            messages.extend(Claim(loop=loop, credit=n) for loop, n in self._credit.items())
            self._credit = {}
        messages += self._outbox
        self._outbox = []
        if self._blocked_loops:  # rare: per frame, not per task
            messages.extend(self._take_blocked_loops())
        return messages

    def _take_blocked_loops(self) -> list[Message]:
        """Reports of blocks that are over, for the coordinator's log.

        A long block may have cost this connection (the coordinator dropped it as
        silent, or will): such a report is also kept, and if the connection is lost soon
        after, the next one sends it again (:meth:`doubtful_reports`).
        """
        welcome = self.welcome
        assert welcome is not None
        now = time.monotonic()
        reports: list[Message] = []
        pending = self._blocked_loops
        while pending:
            blocked = pending.pop(0)  # one at a time: the watchdog's thread may append
            seconds = blocked.seconds
            if seconds is None:
                seconds = now - blocked.since
                # The watchdog saw it late by up to half its threshold, and the
                # coordinator's silence timer started up to a heartbeat interval before:
                # half the timeout is the margin of doubt.
                if 2 * seconds >= welcome.heartbeat_timeout:
                    self._doubtful.append((now, dataclasses.replace(blocked, seconds=seconds)))
            reports.append(
                LoopBlocked(
                    task_uid=blocked.task_uid,
                    handle=blocked.handle,
                    seconds=min(max(seconds, 1e-3), MAX_SECONDS),
                )
            )
        return reports

    def doubtful_reports(self) -> list[BlockedLoop]:
        """Blocks reported on this connection that may have cost it, when it was lost
        soon after: the coordinator may never have heard of them."""
        welcome = self.welcome
        if welcome is None:
            return []
        now = time.monotonic()
        return [b for at, b in self._doubtful if now - at < 2 * welcome.heartbeat_timeout]

    def _on_unsendable(self, message: Message, error: LocalProtocolError) -> Message | None:
        if isinstance(message, TaskSucceeded):
            # The result cannot travel: the task fails with why, the worker carries on.
            self._counts.tasks_succeeded -= 1
            self._counts.tasks_failed += 1
            why = f"the task's result cannot be sent to the coordinator: {error}"
            return _failed_here(message.lease, type(error).__name__, why, EndReason.UNSENDABLE)
        raise error  # everything else was checked when it was made: this is a bug


class _Intake:
    """The assignments of one loop on their way to its slots.

    Assignments wait in :attr:`queue`; a slot that ends a task takes the next one from
    it without a checkpoint. A slot with nothing to do parks (a trio task waiting to be
    rescheduled: no channel, no cancel scope). An assignment wakes one parked slot, and
    only when no other is being woken; a slot that takes an assignment and leaves more
    queued wakes the next. So a frame of small tasks costs two wakes, however many it
    brings (the first slot runs them all back to back, the second finds nothing).

    A woken slot that finds work left knows that the tasks taken before it awaited:
    it wakes twice as many slots as woke it (each wake carries how many the woken slot
    may wake in turn), so a frame of tasks that await has them all started within a
    few scheduling rounds (6 for 32), not one round each.
    """

    __slots__ = ("parked", "queue", "starting", "waking")

    def __init__(self) -> None:
        #: Assignments no slot has taken yet, in order.
        self.queue: deque[Assign] = deque()
        #: The slots parked for want of a task (their trio tasks), in the order they
        #: parked, each with the time it did (``trio.current_time()``). The last to park
        #: is woken first: the longest idle stay parked, and may go.
        self.parked: dict[trio.lowlevel.Task, float] = {}
        #: Slots woken and not yet run, and slots started (on demand) not yet run.
        self.waking = 0
        self.starting = 0

    def put(self, assign: Assign) -> None:
        """Queue ``assign``; wake a parked slot for it unless one is being woken."""
        self.queue.append(assign)
        if self.parked and not self.waking:
            self.wake(1, 1)

    def wake(self, count: int, width: int) -> None:
        """Wake up to ``count`` slots (the last to park first) to take from the queue;
        each may wake ``width`` more if it finds work left."""
        parked = self.parked
        while count > 0 and parked:
            task, _ = parked.popitem()
            self.waking += 1
            trio.lowlevel.reschedule(task, outcome.Value(width))  # one each: used once
            count -= 1


class _LinkSlot:
    """One slot of a loop on this worker: the parts of it :func:`run_slot` plugs in.

    Its tasks come from the loop's :class:`_Intake`; each outcome is an answer queued for
    the coordinator.
    """

    __slots__ = ("_context", "_intake", "_link", "_loop", "_queue", "_task")

    def __init__(
        self,
        link: CoordinatorLink,
        loop: str,
        intake: _Intake,
        context: Any,
    ) -> None:
        self._link = link
        self._loop = loop
        self._intake = intake
        self._queue = intake.queue
        self._context = context
        #: The trio task running this slot, once it first parked.
        self._task: trio.lowlevel.Task | None = None

    def take_nowait(self) -> Assign | None:
        queue = self._queue
        if not queue:
            return None
        assign = queue.popleft()
        if queue:
            # More to do: a parked slot takes the next one should this task await.
            intake = self._intake
            if intake.parked and not intake.waking:
                intake.wake(1, 2)
        return assign

    async def wait_for_task(self) -> Assign:
        task = self._task
        if task is None:
            task = self._task = trio.lowlevel.current_task()
        intake = self._intake
        queue = self._queue
        while True:
            intake.parked[task] = trio.current_time()
            # Woken to take from the queue (or let go: the pool raises _SlotIdle here),
            # with how many slots this one may wake in turn.
            width: int = await trio.lowlevel.wait_task_rescheduled(self._abort)
            intake.waking -= 1
            if queue:
                assign = queue.popleft()
                if queue:
                    # Work left after the slots woken before: their tasks awaited.
                    intake.wake(min(width, len(queue) - intake.waking), 2 * width)
                return assign
            # Another slot took everything meanwhile: park again.

    def _abort(self, _: Any) -> trio.lowlevel.Abort:
        # Cancelled while parked (the link ends): no longer there to take a task.
        del self._intake.parked[self._task]  # type: ignore[arg-type]  # set before parking
        return trio.lowlevel.Abort.SUCCEEDED

    def start(
        self, slot: Slot[Assign], assign: Assign
    ) -> tuple[Awaitable[Any], RemoteTaskNode] | None:
        link = self._link
        intake = self._intake
        if not (self._queue and (intake.waking or intake.starting)):
            # The coordinator may wait for the started tasks to send this worker more:
            # said now, unless the slots woken to start the rest of the queue will say
            # it with theirs (one ``started`` for the lot).
            link._pump.wake()
        lease = assign.lease
        if lease in link._cancelled:  # cancelled before it started: answered already
            link._cancelled.discard(lease)
            return None
        link._leases[lease] = slot
        del link._queued[lease]
        link._started.append(lease)
        if link._debug:
            logger.debug("task %s (%s) started, lease %d", assign.task_uid, assign.handle, lease)
        loaded = link._functions[assign.handle]
        context = self._context
        if loaded.error is not None:
            why = f"cannot load the function on this worker: {loaded.error!r}"
            self._answer(assign, _worker_error(lease, type(loaded.error).__name__, why))
            return None
        if isinstance(context, ContextFailure):
            self._answer(assign, _context_failed(lease, context))
            return None
        if link._unreadable and lease in link._unreadable:
            bad = link._unreadable.pop(lease)
            logger.warning(
                "task %s (%s) cannot run here: %s", assign.task_uid, assign.handle, bad.error
            )
            self._answer(assign, _unreadable_input(lease, bad))
            return None
        graph = RemoteGraph(link, lease)
        records = assign.predecessors
        results, missing = link._take_cached(records) if records else (None, None)
        node = graph.adopt_task(
            assign.task_uid,
            assign.handle,
            assign.arguments,
            records,
            key=assign.key,
            attempts=assign.attempts,
            results=results,
        )
        call = invoke_task_function(
            loaded.function,  # type: ignore[arg-type]  # None only with an error
            loaded.is_async,
            assign.arguments,
            {"task_node": node, "graph": graph, "worker_context": context},
            slot.thread,
            time_limit=assign.timeout,
        )
        if missing:  # rare: dropped here while the assignment was on its way
            return link._fetch_then(graph, missing, call), node
        return call, node

    def succeeded(self, assign: Assign, result: Any) -> None:
        self._answer(assign, TaskSucceeded(lease=assign.lease, result=result))
        if result is not None:
            self._link._keep_result(assign.task_uid, result)

    def failed(self, assign: Assign, error: Exception | None, *, slot_busy: bool = False) -> None:
        if error is None:  # the seed let a task mark itself failed and return
            answer = TaskFailed(
                lease=assign.lease,
                error_type=None,
                message="",
                traceback="",
                reason=EndReason.MARKED_FAILED,
            )
        else:
            answer = _task_failed(assign.lease, error, slot_busy=slot_busy)
        if slot_busy:
            _log_outlived(assign, "timed out")
        self._answer(assign, answer, slot_busy=slot_busy)

    def interrupted(self, assign: Assign) -> None:
        # The link is stopping: it hands back every lease it still holds. A sync
        # function's thread runs on, abandoned, until it returns or the process exits.
        pass

    def task_cancelled(self, assign: Assign, *, slot_busy: bool = False) -> None:
        # Acknowledging the cancel frees the task's place in the loop (unless its thread
        # runs on: then the SlotFreed does, later).
        if slot_busy:
            _log_outlived(assign, "was cancelled")
        answer = Cancelled(lease=assign.lease, slot_busy=slot_busy)
        self._link._queue_answer(self._loop, answer, slot_busy=slot_busy)

    def slot_freed(self, assign: Assign) -> None:
        uid, handle = assign.task_uid, assign.handle
        logger.info("the thread of task %s (%s) has returned; its slot is free", uid, handle)
        self._link._slot_freed(self._loop, assign.lease)

    def _answer(
        self, assign: Assign, answer: TaskSucceeded | TaskFailed, *, slot_busy: bool = False
    ) -> None:
        if self._link._debug:
            logger.debug("task %s %s", assign.task_uid, _OUTCOMES[type(answer)])
        self._link._queue_answer(self._loop, answer, slot_busy=slot_busy)


class _SlotIdle(Exception):
    """A slot of a :class:`_SlotPool` had nothing to do for a while: it stops."""


class _SlotPool:
    """The slots of one loop without a worker context, started on demand.

    A slot starts when an assignment arrives and no slot is parked to take it (up to the
    worker's slots on the loop), and stops after :data:`SLOT_IDLE_SECONDS` parked without
    a task: a worker serving a loop of thousands holds trio tasks for what it runs, not
    for the loop's whole concurrency. Each slot takes the lowest free ``worker_index``.

    One timer serves the whole pool (:meth:`expire_idle`), not one per wait: a slot
    parks with no cancel scope, which would cost more than a small task.
    """

    __slots__ = ("_intake", "_link", "_loop", "_numbers", "_nursery", "_wakeup", "live")

    def __init__(
        self,
        link: CoordinatorLink,
        nursery: trio.Nursery,
        loop: str,
        intake: _Intake,
        numbers: list[int],
    ) -> None:
        self._link = link
        self._nursery = nursery
        self._loop = loop
        self._intake = intake
        #: The worker_index numbers no running slot holds (a heap).
        self._numbers = sorted(numbers)
        #: Slots running (parked ones included); those started that have not run yet
        #: are counted in the intake (``starting``).
        self.live = 0
        # Set when a slot starts, for expire_idle waiting while the pool has none.
        self._wakeup = trio.Event()

    def start_wanted(self) -> None:
        """Start slots for the queued assignments no slot parked or about to run will
        take."""
        intake = self._intake
        queued = len(intake.queue) - intake.waking - len(intake.parked)
        while queued > intake.starting and self._numbers:
            self.live += 1
            intake.starting += 1
            self._nursery.start_soon(self._run, heapq.heappop(self._numbers))
            self._wakeup.set()

    async def _run(self, index: int) -> None:
        # From here to its first take (or park) the slot runs without a checkpoint.
        self._intake.starting -= 1
        owner = _LinkSlot(self._link, self._loop, self._intake, {})
        try:
            await run_slot(Slot(), owner)
        except _SlotIdle:
            pass
        finally:
            self.live -= 1
            heapq.heappush(self._numbers, index)
            # An assignment may have come as this slot gave up waiting.
            self.start_wanted()

    async def expire_idle(self) -> None:
        """Stop each slot once it has been parked for :data:`SLOT_IDLE_SECONDS`; runs as
        long as the link does.

        The slot parked longest is the first in ``parked`` (an assignment goes to the one
        that parked last), so one deadline, the next slot's, is all there is to watch.
        """
        parked = self._intake.parked
        while True:
            if parked:
                task, since = next(iter(parked.items()))
                due = since + SLOT_IDLE_SECONDS
                if trio.current_time() >= due:
                    del parked[task]
                    trio.lowlevel.reschedule(task, outcome.Error(_SlotIdle()))
                    continue
            elif self.live:
                # Any slot that parks from now on is due later than this: look again then.
                due = trio.current_time() + SLOT_IDLE_SECONDS
            else:
                await self._wakeup.wait()
                self._wakeup = trio.Event()
                continue
            await trio.sleep_until(due)


#: A slot started on demand stops after this many seconds without a task.
SLOT_IDLE_SECONDS: Final = 5.0


def _log_outlived(assign: Assign, what: str) -> None:
    logger.warning(
        "task %s (%s) %s; its sync function runs on in its thread (a thread cannot be "
        "stopped), and its slot stays busy until it returns",
        assign.task_uid,
        assign.handle,
        what,
    )


def _load_context_init(pickled: bytes) -> Callable[[int], Any]:
    try:
        init: Callable[[int], Any] = load_shipped(pickled)
    except Exception as exc:  # unpickling a user's function can raise anything
        reason = f"cannot load the init function on this worker: {exc!r}"

        def init(index: int) -> Any:
            raise RuntimeError(reason)

    return init


def _task_failed(lease: int, exc: Exception, *, slot_busy: bool = False) -> TaskFailed:
    trace = format_exception_trace(exc)  # before the exception loses its frames
    return TaskFailed(
        lease=lease,
        error_type=type(exc).__qualname__,
        message=_message_of(exc),
        traceback=trace,
        reason=failure_reason(exc),
        slot_busy=slot_busy,
        exception=_exception_payload(exc),
    )


def _message_of(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:  # a user's __str__ can raise
        return "<str() failed>"


def _exception_payload(exc: BaseException) -> bytes | None:
    data, why = pickle_exception(exc)
    if data is None:
        logger.info("a task's %s cannot go to the coordinator: %s", type(exc).__qualname__, why)
    return data


def _context_failed(lease: int, failure: ContextFailure) -> TaskFailed:
    """The task's slot has no worker context: its init function raised."""
    return TaskFailed(
        lease=lease,
        error_type="WorkerContextError",
        message=str(failure),
        traceback=failure.trace,
        reason=EndReason.WORKER_ERROR,
        exception=_exception_payload(failure.error),
    )


def _failed_here(lease: int, error_type: str, message: str, reason: EndReason) -> TaskFailed:
    """A failure this worker names itself, with no traceback of the task's own."""
    return TaskFailed(
        lease=lease, error_type=error_type, message=message, traceback="", reason=reason
    )


def _worker_error(lease: int, error_type: str, message: str) -> TaskFailed:
    """This worker could not run the task at all (its function or context failed to load)."""
    return _failed_here(lease, error_type, message, EndReason.WORKER_ERROR)


def _unreadable_input(lease: int, bad: UnreadableValue) -> TaskFailed:
    """The task's arguments or a predecessor's result could not be taken in here: refused
    for its size, or failed to unpickle."""
    if bad.refused:
        message = (
            "the task's arguments or a predecessor's result was refused by this worker: "
            f"{bad.error}"
        )
    else:
        message = (
            "the task's arguments or a predecessor's result cannot be read on this worker "
            f"(is its class only installed on the coordinator?): {bad.error}"
        )
    return _failed_here(lease, "UnreadableValue", message, EndReason.UNSENDABLE)


def loop_slots(concurrency: int, max_tasks: int | None) -> int:
    """How many slots a worker runs for a loop: its concurrency, capped by ``max_tasks``."""
    return concurrency if max_tasks is None else min(concurrency, max_tasks)


def describe_served(loops: Mapping[str, int], max_tasks: int | None) -> str:
    """What a worker serves, by loop, for its "connected" line: its own slots, and the
    loop's cluster-wide limit beside them, so neither is taken for the other."""
    parts = []
    for loop, concurrency in loops.items():
        slots = loop_slots(concurrency, max_tasks)
        parts.append(
            f"{loop} ({slots} slot{'' if slots == 1 else 's'}; the loop allows "
            f"{concurrency} at once cluster-wide)"
        )
    return ", ".join(parts) or "no loop"


def _describe_close(exc: trio_websocket.ConnectionClosed) -> str:
    reason = exc.reason
    if reason is None:
        return "connection closed"
    return f"closed with code {reason.code}" + (f" ({reason.reason})" if reason.reason else "")
