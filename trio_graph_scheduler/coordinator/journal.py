"""A run's journal: a crash-safe record in SQLite from which a run resumes.

What it holds
-------------
A table of events, in the order the scheduling core made them (see
:mod:`.core.recording`): a condition created, a task created (its function, arguments,
key and conditions), a predecessor added by ``prepend_to_successor``, and a task's final
end (status, end reason, result or traceback, attempts, worker, times). Tasks ended by a
failed condition are not recorded: replaying their predecessors' ends derives them.
Each row holds one batch: the events one transaction wrote, as a msgpack array of the
events' own msgpack bytes (one row per batch, not per event, keeps SQLite's cost per
batch). A ``meta`` table holds the format and the graph's identity: its functions and
loops.

Replaying the events in order through the core rebuilds the graph exactly as it stood:
every recorded end is kept, and what had not ended runs. Functions, loops and policies
are code, which a journal cannot hold: they come from the graph the builder makes again,
and only its tasks are replaced by the journal's.

How it writes
-------------
The core calls the journal synchronously; each call encodes one event (with the wire's
value codec, pickles allowed) and appends it to a buffer. One flusher task writes whatever
accumulated as one transaction, in a thread, while the run goes on: a burst of events
costs one commit, and the event loop never waits on the disk. SQLite runs in WAL mode with
``synchronous=NORMAL``: a commit survives the process being killed (the case a journal is
for) but not the machine losing power mid-write.

A task that succeeded after the last commit runs again after a crash, like one that was
still running: results are recorded at least once, never lost once committed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, NoReturn

import msgpack
import trio

from ..protocol.values import ValueEncodeError, ValuePacker, decode_value
from ..shared.errors import JournalError, TGSError, TGSInternalError
from ..shared.states import EndReason, TaskStatus
from .core.conditions import GenericSchedulingCondition
from .core.nodes import EarlierRun

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Sequence

    from .core.graph import TaskGraphCore
    from .core.nodes import TaskNode

logger = logging.getLogger("trio_graph_scheduler.journal")

#: The journal's format; a journal of another format is refused.
FORMAT: Final = 1

# Event kinds: the first item of each event.
_CONDITION: Final = "condition"
_TASK: Final = "task"
_PREDECESSOR: Final = "predecessor"
_END: Final = "end"

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS batches (seq INTEGER PRIMARY KEY, events BLOB NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class Resumed:
    """What :meth:`Journal.bind` found in the journal."""

    #: Tasks rebuilt from the journal (0 for a new journal).
    tasks: int
    #: Of those, tasks that had ended (and will not run again).
    ended: int
    #: Events replayed.
    events: int


def graph_identity(graph: TaskGraphCore) -> dict[str, Any]:
    """What a journal must match to resume a graph: its functions and its loops' names."""
    return {
        "functions": sorted(graph.task_functions),
        "loops": sorted(loop.name for loop in graph.worker_loops),
    }


