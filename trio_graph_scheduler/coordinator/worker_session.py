"""One connected worker, as the coordinator sees it.

A session is a claimant of the loop queues like an in-process worker slot: for each loop
the worker serves it holds the credit the worker granted (``claim``), and the queue hands
it tasks while it has credit and the loop is under its cluster-wide limit. A handed task
gets a lease; the worker's result for that lease ends the task. When the connection ends,
for whatever reason, every task still leased to it goes back to the front of its queue
(at-least-once execution), and a result for a lease the session no longer holds is dropped
(exactly-once results).

Blame on evidence: a worker lost while it ran one task charges that task the loss; lost
while it ran several, it charges none of them, and each becomes a *suspect*
(``LoopQueue.suspects``). A session hands out a suspect only while it holds no other
lease, and then stays out of every loop's line until that task has ended: the next loss,
if any, is evidence against that one task. An idle session takes a suspect before ready
work; a busy one never does, so in a busy cluster suspects wait until some worker is idle.

Two trio tasks serve a session: the receiver handles each inbound frame synchronously
against the scheduling core, and the sender turns everything queued since its last send
(assignments, replies) into as few frames as possible. Both are the loops of a
:class:`~trio_graph_scheduler.shared.pump.ConnectionPump`; the session gives it its
handlers and its outbox, and decides how each way a connection can end ends the session.
"""

from __future__ import annotations

import hmac
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import msgspec
import trio
import trio_websocket

from ..protocol.batching import encode_batches
from ..protocol.chunks import CACHED_FROM, result_size
from ..protocol.codec import FrameTooLargeError
from ..protocol.messages import (
    Assign,
    Cancel,
    Cancelled,
    CancelTaskRequest,
    Claim,
    ConditionRecord,
    CreateConditionRequest,
    CreateTaskRequest,
    HandBack,
    Heartbeat,
    Hello,
    LoopBlocked,
    Message,
    PredecessorRecord,
    PrependRequest,
    Reject,
    Reply,
    ResultsDropped,
    Shutdown,
    SlotFreed,
    Started,
    StatusRequest,
    SuccessorsRequest,
    TaskFailed,
    TaskQuery,
    TaskRecord,
    TaskSucceeded,
    Welcome,
)
from ..protocol.session import CloseCode, ProtocolSession, Role, SessionState
from ..protocol.values import ValueEncodeError, find_unreadable, unreadable_values_decoded
from ..shared.errors import (
    GraphDefinitionError,
    LocalProtocolError,
    RemoteProtocolError,
    TGSError,
    UnknownUidError,
    ValueTooLargeError,
)
from ..shared.pump import ConnectionPump
from ..shared.states import EndReason
from ..shared.task_errors import unpickle_exception
from .core.conditions import GenericSchedulingCondition
from .dispatch import (
    KEEPS_UP,
    NO_WINDOW,
    Pace,
    Turnaround,
    adapted_window,
    full_window,
    prefetch_window,
)
from .observe.status_reply import build_status_reply
from .observe.wording import worker_lost_line
from .run import log_task_failure

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from .core.nodes import TaskNode
    from .server import Coordinator

logger = logging.getLogger("tgs.coordinator")


class _SessionClosed(Exception):
    """The session must end; ``code`` and ``reason`` go in the close frame."""

    def __init__(self, code: int, reason: str) -> None:
        self.code = code
        self.reason = reason
        super().__init__(reason)


class _FunctionNotSent(Exception):
    """An assignment that carried its function could not be sent: the batch is built
    again, so that the next assignment of that function carries it instead."""


@dataclass(slots=True)
class WorkerRecord:
    """One worker's life in a run, kept after it left (for status queries and reports)."""

    worker_id: str
    #: The name it gave (``host:pid`` by default).
    name: str
    #: The loops it serves.
    loops: list[str]
    #: When it was welcomed and when it left (``time.time()``).
    joined_at: float
    left_at: float | None = None
    #: Why it left: ``dismissed`` when told to, ``stopped`` when it stopped on its own
    #: and handed back its tasks, else why it was dropped; None while here.
    left_because: str | None = None
    #: What it was running when it was lost: ``(task uid, function)`` pairs, in the
    #: order they were handed to it; empty if it left cleanly or ran nothing.
    lost_while_running: list[tuple[str, str]] = field(default_factory=list)


