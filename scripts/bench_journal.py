#!/usr/bin/env python
"""What the journal costs: tasks/s with and without ``--journal``, side by side (a benchmark).

For each of the three benchmark shapes (scripts/bench_shapes.py: 10,000 independent
no-ops, 2,000 chains of 5, 5,000 leaves joined by one task), runs alternate between no
journal and a fresh journal file, in-process (``execute_graph``, graph building included,
since the journal records every task as it is created) and distributed (the coordinator
served in this process, two ``tgs-worker`` processes, as scripts/bench_distributed.py
runs it: the graph is built while the journal is bound, and only the run is timed). The
median of ``--repeats`` runs of each is printed with the ratio journal/no journal: the
goal is at least 0.75 (issue 11).

Usage (from the repository root)::

    python scripts/bench_journal.py               # about a minute
    python scripts/bench_journal.py --repeats 5 --concurrency 64
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import time
from pathlib import Path

import trio
from bench_distributed import tgs_run
from bench_shapes import Shape, shapes

from trio_graph_scheduler import TaskGraph, WorkerLoop, execute_graph

#: The least throughput with a journal, as a share of that without, the issue asks for.
TARGET_RATIO = 0.75


async def noop(**kw: object) -> None:
    return None


def inprocess_rate(shape: Shape, concurrency: int, journal: Path | None) -> float:
    """Tasks/s of one in-process run, building the graph included."""
    gc.collect()

    async def run() -> float:
        started = time.perf_counter()
        graph = TaskGraph({"noop": noop}, [WorkerLoop("default", concurrency)])
        shape.build_tgs(graph)
        await execute_graph(graph, journal=journal)
        return shape.tasks / (time.perf_counter() - started)

    return trio.run(run)


def distributed_rate(shape: Shape, concurrency: int, journal: Path | None) -> float:
    """Tasks/s of one distributed run (the run only, as bench_distributed times it)."""
    return shape.tasks / tgs_run(shape.build_tgs, concurrency, journal).run_s


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs of each (default: 3)")
    parser.add_argument("--concurrency", type=int, default=256, help="loop concurrency")
    parser.add_argument("--quick", action="store_true", help="shapes at 1/10 of their size")
    args = parser.parse_args(argv)
    print(f"{'shape':<12} {'mode':<12} {'no journal':>12} {'journal':>12} {'ratio':>7}")
    worst = float("inf")
    with tempfile.TemporaryDirectory() as directory:
        runs = 0
        for shape in shapes(10 if args.quick else 1):
            for mode, measure in (
                ("in-process", inprocess_rate),
                ("distributed", distributed_rate),
            ):
                plain: list[float] = []
                journaled: list[float] = []
                for _ in range(args.repeats):
                    runs += 1
                    plain.append(measure(shape, args.concurrency, None))
                    journal = Path(directory) / f"run-{runs}.journal"
                    journaled.append(measure(shape, args.concurrency, journal))
                without, with_ = statistics.median(plain), statistics.median(journaled)
                ratio = with_ / without
                worst = min(worst, ratio)
                print(
                    f"{shape.name:<12} {mode:<12} {without:>10,.0f}/s {with_:>10,.0f}/s "
                    f"{ratio:>7.2f}",
                    flush=True,
                )
    verdict = "PASS" if worst >= TARGET_RATIO else "FAIL"
    print(f"worst ratio {worst:.2f} (goal >= {TARGET_RATIO}): {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
