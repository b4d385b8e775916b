"""Graph builders for the stopping and frame-limit tests (``tests/e2e/test_e2e_stop.py``).

Like ``tgs_e2e_graphs``, this module lives only in the coordinator's directory (the tests
copy it there with :meth:`Processes.add_graph_module`); workers get its functions shipped
by value. Tasks append JSON lines to ``events.jsonl`` in ``TGS_E2E_DIR`` (see
``tgs_e2e_helpers.record``).
"""

from __future__ import annotations

import os
from typing import Any

import trio
from tgs_e2e_helpers import out_dir, record

from trio_graph_scheduler import TaskGraph, WorkerLoop

#: The longest a stubborn task runs, so that nothing outlives a failed test for long.
STUBBORN_LIMIT = 60.0
#: The size of an argument under a 64 KiB value limit, and of one over it.
SMALL_BYTES = 1_000
MIDDLE_BYTES = 200_000
#: Over a value limit of 1 MiB (and larger than a frame of the default 16 MiB).
HUGE_BYTES = 20 * 2**20
#: How many small ``size`` tasks run beside the one with a big argument.
SMALL_TASKS = 4


async def stubborn(out: str, **_: Any) -> None:
    """Ignore cancellation: a worker stopping gracefully waits for this task, forever."""
    record(out, "start", "stubborn")
    with trio.CancelScope(shield=True):
        await trio.sleep(STUBBORN_LIMIT)


async def size(payload: bytes, **_: Any) -> int:
    return len(payload)


async def spawn_big(out: str, nbytes: int, awaited: bool, graph: Any, **_: Any) -> str:
    """Create a ``size`` task whose argument is ``nbytes`` long, from a worker; record
    how the call went (an ``end`` event with its ``outcome``)."""
    payload = b"x" * nbytes
    label = "awaited" if awaited else "unawaited"
    if not awaited:
        graph.create_task_nowait("size", ((payload,), {}))
        outcome = "asked"
    else:
        try:
            await graph.create_task("size", ((payload,), {}))
        except Exception as exc:
            outcome = f"refused: {type(exc).__name__}: {exc}"
        else:
            outcome = "created"
    record(out, "end", label, outcome=outcome)
    return outcome


FUNCTIONS = {"stubborn": stubborn, "size": size, "spawn_big": spawn_big}


async def build_stubborn() -> TaskGraph:
    """One task that only a second signal (or the end of the world) stops."""
    out = out_dir()
    graph = TaskGraph(FUNCTIONS, [WorkerLoop("default", 1, None)])
    await graph.create_task("stubborn", ((out,), {}))
    return graph


async def build_slowly() -> TaskGraph:
    """A builder that takes its time (it says when it started): a signal comes first."""
    out = out_dir()
    record(out, "start", "builder")
    await trio.sleep(STUBBORN_LIMIT)
    return TaskGraph(FUNCTIONS, [WorkerLoop("default", 1, None)])


async def build_sizes() -> TaskGraph:
    """:data:`SMALL_TASKS` small ``size`` tasks and one whose argument is
    ``TGS_E2E_BIG`` bytes (default :data:`MIDDLE_BYTES`), in one loop."""
    nbytes = int(os.environ.get("TGS_E2E_BIG", MIDDLE_BYTES))
    graph = TaskGraph(FUNCTIONS, [WorkerLoop("default", 8, None)])
    graph.create_task_nowait("size", ((b"x" * nbytes,), {}), uid="task-big")
    for i in range(SMALL_TASKS):
        graph.create_task_nowait("size", ((b"x" * SMALL_BYTES,), {}), uid=f"task-small-{i}")
    return graph


async def build_spawn_big() -> TaskGraph:
    """Tasks on a worker that create tasks with an argument too large for any frame:
    one awaits the call, one does not; a small ``size`` task runs beside them."""
    out = out_dir()
    graph = TaskGraph(FUNCTIONS, [WorkerLoop("default", 4, None)])
    graph.create_task_nowait("spawn_big", ((out, HUGE_BYTES, True), {}), uid="task-awaited")
    graph.create_task_nowait("spawn_big", ((out, HUGE_BYTES, False), {}), uid="task-unawaited")
    graph.create_task_nowait("size", ((b"x" * SMALL_BYTES,), {}), uid="task-small")
    return graph
