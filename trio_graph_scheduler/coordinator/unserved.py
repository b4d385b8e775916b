"""Warning about loops that have ready tasks and no connected worker to run them.

A coordinator whose workers all died, or that was started with workers for some loops
only, otherwise sits idle and says nothing. One trio task sleeps until the next check is
due (no polling loop that spins); while a loop stays unserved the warning repeats every
``every`` seconds, and it stops as soon as a worker serving the loop is connected.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Final

import trio

from .observe.wording import plural

if TYPE_CHECKING:
    from .server import Coordinator

logger = logging.getLogger("tgs.coordinator")

#: Seconds a loop may have ready tasks and no worker before the first warning (workers
#: that are starting up or reconnecting get this long).
FIRST_WARNING_AFTER: Final = 5.0
#: Seconds between two warnings about loops that stay unserved.
REPEAT_WARNING_EVERY: Final = 30.0


def unserved_loops(coordinator: Coordinator) -> dict[str, int]:
    """Each loop with ready tasks (suspects included) that no connected worker serves,
    with how many are ready. O(loops x workers)."""
    served = {loop for session in coordinator.sessions for loop in session.loops}
    return {
        name: len(queue.ready) + len(queue.suspects)
        for name, queue in coordinator.graph.scheduler.loops.items()
        if name not in served and (queue.ready or queue.suspects)
    }


async def warn_about_unserved_loops(
    coordinator: Coordinator,
    *,
    first: float = FIRST_WARNING_AFTER,
    every: float = REPEAT_WARNING_EVERY,
) -> None:
    """Log a warning while ready tasks wait in loops no connected worker serves: after
    ``first`` seconds unserved, then every ``every`` seconds. Runs until cancelled."""
    delay = first
    while True:
        await trio.sleep(delay)
        unserved = unserved_loops(coordinator)
        if not unserved:
            delay = first
            continue
        loops = ", ".join(
            f"{name} ({plural(ready, 'ready task')})" for name, ready in sorted(unserved.items())
        )
        connected = len(coordinator.sessions)
        logger.warning(
            "no connected worker serves loop(s) %s (%s connected): start workers that "
            "serve them (tgs-worker --loops ...)",
            loops,
            plural(connected, "worker"),
        )
        delay = every
