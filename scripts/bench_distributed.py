#!/usr/bin/env python
"""Distributed throughput and latency benchmark of trio-graph-scheduler (a benchmark, not a test).

The cluster: one tgs coordinator, served inside this process through the public API
(``Coordinator(graph, CoordinatorConfig()).serve``), and two ``tgs-worker`` processes
started from this venv (``tgs-worker --connect URL --log-level warning``), all on this
machine, over loopback TCP. Every run gets a fresh coordinator, a fresh graph and two
fresh worker processes; process start-up and the handshakes are left out of the timing.

What it measures, with no-op tasks (``async def noop(**kw): return None``) so that only the
scheduler's and the wire's cost shows:

1. Throughput (tasks/s) on the in-process benchmark's three shapes of 10,000 tasks:
   ``independent`` (10,000 tasks that wait on nothing), ``chains`` (2,000 chains of 5, each
   link waiting on the previous one's uid) and ``fan-in`` (5,000 leaves joined by 1 task
   that waits on all of them). Median of ``--repeats`` runs.

2. Round-trip latency on an idle cluster: one chain of ``--chain`` (1,000) tasks run one
   after another. Each link returns ``time.perf_counter()`` taken when it starts on its
   worker (CLOCK_MONOTONIC on Linux, the same clock in every process of the machine), so
   the gap between two consecutive links' stamps is one full round trip: the result goes
   to the coordinator, which records it, readies the next link and assigns it to a
   worker, which starts it. Mean and median of those gaps are printed (the verdict uses
   the median; the mean is shown next to it), and so is the chain's wall time divided by
   its length, which also holds the run's start and end.

3. When importable, the same shapes (and the chain) on peers, started once before their
   runs (start-up and a small warm-up excluded), each run timing only the compute:

   * Dask distributed: ``LocalCluster(n_workers=2, threads_per_worker=1,
     processes=True)``, the graph dict (``{key: (noop, *deps)}``) run by ``client.get``;
   * Ray: ``ray.init(num_cpus=2)``, ``@ray.remote`` no-op tasks, a dependency passed as
     an ``ObjectRef`` argument; the submission loop and ``ray.get`` of every ref are timed
     (in Ray, submitting is running).

   The table prints tgs/peer ratios (above 1 means tgs is faster).

How a tgs run is timed fairly. The coordinator hands out work as soon as the first worker
joins, and a served graph with no unfinished task ends at once. So a run's graph starts
with one *gate* task alone, in a loop of its own (``gate``, concurrency 1, so it takes no
slot of the ``default`` loop the benchmark tasks run in): it connects to a TCP port of this
process and waits for a byte. Once both workers have joined (``len(coordinator.sessions)
== 2``) and the gate is running, the benchmark tasks are created with
``create_task_nowait`` while the coordinator serves (timed apart as the build; nothing is
sent to a worker before this process's next checkpoint), the clock starts, and the gate is
released (its own end overlaps the run). The clock stops right after the trio task step
in which the graph ended: a trio instrument (``after_task_step``) looks at
``coordinator.ended`` after every step of this process's event loop (about 1,500 steps
per run, about a microsecond each); against a private hook on the scheduler's graph-end
callback it was 20 to 130 us late. The public API has no awaitable end of the graph:
polling ``coordinator.ended`` every millisecond cost the coordinator about 10% more CPU
here, and ``serve`` returns only after dismissing the workers, 7 to 23 ms after the end.

Concurrency. ``--concurrency`` (default 256) is the ``default`` loop's concurrency, and in
distributed mode that limit is *cluster-wide*, enforced by the coordinator: a task sent
to a worker and not yet answered counts against it, so a loop of concurrency 4 allows at
most 4 tasks in flight over the network, across both workers. No-op-ish tasks need a
limit in the hundreds to keep both workers and the link busy, and 256 is what a user of
such tasks would pick (here it did as well as 64 or better on every shape, 1,024 was
slower, and 16 two to five times slower). Each worker opens that many slots for the
loop; the coordinator never has more than the limit out in total.

``--cli``: speed as users run it (issue 14). The real ``tgs-coordinator`` (building
``scripts/bench_cli_graph.py``'s graphs) and two ``tgs-worker`` processes, fresh for every
run, with times stamped inside the tasks (a start task's end to a join's start, so start-up,
the build and the shutdown are left out):

* the fan-out/fan-in shape (1 -> ``--tasks`` no-ops -> 1) at each loop concurrency of
  ``--sweep`` (4, 16, 64, 256): tasks/s, and each side's CPU per task;
* the three shapes at ``--concurrency`` (64), each between a start task and a join, next to
  the same shapes served through the API as above;
* one fan-out of ``--cpu-tasks`` (100,000) no-ops: CPU per task of the coordinator (running,
  and building in the builder) and of the workers (``/proc/PID/stat``, from both workers
  joined to the join's start), and the coordinator's RSS growth per task;
* a graph of ``--memory-tasks`` (1,000,000) independent no-ops built by
  ``tgs-coordinator`` alone: its RSS growth per task over the build;
* the idle round trip: a chain of ``--chain`` links at concurrency 4, the median gap
  between two links' start stamps;
* Dask distributed on the same shapes and the fan-out, in the same run (ratios).

Usage (from the repository root)::

    python scripts/bench_distributed.py --cli         # what docs/performance.md shows

    python scripts/bench_distributed.py               # full run (3 to 4 minutes with peers)
    python scripts/bench_distributed.py --quick       # sizes / 10, for a smoke run
    python scripts/bench_distributed.py --json out/bench-distributed.json --concurrency 64
    python scripts/bench_distributed.py --no-dask --no-ray

Dask and Ray are benchmark peers only, not dependencies: ``pip install dask distributed
ray`` to compare.
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import itertools
import json
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio
from bench_shapes import Shape, fan_out_shape, independent_shape, shapes

import trio_graph_scheduler
from trio_graph_scheduler import Coordinator, CoordinatorConfig, TaskGraph, WorkerLoop

if TYPE_CHECKING:
    from collections.abc import Callable

#: The throughput the library aims for, on every shape.
TARGET_TASKS_PER_S = 25_000
#: The single-task round trip the library aims to stay under, in seconds.
TARGET_ROUND_TRIP_S = 400e-6
#: How many worker processes each tgs run starts.
WORKERS = 2
#: Loopback: the coordinator needs no token there.
HOST = "127.0.0.1"
#: Seconds a whole tgs run (start-up included) may take before the benchmark gives up.
RUN_TIMEOUT_S = 300.0
#: The loop the benchmark tasks run in, and the gate's own loop.
DEFAULT_LOOP = "default"
GATE_LOOP = "gate"


# -- the task functions (shipped to the workers by value: this is __main__) -------------------


async def noop(**kw):
    """The tgs task: does nothing, so the measured time is all scheduling and transport."""
    return None


async def stamp(**kw):
    """A latency-chain link: the time it started, on the machine-wide monotonic clock."""
    return time.perf_counter()


async def gate(host, port, **kw):
    """Holds the graph open until the benchmark process sends a byte on ``host:port``."""
    stream = await trio.open_tcp_stream(host, port)
    async with stream:
        await stream.receive_some(1)


def peer_noop(*deps):
    """The Dask and Ray task: takes its dependencies' results and ignores them."""
    return None