class LoopClaim:
    """A worker's claim on one loop: the claimant its loop queue deals with.

    ``credit`` is how many more tasks the worker accepts on the loop (it grants more with
    ``claim`` messages); each handed task gets a lease of the session. The claim stays in
    line only while the worker has credit and fewer tasks sent to it are not started yet
    than its prefetch window allows (see dispatch.py).
    """

    __slots__ = (
        "adapts",
        "base_window",
        "credit",
        "held",
        "keeps_up",
        "loop",
        "pace",
        "revoked",
        "sampled_at",
        "session",
        "share",
        "slots",
        "turnaround",
        "unstarted",
        "waiting",
        "window",
    )

    def __init__(
        self,
        session: WorkerSession,
        loop: str,
        window: int | None = None,
        *,
        adapts: bool = False,
        pace: Pace | None = None,
        slots: int = 0,
    ) -> None:
        self.session = session
        self.loop = loop
        self.credit = 0
        #: Whether the loop queue holds this claimant in line.
        self.waiting = False
        #: Tasks handed to it and not answered (nor handed or taken back).
        self.held = 0
        #: Its share of the loop's concurrency (see dispatch.py); 0 until it is known.
        self.share = 0
        #: Tasks handed to it that its worker has not said it started (nor answered),
        #: taken-back ones included until the worker answers their ``cancel``.
        self.unstarted = 0
        #: The most ``unstarted`` may be: the prefetch window (``None``: no limit).
        self.window = window if window is not None else NO_WINDOW
        #: The window of a worker that keeps up; ``window`` shrinks from it as its
        #: worker's turnaround grows beyond the loop's pace (see dispatch.py).
        self.base_window = self.window
        #: Whether the window follows the turnaround and the share of the loop (not
        #: when ``--prefetch`` set it).
        self.adapts = adapts
        #: Its worker's slots on the loop.
        self.slots = slots
        #: Whether its turnaround is within twice its loop's pace (see dispatch.py).
        self.keeps_up = True
        #: Its worker's turnaround on the loop, and the loop's pace.
        self.turnaround = Turnaround()
        self.pace = pace if pace is not None else Pace()
        #: When the frame of its last turnaround sample arrived.
        self.sampled_at = -1.0
        #: Tasks taken back from it that its worker has not answered yet: meanwhile it
        #: is given nothing (it may be frozen or cut off).
        self.revoked = 0

    def may_wait(self) -> bool:
        """Whether it may stand in its loop's line for another task."""
        return self.credit > 0 and self.unstarted < self.window and not self.revoked

    def deliver(self, node: TaskNode) -> bool:
        self.take(node)
        self.waiting = self.credit > 0 and self.unstarted < self.window and not self.revoked
        return self.waiting

    def take(self, node: TaskNode) -> None:
        """Count ``node`` as handed to its worker, from the line or as a suspect to run
        alone, and lease it: the one place a claim's counts go up."""
        self.credit -= 1
        self.held += 1
        self.unstarted += 1
        self.session._lease(node)

    def keeps_freed_slot(self) -> bool:
        """A slot its worker's answer freed comes back to it while it holds less than
        its share of the loop and has room in its window and credit for two more tasks
        (so that it may stay in line after this one)."""
        return (
            self.waiting
            and self.held < self.share
            and self.credit > 1
            and self.unstarted + 1 < self.window
        )

    def heard_started(self, sent_at: float, heard_at: float) -> None:
        """A task sent at ``sent_at`` was started (or answered), as a frame that arrived
        at ``heard_at`` says: its window follows. One sample per frame: the tasks a
        frame answers were mostly sent together, and a sample costs a microsecond."""
        if heard_at == self.sampled_at:
            return
        self.sampled_at = heard_at
        turnaround = self.turnaround.add(heard_at - sent_at)
        pace = self.pace.update(self, turnaround)
        if not self.adapts:
            return
        keeps_up = turnaround <= KEEPS_UP * pace
        if keeps_up is self.keeps_up:
            self.window = adapted_window(self.base_window, turnaround, pace)
        else:
            # It fell behind or caught up: the loop's shares change, its own too.
            self.keeps_up = keeps_up
            self.session.reshare(self.loop)

    def reshare(self, share: int) -> None:
        """The loop's concurrency over its workers is now ``share``: so is the full
        window, within its bounds (see dispatch.py)."""
        self.share = share
        if not self.adapts:
            return
        before = self.window
        self.base_window = full_window(self.slots, share)
        self.window = adapted_window(self.base_window, self.turnaround.seconds, self.pace.seconds)
        if self.window > before:
            self.session._rejoin(self)  # it may have waited for room in its window

    def cancel(self, node: TaskNode) -> None:
        self.session.cancel(node)


