#!/usr/bin/env python
"""Many workers, slow and cut-off workers (a benchmark, not a test; issue 15).

**Scale** (``--workers 10,50,100,150``): the real ``tgs-coordinator`` and N ``tgs-worker``
processes on loopback run a fan (a start task, ``--tasks`` leaves waiting on it, a join
waiting on them all) at loop concurrency ``--concurrency``, in two shapes: ``noop``
leaves and ``sleep`` leaves (``--sleep`` seconds each). For each it reports:

* tasks/s, timed inside the tasks (the start's end to the join's start);
* the coordinator's CPU per task, and the workers' (all of them, summed): user + system
  from ``/proc/PID/stat``, between every worker joining and the join's start;
* the coordinator's peak RSS, and the workers' RSS (sum and mean) at the join;
* how long the workers took to leave after the run, and whether all left within the
  coordinator's grace (it logs "did not leave in time" otherwise).

**Far workers** (``--netns``, as root): the coordinator in this network namespace, a
*near* worker in a namespace of its own on a veth pair, a *far* one in another, whose
connection goes through a TCP delay line (``tests/e2e/delay_line.py``, ``--delay``
seconds each way; this kernel has no netem). It runs the near worker alone, then both,
and reports tasks/s and how many tasks each ran, at loop concurrency ``--far-concurrency``.

Usage (from the repository root)::

    python scripts/bench_scale.py                          # 10,50,100,150 workers
    python scripts/bench_scale.py --workers 10,100 --tasks 20000 --shapes noop
    sudo .venv/bin/python scripts/bench_scale.py --workers '' --netns

Numbers measured on a machine shared with other work are noisy: compare the rows of one
run (ratios), not figures of different runs.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent
ROOT = SCRIPTS.parent
BIN = Path(sys.executable).parent
DELAY_LINE = ROOT / "tests" / "e2e" / "delay_line.py"
#: Seconds any one run may take before the benchmark gives up.
RUN_LIMIT = 900.0
TICKS = os.sysconf("SC_CLK_TCK")
#: The join's assignment carries every leaf's (empty) result.
MAX_FRAME = ("--max-frame-bytes", str(64 * 2**20))
#: The coordinator's --heartbeat-timeout in these runs.
HEARTBEAT_TIMEOUT = 120
#: Workers started at once.
START_BATCH = 10
#: The coordinator's --prefetch, if the command line gave one.
PREFETCH: list[int] = []
#: A token for the namespace runs (the coordinator listens beyond loopback there).
TOKEN = "bench-scale-token-0123456789"


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def memory_kib(pid: int, key: str) -> int:
    """``VmRSS`` or ``VmHWM`` of a live process, in KiB (0 if it is gone)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    match = re.search(rf"^{key}:\s+(\d+) kB", text, re.M)
    return int(match.group(1)) if match else 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(check: object, what: str, deadline: float) -> None:
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.01)


@dataclass
class Workers:
    """How to start the workers of one run: a command prefix and a URL per worker."""

    #: (name, argv prefix such as ``ip netns exec NS``, URL) per worker.
    specs: list[tuple[str, list[str], str]] = field(default_factory=list)


def run_once(
    shape: str,
    tasks: int,
    concurrency: int,
    sleep: float,
    workers: Workers,
    listen: str,
    work: Path,
) -> dict[str, object]:
    """One run through the CLIs; its figures. Every process it started is gone after."""
    started: list[subprocess.Popen[bytes]] = []
    try:
        return _run_once(shape, tasks, concurrency, sleep, workers, listen, work, started)
    finally:
        for process in started:
            if process.poll() is None:
                process.kill()
                process.wait()