# -- the latency chain -------------------------------------------------------------------------


def latency_chain_tgs(length: int) -> Callable[[TaskGraph], None]:
    """Builds one chain of ``length`` ``stamp`` tasks."""

    def build(graph: TaskGraph) -> None:
        create = graph.create_task_nowait
        uid = create("stamp").uid
        for _ in range(length - 1):
            uid = create("stamp", None, [uid]).uid

    return build


# -- measuring tgs -----------------------------------------------------------------------------


@dataclass
class TgsRun:
    """One tgs run: how long building and running took, and the graph afterwards."""

    build_s: float
    run_s: float
    graph: TaskGraph


def worker_command(url: str, index: int) -> list[str]:
    return [
        str(Path(sys.executable).parent / "tgs-worker"),
        "--connect",
        url,
        "--log-level",
        "warning",
        "--name",
        f"bench-worker-{index + 1}",
    ]


async def wait_for_workers(coordinator: Coordinator, processes: list[trio.Process]) -> None:
    # Start-up only, not timed: a coarse poll is fine (the coordinator has no join event).
    while len(coordinator.sessions) < WORKERS:
        for process in processes:
            if process.returncode is not None:
                raise SystemExit(f"a tgs-worker exited with {process.returncode} before joining")
        await trio.sleep(0.005)


class GraphEndClock(trio.abc.Instrument):
    """Notes when ``coordinator.ended`` turns true: right after the task step that did it."""

    def __init__(self, coordinator: Coordinator) -> None:
        self.coordinator = coordinator
        self.ended_at: float | None = None

    def after_task_step(self, task: trio.lowlevel.Task) -> None:
        if self.ended_at is None and self.coordinator.ended:
            self.ended_at = time.perf_counter()


