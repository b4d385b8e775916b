#!/usr/bin/env python
"""The coordinator's peak memory with ``--report``, as users run it (a benchmark, not a
test; issue 10): the real ``tgs-coordinator`` and two ``tgs-worker`` processes on
loopback run ``--tasks`` independent no-op tasks and write the JSON report; the
coordinator's ``VmHWM`` (peak resident memory, from ``/proc/PID/status``) is read just
before it exits, and once more for the same run without ``--report``.

Each source tree given with ``--tree`` (default: this one) runs side by side, so that a
change is measured against its parent on the same loaded machine::

    git archive HEAD~1 | (mkdir -p /tmp/before && tar -x -C /tmp/before)
    python scripts/bench_report_memory.py --tasks 200000 --tree /tmp/before --tree .
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

BIN = Path(sys.executable).parent
GRAPH = """
import os
from trio_graph_scheduler import TaskGraph, WorkerLoop

async def noop(**_):
    return None

async def build_graph():
    graph = TaskGraph({"noop": noop}, [WorkerLoop("default", 256, None)])
    for _ in range(int(os.environ["TGS_BENCH_TASKS"])):
        graph.create_task_nowait("noop")
    return graph
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def peak_of(pid: int) -> int:
    """VmHWM in KiB (0 once the process has gone)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    match = re.search(r"^VmHWM:\s+(\d+) kB", text, re.M)
    return int(match.group(1)) if match else 0


def run(tree: Path, tasks: int, report: bool, work: Path) -> tuple[float, int]:
    """One run; returns (peak MiB of the coordinator, report bytes)."""
    env = {**os.environ, "PYTHONPATH": str(tree.resolve()), "TGS_BENCH_TASKS": str(tasks)}
    port = free_port()
    path = work / "report.json"
    path.unlink(missing_ok=True)
    argv = [str(BIN / "tgs-coordinator"), "bench_report_graph:build_graph"]
    argv += ["--listen", f"127.0.0.1:{port}", "--no-progress", "--log-level", "warning"]
    argv += ["--min-workers", "2"]
    if report:
        argv += ["--report", str(path)]
    with open(work / "coordinator.err", "wb") as err:
        coordinator = subprocess.Popen(
            argv, cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=err
        )
    worker_argv = [str(BIN / "tgs-worker"), "--connect", f"ws://127.0.0.1:{port}"]
    worker_argv += ["--connect-timeout", "120", "--log-level", "warning"]
    quiet = subprocess.DEVNULL
    workers = [
        subprocess.Popen(worker_argv, cwd=work, env=env, stdout=quiet, stderr=quiet)
        for _ in range(2)
    ]
    peak = 0
    while coordinator.poll() is None:
        peak = max(peak, peak_of(coordinator.pid))
        time.sleep(0.05)
    for worker in workers:
        worker.wait(60)
    if coordinator.returncode != 0:
        sys.exit(f"the coordinator failed:\n{(work / 'coordinator.err').read_text()}")
    return peak / 1024, path.stat().st_size if report else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=200_000, help="no-op tasks (200,000)")
    parser.add_argument("--tree", type=Path, action="append", help="a source tree (repeatable)")
    args = parser.parse_args()
    trees = args.tree or [Path(__file__).resolve().parents[1]]
    with tempfile.TemporaryDirectory(prefix="tgs-bench-report-") as directory:
        work = Path(directory)
        (work / "bench_report_graph.py").write_text(GRAPH)
        print(f"{args.tasks:,} no-op tasks, 2 workers; coordinator VmHWM (peak RSS):")
        for tree in trees:
            without, _ = run(tree, args.tasks, False, work)
            with_report, size = run(tree, args.tasks, True, work)
            print(
                f"  {tree}: {without:.0f} MiB without --report, {with_report:.0f} MiB with it "
                f"(+{with_report - without:.0f} MiB; the report is {size / 2**20:.0f} MiB)"
            )


if __name__ == "__main__":
    main()
