#!/usr/bin/env python
"""In-process throughput and memory benchmark of trio-graph-scheduler (a benchmark, not a test).

What it measures, with no-op tasks (``async def noop(**kw): return None``) so that only the
scheduler's own cost shows:

1. Three graph shapes of 10,000 tasks each, built and run with :func:`execute_graph`:

   * ``independent``: 10,000 tasks that wait on nothing;
   * ``chains``: 2,000 chains of 5, each link waiting on the previous link's uid;
   * ``fan-in``: 5,000 leaves joined by 1 task that waits on all 5,000 leaf uids.

   Build time (``create_task_nowait`` calls) and run time (``execute_graph``, without the
   ``trio.run`` start-up) are timed separately; each figure is the median of ``--repeats``
   runs, every run on a fresh graph. Tasks/s is for the run alone; ``built+run/sync`` is
   the end to end rate (tasks over build and run) against Dask's synchronous ``get``.

2. A graph of 1,000,000 independent tasks, in a fresh child process so the figures are
   clean: its build time, the memory it holds (peak-RSS growth, and in a second child the
   bytes ``tracemalloc`` sees allocated) per task node, and its run time.

3. When ``dask`` is importable, the same three shapes on Dask's local schedulers: the
   synchronous ``dask.get`` and the threaded ``dask.threaded.get``, given the equivalent
   graph dict (``{key: (noop, *deps)}``); only the ``get`` call is timed.

Usage (from the repository root)::

    python scripts/bench_inprocess.py                 # full run (about a minute)
    python scripts/bench_inprocess.py --quick         # sizes / 10, for a smoke run
    python scripts/bench_inprocess.py --json out/bench.json --concurrency 8
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import trio
from bench_shapes import Shape, independent_shape, shapes

from trio_graph_scheduler import TaskGraph, WorkerLoop, execute_graph

#: The per-node memory the library aims to stay under.
TARGET_BYTES_PER_NODE = 1024
#: The run throughput the library aims for.
TARGET_TASKS_PER_S = 100_000


async def noop(**kw):
    """The tgs task: does nothing, so the measured time is all scheduling."""
    return None


def dask_noop(*deps):
    """The Dask task: takes its dependencies' results (as Dask passes them) and ignores them."""
    return None


# -- measuring tgs -----------------------------------------------------------------------------


def new_graph(concurrency: int) -> TaskGraph:
    return TaskGraph({"noop": noop}, [WorkerLoop("default", concurrency, None)])


async def timed_execute(graph: TaskGraph) -> float:
    # Timed inside trio.run so that the event loop's start-up and shutdown are left out.
    started = time.perf_counter()
    await execute_graph(graph)
    return time.perf_counter() - started


def check_all_succeeded(graph: TaskGraph, expected: int) -> None:
    by_status = dict(graph.statistics().tasks_by_status)
    if by_status != {"success": expected}:
        raise SystemExit(f"benchmark graph did not run cleanly: {by_status}")


def tracked_objects_per_task(shape: Shape, concurrency: int) -> float:
    """Objects the cyclic garbage collector tracks, per task of a built graph of
    ``shape``: what it walks again and again while a big graph grows."""
    graph = new_graph(concurrency)
    gc.collect()
    before = len(gc.get_objects())
    shape.build_tgs(graph)
    gc.collect()
    return (len(gc.get_objects()) - before) / shape.tasks


def measure_tgs_once(shape: Shape, concurrency: int) -> tuple[float, float]:
    """(build seconds, run seconds) for one fresh graph of ``shape``."""
    gc.collect()  # leftovers of the previous run must not be collected on this one's time
    graph = new_graph(concurrency)
    started = time.perf_counter()
    shape.build_tgs(graph)
    build_s = time.perf_counter() - started
    run_s = trio.run(timed_execute, graph)
    check_all_succeeded(graph, shape.tasks)
    return build_s, run_s


