#!/usr/bin/env python
"""Chaos with the coordinator killed too (``chaos.py --kill-coordinator``; a script, not a test).

What it does:

1. Starts ``tgs-coordinator chaos_graph:build --journal J`` (the graph of
   ``scripts/chaos_graph.py``: ``--tasks`` tasks in three shapes, each logging its
   executions and returning a receipt) on a fixed port, with short heartbeats, and
   ``--workers`` ``tgs-worker`` processes that keep trying to reconnect for 120 s.
2. Every ``--kill-every MIN,MAX`` seconds, SIGKILLs the coordinator (with probability
   ``--coordinator-share``) or a random worker. A killed coordinator is started again at
   once with the same command, and resumes from its journal; a killed worker is replaced.
3. Ends when the coordinator exits by itself, or after ``--duration`` seconds.

What it checks, from the journal (read after the run) and the execution logs:

* **lost**: tasks not ended in the graph the journal rebuilds. Must be 0.
* **recorded twice**: a task with more than one end in the journal, or a success whose
  receipt is not exactly one logged execution of that task. Must be 0.
* the coordinator's last exit status must be 0 (every task succeeded), and every worker
  must exit 0 once dismissed.

Exit status 0 only when all of that holds.

Usage (from the repository root)::

    python scripts/chaos.py --kill-coordinator                  # 5,000 tasks, 3 workers
    python scripts/chaos.py --kill-coordinator --seed 7 --tasks 10000 --kill-every 1,3
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaos import parse_pair

from trio_graph_scheduler.coordinator.journal import Journal, recorded_events

SCRIPTS = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
#: Seconds workers keep trying to reach a coordinator that was killed.
WORKER_CONNECT_TIMEOUT = 120
#: Seconds to wait for processes to exit at the end.
EXIT_WAIT_S = 20.0


@dataclass
class Cluster:
    """The processes of one chaos run."""

    run_dir: Path
    journal: Path
    listen: str
    env: dict[str, str]
    coordinator: subprocess.Popen[bytes] | None = None
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    coordinator_kills: int = 0
    worker_kills: int = 0
    starts: int = 0
    worker_failures: list[str] = field(default_factory=list)

    def start_coordinator(self) -> None:
        self.starts += 1
        argv = [
            str(BIN / "tgs-coordinator"),
            "chaos_graph:build",
            "--journal",
            str(self.journal),
            "--listen",
            self.listen,
            "--heartbeat-interval",
            "0.2",
            "--heartbeat-timeout",
            "1.0",
            "--max-lost-attempts",
            "100",
            "--no-progress",
            "--log-level",
            "warning",
        ]
        log = (self.run_dir / f"coordinator-{self.starts}.log").open("wb")
        self.coordinator = subprocess.Popen(
            argv, cwd=SCRIPTS, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )

    def start_worker(self) -> None:
        index = len(self.workers) + 1
        argv = [
            str(BIN / "tgs-worker"),
            "--connect",
            f"ws://{self.listen}",
            "--connect-timeout",
            str(WORKER_CONNECT_TIMEOUT),
        ]
        log = (self.run_dir / f"worker-{index}.log").open("wb")
        worker = subprocess.Popen(argv, cwd=self.run_dir, env=self.env, stdout=log, stderr=log)
        self.workers.append(worker)

    def living_workers(self) -> list[subprocess.Popen[bytes]]:
        return [w for w in self.workers if w.poll() is None]

    def kill_coordinator(self) -> None:
        assert self.coordinator is not None
        self.coordinator.kill()
        self.coordinator.wait()
        self.coordinator_kills += 1
        self.start_coordinator()

    def kill_worker(self, rng: random.Random) -> None:
        living = self.living_workers()
        if living:
            victim = rng.choice(living)
            victim.kill()
            victim.wait()
            self.worker_kills += 1
        self.start_worker()


def names_of(cluster: Cluster) -> dict[int, str]:
    """Each worker's log file, by pid."""
    return {w.pid: f"worker-{i}.log" for i, w in enumerate(cluster.workers, 1)}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def chaos(cluster: Cluster, args: argparse.Namespace, rng: random.Random) -> bool:
    """Kill at random until the coordinator exits by itself; False at the --duration cap."""
    cluster.start_coordinator()
    await asyncio.sleep(1.0)  # let it listen before the workers' first attempt
    for _ in range(args.workers):
        cluster.start_worker()
    deadline = time.monotonic() + args.duration
    low, high = args.kill_every
    while time.monotonic() < deadline:
        next_kill = time.monotonic() + rng.uniform(low, high)
        while time.monotonic() < next_kill:
            assert cluster.coordinator is not None
            if cluster.coordinator.poll() is not None:
                return True
            await asyncio.sleep(0.05)
        assert cluster.coordinator is not None
        if cluster.coordinator.poll() is not None:
            return True
        if rng.random() < args.coordinator_share:
            cluster.kill_coordinator()
        else:
            cluster.kill_worker(rng)
        if not args.quiet:
            print(
                f"  {time.strftime('%H:%M:%S')} kills: coordinator {cluster.coordinator_kills}, "
                f"workers {cluster.worker_kills}",
                file=sys.stderr,
            )
    return False


