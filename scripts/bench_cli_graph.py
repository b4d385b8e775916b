"""The graphs of ``scripts/bench_cli.py``, imported by ``tgs-coordinator`` as MODULE:FUNC.

Read from the environment so that the benchmark can size them: ``BENCH_TASKS`` (no-op
tasks), ``BENCH_CONCURRENCY`` (the loop's concurrency), ``BENCH_OUT`` (the file the last
task writes its stamps to).

Times are taken inside the tasks, with ``time.perf_counter`` (CLOCK_MONOTONIC on Linux,
the same clock in every process of the machine): the first task's end and the last
task's start bound the run, so start-up, the build and the shutdown are left out.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from trio_graph_scheduler import TaskGraph, WorkerLoop


async def start(**_: Any) -> float:
    """The fan-out's first task: when it ended."""
    return time.perf_counter()


async def noop(**_: Any) -> None:
    return None


async def stamp(**_: Any) -> float:
    """A link of the chain: when it started."""
    return time.perf_counter()


async def join(out: str, *, task_node: Any, **_: Any) -> None:
    """The fan-in: write the run's bounds (and the chain's stamps, if any)."""
    import trio

    now = time.perf_counter()
    predecessors = task_node.get_predecessor_task_nodes()
    stamps = [p.task_result for p in predecessors if p.task_handle == "stamp"]
    first = [p.task_result for p in predecessors if p.task_handle == "start"]
    bounds = {"first_end": first[0] if first else None, "last_start": now, "stamps": stamps}
    await trio.Path(out).write_text(json.dumps(bounds))


def _graph() -> TaskGraph:
    concurrency = int(os.environ["BENCH_CONCURRENCY"])
    return TaskGraph(
        {"start": start, "noop": noop, "stamp": stamp, "join": join},
        [WorkerLoop("default", concurrency, None)],
    )


async def build_fan() -> TaskGraph:
    """One start task, BENCH_TASKS no-ops waiting on it, and one join waiting on them all
    (issue 14's fan-out/fan-in shape)."""
    graph = _graph()
    first = graph.create_task_nowait("start")
    leaves = [
        graph.create_task_nowait("noop", None, [first.uid])
        for _ in range(int(os.environ["BENCH_TASKS"]))
    ]
    graph.create_task_nowait(
        "join", ((os.environ["BENCH_OUT"],), {}), [first.uid, *(n.uid for n in leaves)]
    )
    return graph


async def build_chain() -> TaskGraph:
    """BENCH_TASKS stamp tasks, each waiting on the one before: the idle round trip."""
    graph = _graph()
    uid = graph.create_task_nowait("stamp").uid
    links = [uid]
    for _ in range(int(os.environ["BENCH_TASKS"]) - 1):
        uid = graph.create_task_nowait("stamp", None, [uid]).uid
        links.append(uid)
    # The join reads every link's stamp: waiting on all of them, it runs after the last.
    graph.create_task_nowait("join", ((os.environ["BENCH_OUT"],), {}), links)
    return graph
