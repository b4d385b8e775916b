"""How much a worker may hold, and taking back what it did not start.

Theory of operation
-------------------
A worker grants credit for its free slots (``claim``), but the coordinator does not fill
them all at once: per loop, at most a *prefetch window* of the tasks sent to a worker may
be not yet started there (the worker says ``started`` in its next frame; an answer says
it too). A worker that keeps up starts what it gets at once and gets more as fast as it
starts them, so the loop's slots go to the workers that return them; a slow link, or a
worker that is frozen or cut off, holds no more than what it was running plus its window.

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
ledger is a FIFO per loop, pruned from its head, so each task costs O(1).
"""

from __future__ import annotations

import math
from collections import deque
from typing import TYPE_CHECKING, Final, Protocol

if TYPE_CHECKING:
    from .core.loops import LoopQueue

#: A window that never limits (a claim made without one).
NO_WINDOW: Final = 2**62
#: The smallest prefetch window: one task in flight while another starts.
MIN_PREFETCH: Final = 2
#: By default a worker's window is this share of its slots on the loop (at least
#: :data:`MIN_PREFETCH`). Tasks shorter than a round trip are never seen started (their
#: answer says it), so the window bounds a worker's tasks in flight: an eighth halved
#: the throughput of no-op tasks on loopback and doubled the CPU per task on both sides
#: (scripts/bench_cli.py at concurrency 64, two workers); half costs nothing measurable
#: there, and a worker that stops answering holds at most what it ran plus half its
#: slots, until they are taken back.
PREFETCH_SHARE: Final = 1 / 2


def prefetch_window(slots: int, configured: int | None) -> int:
    """How many tasks sent to a worker may be unstarted there at once, on one loop.

    Args:
        slots: the worker's slots on the loop (the loop's concurrency, capped by the
            worker's ``max_tasks``).
        configured: ``CoordinatorConfig.prefetch``, or ``None`` for the default.
    """
    if configured is not None:
        return configured
    return max(MIN_PREFETCH, math.ceil(slots * PREFETCH_SHARE))


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


class PrefetchLedger:
    """Every loop's leases sent and not started, oldest first, across all workers."""

    __slots__ = ("_lines", "after")

    def __init__(self, after: float) -> None:
        #: Seconds a task may sit sent and unstarted before a waiting worker may take it.
        self.after = after
        self._lines: dict[str, deque[tuple[float, Holder, int]]] = {}

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
