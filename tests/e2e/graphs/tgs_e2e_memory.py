"""Graph builders for the coordinator's memory test (``tests/e2e/test_e2e_memory.py``).

``produce`` tasks each return 1 MiB that depends only on their number, so that any
reader can make the expected bytes again and compare them whole: ``verify`` tasks read
their predecessors' results (read back from the coordinator's disk when they had been
pushed out), and one ``audit`` task at the end asks the coordinator for every produced
result again (``aget_task``). A wrong or missing byte fails a task, and the run.
"""

from __future__ import annotations

import os
import random
from typing import Any

from trio_graph_scheduler import TaskGraph, WorkerLoop

#: How many 1 MiB results, and how many each verify task reads.
TASKS = int(os.environ.get("TGS_E2E_MEMORY_TASKS", "1000"))
SIZE = 1 << 20
FAN_IN = 4


def expected(n: int) -> bytes:
    """The bytes ``produce(n)`` returns."""
    return random.Random(n).randbytes(SIZE)


async def produce(n: int, **_: Any) -> bytes:
    return expected(n)


def _check(n: int, value: Any) -> None:
    if value != expected(n):
        got = f"{len(value)} bytes" if isinstance(value, bytes) else type(value).__name__
        raise AssertionError(f"the result of produce({n}) came back wrong ({got})")


async def verify(first: int, *, task_node: Any, **_: Any) -> int:
    """Compare each predecessor's result with what ``produce`` made."""
    predecessors = task_node.get_predecessor_task_nodes()
    for offset, predecessor in enumerate(predecessors):
        _check(first + offset, predecessor.task_result)
    return len(predecessors)


async def audit(uids: list[str], *, graph: Any, **_: Any) -> int:
    """Ask the coordinator for every produced result, once all were verified."""
    for n, uid in enumerate(uids):
        node = await graph.aget_task(uid)
        _check(n, node.task_result)
    return len(uids)


async def build_graph() -> TaskGraph:
    graph = TaskGraph(
        {"produce": produce, "verify": verify, "audit": audit},
        [WorkerLoop("default", 4, None)],
    )
    producers = [await graph.create_task("produce", ((n,), {})) for n in range(TASKS)]
    verifiers = [
        await graph.create_task(
            "verify", ((first,), {}), [p.uid for p in producers[first : first + FAN_IN]]
        )
        for first in range(0, TASKS, FAN_IN)
    ]
    await graph.create_task(
        "audit", (([p.uid for p in producers],), {}), [v.uid for v in verifiers]
    )
    return graph