async def tgs_run_async(
    build: Callable[[TaskGraph], None], concurrency: int, journal: Path | None = None
) -> TgsRun:
    graph = TaskGraph(
        {"noop": noop, "stamp": stamp, "gate": gate},
        [WorkerLoop(DEFAULT_LOOP, concurrency, None), WorkerLoop(GATE_LOOP, 1, ["gate"])],
    )
    gate_listener = (await trio.open_tcp_listeners(0, host=HOST))[0]
    gate_port = gate_listener.socket.getsockname()[1]
    graph.create_task_nowait("gate", ((HOST, gate_port), {}))
    journal_path = None if journal is None else str(journal)
    coordinator = Coordinator(graph, CoordinatorConfig(host=HOST, journal=journal_path))
    processes: list[trio.Process] = []
    clock = GraphEndClock(coordinator)
    with trio.fail_after(RUN_TIMEOUT_S):
        async with trio.open_nursery() as nursery, gate_listener:
            await nursery.start(coordinator.serve)
            for index in range(WORKERS):
                run = partial(
                    trio.run_process,
                    worker_command(coordinator.url, index),
                    check=False,
                    stdout=subprocess.DEVNULL,  # stderr is ours: a worker's warnings show
                )
                processes.append(await nursery.start(run))
            await wait_for_workers(coordinator, processes)
            # The gate task is running once it has connected.
            gate_stream = await gate_listener.accept()
            async with gate_stream:
                started = time.perf_counter()
                build(graph)
                trio.lowlevel.add_instrument(clock)
                run_started = time.perf_counter()
                await gate_stream.send_all(b"go")
    # The nursery has waited for serve() and the workers to end.
    trio.lowlevel.remove_instrument(clock)
    for process in processes:
        if process.returncode != 0:
            raise SystemExit(f"a tgs-worker exited with {process.returncode}")
    summary = coordinator.summary
    if summary is None or not summary.succeeded:
        raise SystemExit(f"benchmark graph did not run cleanly: {summary}")
    assert clock.ended_at is not None
    return TgsRun(run_started - started, clock.ended_at - run_started, graph)


def tgs_run(
    build: Callable[[TaskGraph], None], concurrency: int, journal: Path | None = None
) -> TgsRun:
    gc.collect()  # leftovers of the previous run must not be collected on this one's time
    return trio.run(tgs_run_async, build, concurrency, journal)


def chain_stamps(graph: TaskGraph) -> list[float]:
    """The start stamps of the latency chain's links, in chain order."""
    # Nodes are kept in creation order: the gate first, then the chain from its head.
    return [node.task_result for node in graph.nodes.values() if node.task_handle == "stamp"]


def shared_monotonic_clock() -> bool:
    """Whether perf_counter stamps taken in two processes of this machine compare."""
    info = time.get_clock_info("perf_counter")
    return sys.platform == "linux" and "CLOCK_MONOTONIC" in info.implementation


# -- measuring tgs through its CLIs (--cli) ---------------------------------------------------

SCRIPTS = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
TICKS = os.sysconf("SC_CLK_TCK")
#: The join's assignment carries every task's (empty) result: over the default 1 MiB frame
#: beyond about 12,000 tasks.
CLI_MAX_FRAME = ("--max-frame-bytes", str(64 * 2**20))


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a live process so far (``/proc/PID/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def proc_rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def wait_until(check: Callable[[], bool], what: str, deadline: float) -> None:
    # Start-up and the run's end, from outside the processes: a coarse poll is fine, the
    # figures are taken inside the tasks and from /proc.
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.005)


@dataclass
class CliRun:
    """One run through ``tgs-coordinator`` and two ``tgs-worker`` processes."""

    shape: str
    tasks: int
    concurrency: int
    #: Tasks of the shape / (the join's start - the start task's end), stamped in the tasks.
    tasks_per_s: float
    #: CPU of each side per task, from both workers joining to the join's start.
    coordinator_run_us: float
    workers_run_us: float
    #: The coordinator's CPU building the graph (in the builder), per task.
    coordinator_build_us: float
    #: The coordinator's RSS growth per task: after the build, and at the join's start.
    rss_built_per_task: float
    rss_end_per_task: float
    #: The chain's links' start stamps (the chain shape only).
    stamps: list[float] = field(default_factory=list)


def start_cli_coordinator(env: dict[str, str], log: Path, *args: str) -> subprocess.Popen[bytes]:
    """A ``tgs-coordinator`` building ``bench_cli_graph``'s graph (sized by ``env``'s
    ``BENCH_*``), its log in ``log``; ``args`` are more of its options."""
    with log.open("wb") as err:
        return subprocess.Popen(
            [str(BIN / "tgs-coordinator"), "bench_cli_graph:build", "--no-progress", *args],
            cwd=SCRIPTS,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )


