"""Graph builders for the dispatch tests (``tests/e2e/test_e2e_dispatch.py``, issue 15).

Copied into the coordinator's directory with :meth:`Processes.add_graph_module`; workers
get the functions shipped by value. Each ``nap`` records a ``start`` and an ``end`` line
(with its worker's pid) in ``events.jsonl``, so that a test can count what each worker
ran and when.
"""

from __future__ import annotations

from typing import Any

import trio
from tgs_e2e_helpers import out_dir, record

from trio_graph_scheduler import TaskGraph, WorkerLoop

#: ``build_spread``: many short tasks, a loop of 32.
SPREAD_TASKS = 600
SPREAD_LIMIT = 32
SPREAD_NAP = 0.01
#: ``build_freeze_one``: tasks long enough to watch, a loop of 20.
FREEZE_TASKS = 400
FREEZE_LIMIT = 20
FREEZE_NAP = 0.1


async def nap(out: str, index: int, seconds: float, **_: Any) -> int:
    record(out, "start", f"nap-{index}")
    await trio.sleep(seconds)
    record(out, "end", f"nap-{index}")
    return index


def _naps(tasks: int, limit: int, seconds: float) -> TaskGraph:
    out = out_dir()
    graph = TaskGraph({"nap": nap}, [WorkerLoop("default", limit)])
    for index in range(tasks):
        graph.create_task_nowait("nap", ((out, index, seconds), {}))
    return graph


async def build_spread() -> TaskGraph:
    """:data:`SPREAD_TASKS` naps of :data:`SPREAD_NAP` s, at most :data:`SPREAD_LIMIT` at once."""
    return _naps(SPREAD_TASKS, SPREAD_LIMIT, SPREAD_NAP)


async def build_freeze_one() -> TaskGraph:
    """:data:`FREEZE_TASKS` naps of :data:`FREEZE_NAP` s, at most :data:`FREEZE_LIMIT` at once."""
    return _naps(FREEZE_TASKS, FREEZE_LIMIT, FREEZE_NAP)
