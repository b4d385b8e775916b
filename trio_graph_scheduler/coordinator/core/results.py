"""Where a graph's results live: in memory, on disk past a limit, or released.

Without a :class:`ResultHolder` (the default in-process) a result is a plain reference in
its node, as in the seed, and nothing here runs. With one (``graph.scheduler.results``):

- **A memory limit.** Each result of :data:`SMALL_RESULT_BYTES` or more is counted at its
  size as the injected :class:`ResultSpill` measures it (its encoded size: a fine proxy
  for what it holds in memory, and what it costs on disk and on the wire). When the
  counted results exceed the limit, the coldest (the longest since it was stored or read
  back) are written to the spill and dropped from memory; the node keeps a
  :class:`ResultAway` marker. Reading ``node.task_result`` brings such a result back
  (and counts it again, which may push another out): successors' assignments and the
  user read the same property. A result read back keeps its copy on disk, so pushing it
  out again writes nothing. A sync task function reading one in its thread gets a copy
  and leaves it on disk: only the event loop's thread changes what is held. Smaller
  results stay with their node, uncounted (a counted entry costs about a hundred bytes
  of its own).
- **Release** (``release_results``). A task's result is *needed by nobody* once the task
  has at least one successor (a task waiting on a condition over it) and every one of
  them has ended. Then it is dropped, in memory and on disk, unless the task is a sink (no
  successor, ever) or was created with ``keep_result=True``. Reading it raises
  :class:`~trio_graph_scheduler.ResultReleasedError`, never returns ``None``; so does
  making a new task wait on it (a new condition over it, a task on a condition over it,
  ``prepend_to_successor``), since that task would read a value that is gone.

Everything is synchronous and O(1) per event (a task's end costs O(its predecessors),
as the scheduler's own cascade costs O(successors)). The spill is injected as the clock
is, so that the core does no I/O of its own: the coordinator's is SQLite in a temporary
directory (``coordinator/result_store.py``), the tests' a dictionary.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Final, Protocol, final

from ...shared.errors import ResultReleasedError, TGSInternalError
from ...shared.states import FINAL_TASK_STATUSES, TaskStatus

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from .conditions import GenericSchedulingCondition
    from .nodes import TaskNode

#: Results measured below this many bytes stay with their node, uncounted.
SMALL_RESULT_BYTES: Final = 512


class ResultSpill(Protocol):
    """Where results past the memory limit go (injected: the core does no I/O)."""

    def measure(self, value: Any) -> int | None:
        """The size ``value`` counts for, in bytes; ``None`` if it cannot be spilled
        (it cannot be encoded), so it stays in memory, uncounted."""

    def write(self, uid: str, value: Any) -> bool:
        """Keep ``value`` as the result of ``uid``; False if it could not be written (it
        then stays in memory, uncounted)."""

    def read(self, uid: str) -> Any:
        """The value written for ``uid`` (a copy of it). Called from other threads too
        (a sync task function reading its predecessors' results)."""

    def delete(self, uid: str) -> None:
        """Forget the value written for ``uid``, if any."""


@final
class ResultAway:
    """What a node holds in place of a result that is on disk, or was released."""

    __slots__ = ("on_disk", "size", "type_name")

    def __init__(self, type_name: str, size: int, *, on_disk: bool) -> None:
        #: The result's type, as the report names it (``bytes``, ``mymodule.Row``).
        self.type_name = type_name
        #: The size it counted for.
        self.size = size
        #: True while it can be read back; False once released.
        self.on_disk = on_disk

    def __repr__(self) -> str:
        where = "on disk" if self.on_disk else "released"
        return f"<result {self.type_name}, {where}>"


def type_name(value: object) -> str:
    """``module.QualName`` of the value's type, or the bare name for builtins."""
    kind = type(value)
    if kind.__module__ == "builtins":
        return kind.__qualname__
    return f"{kind.__module__}.{kind.__qualname__}"


def result_type_name(node: TaskNode) -> str:
    """The type of ``node``'s result, without reading it back from disk."""
    value = node._result
    if value.__class__ is ResultAway:
        away: ResultAway = value
        return away.type_name
    return type_name(value)


def result_whereabouts(node: TaskNode) -> str | None:
    """``"on disk"`` or ``"released"`` for a result not in memory; else ``None``."""
    value = node._result
    if value.__class__ is ResultAway:
        return "on disk" if value.on_disk else "released"
    return None


class ResultHolder:
    """A graph's results under a memory limit and/or release (``graph.scheduler.results``).

    Args:
        spill: where results past ``limit`` go; needed only with a limit.
        limit: the bytes of counted results kept in memory; ``None`` for no limit.
        release: drop results nobody can need any more (see the module's docstring).
    """

    def __init__(self, spill: ResultSpill | None, *, limit: int | None, release: bool) -> None:
        if limit is not None and spill is None:
            raise TGSInternalError("a memory limit needs a spill to put results in")
        self.spill = spill
        self.limit = limit
        self.release = release
        #: Bytes of counted results in memory now, and the most there were between two
        #: events (a result comes in whole before the coldest go out).
        self.held = 0
        self.peak_held = 0
        #: Results written to the spill, read back from it, and released (counts).
        self.spilled = 0
        self.loaded = 0
        self.released = 0
        # Counted results in memory, coldest first, with their sizes.
        self._memory: OrderedDict[TaskNode, int] = OrderedDict()
        # Uids whose result has a copy in the spill.
        self._written: set[str] = set()
        # Per task that has had successors: how many of them have not ended (release).
        self._readers: dict[TaskNode, int] = {}
        # The thread the graph is run in (the event loop's): only it changes the counts.
        self._thread = threading.get_ident()

    # -- storing and reading -------------------------------------------------------------

    def put(self, node: TaskNode, value: Any) -> None:
        """Make ``value`` the result of ``node`` (which may have had one)."""
        if node._result is not None:  # a None result never took anything here
            self._forget(node)
        node._result = value
        if value is None or self.limit is None:
            return
        assert self.spill is not None
        size = self.spill.measure(value)
        if size is None or size < SMALL_RESULT_BYTES:
            return
        self._hold(node, size)

    def fetch(self, node: TaskNode) -> Any:
        """The result of ``node``, whose node holds a :class:`ResultAway`: read back.

        Raises:
            ResultReleasedError: it was released.
        """
        away: ResultAway = node._result
        if not away.on_disk:
            raise ResultReleasedError(node.uid)
        assert self.spill is not None
        value = self.spill.read(node.uid)
        if threading.get_ident() != self._thread:
            # A sync task function reads it in its own thread: it gets its copy, and the
            # event loop's thread stays the only one that changes what is held.
            return value
        self.loaded += 1
        node._result = value
        self._hold(node, away.size)  # may push it out again at once: it is returned anyway
        return value

    def set_limit(self, limit: int | None) -> None:
        """Change the limit; results over a lower one go to the spill now."""
        if limit is not None and self.spill is None:
            raise TGSInternalError("a memory limit needs a spill to put results in")
        self.limit = limit
        self._shrink()

    def _hold(self, node: TaskNode, size: int) -> None:
        self._memory[node] = size
        self.held += size
        self._shrink()
        if self.held > self.peak_held:
            self.peak_held = self.held

    def _shrink(self) -> None:
        limit = self.limit
        if limit is None:
            return
        memory = self._memory
        while self.held > limit and memory:
            node, size = memory.popitem(last=False)
            self.held -= size
            self._spill(node, size)

    def _spill(self, node: TaskNode, size: int) -> None:
        value = node._result
        uid = node.uid
        if uid not in self._written:
            assert self.spill is not None
            if not self.spill.write(uid, value):
                return  # it stays in memory, uncounted (the spill said why)
            self._written.add(uid)
            self.spilled += 1
        node._result = ResultAway(type_name(value), size, on_disk=True)

    def _forget(self, node: TaskNode) -> None:
        """Drop whatever ``node``'s result took here (it is replaced or released)."""
        size = self._memory.pop(node, None)
        if size is not None:
            self.held -= size
        if self._written and node.uid in self._written:
            self._written.discard(node.uid)
            assert self.spill is not None
            self.spill.delete(node.uid)

    def forget_all(self) -> None:
        """Drop every result and count (a journal's replay replaces the graph's tasks)."""
        for uid in self._written:
            assert self.spill is not None
            self.spill.delete(uid)
        self._written.clear()
        self._memory.clear()
        self._readers.clear()
        self.held = 0

    # -- release -------------------------------------------------------------------------

    def task_added(self, node: TaskNode, conditions: Sequence[GenericSchedulingCondition]) -> None:
        """A task that has not ended waits on ``conditions``: their predecessors have one
        more reader. (Called only with ``release``.)"""
        readers = self._readers
        for condition in conditions:
            for predecessor in condition.predecessors:
                readers[predecessor] = readers.get(predecessor, 0) + 1

    def predecessor_added(self, condition: GenericSchedulingCondition, node: TaskNode) -> None:
        """``node`` joined ``condition``: each of its successors not ended yet reads it."""
        waiting = sum(1 for s in condition.successors if s.task_status not in FINAL_TASK_STATUSES)
        if waiting:
            self._readers[node] = self._readers.get(node, 0) + waiting

    def task_ended(self, node: TaskNode) -> None:
        """``node`` reached a final status: its predecessors have a reader less, and those
        nobody reads any more (itself too) are released. (Called only with ``release``.)"""
        readers = self._readers
        for condition in node.waits_on:
            for predecessor in condition.predecessors:
                left = readers[predecessor] - 1
                readers[predecessor] = left
                if left == 0 and predecessor.task_status is TaskStatus.SUCCESS:
                    self._release(predecessor)
        if node.task_status is TaskStatus.SUCCESS and readers.get(node) == 0:
            self._release(node)

    def _release(self, node: TaskNode) -> None:
        del self._readers[node]
        kept = node.graph._kept
        if kept is not None and node in kept:
            return
        value = node._result
        name = value.type_name if value.__class__ is ResultAway else type_name(value)
        self._forget(node)
        node._result = ResultAway(name, 0, on_disk=False)
        self.released += 1

    def adopt(self, nodes: Iterable[TaskNode]) -> None:
        """Take over the results and successors of tasks made before this holder was
        attached (a graph built, or run before). O(tasks + edges), once."""
        nodes = list(nodes)
        for node in nodes:
            value = node._result
            if value is not None and value.__class__ is not ResultAway:
                self.put(node, value)
        if not self.release:
            return
        readers = self._readers
        for node in nodes:
            if node.task_status not in FINAL_TASK_STATUSES:
                self.task_added(node, node.waits_on)
            else:  # a successor that has ended: its predecessors are no sinks
                for condition in node.waits_on:
                    for predecessor in condition.predecessors:
                        readers.setdefault(predecessor, 0)
        for node in nodes:
            if node.task_status is TaskStatus.SUCCESS and self._readers.get(node) == 0:
                self._release(node)

    def check_invariants(self, nodes: Iterable[TaskNode]) -> None:
        """Recount what the holder keeps counts of (for tests; O(graph)).

        Raises:
            AssertionError: naming the first count that is wrong.
        """
        nodes = list(nodes)
        assert self.held == sum(self._memory.values()), (self.held, "held")
        limit = self.limit
        assert limit is None or self.held <= limit, (self.held, limit)
        for node in self._memory:
            assert node._result.__class__ is not ResultAway, node
        for node in nodes:
            value = node._result
            if value.__class__ is ResultAway and value.on_disk:
                assert node.uid in self._written, node
        if not self.release:
            return
        for node in nodes:
            waiting = sum(
                1
                for condition in node.waited_on_by
                for successor in condition.successors
                if successor.task_status not in FINAL_TASK_STATUSES
            )
            if node in self._readers:
                assert self._readers[node] == waiting, (node, self._readers[node], waiting)
            else:
                assert waiting == 0, (node, "has readers but no count")

    def check_readable(self, nodes: Iterable[TaskNode], doing: str) -> None:
        """Refuse to let a new task wait on a released result.

        Raises:
            ResultReleasedError: one of ``nodes`` has had its result released.
        """
        for node in nodes:
            value = node._result
            if value.__class__ is ResultAway and not value.on_disk:
                raise ResultReleasedError(node.uid, doing)