def analyse(cluster: Cluster, env: dict[str, str]) -> dict[str, Any]:
    """Lost, recorded twice, and the figures, from the journal and the execution logs."""
    executions: Counter[tuple[str, str]] = Counter()
    runs_of: Counter[str] = Counter()
    for log in cluster.run_dir.glob("exec-*.log"):
        for line in log.read_text().splitlines():
            label, _pid, run, _t = line.split()
            executions[label, run] += 1
            runs_of[label] += 1
    label_of: dict[str, str] = {}
    ends: Counter[str] = Counter()
    twice: list[str] = []
    for event in recorded_events(cluster.journal):
        if event[0] == "task":
            label_of[event[1]] = event[3][0][0]
        elif event[0] == "end":
            uid, status, result = event[1], event[2], event[4]
            ends[uid] += 1
            label = label_of.get(uid, "?")
            if status == "success" and (
                not isinstance(result, dict)
                or result.get("label") != label
                or executions[label, result.get("run")] != 1
            ):
                twice.append(f"{label}: receipt {result!r:.80} is not one execution")
    twice += [f"{label_of.get(uid, uid)}: ended {n} times" for uid, n in ends.items() if n > 1]
    # The graph as the journal rebuilds it: what never ended is lost.
    os.environ.update(env)
    sys.path.insert(0, str(SCRIPTS))
    import trio
    from chaos_graph import build

    graph = trio.run(build)
    Journal.read_into(cluster.journal, graph)
    final = {"success", "failed", "precondition_failed"}
    statuses = Counter(str(node.task_status) for node in graph.nodes.values())
    lost = sum(n for status, n in statuses.items() if status not in final)
    return {
        "tasks": len(graph.nodes),
        "statuses": dict(statuses),
        "lost": lost,
        "recorded_twice": len(twice),
        "twice_examples": twice[:5],
        "executions": sum(runs_of.values()),
        "re_runs": sum(runs_of.values()) - len(runs_of),
        "coordinator_kills": cluster.coordinator_kills,
        "worker_kills": cluster.worker_kills,
        "journal_bytes": cluster.journal.stat().st_size,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=5_000, help="tasks in the graph (5,000)")
    parser.add_argument("--workers", type=int, default=3, help="worker processes (3)")
    parser.add_argument("--concurrency", type=int, default=32, help="loop concurrency (32)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: random)")
    parser.add_argument(
        "--kill-every", type=parse_pair, default=(0.5, 1.5), help="MIN,MAX seconds (0.5,1.5)"
    )
    parser.add_argument(
        "--sleep-max", type=float, default=0.05, help="the longest a task sleeps (0.05 s)"
    )
    parser.add_argument(
        "--coordinator-share",
        type=float,
        default=0.4,
        help="share of the kills that hit the coordinator (0.4)",
    )
    parser.add_argument("--duration", type=float, default=300.0, help="cap in seconds (300)")
    parser.add_argument("--keep", action="store_true", help="keep the run's files even on a pass")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    rng = random.Random(seed)
    run_dir = Path(tempfile.mkdtemp(prefix="tgs-chaos-coordinator-"))
    env = {
        **os.environ,
        "CHAOS_TASKS": str(args.tasks),
        "CHAOS_SEED": str(seed),
        "CHAOS_DIR": str(run_dir),
        "CHAOS_CONCURRENCY": str(args.concurrency),
        "CHAOS_SLEEP_MAX": str(args.sleep_max),
        "PYTHONUNBUFFERED": "1",
    }
    cluster = Cluster(run_dir, run_dir / "run.journal", f"127.0.0.1:{free_port()}", env)
    print(f"chaos with coordinator kills: seed {seed}, {args.tasks} tasks, files in {run_dir}")
    started = time.monotonic()
    try:
        finished = asyncio.run(chaos(cluster, args, rng))
    finally:
        if cluster.coordinator is not None and cluster.coordinator.poll() is None:
            cluster.coordinator.kill()
    wall = time.monotonic() - started
    assert cluster.coordinator is not None
    coordinator_rc = cluster.coordinator.wait()
    late = 0
    for worker in cluster.workers:
        try:
            rc = worker.wait(EXIT_WAIT_S)
        except subprocess.TimeoutExpired:
            worker.kill()
            # A worker between two connection attempts when the last coordinator ended
            # (quickly, on a run that had almost ended) cannot tell a finished run from a
            # coordinator not up yet: it is still waiting. Not a failure; anything else is.
            log = (cluster.run_dir / names_of(cluster)[worker.pid]).read_text()
            if re.search(r"(waiting for the|still no) coordinator[^\n]*\n?\Z", log):
                late += 1
            else:
                cluster.worker_failures.append(f"pid {worker.pid} did not exit")
            continue
        if rc not in (0, -signal.SIGKILL):
            cluster.worker_failures.append(f"pid {worker.pid} exited {rc}")
    names = names_of(cluster)
    cluster.worker_failures = [
        f"{failure} ({names[int(failure.split()[1])]})" for failure in cluster.worker_failures
    ]
    report = analyse(cluster, env)
    report["workers_still_waiting_at_the_end"] = late
    ok = (
        finished
        and coordinator_rc == 0
        and report["lost"] == 0
        and report["recorded_twice"] == 0
        and not cluster.worker_failures
    )
    print(f"  finished: {finished} in {wall:.1f} s; last coordinator exit {coordinator_rc}")
    for name, value in report.items():
        print(f"  {name}: {value}")
    if cluster.worker_failures:
        print(f"  worker failures: {cluster.worker_failures}")
    print("PASS" if ok else "FAIL")
    if ok and not args.keep:
        shutil.rmtree(run_dir)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
