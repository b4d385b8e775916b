"""Instructions per task of two source trees of trio-graph-scheduler, side by side.

Wall-clock figures on a shared 2-core VM swing by 30% between runs of the same code;
instruction counts do not. Each workload runs in a child Python under
``valgrind --tool=callgrind`` with ``PYTHONPATH`` set to one tree, once with N tasks and
once with 5; the difference over N - 5 is the cost of one task (imports and setup cancel
out). Used to check that a refactor costs nothing on the hot paths:

    git worktree add /tmp/before <commit>
    .venv/bin/python scripts/compare_trees.py /tmp/before .

Workloads: in-process no-op tasks (independent, and chains of 5), and distributed no-op
tasks on a coordinator and one worker in one process (in-memory streams: both ends'
CPU per task, no network). ``--modes worker`` adds the worker alone: a real
``tgs-worker`` under callgrind, served by a real ``tgs-coordinator`` (not counted) on
loopback, running the fan-out shape of ``bench_cli_graph.py`` at concurrency 64. The
worker is slow under callgrind, so the coordinator's frames come full: this counts a
worker's cost per task in large batches, not its cost per frame in small ones.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_distributed import CLI_MAX_FRAME, start_cli_coordinator

WORKLOAD = r"""
import sys, trio
from trio_graph_scheduler import TaskGraph, WorkerLoop, execute_graph
from trio_graph_scheduler.testing import run_local_cluster

async def noop(**_):
    return None

mode, tasks = sys.argv[1], int(sys.argv[2])
graph = TaskGraph({"noop": noop}, [WorkerLoop("default", 64)])
if mode == "chains":
    for _ in range(tasks // 5):
        uid = None
        for _ in range(5):
            uid = graph.create_task_nowait("noop", None, [uid] if uid else None).uid
else:
    for _ in range(tasks):
        graph.create_task_nowait("noop")
if mode == "distributed":
    trio.run(lambda: run_local_cluster(graph, workers=1, in_memory=True))
else:
    trio.run(execute_graph, graph)
assert all(n.task_status == "success" for n in graph.nodes.values())
"""

MODES = ("independent", "chains", "distributed")
#: Every workload, the worker alone included (a few minutes each under callgrind).
ALL_MODES = (*MODES, "worker")


def instructions(tree: Path, mode: str, tasks: int) -> int:
    if mode == "worker":
        return worker_instructions(tree, tasks)
    env = {**os.environ, "PYTHONPATH": str(tree.resolve())}
    run = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            "-c",
            WORKLOAD,
            mode,
            str(tasks),
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return collected(run.stderr)


def collected(stderr: str) -> int:
    """The instruction count in callgrind's report."""
    found = re.search(r"Collected\s*:\s*(\d+)", stderr)
    if found is None:
        raise SystemExit(f"no instruction count from callgrind:\n{stderr[-2000:]}")
    return int(found.group(1))


def worker_instructions(tree: Path, tasks: int) -> int:
    """A ``tgs-worker`` under callgrind runs ``tasks`` no-ops (between a start task and
    a join) for a ``tgs-coordinator`` that is not counted."""
    bin_dir = Path(sys.executable).parent
    with tempfile.TemporaryDirectory(prefix="tgs-compare-") as directory:
        work = Path(directory)
        out = work / "bounds.json"
        env = {
            **os.environ,
            "PYTHONPATH": str(tree.resolve()),
            "BENCH_SHAPE": "fan",
            "BENCH_TASKS": str(tasks),
            "BENCH_CONCURRENCY": "64",
            "BENCH_OUT": str(out),
        }
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            address = f"127.0.0.1:{probe.getsockname()[1]}"
        log = work / "coordinator.err"
        coordinator = start_cli_coordinator(
            env, log, "--listen", address, "--min-workers", "1", *CLI_MAX_FRAME
        )
        try:
            while "listening on" not in log.read_text():
                if coordinator.poll() is not None:
                    raise SystemExit(f"tgs-coordinator exited:\n{log.read_text()[-2000:]}")
                time.sleep(0.05)
            worker = subprocess.run(
                [
                    "valgrind",
                    "--tool=callgrind",
                    "--callgrind-out-file=/dev/null",
                    sys.executable,
                    str(bin_dir / "tgs-worker"),
                    *("--connect", f"ws://{address}", "--log-level", "warning", *CLI_MAX_FRAME),
                ],
                cwd=work,
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            coordinator.wait(60)
        finally:
            if coordinator.poll() is None:
                coordinator.kill()
                coordinator.wait()
    return collected(worker.stderr)


def per_task(tree: Path, mode: str, tasks: int) -> float:
    # Against a run of 5 tasks, not 0: an empty graph ends before a worker can join.
    return (instructions(tree, mode, tasks) - instructions(tree, mode, 5)) / (tasks - 5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("old", type=Path, help="the tree before (a worktree of a commit)")
    parser.add_argument("new", type=Path, help="the tree after")
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument(
        "--modes",
        default=",".join(MODES),
        help=f"the workloads, comma-separated, of {', '.join(ALL_MODES)} (default: all but worker)",
    )
    args = parser.parse_args()
    modes = [mode for mode in args.modes.split(",") if mode]
    unknown = set(modes) - set(ALL_MODES)
    if unknown:
        parser.error(f"no such workload: {', '.join(sorted(unknown))}")
    print(f"{'workload':12} {'before':>10} {'after':>10} {'after/before':>13}  (instructions/task)")
    for mode in modes:
        old = per_task(args.old, mode, args.tasks)
        new = per_task(args.new, mode, args.tasks)
        print(f"{mode:12} {old:10,.0f} {new:10,.0f} {new / old:13.3f}")


if __name__ == "__main__":
    main()
