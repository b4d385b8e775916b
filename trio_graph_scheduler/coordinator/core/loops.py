"""Worker loops: named groups of functions with a concurrency limit, and their queues.

Theory of operation
-------------------
Each loop has one :class:`LoopQueue`. A task whose conditions are all satisfied is pushed
onto its loop's queue. *Claimants* take tasks from it: an in-process worker slot, or a
remote worker's session holding credit for the loop. The queue is the one place that
enforces the loop's concurrency: it never hands out a task while ``running`` has reached
``concurrency``, whichever kind of claimant asks. That is what makes the limit
cluster-wide in distributed mode and identical in-process.

A claimant either takes a task synchronously (:meth:`LoopQueue.claim_nowait`) or, when
none is ready, registers itself (:meth:`LoopQueue.wait`) and is handed the next task that
becomes ready through its ``deliver`` method. Waiting claimants are served round-robin, so
several workers with credit on one loop all get work; a slot a task freed goes first to
the claimant that held it, if that claimant keeps it (``Claimant.keeps_freed_slot``: a
worker below its share of the loop), so that a worker's answers come back as one batch of
new tasks. Everything here is synchronous and O(1) per task.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Final, NamedTuple, Protocol

from ...shared.errors import GraphDefinitionError, UnknownFunctionError
from ...shared.states import FINAL_TASK_STATUSES, TaskStatus

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence

    from .nodes import TaskNode

#: The loop that every task not assigned elsewhere runs in. It must exist.
DEFAULT_LOOP = "default"

# Read once: reading it off its enum class costs about 250 ns per task (EnumType.__getattr__).
_IN_PROGRESS: Final = TaskStatus.IN_PROGRESS


class _WorkerLoopFields(NamedTuple):
    name: str
    concurrency: int
    functions: tuple[str, ...] | None


class WorkerLoop(_WorkerLoopFields):
    """A named group of worker slots that runs some of the graph's functions.

    A tuple, like the seed's namedtuple: ``WorkerLoop(name, concurrency, functions)``.

    Args:
        name: the loop's name; one loop must be called ``default``.
        concurrency: at most this many of its tasks run at once (cluster-wide).
        functions: the function names it runs; ``None`` means every function that no
            other loop names.

    Raises:
        GraphDefinitionError: an empty name, a concurrency below 1, or functions that is
            not a list of names.
    """

    __slots__ = ()

    def __new__(
        cls, name: str, concurrency: int, functions: Iterable[str] | None = None
    ) -> WorkerLoop:
        return super().__new__(cls, *_validated_loop_fields(name, concurrency, functions))


def _validated_loop_fields(
    name: object, concurrency: object, functions: object
) -> tuple[str, int, tuple[str, ...] | None]:
    if not isinstance(name, str) or not name:
        raise GraphDefinitionError(f"a worker loop's name must be a non-empty string, got {name!r}")
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise GraphDefinitionError(
            f"worker loop {name!r}: concurrency must be an integer of at least 1, "
            f"got {concurrency!r}"
        )
    if functions is None:
        return name, concurrency, None
    if isinstance(functions, str) or not all(isinstance(f, str) for f in functions):  # type: ignore[attr-defined]
        raise GraphDefinitionError(
            f"worker loop {name!r}: functions must be a list of function names or None"
        )
    return name, concurrency, tuple(functions)  # type: ignore[arg-type]


def assign_functions_to_loops(
    functions: Iterable[str], worker_loops: Iterable[object]
) -> tuple[list[WorkerLoop], dict[str, str]]:
    """Check the loops and decide which loop runs each function.

    A function runs in the loop that names it. A function no loop names runs in the one
    loop whose ``functions`` is ``None``, or in ``default`` if no loop says ``None``.
    ``worker_loops`` may hold any objects with ``name``, ``concurrency`` and ``functions``
    (the seed's README defines its own namedtuple).

    Returns:
        The loops as :class:`WorkerLoop`, and a map from function name to loop name.

    Raises:
        GraphDefinitionError: no ``default`` loop, two loops with one name, a function
            named by two loops, or several loops taking every unnamed function.
        UnknownFunctionError: a loop names a function the graph does not have.
    """
    known = list(functions)
    loops: list[WorkerLoop] = []
    for spec in worker_loops:
        try:
            fields = (spec.name, spec.concurrency, spec.functions)  # type: ignore[attr-defined]
        except AttributeError:
            raise GraphDefinitionError(
                f"a worker loop needs name, concurrency and functions, got {spec!r}"
            ) from None
        loops.append(WorkerLoop(*fields))

    names = [loop.name for loop in loops]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise GraphDefinitionError(f"two worker loops are called {duplicates[0]!r}")
    if DEFAULT_LOOP not in names:
        raise GraphDefinitionError(
            f"a worker loop named {DEFAULT_LOOP!r} must exist; got {', '.join(names) or 'none'}"
        )

    loop_of: dict[str, str] = {}
    for loop in loops:
        for function in loop.functions or ():
            if function not in known:
                raise UnknownFunctionError(function, known)
            if function in loop_of and loop_of[function] != loop.name:
                raise GraphDefinitionError(
                    f"function {function!r} is named by two loops, "
                    f"{loop_of[function]!r} and {loop.name!r}"
                )
            loop_of[function] = loop.name

    catch_all = [loop.name for loop in loops if loop.functions is None]
    if len(catch_all) > 1:
        raise GraphDefinitionError(
            f"loops {' and '.join(map(repr, catch_all))} both have functions=None; "
            "only one loop may take every function no loop names"
        )
    fallback = catch_all[0] if catch_all else DEFAULT_LOOP
    for function in known:
        loop_of.setdefault(function, fallback)
    return loops, loop_of


class Claimant(Protocol):
    """What a loop queue hands tasks to: an in-process slot, or a worker session's claim
    on the loop. It runs the task (itself or through its worker), and can stop it."""

    def deliver(self, node: TaskNode) -> bool:
        """Take ``node`` (already marked in progress). Return True to stay in line for more."""
        ...

    def cancel(self, node: TaskNode) -> None:
        """Stop ``node``, which it was handed; report ``Scheduler.task_cancelled`` once
        the task has really ended."""
        ...

    def keeps_freed_slot(self) -> bool:
        """Whether a slot freed by a task it was handed goes back to it first, ahead of
        the line. It says yes only while it stands in line and still may after taking
        one more task (the queue hands it one without moving it in the line)."""
        ...


class LoopQueue:
    """The ready tasks of one loop, and the one place its concurrency limit is enforced."""

    __slots__ = (
        "_claimants",
        "busy",
        "clock",
        "concurrency",
        "name",
        "open",
        "ready",
        "running",
        "suspects",
    )

    def __init__(self, name: str, concurrency: int, clock: Callable[[], float]) -> None:
        self.name = name
        self.concurrency = concurrency
        #: Timestamps when tasks are queued and handed out (injected, as in the scheduler).
        self.clock = clock
        #: Tasks ready to run, oldest first.
        self.ready: deque[TaskNode] = deque()
        #: Slots taken: tasks handed out and not yet ended or handed back, plus ``busy``.
        self.running = 0
        #: Slots still busy after their task ended: it timed out or was cancelled while
        #: its sync function runs on in a thread, which nothing can stop. Each stays
        #: counted in ``running`` until its claimant says the thread returned.
        self.busy = 0
        #: Whether tasks may be handed out: only while the graph runs (see :meth:`open_up`).
        self.open = False
        #: Ready tasks under suspicion of killing their worker (``TaskNode._suspect``),
        #: oldest first. They are never dispatched to the line of claimants: the shell
        #: hands each one to a claimant whose worker runs nothing else
        #: (:meth:`claim_suspect`), and gives that worker nothing else meanwhile.
        self.suspects: deque[TaskNode] = deque()
        self._claimants: deque[Claimant] = deque()

    def __repr__(self) -> str:
        return (
            f"<LoopQueue {self.name} ready={len(self.ready)} suspects={len(self.suspects)} "
            f"running={self.running}/{self.concurrency} busy={self.busy} "
            f"waiting={len(self._claimants)}>"
        )

    @property
    def waiting_claimants(self) -> int:
        """How many claimants wait for a task."""
        return len(self._claimants)

    def push(self, node: TaskNode) -> None:
        """Queue a task that became ready, handing it straight to a waiting claimant if any.

        A task queued while the graph is not running is stamped when it starts
        (:meth:`Scheduler.start`): it becomes ready for execution then, and a big build
        reads no clock and keeps no timestamp of its own per task.
        """
        if self.open:
            node.queued_at = self.clock()
        self.ready.append(node)
        if self._claimants:  # none while a graph is built: no call per task then
            self._dispatch()

    def push_front(self, node: TaskNode) -> None:
        """Queue a task that was handed back, ahead of the rest: it was first in line."""
        node.queued_at = self.clock()
        self.ready.appendleft(node)
        self._dispatch()

    def push_suspect(self, node: TaskNode) -> None:
        """Queue a suspect (``node._suspect`` is set): it waits for a lone claimant.

        The slot it held may be free now: ready tasks go to claimants in line.
        """
        node.queued_at = self.clock()
        self.suspects.append(node)
        self._dispatch()

    def claim_suspect(self, claimant: Claimant) -> TaskNode | None:
        """Take the oldest suspect for ``claimant`` if the loop has a free slot; else
        ``None``. The caller promises that the claimant's worker runs nothing else, and
        gets nothing else until this task has ended or been handed back."""
        if self.suspects and self.running < self.concurrency and self.open:
            return self._hand_out(claimant, self.suspects)
        return None

    def claim_nowait(self, claimant: Claimant | None = None) -> TaskNode | None:
        """Take the oldest ready task for ``claimant`` if the loop has a free slot; else
        ``None``. (Without a claimant the task cannot be cancelled while it runs.)"""
        if self.ready and self.running < self.concurrency and self.open:
            # _hand_out's steps, inlined: in-process, every task is taken here.
            node = self.ready.popleft()
            node._claimant = claimant
            self.running += 1
            node.task_status = _IN_PROGRESS
            node.attempts += 1
            node.started_at = self.clock()
            return node
        return None

    def wait(self, claimant: Claimant) -> None:
        """Put ``claimant`` in line for the next task; it may be served at once."""
        self._claimants.append(claimant)
        self._dispatch()

    def remove(self, node: TaskNode) -> None:
        """Take a ready task out of the queue (it was cancelled). O(queue): rare."""
        (self.suspects if node._suspect else self.ready).remove(node)

    def drop_ended(self) -> None:
        """Take out of the queue every task that has ended (after a journal's replay)."""
        self.ready = deque(n for n in self.ready if n.task_status not in FINAL_TASK_STATUSES)
        self.suspects = deque(n for n in self.suspects if n.task_status not in FINAL_TASK_STATUSES)

    def withdraw(self, claimant: Claimant) -> None:
        """Take ``claimant`` out of line (it stopped, or its worker left)."""
        self._claimants = deque(c for c in self._claimants if c is not claimant)

    def release(self, freed_by: Claimant | None = None) -> None:
        """A task of this loop ended or was handed back: its slot is free again.

        ``freed_by``, the claimant the task ran for, may take the slot back first (see
        :meth:`_dispatch`).
        """
        self.running -= 1
        if self._claimants:  # in-process, the slot that freed it claims again itself
            self._dispatch(freed_by)

    def keep_busy(self) -> None:
        """A task of this loop ended, but its slot stays busy (see :attr:`busy`)."""
        self.busy += 1

    def free_busy(self) -> None:
        """A slot kept busy after its task ended is free again."""
        self.busy -= 1
        self.release()

    def open_up(self) -> None:
        """Start handing out tasks (the graph started running)."""
        self.open = True
        self._dispatch()

    def close(self) -> None:
        """Stop handing out tasks (the graph stopped running); claimants stay in line."""
        self.open = False

    def _dispatch(self, freed_by: Claimant | None = None) -> None:
        claimants = self._claimants
        if (
            freed_by is not None
            and self.ready
            and self.running < self.concurrency
            and self.open
            and freed_by.keeps_freed_slot()
        ):
            # A worker's answers free k slots in one frame: given back to it, its next
            # k tasks go in one frame too. Round robin would send one to each of k
            # workers (a frame each, both ways), and with many workers each holding
            # few tasks, the cost of frames grew with their number. The claimant says
            # no once it holds its share of the loop, so the line is still served.
            freed_by.deliver(self._hand_out(freed_by, self.ready))
        while claimants and self.ready and self.running < self.concurrency and self.open:
            claimant = claimants.popleft()
            if claimant.deliver(self._hand_out(claimant, self.ready)):
                claimants.append(claimant)

    def _hand_out(self, claimant: Claimant | None, line: deque[TaskNode]) -> TaskNode:
        """The oldest task of ``line`` (``ready`` or ``suspects``), now running for
        ``claimant`` (the caller checked that one is there and a slot is free)."""
        node = line.popleft()
        node._claimant = claimant
        self.running += 1
        node.task_status = _IN_PROGRESS
        node.attempts += 1
        node.started_at = self.clock()
        return node


def build_loop_queues(
    loops: Sequence[WorkerLoop], clock: Callable[[], float]
) -> Mapping[str, LoopQueue]:
    """One queue per loop, keyed by loop name."""
    return {loop.name: LoopQueue(loop.name, loop.concurrency, clock) for loop in loops}
