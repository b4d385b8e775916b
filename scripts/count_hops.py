"""Count the hops a task takes through the package: calls from one of its modules into
another, per task, in-process and distributed (coordinator and worker in one process,
over in-memory streams).

A hop is a Python call whose caller and callee live in different modules of
``trio_graph_scheduler`` (a call into the task's own function counts too). The figure is
a property of the layout, not of speed: it says how many module boundaries a reader
crosses to follow one task, and it is the same on any machine.

    .venv/bin/python scripts/count_hops.py [--tasks N]
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from typing import TYPE_CHECKING, Any

import trio

import trio_graph_scheduler as tgs
from trio_graph_scheduler.testing import run_local_cluster

if TYPE_CHECKING:
    from types import FrameType

PACKAGE = "trio_graph_scheduler"


async def noop(**_: Any) -> None:
    return None


def build(tasks: int) -> tgs.TaskGraph:
    """Tasks in pairs, the second waiting on the first: creation, a condition, and the
    successor becoming ready are all on the path."""
    graph = tgs.TaskGraph({"noop": noop}, [tgs.WorkerLoop("default", 4)])
    for _ in range(tasks // 2):
        first = graph.create_task_nowait("noop")
        graph.create_task_nowait("noop", None, [first.uid])
    return graph


class HopCounter:
    """A profile hook counting calls that cross from one package module to another."""

    def __init__(self) -> None:
        self.hops: Counter[tuple[str, str]] = Counter()

    def __call__(self, frame: FrameType, event: str, arg: object) -> None:
        if event != "call":
            return
        caller = frame.f_back
        if caller is None:
            return
        callee_module = frame.f_globals.get("__name__", "")
        caller_module = caller.f_globals.get("__name__", "")
        user = frame.f_code is noop.__code__
        if caller_module.startswith(PACKAGE) and (user or callee_module.startswith(PACKAGE)):
            if user:
                callee_module = "<the task's function>"
            if callee_module != caller_module:
                self.hops[(caller_module, callee_module)] += 1


def count(run: Any, tasks: int) -> tuple[float, Counter[tuple[str, str]]]:
    counter = HopCounter()
    sys.setprofile(counter)
    try:
        trio.run(run, build(tasks))  # building counts: create_task is the path's start
    finally:
        sys.setprofile(None)
    return sum(counter.hops.values()) / tasks, counter.hops


async def in_process(graph: tgs.TaskGraph) -> None:
    await tgs.execute_graph(graph)


async def distributed(graph: tgs.TaskGraph) -> None:
    await run_local_cluster(graph, workers=1, in_memory=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--top", type=int, default=0, help="also list the N busiest edges")
    args = parser.parse_args()
    for name, run in [("in-process", in_process), ("distributed", distributed)]:
        per_task, hops = count(run, args.tasks)
        modules = {m for edge in hops for m in edge}
        print(f"{name:12} {per_task:6.1f} hops per task, {len(modules)} modules touched")
        for (a, b), n in hops.most_common(args.top):
            print(f"    {n / args.tasks:6.2f}  {a} -> {b}")


if __name__ == "__main__":
    main()