class Journal:
    """A run's journal in one SQLite file; open it with :meth:`open`.

    It is the core's :class:`~.core.recording.GraphRecorder` once :meth:`bind` has run:
    each call buffers one event, and :meth:`keep_flushed` (in the run's nursery) or
    :meth:`flush` writes them.
    """

    def __init__(self, path: Path, connection: sqlite3.Connection) -> None:
        #: Where the journal lives.
        self.path = path
        self._connection = connection
        self._pending: list[bytes] = []
        # One packer for every event: making one per event would cost more than packing.
        self._packer = ValuePacker()
        self._wake = trio.Event()
        # Only one thread writes at a time: the flusher's, or the caller of flush().
        self._write_lock = threading.Lock()

    # -- opening -----------------------------------------------------------------------

    @classmethod
    def open(cls, path: str | Path, graph: TaskGraphCore) -> Journal:
        """Open the journal at ``path`` for ``graph``, creating it if there is none.

        Raises:
            JournalError: the file is no journal, is damaged, is of another format, or
                records another graph (other functions or loops).
        """
        path = Path(path)
        try:
            # The flusher's thread writes; the lock above keeps one writer at a time.
            connection = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        except sqlite3.Error as exc:
            raise JournalError(f"cannot open the journal {path}: {exc}") from exc
        try:
            _prepare(connection, path, graph_identity(graph))
        except BaseException:
            connection.close()
            raise
        return cls(path, connection)

    def close(self) -> None:
        """Write what is buffered and close the file."""
        self.flush()
        self._connection.close()

    # -- resuming ----------------------------------------------------------------------

    def bind(self, graph: TaskGraphCore) -> Resumed:
        """Rebuild ``graph`` from the journal, or record it as it is; then record its changes.

        A journal holding a run replaces the graph's tasks and conditions by the
        journal's (the builder's own are dropped, not duplicated). An empty journal
        records the graph's tasks and conditions as they are now.

        Raises:
            JournalError: an event cannot be read or replayed (the journal is damaged);
                or the graph is running.
        """
        if graph.scheduler.started:
            raise JournalError("a journal must be bound to a graph before it runs")
        resumed = self._replay_into(graph)
        if not resumed.events:
            self._pending.extend(_snapshot(graph, self._packer))
        graph.scheduler.recorder = self
        return resumed

    @classmethod
    def read_into(cls, path: str | Path, graph: TaskGraphCore) -> Resumed:
        """Rebuild ``graph`` from the journal at ``path`` and write nothing to it (to read
        a run that crashed); a journal with no run leaves the graph as it is.

        Raises:
            JournalError: as :meth:`open` and :meth:`bind`.
        """
        journal = cls.open(path, graph)
        try:
            return journal._replay_into(graph)
        finally:
            journal._connection.close()

    def _replay_into(self, graph: TaskGraphCore) -> Resumed:
        connection = self._connection
        if connection.execute("SELECT 1 FROM batches LIMIT 1").fetchone() is None:
            return Resumed(0, 0, 0)
        # One batch at a time, not fetchall(): the results it holds go through the
        # graph's memory limit as they are replayed, instead of all being read first.
        rows = connection.execute("SELECT seq, events FROM batches ORDER BY seq")
        return _replay(graph, rows, self.path)

    # -- recording (GraphRecorder) -----------------------------------------------------

    def condition_created(self, condition: GenericSchedulingCondition) -> None:
        """Record a new condition."""
        self._append(_condition_event(condition, self._packer))

    def task_created(self, node: TaskNode, conditions: list[GenericSchedulingCondition]) -> None:
        """Record a new task.

        Raises:
            JournalError: its arguments cannot be written (they cannot be pickled).
        """
        try:
            event = _task_event(node, conditions, self._packer)
        except ValueEncodeError as exc:
            raise JournalError(
                f"the arguments of a {node.task_handle!r} task cannot be written to the "
                f"journal, so it could not be resumed: {exc}"
            ) from exc
        self._append(event)

    def predecessor_added(self, condition: GenericSchedulingCondition, node: TaskNode) -> None:
        """Record a predecessor added to a condition."""
        self._append(self._packer.pack([_PREDECESSOR, condition.uid, node.uid]))

    def task_ended(self, node: TaskNode) -> None:
        """Record a task's final end. A result that cannot be written is not recorded, and
        the task runs again on resume (said once in the log)."""
        try:
            event = _end_event(node, self._packer)
        except ValueEncodeError as exc:
            logger.warning(
                "journal: the result of %s (%s) cannot be written (%s); "
                "it will run again if this run is resumed",
                node.uid,
                node.task_handle,
                exc,
            )
            return
        self._append(event)

    def _append(self, event: bytes) -> None:
        self._pending.append(event)
        self._wake.set()

    # -- writing -----------------------------------------------------------------------

    async def keep_flushed(self) -> NoReturn:
        """Write buffered events as they come, one transaction per batch (until cancelled).

        A batch being written when the run is cancelled is written whole first.
        """
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            # Shielded: a batch taken off the buffer must reach the file even when the
            # run is cancelled at this moment (to_thread would not even start the thread).
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(self._write, self._take())

    def flush(self) -> None:
        """Write every buffered event now, in this thread."""
        self._write(self._take())

    def _take(self) -> list[bytes]:
        batch, self._pending = self._pending, []
        return batch

    def _write(self, batch: list[bytes]) -> None:
        if not batch:
            return
        with self._write_lock:
            connection = self._connection
            row = msgpack.packb(batch, use_bin_type=True)
            connection.execute("BEGIN")
            try:
                connection.execute("INSERT INTO batches (events) VALUES (?)", (row,))
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")


# -- the events ----------------------------------------------------------------------------


def _condition_event(condition: GenericSchedulingCondition, packer: ValuePacker) -> bytes:
    uids = [node.uid for node in condition.predecessors]
    return packer.pack([_CONDITION, condition.uid, str(condition.mode), uids])


def _task_event(
    node: TaskNode, conditions: Sequence[GenericSchedulingCondition], packer: ValuePacker
) -> bytes:
    event = [
        _TASK,
        node.uid,
        node.task_handle,
        node.task_arguments,
        [c.uid for c in conditions],
        node.key,
    ]
    kept = node.graph._kept
    if kept is not None and node in kept:
        event.append(True)  # keep_result; left out when false (and by older journals)
    return packer.pack(event)