class WorkerSession:
    """The coordinator's end of one worker connection."""

    def __init__(self, coordinator: Coordinator, ws: trio_websocket.WebSocketConnection) -> None:
        self._coordinator = coordinator
        self._scheduler = coordinator.graph.scheduler
        self._ws = ws
        self._protocol = ProtocolSession(
            Role.COORDINATOR,
            max_frame_bytes=coordinator.config.max_frame_bytes,
            max_value_bytes=coordinator.config.max_value_bytes,
        )
        self.worker_id = ""
        self.worker_name = ""
        #: True once the worker granted its first credit: it is ready for work.
        self.claimed = False
        #: Tasks this worker runs, by lease.
        self.leases: dict[int, TaskNode] = {}
        #: Ended tasks whose slot is still busy on the worker (their sync function runs
        #: on in a thread), by lease, until the worker says ``slot_freed``.
        self.busy_slots: dict[int, TaskNode] = {}
        #: The suspect it runs alone, if any: meanwhile it is in no loop's line.
        self.suspect: TaskNode | None = None
        #: Leases sent and not yet started, with when they were sent (trio time).
        self.unstarted: dict[int, float] = {}
        #: When the worker's last frame arrived (trio time): a stalled worker is silent.
        self.heard_at = 0.0
        # Leases taken back (see take_back) that the worker has not answered yet: their
        # late start or answer is ignored.
        self._revoked: dict[int, LoopClaim] = {}
        # Taken-back leases answered with slot_busy: a slot_freed for each may follow.
        self._revoked_busy: set[int] = set()
        self._claims: dict[str, LoopClaim] = {}
        #: Per loop, the worker_index numbers of its worker's slots (see Welcome).
        self._slot_indexes: dict[str, list[int]] = {}
        # Functions a frame sent to this worker carried: later assignments go without.
        self._functions_sent: set[str] = set()
        # Functions the batch being sent carries, once it went (see _encode).
        self._functions_carried: set[str] = set()
        #: Tasks whose large result the worker keeps (it ran them, or was sent their
        #: result), as far as it told: an assignment marks them ``cached`` instead of
        #: carrying them again (see worker/result_cache.py).
        self.worker_results: set[str] = set()
        # The budget of the worker's cache (its hello): a larger result is not kept.
        self._cache_budget = 0
        # Tasks handed to this session whose Assign is not built yet: building (and
        # pickling a function) happens in the sender, outside the scheduling core.
        self._to_assign: list[tuple[int, TaskNode]] = []
        self._outbox: list[Message] = []
        # Errors of unawaited graph calls, by lease: they fail the calling task.
        self._call_errors: dict[int, str] = {}
        self._nursery: trio.Nursery | None = None
        #: Why the session was dropped, once it was.
        self._closed: _SessionClosed | None = None
        #: Tasks the worker handed back, once it said it stops (``hand_back``); a worker
        #: that did and then closed left: it was not lost.
        self._handed_back: int | None = None
        self._stopped = False
        # Whether the frame being handled holds an UnreadableValue somewhere.
        self._unreadable_in_frame = False
        self._pump = ConnectionPump[Message](
            ws,
            decode=self._decode,
            encode=self._encode,
            heartbeat=Heartbeat,  # sent when idle; received, it proves the worker alive
            take_outbox=self._take_outbox,
            # After the Shutdown nothing more may go, and the sender stops.
            may_send=lambda: self._protocol.state is SessionState.ACTIVE,
            handlers={
                Claim: self._on_claim,
                Started: self._on_started,
                TaskSucceeded: self._on_task_succeeded,
                TaskFailed: self._on_task_failed,
                HandBack: self._on_hand_back,
                Cancelled: self._on_cancelled,
                SlotFreed: self._on_slot_freed,
                LoopBlocked: self._on_loop_blocked,
                CreateTaskRequest: self._on_create_task,
                CreateConditionRequest: self._on_create_condition,
                PrependRequest: self._on_prepend,
                TaskQuery: self._on_task_query,
                CancelTaskRequest: self._on_cancel_task,
                SuccessorsRequest: self._on_successors,
                ResultsDropped: self._on_results_dropped,
            },
            streaming=lambda: self._protocol.streaming,
            stream_frames=self._protocol.stream_frames,
        )

    @property
    def loops(self) -> list[str]:
        """The loops this worker serves (empty until it is welcomed)."""
        return list(self._claims)

    def __repr__(self) -> str:
        return f"<WorkerSession {self.worker_id} {self.worker_name!r} leases={len(self.leases)}>"

    # -- life --------------------------------------------------------------------------

    async def run(self) -> None:
        """Serve the worker until it leaves, breaks the protocol, or the graph ends."""
        try:
            hello = await self._handshake()
            await self._welcome(hello)
        except _SessionClosed as closed:
            await self._pump.close(closed.code, closed.reason)
            return
        self._coordinator.sessions.add(self)
        for loop, claim in self._claims.items():
            self._coordinator.prefetched.join(loop, claim, self._scheduler.loops[loop].concurrency)
        self._coordinator.count(workers_joined=1)
        self._coordinator.membership_changed()
        record = self._coordinator.workers[self.worker_id] = WorkerRecord(
            self.worker_id, self.worker_name, self.loops, time.time()
        )
        if self._coordinator.ended:
            # Late: the others are being dismissed. This one leaves at once, and exits 0.
            self.shutdown(LATE_REASON, self._coordinator.graph_succeeded)
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._send_loop)
                await self._receive_loop()
            if self._closed is not None:
                self._coordinator.count(workers_lost=1)
                # The reason may quote what the worker sent (a loop name, say): clipped.
                reason = clip(self._closed.reason, ERROR_CHARS)
                logger.warning("worker %s dropped: %s", self.worker_id, reason)
                # Its tasks run elsewhere now, not after a close handshake that a frozen
                # worker would never answer.
                self._leave(record)
                await self._pump.close(self._closed.code, self._closed.reason)
        finally:
            self._leave(record)

    def _leave(self, record: WorkerRecord) -> None:
        """Take the worker out of the run, once: its place in line, its tasks, its record."""
        if record.left_at is not None:
            return
        record.left_at = time.time()
        if self._closed is not None:
            record.left_because = self._closed.reason
        else:
            record.left_because = "stopped" if self._stopped else "dismissed"
        self._coordinator.sessions.discard(self)
        self._protocol.release_streams()
        self._free_slot_indexes()
        self._coordinator.membership_changed()
        record.lost_while_running = self._release()
        if self._stopped:
            logger.info(
                "worker %s (%s) left: stopped, handed back %d task(s)",
                self.worker_id,
                self.worker_name,
                self._handed_back or 0,
            )
        else:
            logger.info("worker %s (%s) left", self.worker_id, self.worker_name)

    def _free_slot_indexes(self) -> None:
        for loop, indexes in self._slot_indexes.items():
            self._coordinator.free_slot_indexes(loop, indexes)
        self._slot_indexes = {}

    def shutdown(self, reason: str, graph_succeeded: bool) -> None:
        """Tell the worker to leave (the run has ended); it closes the connection.

        Tasks leased to it but not sent yet are handed back: nothing may follow the
        ``Shutdown``.
        """
        unsent, self._to_assign = self._to_assign, []
        for lease, node in unsent:
            if self._pop_lease(lease) is not None:
                self._scheduler.hand_back(node)
        self._outbox.append(Shutdown(reason=reason, graph_succeeded=graph_succeeded))
        self._pump.wake()

    def _drop(self, closed: _SessionClosed) -> None:
        """End the session from inside its nursery: raised, the error would be grouped."""
        if self._closed is None:
            self._closed = closed
        assert self._nursery is not None
        self._nursery.cancel_scope.cancel()

    async def _handshake(self) -> Hello:
        """Read the hello and check it; answer a status query instead and close."""
        coordinator = self._coordinator
        config = coordinator.config
        first: Hello | StatusRequest | None = None
        with trio.move_on_after(config.handshake_timeout):
            data = await self._receive()
            if data is None:
                raise _SessionClosed(CloseCode.NORMAL, "closed before hello")
            (message,) = self._decode(data)  # the protocol session admits one message first
            assert isinstance(message, Hello | StatusRequest)
            first = message
        if first is None:
            raise _SessionClosed(CloseCode.POLICY_VIOLATION, "no hello in time")
        peer = _peer_address(self._ws)
        expected = config.token or ""
        reason = None
        if not hmac.compare_digest(first.token.encode(), expected.encode()):
            reason = "wrong token"  # the token itself is never logged
            # Each wrong token from this address waits longer for its answer.
            delay = coordinator.failed_handshakes.failed(peer, trio.current_time())
        else:
            coordinator.failed_handshakes.succeeded(peer)
            delay = 0.0
            if isinstance(first, Hello) and (
                unknown := set(first.loops) - set(self._scheduler.loops)
            ):
                known = sorted(self._scheduler.loops)
                reason = clip(f"unknown loops {sorted(unknown)}; the graph has {known}")
        if reason is not None:
            # What the peer sent is clipped: a 60 KiB name must not fill the log.
            who = (
                f"worker {clip(first.worker_name)!r}"
                if isinstance(first, Hello)
                else "a status query"
            )
            logger.warning("refused %s from %s: %s", who, clip(peer), reason)
            await trio.sleep(delay)
            await self._send_now([Reject(reason=reason)])
            raise _SessionClosed(CloseCode.POLICY_VIOLATION, reason)
        if isinstance(first, StatusRequest):
            await self._send_now([build_status_reply(coordinator, first.why, first.tasks)])
            raise _SessionClosed(CloseCode.NORMAL, "status sent")
        return first

    def reshare(self, loop: str) -> None:
        """One of the workers of ``loop`` fell behind or caught up (see dispatch.py)."""
        self._coordinator.prefetched.regard(loop, self._scheduler.loops[loop].concurrency)

    async def _welcome(self, hello: Hello) -> None:
        coordinator = self._coordinator
        self.worker_id = coordinator.new_worker_id()
        self.worker_name = hello.worker_name
        self._cache_budget = hello.result_cache_bytes
        loops = hello.loops or list(self._scheduler.loops)
        concurrency = {loop: self._scheduler.loops[loop].concurrency for loop in loops}
        # The worker's slots per loop: the concurrency, capped by its own.
        slots = {loop: min(n, hello.max_tasks or n) for loop, n in concurrency.items()}
        prefetch = coordinator.config.prefetch
        self._claims = {
            loop: LoopClaim(
                self,
                loop,
                prefetch_window(slots[loop], prefetch),
                # A window set by --prefetch stays as set; the default one adapts.
                adapts=prefetch is None,
                pace=coordinator.prefetched.pace(loop),
                slots=slots[loop],
            )
            for loop in loops
        }
        # As many numbers as the worker runs slots.
        self._slot_indexes = {
            loop: coordinator.take_slot_indexes(loop, n) for loop, n in slots.items()
        }
        welcome = Welcome(
            version=hello.version,
            worker_id=self.worker_id,
            loops=concurrency,
            heartbeat_interval=coordinator.config.heartbeat_interval,
            heartbeat_timeout=coordinator.config.heartbeat_timeout,
            context_inits=coordinator.pickled_context_inits(loops),
            max_frame_bytes=coordinator.config.max_frame_bytes,
            slot_indexes=self._slot_indexes,
            max_value_bytes=coordinator.config.max_value_bytes,
        )
        try:
            await self._send_now([welcome])
        except FrameTooLargeError as exc:
            self._free_slot_indexes()
            # The loops' context init functions are larger than the worker accepts.
            reason = (
                f"the welcome (with the loops' context init functions) needs a frame of "
                f"{exc.size} bytes and this worker accepts at most {exc.limit} "
                "(--max-frame-bytes)"
            )
            logger.warning("refused worker %s: %s", clip(hello.worker_name), reason)
            await self._send_now([Reject(reason=reason)])
            raise _SessionClosed(CloseCode.POLICY_VIOLATION, reason) from None
        # It holds the token: from now on it may send frames as large as configured.
        # trio-websocket has no public way to change this limit on an open connection.
        self._ws._max_message_size = coordinator.config.max_frame_bytes
        logger.info(
            "worker %s (%s) joined, serving %s", self.worker_id, clip(hello.worker_name), loops
        )

    def _release(self) -> list[tuple[str, str]]:
        """Give back everything the worker held: its place in line and its tasks.

        Returns:
            The tasks it was running if it was lost, as ``(uid, function)`` pairs.
        """
        for claim in self._claims.values():
            self._scheduler.loops[claim.loop].withdraw(claim)
            claim.waiting = False
            claim.credit = claim.held = claim.unstarted = claim.revoked = 0
            claim.pace.forget(claim)
        for loop, claim in self._claims.items():  # the others' shares grow
            self._coordinator.prefetched.leave(loop, claim, self._scheduler.loops[loop].concurrency)
        # Whatever threads still run there, they are no longer this cluster's slots.
        busy, self.busy_slots = self.busy_slots, {}
        for node in busy.values():
            self._scheduler.slot_freed(node)
        leases, self.leases = self.leases, {}
        unstarted, self.unstarted = self.unstarted, {}
        self._revoked.clear()
        self._revoked_busy.clear()
        self._to_assign.clear()
        self.suspect = None
        if not leases:
            return []
        if self._closed is None:
            # The coordinator is ending the run itself: the worker lost nothing.
            for node in leases.values():
                self._scheduler.hand_back(node)
            return []
        # Blame on evidence: only a task that ran alone on the worker is charged.
        alone = len(leases) == 1
        # Every task it held is named: one it never said it started may have (a task
        # that kills its worker at once never gets to say so). But a task it never said
        # it started counts no run, unless it was all the worker held.
        running = [(node.uid, node.task_handle) for node in leases.values()]
        runs_lost = sum(1 for lease in leases if alone or lease not in unstarted)
        logger.warning(
            "%s", worker_lost_line(self.worker_id, self.worker_name, running, self._closed.reason)
        )
        reason = f"{self.worker_id} ({self.worker_name}): {self._closed.reason}"
        blocked = self._coordinator.loop_blockers
        for lease, node in leases.items():
            why = reason
            if node.uid in blocked:  # a worker said so earlier: name what the task does
                why += f"; it blocked a worker's event loop for {blocked[node.uid]:.1f} s before"
            self._scheduler.task_lost(node, why, alone=alone, started=lease not in unstarted)
        self._coordinator.count(tasks_lost=runs_lost)
        offer_suspects(self._coordinator.sessions)
        return running

    # -- receiving ---------------------------------------------------------------------

    async def _receive_loop(self) -> None:
        timeout = self._coordinator.config.heartbeat_timeout
        try:
            closed_by_peer = await self._pump.receive_loop(timeout)
            if closed_by_peer is None:
                raise _SessionClosed(CloseCode.POLICY_VIOLATION, f"silent for {timeout:g} s")
            if self._protocol.state is not SessionState.CLOSED:
                if self._handed_back is None or self.leases:
                    raise _SessionClosed(CloseCode.NORMAL, "connection lost")
                # It said it stops, handed back every task it held, and closed: it left
                # on purpose and lost nothing (a Ctrl-C on the worker).
                self._stopped = True
            # Else we said Shutdown and the worker left, as it should.
        except _SessionClosed as closed:
            self._drop(closed)
        else:
            assert self._nursery is not None
            self._nursery.cancel_scope.cancel()

    async def _receive(self) -> bytes | str | None:
        """The next inbound message; ``None`` once the connection is closed."""
        try:
            return await self._ws.get_message()
        except trio_websocket.ConnectionClosed:
            return None

    def _decode(self, data: bytes | str) -> list[Message]:
        before = unreadable_values_decoded()
        try:
            messages = self._protocol.receive(data)
        except RemoteProtocolError as exc:
            raise _SessionClosed(CloseCode.PROTOCOL_ERROR, f"protocol error: {exc}") from None
        # Values are searched for unreadable markers only in the rare frame that has one.
        self._unreadable_in_frame = unreadable_values_decoded() != before
        self.heard_at = self._coordinator.clock()
        if any(claim.waiting for claim in self._claims.values()):
            self._take_back_stale()
        return messages

    def _on_claim(self, message: Claim) -> None:
        claim = self._claims.get(message.loop)
        if claim is None:
            raise _SessionClosed(
                CloseCode.PROTOCOL_ERROR, f"claim for loop {message.loop!r} not served"
            )
        self._add_credit(claim, message.credit)
        if not self.claimed:
            self.claimed = True
            self._coordinator.membership_changed()

    def _add_credit(self, claim: LoopClaim, credit: int) -> None:
        claim.credit += credit
        self._rejoin(claim)

    def _rejoin(self, claim: LoopClaim) -> None:
        """Put ``claim`` back in its loop's line if it may stand there (or hand its
        worker a suspect, if it is idle)."""
        if self.suspect is not None:
            return  # it runs a suspect alone: it stays out of every line until that ends
        if not self.leases and self.take_suspect():
            return
        if not claim.waiting and claim.may_wait():
            claim.waiting = True
            self._scheduler.loops[claim.loop].wait(claim)

    # -- prefetch: what a worker started, and taking back what it did not -------------

    def _on_started(self, message: Started) -> None:
        unstarted = self.unstarted
        heard_at = self.heard_at
        for lease in message.leases:
            sent_at = unstarted.pop(lease, None)
            if sent_at is None:
                if lease in self._revoked or lease in self.leases:
                    continue  # taken back (fenced), or said twice
                raise _SessionClosed(
                    CloseCode.PROTOCOL_ERROR,
                    f"started: lease {lease}, which this worker does not hold",
                )
            claim = self._claims[self.leases[lease]._loop.name]
            claim.unstarted -= 1
            claim.heard_started(sent_at, heard_at)
            self._rejoin(claim)

    def _take_back_stale(self) -> None:
        """This worker waits for work: give it tasks other workers were sent long ago
        and have not started, if those workers have been silent as long (frozen, cut
        off)."""
        now = self._coordinator.clock()
        ledger = self._coordinator.prefetched
        for claim in list(self._claims.values()):
            if claim.waiting:
                ledger.take_back_stale(self._scheduler.loops[claim.loop], now)

    def take_back(self, lease: int) -> None:
        """Take the task of ``lease``, sent and not started, back from this worker: it
        goes to the front of its loop's queue, and the worker is told not to start it.

        The lease is fenced from now on (its late start or answer is ignored), and it
        stays counted in the worker's window until the worker answers the ``cancel``:
        a frozen worker is given nothing more meanwhile.
        """
        node = self._pop_lease(lease)
        assert node is not None  # the ledger takes back only held leases
        del self.unstarted[lease]  # only held leases are unstarted (see _take_lease)
        claim = self._claims[node._loop.name]
        claim.revoked += 1
        self._revoked[lease] = claim
        if claim.waiting:
            self._scheduler.loops[claim.loop].withdraw(claim)
            claim.waiting = False
        self._call_errors.pop(lease, None)
        self._outbox.append(Cancel(lease=lease))
        self._pump.wake()
        self._coordinator.count(tasks_taken_back=1)
        logger.info(
            "task %s (function %s) taken back from %s (%s): sent and not started, and the "
            "worker silent, for %g s or more, while another worker waits",
            node.uid,
            node.task_handle,
            self.worker_id,
            self.worker_name,
            self._coordinator.prefetched.after,
        )
        was_suspect = node is self.suspect
        if was_suspect:
            self.suspect = None
        self._scheduler.hand_back(node)  # the loop queue hands it to a waiting claimant
        if was_suspect:
            offer_suspects(self._coordinator.sessions)

    def _answer_revoked(self, lease: int, *, slot_busy: bool) -> bool:
        """The worker answered a lease taken back from it: ignored (fenced), and the
        worker is in line again. Returns whether ``lease`` was one."""
        claim = self._revoked.pop(lease, None)
        if claim is None:
            return False
        self._coordinator.count(results_dropped=1)
        if slot_busy:
            self._revoked_busy.add(lease)
        claim.unstarted -= 1
        claim.revoked -= 1
        self._rejoin(claim)
        return True

    def take_suspect(self) -> bool:
        """If this worker holds nothing, hand it the oldest suspect of a loop it has credit
        on, and take it out of every loop's line until that task has ended.

        Returns:
            Whether it took one.
        """
        if self.leases or self.busy_slots or self._revoked or self.suspect is not None:
            return False  # not alone: a thread of an ended sync task may still run too
        if self._protocol.state is not SessionState.ACTIVE:
            return False  # dismissed: nothing more may be sent
        for claim in self._claims.values():
            if claim.credit <= 0:
                continue
            queue = self._scheduler.loops[claim.loop]
            node = queue.claim_suspect(claim)
            if node is None:
                continue
            for other in self._claims.values():
                if other.waiting:
                    self._scheduler.loops[other.loop].withdraw(other)
                    other.waiting = False
            self.suspect = node
            claim.take(node)
            logger.info(
                "task %s (function %s) is suspected of killing a worker: running it alone on "
                "%s (%s)",
                node.uid,
                node.task_handle,
                self.worker_id,
                self.worker_name,
            )
            return True
        return False

    def _lease_ended(self, node: TaskNode) -> None:
        """One of its leases ended (or was handed back): a suspect run alone is over, and
        an idle worker may take a suspect; a freed slot may let another worker take one."""
        if node is self.suspect:
            self.suspect = None
            if not self.take_suspect():
                for claim in self._claims.values():  # back in line for ordinary work
                    if not claim.waiting and claim.may_wait():
                        claim.waiting = True
                        self._scheduler.loops[claim.loop].wait(claim)
        elif not self.leases:
            self.take_suspect()
        claim = self._claims[node._loop.name]
        if not claim.waiting and self.suspect is None and claim.may_wait():
            # Its window may have room again: an answer for a task it had not said it
            # started came (with no credit after it, if its slot stays busy).
            claim.waiting = True
            node._loop.wait(claim)
        queue = node._loop
        if queue.suspects and queue.running < queue.concurrency:
            # A slot is free that an idle worker could not take before (the loop was full).
            offer_suspects(self._coordinator.sessions)

    def _pop_lease(self, lease: int) -> TaskNode | None:
        """Forget ``lease`` (answered, handed or taken back, or never sent); its task."""
        node = self.leases.pop(lease, None)
        if node is not None:
            self._claims[node._loop.name].held -= 1
        return node

    def _take_lease(self, lease: int, *, slot_busy: bool = False) -> TaskNode | None:
        """The task of an answered lease; ``None`` for a lease taken back (ignored)."""
        node = self._pop_lease(lease)
        if node is not None:
            sent_at = self.unstarted.pop(lease, None) if self.unstarted else None
            if sent_at is not None:
                # It ended before the worker said it started: the answer says it.
                claim = self._claims[node._loop.name]
                claim.unstarted -= 1
                claim.heard_started(sent_at, self.heard_at)
            return node
        if self._answer_revoked(lease, slot_busy=slot_busy):
            return None
        # Fencing: a lease this worker does not hold (answered already, or never its
        # own) is never recorded. A worker that follows the protocol cannot send one:
        # leases live as long as their connection, so this one is broken or hostile.
        self._coordinator.count(results_dropped=1)
        raise _SessionClosed(
            CloseCode.PROTOCOL_ERROR,
            f"an answer for lease {lease}, which this worker does not hold",
        )

    def _on_task_succeeded(self, message: TaskSucceeded) -> None:
        node = self._take_lease(message.lease)
        if node is None:
            return
        call_error = self._call_errors.pop(message.lease, None)
        unreadable = self._unreadable_in_frame and find_unreadable(message.result)
        if call_error is not None:
            self._scheduler.task_failed(node, call_error, EndReason.CALL_FAILED)
            log_task_failure(node)
        elif unreadable:
            logger.warning(
                "task %s (function %s) returned a value the coordinator cannot read: %s",
                node.uid,
                node.task_handle,
                unreadable.error,
            )
            trace = (
                "the task's result cannot be read on the coordinator (is its class only "
                f"installed on the workers?): {unreadable.error}\n"
            )
            self._scheduler.task_failed(node, trace, EndReason.UNSENDABLE)
            log_task_failure(node)
        else:
            self._scheduler.task_succeeded(node, message.result)
            if self._kept(message.result):
                self.worker_results.add(node.uid)  # the worker keeps it too
        self._lease_ended(node)

    def _on_task_failed(self, message: TaskFailed) -> None:
        node = self._take_lease(message.lease, slot_busy=message.slot_busy)
        if node is None:
            return
        self._call_errors.pop(message.lease, None)
        if message.reason is EndReason.MARKED_FAILED:
            self._scheduler.task_marked_failed(node)
        else:
            trace = message.traceback or f"{message.error_type}: {message.message}\n"
            if message.slot_busy:
                self.busy_slots[message.lease] = node
            exception = unpickle_exception(
                message.exception,
                message.error_type or "Exception",
                message.message,
                # None sent: it could not be pickled or was too large, or the worker
                # failed the task itself (it could not load the function, say).
                "" if message.exception else "its worker sent no exception object",
            )
            self._scheduler.task_failed(
                node, trace, message.reason, slot_busy=message.slot_busy, exception=exception
            )
        log_task_failure(node)
        self._lease_ended(node)

    def _on_cancelled(self, message: Cancelled) -> None:
        node = self._take_lease(message.lease, slot_busy=message.slot_busy)
        if node is None:
            return
        self._call_errors.pop(message.lease, None)
        if message.slot_busy:
            self.busy_slots[message.lease] = node
        self._scheduler.task_cancelled(node, slot_busy=message.slot_busy)
        log_task_failure(node)
        self._lease_ended(node)

    def _on_slot_freed(self, message: SlotFreed) -> None:
        node = self.busy_slots.pop(message.lease, None)
        if node is None:
            if message.lease in self._revoked_busy:  # taken back: not this cluster's slot
                self._revoked_busy.discard(message.lease)
                return
            raise _SessionClosed(
                CloseCode.PROTOCOL_ERROR,
                f"slot_freed for lease {message.lease}, whose slot was not kept busy",
            )
        self._scheduler.slot_freed(node)
        # A place came free as when a lease ends: an idle worker may take a suspect now.
        self._lease_ended(node)

    def _on_loop_blocked(self, message: LoopBlocked) -> None:
        if message.task_uid is not None and message.task_uid in self._coordinator.graph.nodes:
            blockers = self._coordinator.loop_blockers
            blockers[message.task_uid] = max(message.seconds, blockers.get(message.task_uid, 0))
        by = (
            f"task {message.task_uid} ({message.handle})"
            if message.task_uid is not None
            else "no task"
        )
        logger.warning(
            "worker %s (%s): its event loop was blocked for %.1f s by %s",
            self.worker_id,
            self.worker_name,
            message.seconds,
            clip(by),  # the worker's words: a handle may be as long as it likes
        )

    def _on_results_dropped(self, message: ResultsDropped) -> None:
        self.worker_results.difference_update(message.uids)

    def _on_hand_back(self, message: HandBack) -> None:
        # The worker is stopping: it must be handed nothing more, not even the tasks it
        # gives back (they used to come straight back to it, and were lost with it).
        for claim in self._claims.values():
            if claim.waiting:
                self._scheduler.loops[claim.loop].withdraw(claim)
                claim.waiting = False
            claim.credit = 0
        self._handed_back = self._handed_back or 0
        for lease in message.leases:
            node = self._pop_lease(lease)
            if node is not None:
                if self.unstarted.pop(lease, None) is not None:
                    self._claims[node._loop.name].unstarted -= 1  # no longer to take back
                self._handed_back += 1
                self._call_errors.pop(lease, None)
                if node is self.suspect:
                    self.suspect = None
                self._scheduler.hand_back(node)
                if node._loop.suspects:  # rare: a stopping worker held a suspect
                    offer_suspects(self._coordinator.sessions)

    def _on_create_task(self, request: CreateTaskRequest) -> None:
        created: list[TaskNode] = []

        def create() -> None:
            if self._unreadable_in_frame and (bad := find_unreadable(request.arguments)):
                raise GraphDefinitionError(
                    f"the task's arguments cannot be read on the coordinator: {bad.error}"
                )
            created.append(
                self._coordinator.graph.create_task_nowait(
                    request.handle,
                    request.arguments,
                    request.waits_on,
                    key=request.key,
                    uid=request.uid,
                    keep_result=request.keep_result,
                )
            )

        error = self._graph_call(request.lease, create, fail_task=not request.awaited)
        if request.awaited:
            if error or request.key is None:
                self._reply(request.request_id, error, uid=request.uid)
            else:
                # A key may name a task that existed: the worker learns which.
                (node,) = created
                record = task_record(node, with_result=False)
                self._reply(request.request_id, None, uid=node.uid, tasks=[record])

    def _on_create_condition(self, request: CreateConditionRequest) -> None:
        graph = self._coordinator.graph

        def create() -> None:
            GenericSchedulingCondition(graph, request.mode, request.waits_on, uid=request.uid)

        error = self._graph_call(request.lease, create, fail_task=not request.awaited)
        if request.awaited:
            self._reply(request.request_id, error, uid=request.uid)

    def _on_prepend(self, request: PrependRequest) -> None:
        def prepend() -> None:
            node = self.leases[request.lease]  # _graph_call checked it is held
            node.prepend_to_successor(request.successor_handle, request.new_task_uid)

        error = self._graph_call(request.lease, prepend, fail_task=not request.awaited)
        if request.awaited:
            self._reply(request.request_id, error)

    def _on_task_query(self, query: TaskQuery) -> None:
        graph = self._coordinator.graph
        found: list[TaskRecord] = []

        def look_up() -> None:
            if query.uid is not None:
                node = graph.nodes.get(query.uid)
                if node is None:
                    raise UnknownUidError(query.uid)
            else:
                node = graph.get_task_by_key(query.key)
            if node is not None:
                found.append(task_record(node, with_result=query.with_result))

        error = self._graph_call(query.lease, look_up, fail_task=False)
        self._reply(query.request_id, error, tasks=found)

    def _on_cancel_task(self, request: CancelTaskRequest) -> None:
        answer: list[bool] = []

        def cancel() -> None:
            answer.append(self._coordinator.graph.cancel_task(request.uid, request.reason))

        error = self._graph_call(request.lease, cancel, fail_task=False)
        self._reply(request.request_id, error, answer=bool(answer and answer[0]))

    def _on_successors(self, request: SuccessorsRequest) -> None:
        graph = self._coordinator.graph
        tasks: list[TaskRecord] = []
        conditions: list[ConditionRecord] = []

        def successors() -> None:
            node = graph.nodes.get(request.uid)
            if node is None:
                raise UnknownUidError(request.uid)
            for successor, condition in node.get_successors(request.handle):
                tasks.append(task_record(successor, with_result=False))
                conditions.append(
                    ConditionRecord(
                        uid=condition.uid,
                        mode=str(condition.mode),
                        status=condition.condition_status,
                    )
                )

        error = self._graph_call(request.lease, successors, fail_task=False)
        self._reply(request.request_id, error, tasks=tasks, conditions=conditions)

    def _reply(
        self,
        request_id: int,
        error: TGSError | None,
        *,
        uid: str | None = None,
        tasks: list[TaskRecord] | None = None,
        conditions: list[ConditionRecord] | None = None,
        answer: bool = False,
    ) -> None:
        """Queue the reply to a graph call: its answer, or the error it raised."""
        if error is not None:
            reply = Reply(
                request_id=request_id,
                uid=None,
                error_type=type(error).__name__,
                error_message=clip(str(error), ERROR_CHARS),
            )
        else:
            reply = Reply(
                request_id=request_id,
                uid=uid,
                error_type=None,
                error_message=None,
                tasks=tasks or [],
                conditions=conditions or [],
                answer=answer,
            )
        self._outbox.append(reply)
        self._pump.wake()

    def _graph_call(
        self, lease: int, call: Callable[[], None], *, fail_task: bool
    ) -> TGSError | None:
        """Run a graph call a remote task made; an error it raises is returned.

        With ``fail_task``, the error also fails the calling task when its result comes,
        since the task did not wait to hear of it.
        """
        if lease not in self.leases:
            # Only a running task makes graph calls, and its worker holds its lease.
            reason = f"a graph call for lease {lease}, which this worker does not hold"
            raise _SessionClosed(CloseCode.PROTOCOL_ERROR, reason)
        try:
            call()
        except TGSError as error:
            if fail_task:
                text = clip(str(error), ERROR_CHARS)
                self._call_errors.setdefault(
                    lease, f"a graph call by this task failed: {type(error).__name__}: {text}\n"
                )
            return error
        return None

    # -- sending -----------------------------------------------------------------------

    def cancel(self, node: TaskNode) -> None:
        """Ask the worker to stop ``node``; it ends when the worker confirms it stopped."""
        for lease, leased in self.leases.items():  # few: at most the worker's credit
            if leased is not node:
                continue
            if any(waiting == lease for waiting, _ in self._to_assign):
                # Not sent yet: it never started, so it ends here, and the worker keeps
                # the credit it granted for it.
                self._to_assign = [pair for pair in self._to_assign if pair[0] != lease]
                self._pop_lease(lease)
                claim = self._claims[node._loop.name]
                claim.unstarted -= 1
                self._add_credit(claim, 1)
                self._scheduler.task_cancelled(node)
                self._lease_ended(node)
            else:
                self._outbox.append(Cancel(lease=lease))
                self._pump.wake()
            return

    def _lease(self, node: TaskNode) -> None:
        # Called from inside the loop queue's dispatch: record and wake, nothing more.
        lease = self._coordinator.new_lease()
        node.worker = self.worker_id
        self.leases[lease] = node
        self._to_assign.append((lease, node))
        self._pump.wake()

    async def _send_loop(self) -> None:
        try:
            await self._pump.send_loop(self._coordinator.config.heartbeat_interval)
        except trio_websocket.ConnectionClosed:
            self._drop(_SessionClosed(CloseCode.NORMAL, "connection closed"))

    def _take_outbox(self) -> list[Message]:
        # Assignments first: a Cancel or the Shutdown in the outbox must not overtake them.
        assignments, self._to_assign = self._to_assign, []
        self._functions_carried = set()
        messages: list[Message] = [
            self._build_assign(lease, node)
            for lease, node in assignments
            if lease in self.leases  # not handed back in the meantime
        ]
        if assignments:
            self._sent_unstarted(assignments)
        messages += self._outbox
        self._outbox = []
        return messages

    def _sent_unstarted(self, assignments: list[tuple[int, TaskNode]]) -> None:
        """Note when each assignment went: until its worker says it started, it may be
        taken back once it waited long enough (see dispatch.py)."""
        now = self._coordinator.clock()
        unstarted = self.unstarted
        leases = self.leases
        sent = self._coordinator.prefetched.sent
        for lease, node in assignments:
            if lease in leases:
                unstarted[lease] = now
                sent(node._loop.name, self, lease, now)

    def _encode(self, messages: list[Message]) -> list[bytes]:
        """The batch as frames; a function counts as sent once a frame carries it."""
        while True:
            mark = self._protocol.mark()
            try:
                frames = encode_batches(self._protocol, messages, self._on_unsendable)
            except _FunctionNotSent:
                # Rare (a task whose own value cannot be sent): the frames made so far
                # (and the streams of their values) are dropped and the batch is made
                # again without the failed tasks.
                self._protocol.rollback(mark)
                messages = self._carry_functions_again(messages)
                continue
            self._functions_sent |= self._functions_carried
            return frames

    def _carry_functions_again(self, messages: list[Message]) -> list[Message]:
        """``messages`` without the assignments failed since, the first assignment of
        each function not sent yet carrying it."""
        self._functions_carried = set()
        again: list[Message] = []
        for message in messages:
            if isinstance(message, Assign):
                if message.lease not in self.leases:
                    continue  # failed as unsendable
                handle = message.handle
                carry = handle not in self._functions_sent and handle not in self._functions_carried
                if carry:
                    self._functions_carried.add(handle)
                function = self._coordinator.pickled_function(handle) if carry else None
                if function is not message.function:
                    message = msgspec.structs.replace(message, function=function)
            again.append(message)
        return again

    def _build_assign(self, lease: int, node: TaskNode) -> Assign:
        function: bytes | None = None
        handle = node.task_handle
        if handle not in self._functions_sent and handle not in self._functions_carried:
            function = self._coordinator.pickled_function(handle)
            self._functions_carried.add(handle)
        return Assign(
            lease=lease,
            task_uid=node.uid,
            handle=node.task_handle,
            loop=node._loop.name,
            arguments=node.task_arguments,
            predecessors=self._predecessor_records(node),
            function=function,
            timeout=self._coordinator.graph.task_functions[node.task_handle].policy.timeout,
            attempts=node.attempts,
            key=node.key,
        )

    def _predecessor_records(self, node: TaskNode) -> list[PredecessorRecord]:
        """The predecessors as the assignment carries them: a large result the worker
        keeps is marked ``cached`` instead of sent, and one sent is kept there from now.

        A mark the worker cannot honour (it dropped the result meanwhile, or an
        assignment carrying it could not be sent) only makes it ask for the result."""
        held = self.worker_results
        budget = self._cache_budget
        records: list[PredecessorRecord] = []
        append = records.append
        # A join's assignment lists every predecessor (100,000 of them, say): this loop
        # is its cost, so the rule of _kept is spelled out here, and None (the usual
        # result) is never measured.
        for predecessor in node.get_predecessor_task_nodes():
            uid = predecessor.uid
            if uid in held:
                append(_record(predecessor, cached=True))
                continue
            record = _record(predecessor)
            result = record.result
            if result is not None and CACHED_FROM <= result_size(result) <= budget:
                held.add(uid)
            append(record)
        return records

    def _kept(self, result: object) -> bool:
        """Whether the worker keeps this result (the rule of worker/result_cache.py)."""
        return CACHED_FROM <= result_size(result) <= self._cache_budget

    def _fail_unsendable(self, lease: int, error: Exception) -> None:
        node = self._pop_lease(lease)
        assert node is not None  # it was being sent
        logger.warning("task %s cannot be sent to a worker: %s", node.uid, error)
        # The worker never saw it: the credit it spent on it is still its own.
        self.unstarted.pop(lease, None)
        claim = self._claims[node._loop.name]
        claim.unstarted -= 1
        self._add_credit(claim, 1)
        if isinstance(error, FrameTooLargeError):
            error_text = (
                f"its arguments and its predecessors' results need a frame of "
                f"{error.size} bytes; worker {self.worker_id} ({self.worker_name}) accepts at "
                f"most {error.limit} (--max-frame-bytes)"
            )
        else:
            error_text = str(error)
        trace = f"cannot send the task to a worker: {error_text}\n"
        self._scheduler.task_failed(node, trace, EndReason.UNSENDABLE)
        self._lease_ended(node)

    def _on_unsendable(self, message: Message, error: LocalProtocolError) -> Message | None:
        if isinstance(message, Reply):
            # A task asked for a result too large (or unreadable) to travel: the call
            # raises in the task, and the connection carries on.
            what = "the answer to this graph call cannot be sent to the worker"
            if isinstance(error, FrameTooLargeError):
                detail = f"it needs a frame of {error.size} bytes and at most {error.limit} go"
                refusal: TGSError = ValueTooLargeError(f"{what}: {detail}")
            elif isinstance(error, ValueEncodeError) and error.too_large:
                refusal = ValueTooLargeError(f"{what}: {error}")
            else:
                refusal = TGSError(f"{what}: {error}")
            return Reply(
                request_id=message.request_id,
                uid=None,
                error_type=type(refusal).__name__,
                error_message=clip(str(refusal), ERROR_CHARS),
            )
        if isinstance(message, Assign):
            self._fail_unsendable(message.lease, error)
            if message.function is not None:
                # Assignments of the same function after this one were built without it.
                raise _FunctionNotSent
            return None
        raise error  # our own messages always encode: this is a bug

    async def _send_now(self, messages: list[Message]) -> None:
        """Send ``messages`` during the handshake, before the sender runs."""
        try:
            await self._pump.send(messages)
        except trio_websocket.ConnectionClosed:
            raise _SessionClosed(CloseCode.NORMAL, "connection closed") from None


