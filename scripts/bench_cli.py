#!/usr/bin/env python
"""Speed as users run it: the real ``tgs-coordinator`` and two ``tgs-worker`` processes
(a benchmark, not a test; issue 14).

For each loop concurrency (``--concurrency 4,16,64,256``) it runs issue 14's fan-out/fan-in
graph (``scripts/bench_cli_graph.py``: one start task, ``--tasks`` no-ops waiting on it,
one join waiting on them all) through the CLIs on loopback, with ``--min-workers 2``, and
reports:

* tasks/s, timed inside the tasks (the start task's end to the join's start, on the
  machine-wide monotonic clock), so start-up, the build and the shutdown are left out;
* CPU microseconds per task of the coordinator and of the workers (user + system, from
  ``/proc/PID/stat``, between both workers joining and the join's start).

Then the idle round trip: a chain of ``--chain`` links run one after another, the median
gap between two links' start stamps (concurrency 4).

Usage (from the repository root)::

    python scripts/bench_cli.py                       # 20,000 tasks at 4, 16, 64, 256
    python scripts/bench_cli.py --tasks 100000 --concurrency 64

Issue 14's goals, for comparison: at least 10x Dask distributed at concurrency 64 (Dask
is not run here: see STACK.md for its figures on this machine), at most 10 µs of CPU per
no-op task on each side, an idle round trip of at most 300 µs.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
#: Seconds any one run may take before the benchmark gives up.
RUN_LIMIT = 600.0
TICKS = os.sysconf("SC_CLK_TCK")
MAX_FRAME = ("--max-frame-bytes", str(16 * 2**20))


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(check: object, what: str, deadline: float) -> None:
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.005)


def run_once(builder: str, tasks: int, concurrency: int, work: Path) -> dict[str, float]:
    """One run through the CLIs; its figures."""
    out = work / f"{builder}-{concurrency}.json"
    out.unlink(missing_ok=True)
    env = {
        **os.environ,
        "BENCH_TASKS": str(tasks),
        "BENCH_CONCURRENCY": str(concurrency),
        "BENCH_OUT": str(out),
    }
    address = f"127.0.0.1:{free_port()}"
    log = work / f"coordinator-{builder}-{concurrency}.err"
    deadline = time.monotonic() + RUN_LIMIT
    with log.open("wb") as err:
        coordinator = subprocess.Popen(
            [
                str(BIN / "tgs-coordinator"),
                f"bench_cli_graph:{builder}",
                "--listen",
                address,
                "--min-workers",
                "2",
                "--no-progress",
                # The join's assignment carries every leaf's (empty) result: over the
                # default 1 MiB frame beyond about 12,000 leaves.
                *MAX_FRAME,
            ],
            cwd=SCRIPTS,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    wait_for(lambda: "listening on" in log.read_text(), "the coordinator", deadline)
    workers = [
        subprocess.Popen(
            [
                str(BIN / "tgs-worker"),
                *("--connect", f"ws://{address}", "--log-level", "warning", *MAX_FRAME),
            ],
            cwd=work,
            env=env,
            stdout=subprocess.DEVNULL,
        )
        for _ in range(2)
    ]
    wait_for(
        lambda: len(re.findall(r"worker worker-\d+ \(.*\) joined", log.read_text())) >= 2,
        "two workers",
        deadline,
    )
    pids = [coordinator.pid, *(w.pid for w in workers)]
    before = [cpu_seconds(pid) for pid in pids]
    wait_for(out.exists, "the join", deadline)
    after = [cpu_seconds(pid) for pid in pids]
    for process in (coordinator, *workers):
        process.wait(RUN_LIMIT)
    stamps = json.loads(out.read_text())
    figures = {
        "coordinator_us": 1e6 * (after[0] - before[0]) / tasks,
        "worker_us": 1e6 * sum(a - b for a, b in zip(after[1:], before[1:], strict=True)) / tasks,
    }
    if stamps["first_end"] is not None:
        figures["tasks_per_s"] = tasks / (stamps["last_start"] - stamps["first_end"])
    gaps = [b - a for a, b in zip(stamps["stamps"], stamps["stamps"][1:], strict=False)]
    if gaps:
        figures["round_trip_us"] = 1e6 * statistics.median(gaps)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=20_000, help="no-op tasks (20,000)")
    parser.add_argument(
        "--concurrency", default="4,16,64,256", help="loop concurrencies (4,16,64,256)"
    )
    parser.add_argument("--chain", type=int, default=1_000, help="links of the chain (1,000)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tgs-bench-cli-") as directory:
        work = Path(directory)
        heads = ("concurrency", "tasks/s", "coordinator CPU/task", "workers CPU/task")
        print("{:>11} {:>10} {:>21} {:>17}".format(*heads))
        for concurrency in (int(c) for c in args.concurrency.split(",")):
            figures = run_once("build_fan", args.tasks, concurrency, work)
            print(
                f"{concurrency:>11} {figures['tasks_per_s']:>10,.0f} "
                f"{figures['coordinator_us']:>18.1f} µs {figures['worker_us']:>14.1f} µs",
                flush=True,
            )
        if args.chain >= 2:
            chain = run_once("build_chain", args.chain, 4, work)
            links = args.chain - 1
            print(f"idle round trip (median of {links} links): {chain['round_trip_us']:.0f} µs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