def cli_run(shape: str, tasks: int, concurrency: int, work: Path) -> CliRun:
    """Runs ``bench_cli_graph:build`` through the CLIs on loopback."""
    out = work / f"{shape}-{tasks}-{concurrency}.json"
    built = Path(f"{out}.build")
    out.unlink(missing_ok=True)
    built.unlink(missing_ok=True)
    env = {
        **os.environ,
        "BENCH_SHAPE": shape,
        "BENCH_TASKS": str(tasks),
        "BENCH_CONCURRENCY": str(concurrency),
        "BENCH_OUT": str(out),
    }
    address = f"{HOST}:{free_port()}"
    log = work / f"coordinator-{shape}-{tasks}-{concurrency}.err"
    deadline = time.monotonic() + RUN_TIMEOUT_S
    gc.collect()
    coordinator = start_cli_coordinator(
        env, log, "--listen", address, "--min-workers", str(WORKERS), *CLI_MAX_FRAME
    )
    processes = [coordinator]
    try:
        wait_until(lambda: "listening on" in log.read_text(), "the coordinator", deadline)
        processes.extend(
            subprocess.Popen(
                [
                    str(BIN / "tgs-worker"),
                    *("--connect", f"ws://{address}", "--log-level", "warning"),
                    *("--name", f"bench-worker-{index + 1}", *CLI_MAX_FRAME),
                ],
                cwd=work,
                env=env,
                stdout=subprocess.DEVNULL,
            )
            for index in range(WORKERS)
        )
        wait_until(
            lambda: len(re.findall(r"worker worker-\d+ \(.*\) joined", log.read_text())) >= WORKERS,
            f"{WORKERS} workers",
            deadline,
        )
        pids = [process.pid for process in processes]
        before = [proc_cpu_s(pid) for pid in pids]
        wait_until(out.exists, "the join", deadline)
        after = [proc_cpu_s(pid) for pid in pids]
        rss_end = proc_rss_bytes(coordinator.pid)
        for process in processes:
            process.wait(RUN_TIMEOUT_S)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    if coordinator.returncode != 0:
        raise SystemExit(f"tgs-coordinator exited with {coordinator.returncode}: see {log}")
    stamps = json.loads(out.read_text())
    build = json.loads(built.read_text())
    all_tasks = build["tasks"]
    return CliRun(
        shape=shape,
        tasks=tasks,
        concurrency=concurrency,
        tasks_per_s=(all_tasks - 2) / (stamps["last_start"] - stamps["first_end"]),
        coordinator_run_us=1e6 * (after[0] - before[0]) / all_tasks,
        workers_run_us=1e6
        * sum(a - b for a, b in zip(after[1:], before[1:], strict=True))
        / all_tasks,
        coordinator_build_us=1e6 * build["build_cpu_s"] / all_tasks,
        rss_built_per_task=(build["rss_built"] - build["rss_before"]) / all_tasks,
        rss_end_per_task=(rss_end - build["rss_before"]) / all_tasks,
        stamps=stamps["stamps"],
    )


def cli_build_memory(tasks: int, work: Path) -> dict[str, float]:
    """The coordinator's memory for a graph of ``tasks`` independent no-ops: RSS growth per
    task over the build (in the builder) and the whole process's RSS once it listens. It
    is stopped before any worker joins (the join of so many tasks would not fit a frame)."""
    out = work / f"memory-{tasks}.json"
    built = Path(f"{out}.build")
    built.unlink(missing_ok=True)
    env = {
        **os.environ,
        "BENCH_SHAPE": "free",
        "BENCH_TASKS": str(tasks),
        "BENCH_CONCURRENCY": "64",
        "BENCH_OUT": str(out),
    }
    log = work / f"coordinator-memory-{tasks}.err"
    deadline = time.monotonic() + RUN_TIMEOUT_S
    coordinator = start_cli_coordinator(env, log, "--listen", f"{HOST}:{free_port()}")
    try:
        wait_until(lambda: "listening on" in log.read_text(), "the coordinator", deadline)
        rss = proc_rss_bytes(coordinator.pid)
    finally:
        coordinator.kill()
        coordinator.wait()
    build = json.loads(built.read_text())
    return {
        "rss_per_task": (build["rss_built"] - build["rss_before"]) / build["tasks"],
        "rss_mib": rss / 2**20,
        "build_s": build["build_cpu_s"],
    }