# -- measuring Dask ----------------------------------------------------------------------------


def dask_version() -> str | None:
    try:
        import dask
    except ImportError:
        return None
    return str(dask.__version__)


def measure_dask_once(shape: Shape, scheduler: str, concurrency: int) -> float:
    """Seconds for one ``get`` of a fresh Dask graph of ``shape`` (building it excluded)."""
    import dask
    import dask.threaded

    dsk, keys = shape.build_dask(dask_noop, "")
    gc.collect()
    started = time.perf_counter()
    if scheduler == "sync":
        results = dask.get(dsk, keys)
    else:
        results = dask.threaded.get(dsk, keys, num_workers=concurrency)
    elapsed = time.perf_counter() - started
    if len(results) != shape.tasks:
        raise SystemExit(f"dask {scheduler} returned {len(results)} results, not {shape.tasks}")
    return elapsed


# -- the million-task graph, in child processes ------------------------------------------------


def max_rss_bytes() -> int:
    """This process's peak resident set size so far."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return peak if sys.platform == "darwin" else peak * 1024


def rss_bytes() -> int:
    """This process's resident set size now where /proc tells it, else its peak so far.

    The current size is the cleaner baseline: a peak reached earlier (while importing, say)
    would hide part of the graph's growth from a peak-to-peak difference.
    """
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return max_rss_bytes()


def cpu_seconds() -> float:
    """This process's CPU time so far, user and system: on a loaded machine a steadier
    figure than wall time, which counts the time other processes held the CPU too."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def child_rss(size: int, concurrency: int) -> dict[str, Any]:
    """Build and run ``size`` independent tasks; RSS growth and timings."""
    # Warm up (code paths, interned strings, the status enum) so the baseline holds them.
    independent_shape(1_000).build_tgs(new_graph(concurrency))
    gc.collect()
    baseline, baseline_peak = rss_bytes(), max_rss_bytes()
    graph = new_graph(concurrency)
    started, started_cpu = time.perf_counter(), cpu_seconds()
    independent_shape(size).build_tgs(graph)
    build_s = time.perf_counter() - started
    build_cpu_s = cpu_seconds() - started_cpu
    gc.collect()
    built, built_peak = rss_bytes(), max_rss_bytes()
    run_s = trio.run(timed_execute, graph)
    check_all_succeeded(graph, size)
    return {
        "build_s": build_s,
        "build_cpu_s": build_cpu_s,
        "run_s": run_s,
        "rss_growth_bytes": built - baseline,
        "peak_rss_growth_bytes": built_peak - baseline_peak,
        "peak_rss_growth_after_run_bytes": max_rss_bytes() - baseline_peak,
    }


def child_tracemalloc(size: int, concurrency: int) -> dict[str, Any]:
    """Build ``size`` independent tasks under tracemalloc: bytes held, and the peak."""
    independent_shape(1_000).build_tgs(new_graph(concurrency))
    gc.collect()
    tracemalloc.start()
    graph = new_graph(concurrency)
    independent_shape(size).build_tgs(graph)
    gc.collect()
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(graph.nodes) == size
    return {"traced_bytes": current, "traced_peak_bytes": peak}