def _end_event(node: TaskNode, packer: ValuePacker) -> bytes:
    return packer.pack(_end_fields(node, _exception_bytes(node, packer)))


def _exception_bytes(node: TaskNode, packer: ValuePacker) -> bytes | None:
    """The task's exception, packed, when it pickles; else ``None`` (the traceback text
    is recorded anyway, and a failed task must not run again because its exception
    cannot be written)."""
    if node.task_exception is None:
        return None
    try:
        return packer.pack(node.task_exception)
    except ValueEncodeError:
        return None


def _end_fields(node: TaskNode, exception: bytes | None) -> list[Any]:
    return [
        _END,
        node.uid,
        str(node.task_status),
        None if node.end_reason is None else str(node.end_reason),
        node.task_result,
        node.exception_trace,
        node.attempts,
        node.losses,
        node.shared_losses,
        node.worker,
        node.queued_at,
        node.started_at,
        node.ended_at,
        None
        if node.earlier_runs is None
        else [
            [run.worker, run.started_at, run.ended_at, str(run.end_reason), run.error]
            for run in node.earlier_runs
        ],
        exception,
    ]


def _snapshot(graph: TaskGraphCore, packer: ValuePacker) -> list[bytes]:
    """The events that rebuild ``graph`` as it stands (built, not yet run)."""
    events: list[bytes] = []
    for item in _creation_order(graph):
        if isinstance(item, GenericSchedulingCondition):
            events.append(_condition_event(item, packer))
        else:
            try:
                events.append(_task_event(item, item.waits_on, packer))
            except ValueEncodeError as exc:
                raise JournalError(
                    f"the arguments of task {item.uid} ({item.task_handle}) cannot be written "
                    f"to the journal: {exc}"
                ) from exc
    # A graph run before (and cancelled) may hold ended tasks: their ends, in order.
    ended = [
        node
        for node in graph.nodes.values()
        if node.end_reason is not None and node.end_reason is not EndReason.PRECONDITION_FAILED
    ]
    ended.sort(key=lambda node: node.ended_at or 0.0)
    events.extend(_end_event(node, packer) for node in ended)
    return events


def _creation_order(graph: TaskGraphCore) -> list[GenericSchedulingCondition | TaskNode]:
    """Conditions and tasks in an order in which they can be created again: a condition
    after its predecessors, a task after its conditions (Kahn's algorithm, O(graph)).

    Raises:
        JournalError: tasks wait on each other in a cycle (``prepend_to_successor``).
    """
    order: list[GenericSchedulingCondition | TaskNode] = []
    missing_predecessors = {
        id(c): len({id(n) for n in c.predecessors}) for c in graph.conditions.values()
    }
    missing_conditions = {id(n): len(n.waits_on) for n in graph.nodes.values()}
    ready_tasks: deque[TaskNode] = deque(n for n in graph.nodes.values() if not n.waits_on)

    def emit_condition(condition: GenericSchedulingCondition) -> None:
        order.append(condition)
        for successor in condition.successors:
            missing_conditions[id(successor)] -= 1
            if missing_conditions[id(successor)] == 0:
                ready_tasks.append(successor)

    for condition in graph.conditions.values():
        if not condition.predecessors:
            emit_condition(condition)
    while ready_tasks:
        node = ready_tasks.popleft()
        order.append(node)
        for condition in dict.fromkeys(node.waited_on_by):
            missing_predecessors[id(condition)] -= 1
            if missing_predecessors[id(condition)] == 0:
                emit_condition(condition)
    if len(order) != len(graph.nodes) + len(graph.conditions):
        raise JournalError("cannot journal a graph whose tasks wait on each other in a cycle")
    return order


def recorded_events(path: str | Path) -> Iterator[list[Any]]:
    """Every event the journal at ``path`` holds, decoded, in order (opened read-only;
    for tools and tests: a run resumes with :meth:`Journal.bind`).

    Raises:
        JournalError: the file cannot be read as a journal.
    """
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as connection:
            rows = connection.execute("SELECT events FROM batches ORDER BY seq").fetchall()
    except sqlite3.Error as exc:
        raise JournalError(f"cannot read the journal {path}: {exc}") from exc
    for (body,) in rows:
        for event in msgpack.unpackb(body):
            yield decode_value(event, allow_pickle=True)


