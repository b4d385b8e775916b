"""How much a worker may hold, and taking back what it did not start.

Theory of operation
-------------------
A worker grants credit for its free slots (``claim``), but the coordinator does not fill
them all at once: per loop, at most a *prefetch window* of the tasks sent to a worker may
be not yet started there (the worker says ``started`` in its next frame; an answer says
it too). A worker that keeps up starts what it gets at once and gets more as fast as it
starts them, so the loop's slots go to the workers that return them; a slow link, or a
worker that is frozen or cut off, holds no more than what it was running plus its window.

The window follows each worker (unless ``--prefetch`` fixes it): the coordinator keeps a
moving average of each worker's *turnaround* on a loop (from sending a task to hearing
that it started; one sample per frame that says so), and the loop's *pace*, the best of
those averages. A worker that keeps up (a turnaround at most twice the pace) has the full
window; one k times slower than that has 1/k of it, at least one task. So a worker 25 ms
away beside workers on the same host holds a task or two in flight, not half its slots,
and workers that all sit as far away keep their full windows.

The full window is half the worker's slots (at least 2), or its share of the loop's
concurrency when that is more, up to all its slots. A worker that keeps up shares the
loop with the others that keep up; one that fell behind, with all the loop's workers
(before its window shrinks by its slowness). So a worker alone on its loop may hold the
whole loop in flight (there is no other to keep it from), two workers at concurrency 4
hold 2 each, and a near worker beside a far one that fell behind has the loop to itself.
The share also decides where a freed slot goes: back to the worker whose answer freed it
while that worker holds less than its share (``LoopClaim.keeps_freed_slot``), so that a
frame of k answers is answered with a frame of k tasks; to the line, in turn, after.

A task sent and not started for :attr:`PrefetchLedger.after` seconds, to a worker that
has said nothing for as long, while another worker of its loop waits for work, is *taken
back*: the session sends ``cancel`` for its
lease, forgets the lease (a late ``started`` or answer for it is ignored: fenced, as the
leases of a lost worker are) and hands the task back to the front of its queue, where the
waiting worker takes it. The taken-back lease stays counted in its worker's window until
the worker answers the ``cancel`` (it answers at once, unless it is frozen or cut off),
so that a stalled worker is given nothing more meanwhile. A worker that still talks is
left its tasks: it is busy, not stalled, and will start them; taking them back would race
its start, and run them twice without any failure.

Nothing here polls: staleness is looked at when a frame arrives from a worker that waits
for work (its heartbeats come every ``heartbeat_interval`` while it is idle), and the
ledger is a FIFO per loop, pruned from its head, and a turnaround sample updates one
moving average and compares it with the pace, so each task costs O(1).
"""

from __future__ import annotations

import math
from collections import deque
from typing import TYPE_CHECKING, Final, Protocol

if TYPE_CHECKING:
    from .core.loops import LoopQueue

#: A window that never limits (a claim made without one).
NO_WINDOW: Final = 2**62
#: The smallest full window: one task in flight while another starts.
MIN_PREFETCH: Final = 2
#: The full window is at least this share of a worker's slots on the loop (and
#: :data:`MIN_PREFETCH`), more when its share of the loop is more. Tasks shorter than a
#: round trip are never seen started (their answer says it), so the window bounds a
#: worker's tasks in flight: an eighth halved the throughput of no-op tasks on loopback
#: and doubled the CPU per task on both sides (concurrency 64, two workers); half costs
#: nothing measurable there (two workers then take turns, each answering its half of the
#: loop in one frame). All the slots for every worker that keeps up was tried: one
#: worker then often held every task of a loop of 4 (fewer frames on a machine that runs
#: the workers and the coordinator on two cores, no parallelism between the workers),
#: frames per task rose at 64, and a worker that froze could hold a whole small loop.
PREFETCH_SHARE: Final = 1 / 2
#: How much one turnaround sample moves its moving average: 1/16, so that a worker's
#: window follows a change within a few dozen frames and one late frame moves it little.
TURNAROUND_WEIGHT: Final = 1 / 16
#: A worker keeps up while its turnaround is at most this many times its loop's pace:
#: workers on one host differ by less (scheduling noise), a far or overloaded one by
#: more.
KEEPS_UP: Final = 2.0


def prefetch_window(slots: int, configured: int | None) -> int:
    """How many tasks sent to a worker may be unstarted there at once, on one loop: the
    one ``configured``, else half its slots (at least :data:`MIN_PREFETCH`), the window
    it starts with until its share of the loop is known.

    Args:
        slots: the worker's slots on the loop (the loop's concurrency, capped by the
            worker's ``max_tasks``).
        configured: ``CoordinatorConfig.prefetch``, or ``None`` for the default.
    """
    if configured is not None:
        return configured
    return max(MIN_PREFETCH, math.ceil(slots * PREFETCH_SHARE))


def full_window(slots: int, share: int) -> int:
    """The window of a worker that keeps up: half its ``slots`` (at least
    :data:`MIN_PREFETCH`), or its ``share`` of the loop's concurrency, up to its slots."""
    return max(prefetch_window(slots, None), min(share, slots))


def adapted_window(full: int, turnaround: float, pace: float) -> int:
    """A worker's window from its turnaround and its loop's pace (seconds): the ``full``
    window while it keeps up, a share as much smaller as it is slower, at least one."""
    keeps_up = KEEPS_UP * pace
    if turnaround <= keeps_up or pace == 0.0:
        return full
    return max(1, math.ceil(full * keeps_up / turnaround))