def cli_median(shape: str, tasks: int, concurrency: int, work: Path, repeats: int) -> CliRun:
    """The run of median tasks/s among ``repeats``."""
    runs = sorted(
        (cli_run(shape, tasks, concurrency, work) for _ in range(repeats)),
        key=lambda run: run.tasks_per_s,
    )
    return runs[len(runs) // 2]


def measure_cli(args: argparse.Namespace) -> int:
    """``--cli``: the real programs, a concurrency sweep, CPU and memory per task, the idle
    round trip; the API-served coordinator and Dask distributed beside them."""
    scale = 10 if args.quick else 1
    fan_tasks = args.tasks // scale
    cpu_tasks = args.cpu_tasks // scale
    sweep = [int(c) for c in args.sweep.split(",")]
    print_header(args, [DaskPeer] if dask_wanted(args) else [], cli=True)
    with tempfile.TemporaryDirectory(prefix="tgs-bench-cli-") as directory:
        work = Path(directory)
        fan = {c: cli_median("fan", fan_tasks, c, work, args.repeats) for c in sweep}
        shape_list = shapes(scale)
        cli_shapes = [
            cli_median(
                name, shape.tasks - (shape.name == "fan-in"), args.concurrency, work, args.repeats
            )
            for name, shape in zip(("independent", "chains", "fan-in"), shape_list, strict=True)
        ]
        cpu = cli_run("fan", cpu_tasks, args.concurrency, work)
        chain = cli_run("chain", args.chain, 4, work) if args.chain else None
        memory_tasks = args.memory_tasks // scale
        memory = cli_build_memory(memory_tasks, work) if memory_tasks else None
    api, api_latency = measure_tgs(args, shape_list)
    fan_shape = fan_out_shape(fan_tasks)
    peers = []
    fan_result = ShapeResult(fan_shape.name, fan_shape.description, fan_shape.tasks, 0, 1, 0)
    if dask_wanted(args) and measure_peer(
        DaskPeer, args, [*shape_list, fan_shape], [*api, fan_result], api_latency
    ):
        peers.append("dask")
    dask_fan = fan_result.peer_tasks_per_s("dask")

    print(
        f"fan-out/fan-in through the CLIs (1 -> {fan_tasks:,} no-ops -> 1), median of "
        f"{args.repeats}; CPU per task from /proc, both workers joined to the join's start"
    )
    head = (
        f"{'concurrency':>11} {'tasks/s':>9} {'dask tasks/s':>13} {'tgs/dask':>9} "
        f"{'coordinator CPU':>16} {'workers CPU':>12}"
    )
    print(head)
    print("-" * len(head))
    for concurrency, run in fan.items():
        print(
            f"{concurrency:>11} {run.tasks_per_s:>9,.0f} {fmt_rate(dask_fan):>13} "
            f"{fmt_ratio(run.tasks_per_s, dask_fan):>9} "
            f"{run.coordinator_run_us:>13.1f} us {run.workers_run_us:>9.1f} us"
        )
    print(
        f"\nshapes at concurrency {args.concurrency}: through the CLIs (between a start "
        f"task and a join), and served through the API (as without --cli)"
    )
    head = (
        f"{'shape':<22} {'CLI tasks/s':>12} {'API tasks/s':>12} {'dask tasks/s':>13} "
        f"{'CLI/dask':>9} {'API/dask':>9}"
    )
    print(head)
    print("-" * len(head))
    for run, result in zip(cli_shapes, api, strict=True):
        theirs = result.peer_tasks_per_s("dask")
        print(
            f"{result.description:<22} {run.tasks_per_s:>12,.0f} "
            f"{result.tgs_tasks_per_s:>12,.0f} {fmt_rate(theirs):>13} "
            f"{fmt_ratio(run.tasks_per_s, theirs):>9} "
            f"{fmt_ratio(result.tgs_tasks_per_s, theirs):>9}"
        )
    print(
        f"\nCPU and memory per task through the CLIs: 1 -> {cpu_tasks:,} no-ops -> 1 at "
        f"concurrency {args.concurrency}, one run ({cpu.tasks_per_s:,.0f} tasks/s)"
    )
    print(f"  coordinator CPU per task, running:   {cpu.coordinator_run_us:6.1f} us")
    print(f"  coordinator CPU per task, building:  {cpu.coordinator_build_us:6.1f} us")
    print(f"  workers' CPU per task (both summed): {cpu.workers_run_us:6.1f} us")
    print(
        f"  coordinator RSS growth per task:     {cpu.rss_built_per_task:6.0f} B after "
        f"the build, {cpu.rss_end_per_task:.0f} B at the end"
    )
    if memory is not None:
        print(
            f"  a graph of {memory_tasks:,} independent no-ops, built by tgs-coordinator: "
            f"{memory['rss_per_task']:.0f} B of RSS per task, {memory['rss_mib']:,.0f} MiB "
            f"in all once it listens; built in {memory['build_s']:.2f} s of CPU"
        )
    if chain is not None:
        gaps = [b - a for a, b in itertools.pairwise(chain.stamps)]
        line = (
            f"\nidle round trip, a chain of {args.chain:,} links at concurrency 4, median "
            f"per link: CLI {fmt_us(statistics.median(gaps))} us"
        )
        if api_latency is not None and api_latency.tgs_median_link_s is not None:
            line += f", API {fmt_us(api_latency.tgs_median_link_s)} us"
            theirs = api_latency.peer_wall_per_link_s.get("dask")
            if theirs is not None:
                line += f" (dask: wall time / links {fmt_us(theirs)} us)"
        print(line)
    return 0


# -- measuring peers ---------------------------------------------------------------------------


class DaskPeer:
    """A Dask LocalCluster of 2 single-threaded worker processes, with its client."""

    name = "dask"

    def __init__(self) -> None:
        from dask.distributed import Client, LocalCluster

        self.cluster = LocalCluster(
            n_workers=WORKERS,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
        )
        self.client = Client(self.cluster)
        self.client.wait_for_workers(WORKERS)
        self.run_independent(200)  # warm-up: connections, function shipping

    @staticmethod
    def version() -> str | None:
        try:
            import dask
            import distributed
        except ImportError:
            return None
        return f"dask {dask.__version__} + distributed {distributed.__version__}"

    def run_independent(self, n: int) -> None:
        self.run_shape(independent_shape(n))

    def run_shape(self, shape: Shape) -> float:
        dsk, keys = shape.build_dask(peer_noop, f"{uuid.uuid4().hex[:12]}-")
        gc.collect()
        started = time.perf_counter()
        results = self.client.get(dsk, keys)
        elapsed = time.perf_counter() - started
        if len(results) != shape.tasks:
            raise SystemExit(f"dask returned {len(results)} results, not {shape.tasks}")
        return elapsed

    def run_chain(self, length: int) -> float:
        prefix = uuid.uuid4().hex[:12]
        dsk: dict[str, Any] = {f"{prefix}-0": (peer_noop,)}
        for i in range(1, length):
            dsk[f"{prefix}-{i}"] = (peer_noop, f"{prefix}-{i - 1}")
        gc.collect()
        started = time.perf_counter()
        self.client.get(dsk, f"{prefix}-{length - 1}")
        return time.perf_counter() - started

    def close(self) -> None:
        self.client.close()
        self.cluster.close()


class RayPeer:
    """A local Ray instance with 2 CPUs, and the remote no-op."""

    name = "ray"

    def __init__(self) -> None:
        import ray

        self.ray = ray
        ray.init(
            num_cpus=WORKERS,
            include_dashboard=False,
            log_to_driver=False,
            logging_level="warning",
            configure_logging=True,
        )
        self.remote = ray.remote(peer_noop)
        self.run_independent(200)  # warm-up: worker processes start lazily

    @staticmethod
    def version() -> str | None:
        try:
            import ray
        except ImportError:
            return None
        return f"ray {ray.__version__}"

    def run_independent(self, n: int) -> None:
        self.run_shape(independent_shape(n))

    def run_shape(self, shape: Shape) -> float:
        gc.collect()
        started = time.perf_counter()
        refs = shape.submit_ray(self.remote)
        results = self.ray.get(refs)
        elapsed = time.perf_counter() - started
        if len(results) != shape.tasks:
            raise SystemExit(f"ray returned {len(results)} results, not {shape.tasks}")
        return elapsed

    def run_chain(self, length: int) -> float:
        gc.collect()
        started = time.perf_counter()
        ref = self.remote.remote()
        for _ in range(length - 1):
            ref = self.remote.remote(ref)
        self.ray.get(ref)
        return time.perf_counter() - started

    def close(self) -> None:
        self.ray.shutdown()


# -- reporting ---------------------------------------------------------------------------------


@dataclass
class ShapeResult:
    shape: str
    description: str
    tasks: int
    tgs_build_s: float
    tgs_run_s: float
    tgs_tasks_per_s: float
    #: Per peer ("dask", "ray"): median seconds of its compute.
    peer_run_s: dict[str, float] = field(default_factory=dict)

    def peer_tasks_per_s(self, peer: str) -> float | None:
        seconds = self.peer_run_s.get(peer)
        return None if seconds is None else self.tasks / seconds


@dataclass
class LatencyResult:
    links: int
    #: The chain's wall time (gate released to the graph's end) / links, median of runs.
    tgs_wall_per_link_s: float
    #: Per link, from the workers' start stamps, pooled over the runs (None: no shared clock).
    tgs_mean_link_s: float | None
    tgs_median_link_s: float | None
    tgs_p90_link_s: float | None
    #: Per peer: the chain's wall time / links, median of runs.
    peer_wall_per_link_s: dict[str, float] = field(default_factory=dict)


def fmt_rate(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:,.0f}"


def fmt_ratio(ours: float, theirs: float | None) -> str:
    return "-" if theirs is None else f"{ours / theirs:.1f}x"


def fmt_us(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1e6:,.0f}"


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def print_table(results: list[ShapeResult], peers: list[str]) -> None:
    header = f"{'shape':<22} {'tasks':>7} {'build ms':>9} {'run ms':>8} {'tgs tasks/s':>12}"
    for peer in peers:
        header += f" {peer + ' tasks/s':>13}"
    for peer in peers:
        header += f" {'tgs/' + peer:>9}"
    print(header)
    print("-" * len(header))
    for r in results:
        line = (
            f"{r.description:<22} {r.tasks:>7,} {r.tgs_build_s * 1e3:>9.1f} "
            f"{r.tgs_run_s * 1e3:>8.1f} {fmt_rate(r.tgs_tasks_per_s):>12}"
        )
        for peer in peers:
            line += f" {fmt_rate(r.peer_tasks_per_s(peer)):>13}"
        for peer in peers:
            line += f" {fmt_ratio(r.tgs_tasks_per_s, r.peer_tasks_per_s(peer)):>9}"
        print(line)


def print_latency(latency: LatencyResult, peers: list[str]) -> None:
    print(f"\nround trip on an idle cluster: one chain of {latency.links:,} tasks, one at a time")
    if latency.tgs_median_link_s is not None:
        print(
            f"  tgs per link (stamp to stamp, all runs' links): "
            f"median {fmt_us(latency.tgs_median_link_s)} us, "
            f"mean {fmt_us(latency.tgs_mean_link_s)} us, "
            f"p90 {fmt_us(latency.tgs_p90_link_s)} us"
        )
    else:
        print("  tgs per link: no machine-wide monotonic clock here, stamps not compared")
    line = f"  wall time / links (median of runs): tgs {fmt_us(latency.tgs_wall_per_link_s)} us"
    for peer in peers:
        theirs = latency.peer_wall_per_link_s.get(peer)
        if theirs is not None:
            line += (
                f", {peer} {fmt_us(theirs)} us"
                f" (tgs/{peer} {theirs / latency.tgs_wall_per_link_s:.1f}x)"
            )
    print(line)


# -- main --------------------------------------------------------------------------------------


def library_revision(library: Path) -> str:
    """`` at <commit>`` (``+ local changes`` if any) when the library is in a git checkout."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(library), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        changes = subprocess.run(
            ["git", "-C", str(library), "status", "--porcelain", "--", "."],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""
    return f" at {commit}" + (" + local changes" if changes else "")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--concurrency",
        type=int,
        default=None,
        help="the default loop's concurrency, a cluster-wide limit on tasks in flight "
        "(sent to a worker, not yet answered) (default 256; 64 with --cli)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="runs per figure (median; 3)")
    parser.add_argument("--quick", action="store_true", help="every size / 10, for a smoke run")
    parser.add_argument(
        "--chain",
        type=int,
        default=None,
        help="links in the latency chain (default 1,000; 100 with --quick; 0 skips it)",
    )
    parser.add_argument("--no-dask", action="store_true", help="skip the Dask comparison")
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray comparison")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures here")
    parser.add_argument(
        "--cli",
        action="store_true",
        help="run through the real tgs-coordinator and tgs-worker programs: a concurrency "
        "sweep of the fan-out/fan-in shape, the shapes, CPU and memory per task, the idle "
        "round trip; the API-served figures and Dask distributed beside them (Ray not run)",
    )
    parser.add_argument(
        "--sweep", default="4,16,64,256", help="--cli: the loop concurrencies (4,16,64,256)"
    )
    parser.add_argument(
        "--tasks", type=int, default=20_000, help="--cli: the fan-out's no-ops (20,000)"
    )
    parser.add_argument(
        "--memory-tasks",
        type=int,
        default=1_000_000,
        help="--cli: the independent no-ops tgs-coordinator builds for its RSS per task, "
        "stopped before it runs them (1,000,000; 0 skips it)",
    )
    parser.add_argument(
        "--cpu-tasks",
        type=int,
        default=100_000,
        help="--cli: the fan-out's no-ops in the CPU and memory run (100,000)",
    )
    args = parser.parse_args(argv)
    if args.chain is None:
        args.chain = 100 if args.quick else 1_000
    if args.concurrency is None:
        args.concurrency = 64 if args.cli else 256
    if args.concurrency < 1 or args.repeats < 1 or args.chain < 0 or args.chain == 1:
        parser.error("--concurrency and --repeats must be at least 1, --chain 0 or at least 2")
    return args


def measure_tgs(
    args: argparse.Namespace, shape_list: list[Shape]
) -> tuple[list[ShapeResult], LatencyResult | None]:
    results: list[ShapeResult] = []
    for shape in shape_list:
        runs = [tgs_run(shape.build_tgs, args.concurrency) for _ in range(args.repeats)]
        build_s = statistics.median(run.build_s for run in runs)
        run_s = statistics.median(run.run_s for run in runs)
        results.append(
            ShapeResult(
                shape.name, shape.description, shape.tasks, build_s, run_s, shape.tasks / run_s
            )
        )
    if args.chain == 0:
        return results, None
    runs = [tgs_run(latency_chain_tgs(args.chain), args.concurrency) for _ in range(args.repeats)]
    gaps: list[float] = []
    if shared_monotonic_clock():
        for run in runs:
            stamps = chain_stamps(run.graph)
            assert len(stamps) == args.chain, len(stamps)
            gaps.extend(b - a for a, b in itertools.pairwise(stamps))
    latency = LatencyResult(
        links=args.chain,
        tgs_wall_per_link_s=statistics.median(run.run_s for run in runs) / args.chain,
        tgs_mean_link_s=statistics.fmean(gaps) if gaps else None,
        tgs_median_link_s=statistics.median(gaps) if gaps else None,
        tgs_p90_link_s=statistics.quantiles(gaps, n=10)[-1] if len(gaps) >= 10 else None,
    )
    return results, latency


def measure_peer(
    peer_class: type[DaskPeer] | type[RayPeer],
    args: argparse.Namespace,
    shape_list: list[Shape],
    results: list[ShapeResult],
    latency: LatencyResult | None,
) -> bool:
    """Run the shapes (and the chain) on one peer; False if it could not start."""
    try:
        peer = peer_class()
    except Exception as exc:  # a peer that fails to start must not sink the benchmark
        print(f"{peer_class.name} could not start, skipped: {exc!r}")
        return False
    try:
        for shape, result in zip(shape_list, results, strict=True):
            result.peer_run_s[peer.name] = statistics.median(
                peer.run_shape(shape) for _ in range(args.repeats)
            )
        if latency is not None:
            latency.peer_wall_per_link_s[peer.name] = (
                statistics.median(peer.run_chain(args.chain) for _ in range(args.repeats))
                / args.chain
            )
    finally:
        peer.close()
    return True


def dask_wanted(args: argparse.Namespace) -> bool:
    return not args.no_dask and DaskPeer.version() is not None


def print_header(
    args: argparse.Namespace,
    peer_classes: list[type[DaskPeer] | type[RayPeer]],
    peer_notes: list[str] | None = None,
    *,
    cli: bool = False,
) -> None:
    print(
        f"trio-graph-scheduler {importlib.metadata.version('trio-graph-scheduler')}, "
        f"trio {trio.__version__}, Python {platform.python_version()}, "
        f"{platform.machine()} x {os.cpu_count()} CPUs ({cpu_model()})"
    )
    if cli:
        print(
            f"tgs through its CLIs: tgs-coordinator + {WORKERS} tgs-worker processes on "
            f"{HOST}, fresh for every run; times stamped inside the tasks"
        )
    print(
        f"tgs through the API: 1 coordinator (this process) + {WORKERS} tgs-worker processes "
        f"on {HOST}, fresh for every run, start-up excluded"
    )
    print(
        f"no-op tasks, default loop concurrency {args.concurrency} (cluster-wide: at most "
        f"{args.concurrency} tasks in flight to the workers), median of {args.repeats} runs"
        + (" (--quick: sizes / 10)" if args.quick else "")
    )
    if any(cls is DaskPeer for cls in peer_classes):
        print(
            f"dask: LocalCluster(n_workers={WORKERS}, threads_per_worker=1, processes=True), "
            "client.get of the graph dict"
        )
    if any(cls is RayPeer for cls in peer_classes):
        print(f"ray: ray.init(num_cpus={WORKERS}), remote no-op tasks, refs as dependencies")
    for note in peer_notes or [cls.version() or "" for cls in peer_classes]:
        print(note)
    if peer_classes:
        print("tgs/peer: tgs's rate over the peer's (above 1: tgs is faster)")
    library = Path(trio_graph_scheduler.__file__).parent
    print(
        f"library: {library}{library_revision(library)}; "
        f"load average at start: {os.getloadavg()[0]:.2f} "
        "(other work on the machine skews the figures)"
    )
    print(flush=True)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.cli:
        return measure_cli(args)
    peer_classes: list[type[DaskPeer] | type[RayPeer]] = []
    peer_notes = []
    for peer_class, skipped in ((DaskPeer, args.no_dask), (RayPeer, args.no_ray)):
        version = None if skipped else peer_class.version()
        if skipped:
            peer_notes.append(f"{peer_class.name} comparison skipped (--no-{peer_class.name})")
        elif version is None:
            peer_notes.append(f"{peer_class.name} not installed: pip install it to compare")
        else:
            peer_classes.append(peer_class)
            peer_notes.append(version)
    print_header(args, peer_classes, peer_notes)
    library = Path(trio_graph_scheduler.__file__).parent
    load_at_start = os.getloadavg()[0]

    shape_list = shapes(10 if args.quick else 1)
    results, latency = measure_tgs(args, shape_list)
    peers = [
        cls.name for cls in peer_classes if measure_peer(cls, args, shape_list, results, latency)
    ]

    print_table(results, peers)
    if latency is not None:
        print_latency(latency, peers)

    slowest = min(r.tgs_tasks_per_s for r in results)
    print(
        f"\nslowest shape: {slowest:,.0f} tasks/s "
        f"(target >= {TARGET_TASKS_PER_S:,}: {verdict(slowest >= TARGET_TASKS_PER_S)})"
    )
    if latency is not None:
        judged = latency.tgs_median_link_s or latency.tgs_wall_per_link_s
        what = "median link" if latency.tgs_median_link_s is not None else "wall time / links"
        met = verdict(judged < TARGET_ROUND_TRIP_S)
        print(
            f"round trip ({what}): {fmt_us(judged)} us "
            f"(target < {TARGET_ROUND_TRIP_S * 1e6:.0f} us: {met})"
        )

    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        figures = {
            "config": {
                "concurrency": args.concurrency,
                "repeats": args.repeats,
                "quick": args.quick,
                "workers": WORKERS,
                "python": platform.python_version(),
                "trio": trio.__version__,
                "peers": peer_notes,
                "cpus": os.cpu_count(),
                "library": f"{library}{library_revision(library)}",
                "load_average_at_start": load_at_start,
            },
            "shapes": [
                {
                    **asdict(r),
                    "peer_tasks_per_s": {p: r.peer_tasks_per_s(p) for p in r.peer_run_s},
                }
                for r in results
            ],
            "latency": None if latency is None else asdict(latency),
        }
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
        print(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