def _replay(graph: TaskGraphCore, rows: Iterable[tuple[int, bytes]], path: Path) -> Resumed:
    """Rebuild ``graph``'s tasks and conditions from the journal's batches of events."""
    graph._forget_tasks()
    scheduler = graph.scheduler
    ended = events = 0
    for seq, body in rows:
        try:
            batch = msgpack.unpackb(body, use_list=True)
            if not isinstance(batch, list) or not all(isinstance(e, bytes) for e in batch):
                raise ValueError("a batch is not a list of events")
        except (ValueError, TypeError, msgpack.UnpackException) as exc:
            raise _damaged(path, seq, exc) from exc
        for event_bytes in batch:
            events += 1
            try:
                ended += _replay_event(graph, decode_value(event_bytes, allow_pickle=True))
            except (TGSError, TGSInternalError, ValueError, TypeError, KeyError, IndexError) as exc:
                raise _damaged(path, seq, exc) from exc
    scheduler.finish_restore()
    return Resumed(len(graph.nodes), ended, events)


def _damaged(path: Path, seq: int, exc: Exception) -> JournalError:
    return JournalError(
        f"the journal {path} cannot be replayed: batch {seq} is damaged "
        f"({type(exc).__name__}: {exc}); nothing was run"
    )


def _replay_event(graph: TaskGraphCore, event: Any) -> int:
    """Replay one event; return 1 if it was a task's end, else 0."""
    kind = event[0]
    if kind == _CONDITION:
        _, uid, mode, predecessors = event
        GenericSchedulingCondition(graph, mode, predecessors, uid=uid)
    elif kind == _TASK:
        _, uid, handle, arguments, conditions, key, *keep = event
        graph.create_task_nowait(
            handle, arguments, conditions, key=key, uid=uid, keep_result=bool(keep and keep[0])
        )
    elif kind == _PREDECESSOR:
        _, condition_uid, uid = event
        graph.scheduler.add_predecessor(graph.conditions[condition_uid], graph.nodes[uid])
    elif kind == _END:
        _restore_end(graph, event)
        return 1
    else:
        raise ValueError(f"unknown event kind {kind!r}")
    return 0


def _restore_end(graph: TaskGraphCore, event: list[Any]) -> None:
    (
        _,
        uid,
        status,
        reason,
        result,
        trace,
        attempts,
        losses,
        shared_losses,
        worker,
        queued_at,
        started_at,
        ended_at,
        earlier_runs,
        exception,
    ) = event
    node = graph.nodes[uid]
    if exception is not None:
        node.task_exception = decode_value(exception, allow_pickle=True)
    if earlier_runs is not None:
        node.earlier_runs = [
            EarlierRun(worker, started, ended, EndReason(reason), error)
            for worker, started, ended, reason, error in earlier_runs
        ]
    node.task_result = result
    node.exception_trace = trace
    node.attempts = attempts
    node.losses = losses
    node.shared_losses = shared_losses
    node.worker = worker
    node.queued_at = queued_at
    node.started_at = started_at
    graph.scheduler.restore_end(node, TaskStatus(status), EndReason(reason), ended_at)


# -- the file ------------------------------------------------------------------------------


def _prepare(connection: sqlite3.Connection, path: Path, identity: dict[str, Any]) -> None:
    """Check (or create) the journal's tables, format and graph identity."""
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        check = connection.execute("PRAGMA quick_check").fetchone()
        if check is None or check[0] != "ok":
            raise JournalError(f"the journal {path} is damaged ({check and check[0]})")
        connection.executescript(_SCHEMA)
        meta = dict(connection.execute("SELECT name, value FROM meta").fetchall())
    except sqlite3.DatabaseError as exc:
        raise JournalError(f"{path} is no usable journal: {exc}") from exc
    if not meta:
        with connection:
            connection.executemany(
                "INSERT INTO meta (name, value) VALUES (?, ?)",
                [("format", str(FORMAT)), ("identity", json.dumps(identity))],
            )
        return
    if meta.get("format") != str(FORMAT):
        raise JournalError(
            f"the journal {path} has format {meta.get('format')!r}; this version reads {FORMAT}"
        )
    recorded = json.loads(meta.get("identity", "{}"))
    if recorded != identity:
        raise JournalError(_identity_difference(path, recorded, identity))


def _identity_difference(path: Path, recorded: dict[str, Any], current: dict[str, Any]) -> str:
    parts = []
    for what in ("functions", "loops"):
        old, new = set(recorded.get(what, ())), set(current.get(what, ()))
        if old - new:
            parts.append(f"{what} it had that this graph lacks: {', '.join(sorted(old - new))}")
        if new - old:
            parts.append(f"{what} this graph has that it lacked: {', '.join(sorted(new - old))}")
    detail = "; ".join(parts) or "a different graph"
    return f"the journal {path} records another graph ({detail}); refusing to resume from it"