class Turnaround:
    """A moving average of the time from sending a task to hearing that it started."""

    __slots__ = ("seconds",)

    def __init__(self) -> None:
        #: The average; 0.0 until the first sample.
        self.seconds = 0.0

    def add(self, sample: float) -> float:
        """Count one task's turnaround; returns the new average."""
        average = self.seconds
        average = sample if average == 0.0 else average + (sample - average) * TURNAROUND_WEIGHT
        # Never 0.0 again (a sample of 0 s on a coarse clock): 0.0 means "none yet".
        self.seconds = average or 1e-9
        return self.seconds


class Pace:
    """A loop's pace: the best turnaround among its workers (their moving averages).

    Kept in O(1) per sample: a lower average takes the lead; the leader's own average
    is followed as it moves, up too (another worker takes the lead at its next sample
    if it is then lower); a leader that leaves is forgotten.
    """

    __slots__ = ("leader", "seconds")

    def __init__(self) -> None:
        #: The pace; 0.0 while no worker of the loop has a turnaround.
        self.seconds = 0.0
        self.leader: object = None

    def update(self, worker: object, turnaround: float) -> float:
        """``worker``'s average is now ``turnaround``; returns the pace."""
        if worker is self.leader or turnaround < self.seconds or self.seconds == 0.0:
            self.seconds = turnaround
            self.leader = worker
        return self.seconds

    def forget(self, worker: object) -> None:
        """``worker`` left its loop: if it set the pace, the next sample sets it."""
        if worker is self.leader:
            self.seconds = 0.0
            self.leader = None


class Holder(Protocol):
    """What the ledger needs of a worker session."""

    #: Leases sent and not yet started, with when they were sent (trio time).
    unstarted: dict[int, float]
    #: When its worker's last frame arrived (trio time).
    heard_at: float

    def take_back(self, lease: int) -> None:
        """Take the task of ``lease`` (unstarted) back from the worker: the loop queue
        hands it to a claimant in line."""
        ...


class Member(Protocol):
    """What the ledger needs of a worker's claim on a loop."""

    #: Whether its worker keeps up with the loop's pace.
    keeps_up: bool

    def reshare(self, share: int) -> None:
        """Its share of the loop's concurrency is now ``share``."""
        ...


class PrefetchLedger:
    """Every loop's leases sent and not started, oldest first, across all workers; and
    every loop's workers, so that each has its share of the loop."""

    __slots__ = ("_lines", "_members", "_paces", "after")

    def __init__(self, after: float) -> None:
        #: Seconds a task may sit sent and unstarted before a waiting worker may take it.
        self.after = after
        self._lines: dict[str, deque[tuple[float, Holder, int]]] = {}
        self._paces: dict[str, Pace] = {}
        self._members: dict[str, dict[Member, None]] = {}

    def join(self, loop: str, member: Member, concurrency: int) -> None:
        """A worker (its claim ``member``) serves ``loop`` now: every worker's share of
        it is smaller. O(workers of the loop), once per join."""
        members = self._members.setdefault(loop, {})
        members[member] = None
        self._reshare(members, concurrency)

    def leave(self, loop: str, member: Member, concurrency: int) -> None:
        """``member`` no longer serves ``loop``: the others' shares grow."""
        members = self._members.get(loop, {})
        if members.pop(member, 0) is None:
            self._reshare(members, concurrency)

    def regard(self, loop: str, concurrency: int) -> None:
        """A worker of ``loop`` fell behind or caught up: the shares change. Rare (a
        worker's turnaround is a moving average), and O(workers of the loop)."""
        self._reshare(self._members.get(loop, {}), concurrency)

    @staticmethod
    def _reshare(members: dict[Member, None], concurrency: int) -> None:
        if not members:
            return
        keeping_up = sum(member.keeps_up for member in members)
        among_all = math.ceil(concurrency / len(members))
        among_keeping_up = math.ceil(concurrency / max(1, keeping_up))
        for member in members:
            member.reshare(among_keeping_up if member.keeps_up else among_all)

    def pace(self, loop: str) -> Pace:
        """The pace of ``loop``: the best turnaround among its workers."""
        found = self._paces.get(loop)
        if found is None:
            found = self._paces[loop] = Pace()
        return found

    def sent(self, loop: str, holder: Holder, lease: int, now: float) -> None:
        """``lease`` (``holder``'s, of ``loop``) went to its worker at ``now``."""
        line = self._lines.get(loop)
        if line is None:
            line = self._lines[loop] = deque()
        # Pruned from the head as it grows: most leases start within a round trip.
        while line and line[0][2] not in line[0][1].unstarted:
            line.popleft()
        line.append((now, holder, lease))

    def take_back_stale(self, queue: LoopQueue, now: float) -> int:
        """While claimants of ``queue``'s loop wait, take back the tasks sent longest
        ago and not started for :attr:`after` seconds, from workers silent as long.

        A stale task of a worker that still talks goes to the back of the line (looked
        at again later, at most :data:`SKIPS_PER_LOOK` of them each time).

        Returns:
            How many were taken back.
        """
        line = self._lines.get(queue.name)
        taken = skipped = 0
        after = self.after
        while line and queue.waiting_claimants:
            sent_at, holder, lease = line[0]
            if lease not in holder.unstarted:
                line.popleft()  # started, answered, or its worker left
                continue
            if now - sent_at < after:
                break
            line.popleft()
            if now - holder.heard_at < after:
                # Busy, not stalled: it starts the task once a slot is free.
                line.append((sent_at, holder, lease))
                skipped += 1
                if skipped >= SKIPS_PER_LOOK:
                    break
                continue
            holder.take_back(lease)
            taken += 1
        return taken


#: How many stale tasks of workers that still talk one look passes over.
SKIPS_PER_LOOK: Final = 16