def run_child(mode: str, size: int, concurrency: int) -> dict[str, Any]:
    """Run this script as ``--child MODE`` in a fresh interpreter; its JSON result."""
    completed = subprocess.run(
        [
            sys.executable,
            str(Path(__file__).resolve()),
            "--child",
            mode,
            "--million",
            str(size),
            "--concurrency",
            str(concurrency),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if completed.returncode != 0:
        raise SystemExit(f"child {mode} failed:\n{completed.stdout}{completed.stderr}")
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


# -- reporting ---------------------------------------------------------------------------------


@dataclass
class ShapeResult:
    shape: str
    description: str
    tasks: int
    tgs_build_s: float
    tgs_run_s: float
    tgs_tasks_per_s: float
    #: Per Dask scheduler ("sync", "threads"): median seconds of its get call.
    dask_run_s: dict[str, float] = field(default_factory=dict)

    def dask_tasks_per_s(self, scheduler: str) -> float | None:
        seconds = self.dask_run_s.get(scheduler)
        return None if seconds is None else self.tasks / seconds


def fmt_rate(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:,.0f}"


def fmt_ratio(ours: float, theirs: float | None) -> str:
    return "-" if theirs is None else f"{ours / theirs:.1f}x"


def print_table(results: list[ShapeResult], with_dask: bool) -> None:
    header = f"{'shape':<22} {'tasks':>7} {'build ms':>9} {'run ms':>8} {'tgs tasks/s':>12}"
    if with_dask:
        header += f" {'dask sync/s':>12} {'dask thr/s':>11} {'tgs/sync':>9} {'tgs/thr':>8}"
        # Building included: the graph's tasks over its build and run together.
        header += f" {'built+run/sync':>15}"
    print(header)
    print("-" * len(header))
    for r in results:
        line = (
            f"{r.description:<22} {r.tasks:>7,} {r.tgs_build_s * 1e3:>9.1f} "
            f"{r.tgs_run_s * 1e3:>8.1f} {fmt_rate(r.tgs_tasks_per_s):>12}"
        )
        if with_dask:
            sync, threads = r.dask_tasks_per_s("sync"), r.dask_tasks_per_s("threads")
            line += (
                f" {fmt_rate(sync):>12} {fmt_rate(threads):>11}"
                f" {fmt_ratio(r.tgs_tasks_per_s, sync):>9}"
                f" {fmt_ratio(r.tgs_tasks_per_s, threads):>8}"
            )
            end_to_end = r.tasks / (r.tgs_build_s + r.tgs_run_s)
            line += f" {fmt_ratio(end_to_end, sync):>15}"
        print(line)


def print_million(size: int, rss: dict[str, Any], traced: dict[str, Any] | None) -> None:
    print(f"\n{size:,} independent tasks (each figure from a fresh child process):")
    print(
        f"  build   {rss['build_s']:7.2f} s  ({size / rss['build_s']:,.0f} tasks/s, "
        f"{rss['build_s'] / size * 1e6:.2f} us/task; {rss['build_cpu_s']:.2f} s of CPU)"
    )
    print(
        f"  run     {rss['run_s']:7.2f} s  ({size / rss['run_s']:,.0f} tasks/s, "
        f"{rss['run_s'] / size * 1e6:.2f} us/task)"
    )
    per_node = rss["rss_growth_bytes"] / size
    verdict = "ok" if per_node <= TARGET_BYTES_PER_NODE else "OVER TARGET"
    print(
        f"  memory  {rss['rss_growth_bytes'] / 2**20:7.1f} MiB RSS growth for the built graph "
        f"= {per_node:,.0f} B/node (target <= {TARGET_BYTES_PER_NODE} B: {verdict})"
    )
    print(
        f"          peak RSS growth {rss['peak_rss_growth_bytes'] / size:,.0f} B/node built, "
        f"{rss['peak_rss_growth_after_run_bytes'] / size:,.0f} B/node after the run"
    )
    if traced is not None:
        print(
            f"  traced  {traced['traced_bytes'] / size:,.0f} B/node held after the build "
            f"(tracemalloc), {traced['traced_peak_bytes'] / size:,.0f} B/node at its peak"
        )


# -- main --------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--concurrency", type=int, default=4, help="the default loop's concurrency (default 4)"
    )
    parser.add_argument("--repeats", type=int, default=3, help="runs per figure (median; 3)")
    parser.add_argument("--quick", action="store_true", help="every size / 10, for a smoke run")
    parser.add_argument(
        "--million",
        type=int,
        default=None,
        help="tasks in the big graph (default 1,000,000; 100,000 with --quick; 0 skips it)",
    )
    parser.add_argument("--no-dask", action="store_true", help="skip the Dask comparison")
    parser.add_argument("--no-tracemalloc", action="store_true", help="skip the traced child")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures here")
    # The child processes of the million-task measurement.
    parser.add_argument("--child", choices=["rss", "tracemalloc"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.million is None:
        args.million = 100_000 if args.quick else 1_000_000
    if args.concurrency < 1 or args.repeats < 1:
        parser.error("--concurrency and --repeats must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        child = child_rss if args.child == "rss" else child_tracemalloc
        print(json.dumps(child(args.million, args.concurrency)))
        return 0

    dask = None if args.no_dask else dask_version()
    print(
        f"trio-graph-scheduler {importlib.metadata.version('trio-graph-scheduler')}, "
        f"trio {trio.__version__}, Python {platform.python_version()}, "
        f"{platform.machine()} x {os.cpu_count()} CPUs"
    )
    print(
        f"no-op tasks, loop concurrency {args.concurrency}, median of {args.repeats} runs"
        + (" (--quick: sizes / 10)" if args.quick else "")
    )
    if args.no_dask:
        print("dask comparison skipped (--no-dask)")
    elif dask is None:
        print("dask not installed: pip install dask to compare")
    else:
        print(
            f"dask {dask}: sync = dask.get, thr = dask.threaded.get(num_workers={args.concurrency})"
        )
    print()

    results: list[ShapeResult] = []
    for shape in shapes(10 if args.quick else 1):
        runs = [measure_tgs_once(shape, args.concurrency) for _ in range(args.repeats)]
        build_s = statistics.median(b for b, _ in runs)
        run_s = statistics.median(r for _, r in runs)
        result = ShapeResult(
            shape.name, shape.description, shape.tasks, build_s, run_s, shape.tasks / run_s
        )
        if dask is not None:
            for scheduler in ("sync", "threads"):
                result.dask_run_s[scheduler] = statistics.median(
                    measure_dask_once(shape, scheduler, args.concurrency)
                    for _ in range(args.repeats)
                )
        results.append(result)
    print_table(results, with_dask=dask is not None)
    tracked = ", ".join(
        f"{shape.name} {tracked_objects_per_task(shape, args.concurrency):.1f}"
        for shape in shapes(10 if args.quick else 1)
    )
    print(f"objects the garbage collector tracks per task built: {tracked}")

    million: dict[str, Any] | None = None
    if args.million > 0:
        rss = run_child("rss", args.million, args.concurrency)
        traced = (
            None
            if args.no_tracemalloc
            else run_child("tracemalloc", args.million, args.concurrency)
        )
        print_million(args.million, rss, traced)
        million = {
            "tasks": args.million,
            **rss,
            "build_tasks_per_s": args.million / rss["build_s"],
            "run_tasks_per_s": args.million / rss["run_s"],
            "rss_bytes_per_node": rss["rss_growth_bytes"] / args.million,
            **(traced or {}),
        }
        if traced:
            million["traced_bytes_per_node"] = traced["traced_bytes"] / args.million

    slowest = min(r.tgs_tasks_per_s for r in results)
    print(
        f"\nslowest shape: {slowest:,.0f} tasks/s "
        f"(target >= {TARGET_TASKS_PER_S:,}: {'ok' if slowest >= TARGET_TASKS_PER_S else 'MISSED'})"
    )

    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        figures = {
            "config": {
                "concurrency": args.concurrency,
                "repeats": args.repeats,
                "quick": args.quick,
                "python": platform.python_version(),
                "trio": trio.__version__,
                "dask": dask,
                "cpus": os.cpu_count(),
            },
            "shapes": [
                {
                    **asdict(r),
                    "dask_tasks_per_s": {s: r.dask_tasks_per_s(s) for s in r.dask_run_s},
                }
                for r in results
            ],
            "million": million,
        }
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
        print(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
