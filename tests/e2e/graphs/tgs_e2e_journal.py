"""Graph builders for the journal tests (``tests/e2e/test_e2e_journal.py``).

Copied into the coordinator's directory only; workers get the functions by value. Every
run of an ``append`` task adds a ``run`` line with its number to ``events.jsonl``, so the
test can count how often each ran across coordinator crashes.
"""

from __future__ import annotations

from typing import Any

import trio
from tgs_e2e_helpers import out_dir, record

from trio_graph_scheduler import TaskGraph, WorkerLoop

#: How many ``append`` tasks a graph has.
TASKS = 500
#: Tasks running at once, cluster-wide.
CONCURRENCY = 8
#: ``spawn`` tasks of the dynamic graph, each creating TASKS // SPAWNS appends.
SPAWNS = 10


async def append(n: int, out: str, **_: Any) -> int:
    record(out, "run", f"append-{n}", n=n)
    # Long enough that a kill finds tasks running, and that the run (500 of them, 8 at a
    # time: 3 s) cannot end between the test seeing its share done and the kill.
    await trio.sleep(0.05)
    return n * 3


async def spawn(first: int, count: int, out: str, graph: Any, task_node: Any, **_: Any) -> int:
    """Create ``count`` append tasks from a worker, and make ``total`` wait for them.

    Each by key: a spawn that runs again after a crash finds the appends its first run
    made instead of making them twice."""
    for n in range(first, first + count):
        node = await graph.create_task("append", ((n, out), {}), key=n)
        await task_node.aprepend_to_successor("total", node)
    record(out, "end", f"spawn-{first}")
    return count


async def total(out: str, *, task_node: Any, **_: Any) -> int:
    """The sum of the appends' results, recorded as a ``total`` line."""
    predecessors = task_node.get_predecessor_task_nodes()
    value = sum(p.task_result for p in predecessors if p.task_handle == "append")
    record(out, "total", "total", value=value)
    return value


def _graph() -> TaskGraph:
    return TaskGraph(
        {"append": append, "spawn": spawn, "total": total},
        [
            WorkerLoop("default", CONCURRENCY, ["append", "total"]),
            WorkerLoop("spawn", 1, ["spawn"]),
        ],
    )


async def build_static() -> TaskGraph:
    """TASKS appends made by the builder, and a total of their results."""
    out = out_dir()
    graph = _graph()
    appends = [graph.create_task_nowait("append", ((n, out), {})) for n in range(TASKS)]
    graph.create_task_nowait("total", ((out,), {}), [a.uid for a in appends])
    return graph


async def build_dynamic() -> TaskGraph:
    """SPAWNS spawn tasks, made by the builder, create the appends while the graph runs."""
    out = out_dir()
    graph = _graph()
    step = TASKS // SPAWNS
    spawns = [
        graph.create_task_nowait("spawn", ((first, step, out), {}))
        for first in range(0, TASKS, step)
    ]
    graph.create_task_nowait("total", ((out,), {}), [s.uid for s in spawns])
    return graph
