"""The graphs of ``scripts/bench_distributed.py --cli``, imported by ``tgs-coordinator`` as
MODULE:FUNC (``bench_cli_graph:build``).

Read from the environment so that the benchmark can size them: ``BENCH_SHAPE`` (``fan``,
``independent``, ``chains``, ``fan-in`` or ``chain``; ``free`` builds BENCH_TASKS tasks
that wait on nothing, without the frame below, for the coordinator's memory alone),
``BENCH_TASKS`` (the shape's size: tasks for ``fan``, ``independent`` and ``chain``;
``chains`` makes BENCH_TASKS / 5 chains of 5, ``fan-in`` BENCH_TASKS leaves and their
join), ``BENCH_CONCURRENCY`` (the loop's concurrency), ``BENCH_OUT`` (the file the last
task writes its stamps to; the builder writes its own CPU and memory figures to
``BENCH_OUT.build``).

Every shape is framed the same way: one ``start`` task, the shape's tasks (those that wait
on nothing wait on ``start``), and one ``join`` waiting on every task of the shape. So
``fan`` is issue 14's fan-out/fan-in graph (``start``, BENCH_TASKS no-ops, ``join``).

Times are taken inside the tasks, with ``time.perf_counter`` (CLOCK_MONOTONIC on Linux,
the same clock in every process of the machine): the start task's end and the join's
start bound the run, so start-up, the build and the shutdown are left out. The chain's
links (``stamp``) return their own start: the median gap between two links is the idle
round trip.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from bench_shapes import chains_shape, fan_in_shape, independent_shape

from trio_graph_scheduler import TaskGraph, WorkerLoop


async def start(**_: Any) -> float:
    """The shape's first task: when it ended."""
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


class _Gated:
    """Stands for the graph while a shape builds itself: a task that waits on nothing
    waits on ``start`` instead, and every task's uid is kept for the join."""

    def __init__(self, graph: TaskGraph, first: str, handle: str) -> None:
        self.graph = graph
        self.first = [first]
        self.handle = handle
        self.uids: list[str] = []

    def create_task_nowait(
        self, _handle: str, args: Any = None, waits_on: list[str] | None = None
    ) -> Any:
        node = self.graph.create_task_nowait(self.handle, args, waits_on or self.first)
        self.uids.append(node.uid)
        return node


def _rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


async def build() -> TaskGraph:
    """The shape ``BENCH_SHAPE`` of ``BENCH_TASKS`` tasks between ``start`` and ``join``."""
    shape = os.environ["BENCH_SHAPE"]
    tasks = int(os.environ["BENCH_TASKS"])
    out = os.environ["BENCH_OUT"]
    graph = TaskGraph(
        {"start": start, "noop": noop, "stamp": stamp, "join": join},
        [WorkerLoop("default", int(os.environ["BENCH_CONCURRENCY"]), None)],
    )
    rss_before = _rss_bytes()
    cpu_before = time.process_time()
    if shape == "free":  # only for the coordinator's memory: tasks that wait on nothing
        for _ in range(tasks):
            graph.create_task_nowait("noop")
        _write_build_figures(out, time.process_time() - cpu_before, rss_before, tasks)
        return graph
    first = graph.create_task_nowait("start").uid
    gated = _Gated(graph, first, "stamp" if shape == "chain" else "noop")
    if shape in ("fan", "independent"):
        independent_shape(tasks).build_tgs(gated)  # type: ignore[arg-type]
    elif shape == "chains":
        chains_shape(tasks // 5, 5).build_tgs(gated)  # type: ignore[arg-type]
    elif shape == "fan-in":
        fan_in_shape(tasks).build_tgs(gated)  # type: ignore[arg-type]
    elif shape == "chain":
        chains_shape(1, tasks).build_tgs(gated)  # type: ignore[arg-type]
    else:
        raise ValueError(f"unknown BENCH_SHAPE {shape!r}")
    graph.create_task_nowait("join", ((out,), {}), [first, *gated.uids])
    _write_build_figures(out, time.process_time() - cpu_before, rss_before, len(gated.uids) + 2)
    return graph


def _write_build_figures(out: str, cpu_s: float, rss_before: int, tasks: int) -> None:
    figures = {
        "build_cpu_s": cpu_s,
        "rss_before": rss_before,
        "rss_built": _rss_bytes(),
        "tasks": tasks,
    }
    Path(out + ".build").write_text(json.dumps(figures))
