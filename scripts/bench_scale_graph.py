"""The graphs of ``scripts/bench_scale.py``, imported by ``tgs-coordinator`` as MODULE:FUNC.

Sized from the environment: ``BENCH_TASKS`` (leaf tasks), ``BENCH_CONCURRENCY`` (the
loop's concurrency), ``BENCH_SLEEP`` (seconds each leaf of the sleep shape sleeps) and
``BENCH_OUT`` (the file the join writes the run's bounds to).

One start task, the leaves waiting on it, and a join waiting on them all: the start's end
and the join's start bound the run (``time.perf_counter``, CLOCK_MONOTONIC, the same
clock in every process of the machine), so start-up and shutdown are left out.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import trio

from trio_graph_scheduler import TaskGraph, WorkerLoop


async def start(**_: Any) -> float:
    """When the fan-out began."""
    return time.perf_counter()


async def noop(**_: Any) -> None:
    return None


async def nap(seconds: float, **_: Any) -> None:
    await trio.sleep(seconds)


async def join(out: str, *, task_node: Any, **_: Any) -> None:
    """Write the run's bounds."""
    now = time.perf_counter()
    predecessors = task_node.get_predecessor_task_nodes()
    first = [p.task_result for p in predecessors if p.task_handle == "start"]
    await trio.Path(out).write_text(json.dumps({"first_end": first[0], "last_start": now}))


def _fan(leaf: str, args: Any) -> TaskGraph:
    graph = TaskGraph(
        {"start": start, "noop": noop, "nap": nap, "join": join},
        [WorkerLoop("default", int(os.environ["BENCH_CONCURRENCY"]), None)],
    )
    first = graph.create_task_nowait("start")
    leaves = [
        graph.create_task_nowait(leaf, args, [first.uid])
        for _ in range(int(os.environ["BENCH_TASKS"]))
    ]
    graph.create_task_nowait(
        "join", ((os.environ["BENCH_OUT"],), {}), [first.uid, *(n.uid for n in leaves)]
    )
    return graph


async def build_noop() -> TaskGraph:
    """BENCH_TASKS no-op leaves."""
    return _fan("noop", None)


async def build_sleep() -> TaskGraph:
    """BENCH_TASKS leaves that each sleep BENCH_SLEEP seconds."""
    return _fan("nap", ((float(os.environ["BENCH_SLEEP"]),), {}))