def _run_once(
    shape: str,
    tasks: int,
    concurrency: int,
    sleep: float,
    workers: Workers,
    listen: str,
    work: Path,
    started: list[subprocess.Popen[bytes]],
) -> dict[str, object]:
    label = f"{shape}-{len(workers.specs)}-{concurrency}"
    out = work / f"{label}.json"
    report = work / f"{label}-report.json"
    out.unlink(missing_ok=True)
    env = {
        **os.environ,
        "BENCH_TASKS": str(tasks),
        "BENCH_CONCURRENCY": str(concurrency),
        "BENCH_SLEEP": str(sleep),
        "BENCH_OUT": str(out),
        "TGS_TOKEN": TOKEN,
    }
    log = work / f"coordinator-{label}.err"
    deadline = time.monotonic() + RUN_LIMIT
    with log.open("wb") as err:
        coordinator = subprocess.Popen(
            [
                str(BIN / "tgs-coordinator"),
                f"bench_scale_graph:build_{shape}",
                *("--listen", listen, "--min-workers", str(len(workers.specs))),
                *("--no-progress", "--report", str(report), *MAX_FRAME),
                # Starting 150 Python processes on a small machine starves everyone for
                # a while: no worker may be dropped as silent meanwhile.
                *("--heartbeat-timeout", str(HEARTBEAT_TIMEOUT)),
                *(("--prefetch", str(PREFETCH[0])) if PREFETCH else ()),
            ],
            cwd=SCRIPTS,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    started.append(coordinator)
    wait_for(lambda: "listening on" in log.read_text(), "the coordinator", deadline)

    def joined() -> int:
        return len(re.findall(r"worker worker-\d+ \(.*\) joined", log.read_text()))

    procs: list[subprocess.Popen[bytes]] = []
    # In batches, each joined before the next starts: a herd of imports stalls everyone.
    for first in range(0, len(workers.specs), START_BATCH):
        for name, prefix, url in workers.specs[first : first + START_BATCH]:
            argv = [*prefix, str(BIN / "tgs-worker"), "--connect", url, "--name", name]
            argv += ["--log-level", "warning", "--connect-timeout", str(RUN_LIMIT), *MAX_FRAME]
            procs.append(subprocess.Popen(argv, cwd=work, env=env, stdout=subprocess.DEVNULL))
            started.append(procs[-1])
        wait_for(lambda: joined() >= len(procs), "the workers", deadline)
    before = cpu_seconds(coordinator.pid)
    workers_before = sum(cpu_seconds(p.pid) for p in procs)
    wait_for(out.exists, "the join", deadline)
    after = cpu_seconds(coordinator.pid)
    workers_after = sum(cpu_seconds(p.pid) for p in procs)
    joined_at = time.monotonic()
    worker_rss = [memory_kib(p.pid, "VmRSS") for p in procs]
    coordinator_peak = memory_kib(coordinator.pid, "VmHWM")
    for process in procs:
        process.wait(RUN_LIMIT)
    left_in = time.monotonic() - joined_at
    coordinator.wait(RUN_LIMIT)
    stamps = json.loads(out.read_text())
    ran: dict[str, int] = {}
    for worker in json.loads(report.read_text())["workers"]:
        ran[worker["name"]] = ran.get(worker["name"], 0) + len(worker["tasks"])
    return {
        "tasks_per_s": tasks / (stamps["last_start"] - stamps["first_end"]),
        "coordinator_us": 1e6 * (after - before) / tasks,
        "workers_us": 1e6 * (workers_after - workers_before) / tasks,
        "coordinator_peak_mib": coordinator_peak / 1024,
        "workers_rss_mib": sum(worker_rss) / 1024,
        "worker_rss_mib": sum(worker_rss) / 1024 / max(1, len(worker_rss)),
        "left_in_s": left_in,
        "all_left": "did not leave in time" not in log.read_text(),
        "ran": ran,
    }


def scale(args: argparse.Namespace, work: Path) -> None:
    heads = ("shape", "workers", "tasks/s", "coord CPU/task", "workers' CPU/task")
    heads += ("coord peak", "worker RSS")
    print("{:>6} {:>8} {:>9} {:>15} {:>17} {:>11} {:>11}  left".format(*heads))
    for shape in args.shapes.split(","):
        for count in (int(n) for n in args.workers.split(",") if n):
            address = f"127.0.0.1:{free_port()}"
            workers = Workers([(f"w{i}", [], f"ws://{address}") for i in range(count)])
            figures = run_once(
                shape, args.tasks, args.concurrency, args.sleep, workers, address, work
            )
            left = "all, " if figures["all_left"] else "NOT all, "
            print(
                f"{shape:>6} {count:>8} {figures['tasks_per_s']:>9,.0f} "
                f"{figures['coordinator_us']:>12.1f} µs "
                f"{figures['workers_us']:>14.1f} µs "
                f"{figures['coordinator_peak_mib']:>7.0f} MiB "
                f"{figures['worker_rss_mib']:>7.1f} MiB  {left}{figures['left_in_s']:.1f} s",
                flush=True,
            )


# -- network namespaces ----------------------------------------------------------------

NAMESPACES = {"near": ("tgsb-near", "10.201.1"), "far": ("tgsb-far", "10.201.2")}


def _ip(*argv: str) -> None:
    subprocess.run(["ip", *argv], check=True)


def setup_namespaces() -> None:
    """A namespace per kind of worker, each on a veth pair to this one (``.1`` here)."""
    teardown_namespaces()
    for kind, (ns, net) in NAMESPACES.items():
        _ip("netns", "add", ns)
        _ip("link", "add", f"tgsb-{kind}0", "type", "veth", "peer", "name", f"tgsb-{kind}1")
        _ip("link", "set", f"tgsb-{kind}1", "netns", ns)
        _ip("addr", "add", f"{net}.1/24", "dev", f"tgsb-{kind}0")
        _ip("link", "set", f"tgsb-{kind}0", "up")
        _ip("netns", "exec", ns, "ip", "addr", "add", f"{net}.2/24", "dev", f"tgsb-{kind}1")
        _ip("netns", "exec", ns, "ip", "link", "set", f"tgsb-{kind}1", "up")
        _ip("netns", "exec", ns, "ip", "link", "set", "lo", "up")


def teardown_namespaces() -> None:
    for kind, (ns, _) in NAMESPACES.items():
        subprocess.run(["ip", "link", "del", f"tgsb-{kind}0"], stderr=subprocess.DEVNULL)
        subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL)


