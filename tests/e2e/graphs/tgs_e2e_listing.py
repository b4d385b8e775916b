"""A graph for ``tgs-status --tasks`` through a real pipe: many tasks, served by no worker,
so that the run stays as it is for as long as the test asks."""

from __future__ import annotations

from typing import Any

from trio_graph_scheduler import TaskGraph, WorkerLoop

#: Enough rows that a full listing (about 90 bytes a row) is larger than a pipe's buffer
#: (64 KiB on Linux): a reader that stops early breaks the pipe for certain.
MANY = 3000


async def noop(**_: Any) -> None:
    return None


async def build_many() -> TaskGraph:
    graph = TaskGraph({"noop": noop}, [WorkerLoop("default", 1, None)])
    for i in range(MANY):
        await graph.create_task("noop", ((i,), {}))
    return graph