#: What a worker that arrives while the others are dismissed is told.
LATE_REASON = "the run has ended"
#: How much of a text a peer sent goes into a log line or a refusal.
CLIP_CHARS = 200
#: How much of an error a graph call raised goes back to the worker, or into the trace
#: of the task that made it (the error may quote what the task sent).
ERROR_CHARS = 2000


def clip(text: str, limit: int = CLIP_CHARS) -> str:
    """``text``, cut to ``limit`` characters with a note of how much was left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"


def _peer_address(ws: trio_websocket.WebSocketConnection) -> str:
    """The peer's IP address, or one name for every in-memory peer (tests)."""
    remote = ws.remote
    return str(remote.address) if isinstance(remote, trio_websocket.Endpoint) else "in-memory"


def offer_suspects(sessions: Iterable[WorkerSession]) -> None:
    """Let every idle session take a suspect (a suspect was queued, or a slot of its loop
    freed). O(sessions), and only while suspects wait: rare."""
    for session in list(sessions):
        if not session.leases:
            session.take_suspect()


def _record(node: TaskNode, *, cached: bool = False) -> PredecessorRecord:
    return PredecessorRecord(
        task_uid=node.uid,
        handle=node.task_handle,
        status=node.task_status,
        arguments=node.task_arguments,
        result=None if cached else node.task_result,
        exception_trace=node.exception_trace,
        key=node.key,
        cached=cached,
    )


def task_record(node: TaskNode, *, with_result: bool) -> TaskRecord:
    """A task as a reply carries it to a task on a worker."""
    return TaskRecord(
        task_uid=node.uid,
        handle=node.task_handle,
        status=node.task_status,
        arguments=node.task_arguments,
        result=node.task_result if with_result else None,
        exception_trace=node.exception_trace,
        attempts=node.attempts,
        end_reason=node.end_reason,
        key=node.key,
    )