def far_workers(args: argparse.Namespace, work: Path) -> None:
    setup_namespaces()
    port = free_port()
    far_port = free_port()
    near_net, far_net = NAMESPACES["near"][1], NAMESPACES["far"][1]
    line = subprocess.Popen(
        [
            sys.executable,
            str(DELAY_LINE),
            *("--listen", f"{far_net}.1:{far_port}", "--to", f"127.0.0.1:{port}"),
            *("--delay", str(args.delay)),
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        near = ("near", ["ip", "netns", "exec", NAMESPACES["near"][0]], f"ws://{near_net}.1:{port}")
        far = ("far", ["ip", "netns", "exec", NAMESPACES["far"][0]], f"ws://{far_net}.1:{far_port}")
        print(
            f"\nfar worker: {args.delay * 1000:g} ms each way through a delay line; loop "
            f"concurrency {args.far_concurrency}, {args.far_tasks} tasks"
        )
        heads = ("shape", "workers", "tasks/s", "near ran", "far ran")
        print("{:>6} {:>12} {:>9} {:>10} {:>10}".format(*heads))
        for shape in args.shapes.split(","):
            for specs in ([near], [near, far]):
                figures = run_once(
                    shape,
                    args.far_tasks,
                    args.far_concurrency,
                    args.sleep,
                    Workers(list(specs)),
                    f"0.0.0.0:{port}",
                    work,
                )
                ran = figures["ran"]
                assert isinstance(ran, dict)
                names = "+".join(name for name, _, _ in specs)
                print(
                    f"{shape:>6} {names:>12} {figures['tasks_per_s']:>9,.0f} "
                    f"{ran.get('near', 0):>10} {ran.get('far', 0):>10}",
                    flush=True,
                )
    finally:
        line.kill()
        line.wait()
        teardown_namespaces()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", default="10,50,100,150", help="worker counts ('' for none)")
    parser.add_argument("--tasks", type=int, default=50_000, help="leaves per run (50,000)")
    parser.add_argument("--concurrency", type=int, default=1000, help="loop concurrency (1,000)")
    parser.add_argument("--shapes", default="noop,sleep", help="noop, sleep or both")
    parser.add_argument("--sleep", type=float, default=0.01, help="a sleep leaf's seconds")
    parser.add_argument("--netns", action="store_true", help="also the far-worker runs (root)")
    parser.add_argument("--delay", type=float, default=0.02, help="far worker's delay each way")
    parser.add_argument("--far-tasks", type=int, default=20_000, help="leaves per far run")
    parser.add_argument("--far-concurrency", type=int, default=64, help="loop concurrency there")
    parser.add_argument("--prefetch", type=int, help="the coordinator's --prefetch (its default)")
    args = parser.parse_args(argv)
    if args.prefetch is not None:
        PREFETCH.append(args.prefetch)
    with tempfile.TemporaryDirectory(prefix="tgs-bench-scale-") as directory:
        work = Path(directory)
        scale(args, work)
        if args.netns:
            if os.geteuid() != 0:
                print("--netns needs root (network namespaces): skipped", file=sys.stderr)
            else:
                far_workers(args, work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
