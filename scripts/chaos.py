#!/usr/bin/env python
"""Chaos run of the distributed mode: workers killed and restarted at random (a script, not a test).

What it does:

1. Builds a graph of ``--tasks`` tasks (10,000) in three shapes, shuffled together so that
   requeued tasks meet their dependencies: independent tasks, chains of 5 (each link waits
   on the one before), and fan-ins (24 leaves joined by one task that waits on all of them).
   Every task sleeps 1-20 ms and burns a little CPU (random, fixed by ``--seed``), so kills
   land in the middle of tasks. A task that waits on others checks that each of them
   succeeded and left a run receipt, and fails if not.
2. Runs a :class:`Coordinator` in this process (short heartbeats, 0.2 s / 1.0 s, and a
   generous ``max_lost_attempts`` so that no task should fail for being lost too often)
   and ``--workers`` (4) real ``tgs-worker`` processes, ``--slots`` tasks at once each.
3. Every ``--kill-every MIN,MAX`` seconds, SIGKILLs a random worker; a replacement starts
   at once (a new process, a new worker for the coordinator).
4. Once ``--freeze-at`` of the tasks have ended, pauses the kills, SIGSTOPs one worker and
   measures how long the coordinator takes to drop it (``statistics().workers_lost`` going up,
   and ``coordinator.workers[id].left_at`` being set, when its tasks are requeued),
   SIGCONTs it, and watches it reconnect (or exit).
5. Ends when the graph has ended, or after ``--duration`` seconds (then the run is stopped
   and every unfinished task is reported as lost).
6. With ``--poison N``, N more independent tasks end the worker process that runs them
   (``os._exit(1)``), mixed in among the others; ``--max-lost-attempts`` is then 3 unless
   given. Each must fail as "killed its worker 3 times", and no other task may fail: a
   worker killed by a poison task must never cost its neighbours anything.

How executions are counted, independently of the coordinator: every *execution* of a task
appends one line to ``exec-<pid>.log`` in a temporary directory (the path travels in the
task's arguments): ``uid pid worker_id lease run started_at``, where ``run`` is a random
id drawn for that execution (the attempt marker) and ``worker_id``/``lease`` name the
connection and lease the worker ran it under (the worker id is read from the worker's
internals, ``graph._link.welcome``: a frozen worker reconnects with the same pid, so the pid
alone cannot tell its connections apart). The line is written when the execution
starts, so an execution killed half-way is counted. The task returns the same fields as its
result (its *receipt*).

What the report checks:

* **lost**: tasks not in a final state (success, failed, precondition_failed) when the run
  ended. Must be 0.
* **results recorded twice**: a succeeded task whose recorded result does not come from
  exactly one execution. A task counts when any of these holds: its result is no receipt;
  the receipt's run id is not in the execution logs exactly once with the same task, pid,
  worker and lease; the receipt's worker is not the worker the coordinator last leased the
  task to (``node.worker``), so the result came from an older lease; the receipt's pid is not
  that worker's process; the result was recorded (``node.ended_at``) after the coordinator
  had dropped that worker (declared it lost), or before it joined; or two tasks share a
  receipt. (The coordinator cannot record a task twice by construction: a second end raises
  in the scheduler and would crash the run, reported here as a coordinator error.) Must be 0.
* **anomalies** (also fail the run): one lease executed more than once; a task executed
  more often than the coordinator leased it (``node.attempts``); a task executed on a worker
  after it succeeded, other than by a worker the coordinator had dropped already (a frozen
  one); unreadable log lines; worker processes that exited unasked with an error, or wrote a
  traceback, or did not exit within 10 s of the run's end; the coordinator raising, or not
  returning after it was stopped.
* re-runs (executions minus the tasks that ran; in a complete run, minus all tasks), kills,
  the coordinator's counters, wall time, and the time to detect the frozen worker.

Exit status 0 only when lost == 0, duplicates == 0, and no anomaly was found.

Usage (from the repository root)::

    python scripts/chaos.py                               # 10,000 tasks, 4 workers (about 20 s)
    python scripts/chaos.py --seed 7 --kill-every 0.5,2   # kill more often, reproducibly
    python scripts/chaos.py --tasks 1000 --workers 2      # a smoke run
    python scripts/chaos.py --poison 10                   # and 10 tasks that kill their worker
    python scripts/chaos.py --json out/chaos.json --keep  # figures as JSON; keep the logs

With ``--kill-coordinator`` the coordinator is killed too, and restarted from its journal:
see ``scripts/chaos_coordinator.py`` for what that mode does, checks and takes.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import trio

from trio_graph_scheduler import Coordinator, CoordinatorConfig, TaskGraph, WorkerLoop

if TYPE_CHECKING:
    from trio_graph_scheduler import TaskNode
    from trio_graph_scheduler.shared.task_calls import TaskArguments

WORKER: Final = Path(sys.executable).parent / "tgs-worker"
#: Links per chain, and leaves per fan-in (joined by one more task).
CHAIN_LENGTH: Final = 5
FAN_IN_LEAVES: Final = 24
#: Shares of the tasks in chains and in fan-ins; the rest are independent.
CHAIN_SHARE: Final = 0.35
FAN_IN_SHARE: Final = 0.25
#: Seconds without a task ending (with workers connected) before a snapshot is printed.
STALL_REPORT_S: Final = 20.0
#: Seconds to wait for the frozen worker to be dropped, and to come back after SIGCONT.
FREEZE_WAIT_S: Final = 30.0
#: Seconds the coordinator has to return once stopped at the --duration cap.
STOP_WAIT_S: Final = 20.0
#: Seconds workers have to exit after the coordinator dismissed them.
EXIT_WAIT_S: Final = 10.0

FINAL: Final = frozenset({"success", "failed", "precondition_failed"})


# -- the task ----------------------------------------------------------------------------------


async def chaos_task(
    log_dir: str,
    sleep_s: float,
    cpu_rounds: int,
    *,
    task_node: Any,
    graph: Any,
    worker_context: Any,
) -> dict[str, Any]:
    """One task: log this execution, check the predecessors, work a little, return a receipt.

    Runs on a worker, shipped by value (cloudpickle): it imports what it needs itself.
    """
    import hashlib
    import os
    import time

    import trio

    pid = os.getpid()
    # The worker id the coordinator gave this connection: internal to the worker, read only
    # to tell connections of one process apart (a frozen worker reconnects with its pid).
    link = getattr(graph, "_link", None)
    worker_id = getattr(getattr(link, "welcome", None), "worker_id", None) or "?"
    lease = int(getattr(graph, "lease", -1))
    run = os.urandom(8).hex()
    line = f"{task_node.uid} {pid} {worker_id} {lease} {run} {time.time():.6f}\n"
    fd = os.open(
        os.path.join(log_dir, f"exec-{pid}.log"), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644
    )
    try:
        os.write(fd, line.encode())  # one write of a short line: O_APPEND keeps it whole
    finally:
        os.close(fd)
    for predecessor in task_node.get_predecessor_task_nodes():
        receipt = predecessor.task_result
        if predecessor.task_status != "success" or not (
            isinstance(receipt, dict) and "run" in receipt
        ):
            raise RuntimeError(
                f"predecessor {predecessor.uid} is {predecessor.task_status} "
                f"with result {receipt!r:.80}"
            )
    block = b"x" * 65536
    for _ in range(cpu_rounds):
        block = hashlib.sha256(block).digest() * 2048
    await trio.sleep(sleep_s)
    return {"pid": pid, "worker": worker_id, "lease": lease, "run": run}


async def poison_task(*_: Any, **__: Any) -> None:
    """Ends the worker process it runs in, at once (as a crashing C extension would)."""
    import os

    os._exit(1)


# -- the graph ---------------------------------------------------------------------------------


@dataclass
class Shapes:
    independent: int = 0
    chains: int = 0
    fan_ins: int = 0


def build_graph(
    tasks: int, concurrency: int, log_dir: Path, rng: random.Random, poison: int = 0
) -> tuple[TaskGraph, Shapes]:
    """``tasks`` tasks in the three shapes, and ``poison`` poison tasks, created in a
    shuffled order."""
    chains = int(tasks * CHAIN_SHARE) // CHAIN_LENGTH
    fan_ins = int(tasks * FAN_IN_SHARE) // (FAN_IN_LEAVES + 1)
    independent = tasks - chains * CHAIN_LENGTH - fan_ins * (FAN_IN_LEAVES + 1)
    units = ["independent"] * independent + ["chain"] * chains + ["fan-in"] * fan_ins
    units += ["poison"] * poison
    rng.shuffle(units)
    graph = TaskGraph(
        {"chaos": chaos_task, "poison": poison_task}, [WorkerLoop("default", concurrency, None)]
    )

    def create(waits_on: list[str] | None = None) -> str:
        arguments: TaskArguments = (
            (str(log_dir), rng.uniform(0.001, 0.020), rng.randint(0, 8)),
            {},
        )
        return graph.create_task_nowait("chaos", arguments, waits_on).uid

    for unit in units:
        if unit == "independent":
            create()
        elif unit == "poison":
            graph.create_task_nowait("poison")
        elif unit == "chain":
            uid = create()
            for _ in range(CHAIN_LENGTH - 1):
                uid = create([uid])
        else:
            create([create() for _ in range(FAN_IN_LEAVES)])
    assert len(graph.nodes) == tasks + poison, (len(graph.nodes), tasks, poison)
    return graph, Shapes(independent, chains, fan_ins)


# -- what the coordinator knows of its workers ------------------------------------------------


def pid_of(name: str) -> int:
    """The pid in a worker's default name, ``host:pid`` (-1 for another name)."""
    tail = name.rsplit(":", 1)[-1]
    return int(tail) if tail.isdigit() else -1


def dropped(record: Any) -> bool:
    """Whether the coordinator dropped this worker (lost, silent), rather than dismissed it."""
    return record.left_because not in (None, "dismissed")


class Workers:
    """Reads ``coordinator.workers`` (every worker of the run, kept after it left: id, name,
    ``joined_at``, ``left_at``, ``left_because``) and ``coordinator.sessions`` (those
    connected now, with the ``leases`` they hold)."""

    def __init__(self, coordinator: Coordinator) -> None:
        self.coordinator = coordinator

    @property
    def records(self) -> dict[str, Any]:
        return self.coordinator.workers

    def by_pid(self, pid: int) -> list[Any]:
        return [r for r in self.records.values() if pid_of(r.name) == pid]

    def live_session(self, pid: int) -> Any | None:
        sessions = list(self.coordinator.sessions)
        return next((s for s in sessions if pid_of(s.worker_name) == pid), None)


# -- worker processes --------------------------------------------------------------------------


@dataclass
class ProcessRecord:
    slot: int
    generation: int
    pid: int
    started: float
    stderr_path: str
    ended: float | None = None
    returncode: int | None = None
    killed: bool = False
    #: Still running EXIT_WAIT_S after the run ended, so killed then.
    killed_at_end: bool = False
    #: Had not joined when the run ended, so killed then (see Cluster.stop).
    late: bool = False
    frozen: bool = False


@dataclass
class KillRecord:
    at_s: float
    slot: int
    pid: int
    worker_id: str | None
    #: Tasks the coordinator had leased to it at that moment.
    leases: int


@dataclass
class FreezeRecord:
    pid: int = 0
    worker_id: str | None = None
    leases_at_stop: int = 0
    at_s: float = 0.0
    #: SIGSTOP to ``statistics().workers_lost`` going up, and to its session leaving.
    detect_counter_s: float | None = None
    detect_session_s: float | None = None
    #: SIGCONT to a new session with the same pid (it reconnected), if it did.
    reconnect_s: float | None = None
    reconnected_as: str | None = None
    #: If it exited instead.
    exit_code: int | None = None
    note: str = ""


class Cluster:
    """The worker processes: one supervisor per slot restarts its worker when it exits."""

    def __init__(self, args: argparse.Namespace, url: str, run_dir: Path, t0: float) -> None:
        self.args = args
        self.url = url
        self.run_dir = run_dir
        self.t0 = t0
        self.processes: list[ProcessRecord] = []
        self.live: dict[int, tuple[trio.Process, ProcessRecord]] = {}
        self.stopping = False
        self.kills: list[KillRecord] = []
        #: Set (and replaced) whenever a worker process exits.
        self.exited = trio.Event()

    async def supervise(self, slot: int) -> None:
        generation = 0
        while not self.stopping:
            stderr_path = self.run_dir / f"worker-{slot}-{generation}.err"
            with stderr_path.open("wb") as err:
                process = await trio.lowlevel.open_process(
                    [
                        str(WORKER),
                        "--connect",
                        self.url,
                        "--log-level",
                        "warning",
                        "--connect-timeout",
                        str(self.args.connect_timeout),
                        "--max-tasks",
                        str(self.args.slots),
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=err,
                    stderr=err,
                    env={**os.environ, "PYTHONUNBUFFERED": "1"},
                )
            record = ProcessRecord(slot, generation, process.pid, time.time(), str(stderr_path))
            self.processes.append(record)
            self.live[slot] = (process, record)
            try:
                record.returncode = await process.wait()
            finally:
                if process.returncode is None:  # cancelled: take it down with us
                    process.kill()
                    with trio.CancelScope(shield=True):
                        record.returncode = await process.wait()
                record.ended = time.time()
                del self.live[slot]
                self.exited.set()
                self.exited = trio.Event()
            generation += 1

    def kill(self, slot: int, book: Workers) -> None:
        process, record = self.live[slot]
        session = book.live_session(process.pid)
        record.killed = True
        self.kills.append(
            KillRecord(
                round(time.monotonic() - self.t0, 3),
                slot,
                process.pid,
                None if session is None else session.worker_id,
                0 if session is None else len(session.leases),
            )
        )
        process.send_signal(signal.SIGKILL)

    async def stop(self, grace: float, book: Workers) -> None:
        """No more restarts; wait ``grace`` seconds for the workers to exit, then kill them.

        A worker that never joined (a replacement started as the run ended) would keep
        trying to connect for its ``--connect-timeout``: it is killed at once.
        """
        self.stopping = True
        for process, record in list(self.live.values()):
            if not book.by_pid(process.pid):
                record.killed = record.late = True
                process.kill()
        with trio.move_on_after(grace):
            while self.live:
                await self.exited.wait()
        for process, record in list(self.live.values()):
            record.killed = record.killed_at_end = True
            process.kill()
        while self.live:
            await self.exited.wait()


# -- the run -----------------------------------------------------------------------------------


@dataclass
class RunState:
    """What the concurrent parts of a run share."""

    coordinator: Coordinator
    book: Workers
    cluster: Cluster | None = None
    #: Held by the freeze phase: no kills meanwhile.
    kill_lock: trio.Lock = field(default_factory=trio.Lock)
    freeze: FreezeRecord | None = None
    serve_error: str | None = None
    capped: bool = False
    hang: str | None = None
    stalls: list[str] = field(default_factory=list)


def ended_count(coordinator: Coordinator) -> int:
    stats = coordinator.graph.statistics()
    return len(coordinator.graph.nodes) - stats.unfinished


async def kill_loop(state: RunState, args: argparse.Namespace, rng: random.Random) -> None:
    low, high = args.kill_every
    cluster = state.cluster
    assert cluster is not None
    while True:
        await trio.sleep(rng.uniform(low, high))
        async with state.kill_lock:
            candidates = sorted(cluster.live)
            if candidates and not state.coordinator.ended:
                cluster.kill(rng.choice(candidates), state.book)


async def freeze_once(state: RunState, args: argparse.Namespace, t0: float) -> None:
    """SIGSTOP one connected worker, time its drop, SIGCONT it, watch it come back."""
    coordinator, book, cluster = state.coordinator, state.book, state.cluster
    assert cluster is not None
    target = args.freeze_at * len(coordinator.graph.nodes)
    # The library has no event for "n tasks ended": poll (here and below, cheaply).
    while ended_count(coordinator) < target and not coordinator.ended:  # noqa: ASYNC110
        await trio.sleep(0.1)
    async with state.kill_lock:
        # Let earlier kills settle (their sessions leave, replacements join) so that the
        # lost counter moves for the frozen worker alone.
        await trio.sleep(2.0)
        freeze = FreezeRecord()
        while freeze.pid == 0 and not coordinator.ended:
            for process, record in cluster.live.values():
                session = book.live_session(process.pid)
                if session is not None and session.leases:
                    freeze.pid, freeze.worker_id = process.pid, session.worker_id
                    freeze.leases_at_stop = len(session.leases)
                    record.frozen = True
                    break
            else:
                await trio.sleep(0.02)
        if freeze.pid == 0:
            freeze.note = "the graph ended before a worker could be frozen"
            state.freeze = freeze
            return
        state.freeze = freeze
        await freeze_and_thaw(state, freeze, t0)


async def freeze_and_thaw(state: RunState, freeze: FreezeRecord, t0: float) -> None:
    coordinator, book, cluster = state.coordinator, state.book, state.cluster
    assert cluster is not None
    assert freeze.worker_id is not None
    record = book.records[freeze.worker_id]
    lost_before = coordinator.statistics().workers_lost
    os.kill(freeze.pid, signal.SIGSTOP)
    stopped = time.monotonic()
    freeze.at_s = round(stopped - t0, 3)
    with trio.move_on_after(FREEZE_WAIT_S):
        while record.left_at is None:  # the coordinator has no event for it: poll
            if (
                freeze.detect_counter_s is None
                and coordinator.statistics().workers_lost > lost_before
            ):
                freeze.detect_counter_s = time.monotonic() - stopped
            await trio.sleep(0.005)
        freeze.detect_session_s = time.monotonic() - stopped
        if freeze.detect_counter_s is None and coordinator.statistics().workers_lost > lost_before:
            freeze.detect_counter_s = freeze.detect_session_s
    if freeze.detect_session_s is None:
        freeze.note = f"not dropped within {FREEZE_WAIT_S:g} s of SIGSTOP"
    try:
        os.kill(freeze.pid, signal.SIGCONT)
    except ProcessLookupError:  # it had exited as it was stopped: a poison task ended it
        freeze.note = "the worker exited as it was stopped (a poison task ended it)"
        return
    resumed = time.monotonic()
    with trio.move_on_after(FREEZE_WAIT_S):
        while True:
            newer = [
                r
                for r in book.by_pid(freeze.pid)
                if r.worker_id != freeze.worker_id and r.left_at is None
            ]
            if newer:
                freeze.reconnect_s = time.monotonic() - resumed
                freeze.reconnected_as = newer[0].worker_id
                return
            exited = next(
                (p for p in cluster.processes if p.pid == freeze.pid and p.returncode is not None),
                None,
            )
            if exited is not None:
                freeze.exit_code = exited.returncode
                return
            if coordinator.ended:
                freeze.note = "the graph ended before the frozen worker came back"
                return
            await trio.sleep(0.01)
    freeze.note = f"neither reconnected nor exited within {FREEZE_WAIT_S:g} s of SIGCONT"


def snapshot(coordinator: Coordinator) -> str:
    """The state of the run, for a stall report."""
    stats = coordinator.graph.statistics()
    lines = [f"statuses {dict(stats.tasks_by_status)}, loops {dict(stats.loops)}"]
    lines.append(f"counters {asdict(coordinator.statistics())}")
    for session in list(coordinator.sessions):
        leased = list(session.leases.items())[:5]
        lines.append(
            f"  {session.worker_id} {session.worker_name}: {len(session.leases)} lease(s) "
            + ", ".join(f"{lease}:{n.uid[:13]}:{n.task_status}" for lease, n in leased)
        )
    in_progress = [n for n in coordinator.graph.nodes.values() if n.task_status == "in_progress"]
    for node in in_progress[:10]:
        lines.append(f"  in progress: {node.uid} on {node.worker}, attempts {node.attempts}")
    return "\n".join(lines)


async def monitor(state: RunState, t0: float, quiet: bool) -> None:
    """Print progress every few seconds, and a snapshot when no task ends for a while."""
    coordinator = state.coordinator
    total = len(coordinator.graph.nodes)
    last_count, last_change, last_print = -1, time.monotonic(), 0.0
    while True:
        now = time.monotonic()
        count = ended_count(coordinator)
        if count != last_count:
            last_count, last_change = count, now
        elif now - last_change > STALL_REPORT_S and coordinator.sessions:
            report = f"no task ended for {now - last_change:.0f} s at {now - t0:.1f} s:\n"
            report += snapshot(coordinator)
            state.stalls.append(report)
            print(report, file=sys.stderr)
            last_change = now
        if not quiet and now - last_print >= 5:
            last_print = now
            counters = coordinator.statistics()
            print(
                f"  {now - t0:6.1f} s  {count:>6,}/{total:,} ended  "
                f"workers {len(coordinator.sessions)}  kills "
                f"{len(state.cluster.kills) if state.cluster else 0}  "
                f"lost {counters.workers_lost} workers / {counters.tasks_lost} runs",
                file=sys.stderr,
            )
        await trio.sleep(0.25)


async def run_coordinator(
    state: RunState, done: trio.Event, *, task_status: trio.TaskStatus[Coordinator]
) -> None:
    try:
        await state.coordinator.serve(task_status=task_status)
    except Exception:
        state.serve_error = traceback.format_exc()
    finally:
        done.set()


async def chaos(args: argparse.Namespace, graph: TaskGraph, run_dir: Path) -> RunState:
    config = CoordinatorConfig(
        heartbeat_interval=args.heartbeat_interval,
        heartbeat_timeout=args.heartbeat_timeout,
        max_lost_attempts=args.max_lost_attempts,
    )
    coordinator = Coordinator(graph, config)
    state = RunState(coordinator, Workers(coordinator))
    rng = random.Random(args.seed + 1)
    done = trio.Event()
    t0 = time.monotonic()
    async with trio.open_nursery() as outer:
        await outer.start(run_coordinator, state, done)
        cluster = Cluster(args, coordinator.url, run_dir, t0)
        state.cluster = cluster
        async with trio.open_nursery() as nursery:
            for slot in range(args.workers):
                nursery.start_soon(cluster.supervise, slot)
            helpers = trio.CancelScope()

            async def helpers_run() -> None:
                with helpers:
                    async with trio.open_nursery() as inner:
                        inner.start_soon(kill_loop, state, args, rng)
                        inner.start_soon(monitor, state, t0, args.quiet)
                        if args.freeze_at > 0:
                            inner.start_soon(freeze_once, state, args, t0)

            nursery.start_soon(helpers_run)
            with trio.move_on_after(args.duration):
                await done.wait()
            if not done.is_set():
                state.capped = True
                print(f"--duration {args.duration:g} s reached: stopping the run", file=sys.stderr)
                coordinator.stop()
                with trio.move_on_after(STOP_WAIT_S):
                    await done.wait()
                if not done.is_set():
                    state.hang = (
                        f"Coordinator.serve did not return within {STOP_WAIT_S:g} s of stop()\n"
                        + snapshot(coordinator)
                    )
            helpers.cancel()
            await cluster.stop(EXIT_WAIT_S, state.book)
            nursery.cancel_scope.cancel()
        outer.cancel_scope.cancel()
    if state.freeze is not None and state.freeze.exit_code is None:
        exited = next((p for p in cluster.processes if p.pid == state.freeze.pid), None)
        if (
            exited is not None
            and exited.returncode is not None
            and state.freeze.reconnect_s is None
        ):
            state.freeze.exit_code = exited.returncode
    return state


# -- analysis ----------------------------------------------------------------------------------


@dataclass
class Execution:
    uid: str
    pid: int
    worker_id: str
    lease: int
    run: str
    started: float


def read_executions(run_dir: Path) -> tuple[list[Execution], list[str]]:
    executions: list[Execution] = []
    bad: list[str] = []
    for path in sorted(run_dir.glob("exec-*.log")):
        for line in path.read_text(errors="replace").splitlines():
            parts = line.split()
            try:
                uid, pid, worker_id, lease, run, started = parts
                executions.append(
                    Execution(uid, int(pid), worker_id, int(lease), run, float(started))
                )
            except ValueError:
                bad.append(f"{path.name}: {line!r}")
    return executions, bad


def check_results(
    nodes: dict[str, TaskNode], executions: list[Execution], book: Workers, capped: bool
) -> tuple[list[str], list[str], dict[str, int]]:
    """(duplicates, anomalies, extra figures), each problem as one line naming the task."""
    by_run: dict[str, list[Execution]] = defaultdict(list)
    by_lease: dict[int, list[Execution]] = defaultdict(list)
    by_task: dict[str, list[Execution]] = defaultdict(list)
    for ex in executions:
        by_run[ex.run].append(ex)
        by_lease[ex.lease].append(ex)
        by_task[ex.uid].append(ex)
    duplicates: list[str] = []
    anomalies: list[str] = []
    receipts_seen: dict[str, str] = {}
    zombie_runs = 0
    for uid, node in nodes.items():
        runs = by_task.get(uid, [])
        # A run handed back (only when the run is stopped) does not count as an attempt.
        if len(runs) > node.attempts and not capped:
            anomalies.append(f"{uid}: executed {len(runs)} times but leased {node.attempts} times")
        if node.task_status != "success":
            continue
        receipt = node.task_result
        if not (isinstance(receipt, dict) and {"pid", "worker", "lease", "run"} <= set(receipt)):
            duplicates.append(f"{uid}: result is not a run receipt: {receipt!r:.100}")
            continue
        matching = [
            ex
            for ex in by_run.get(receipt["run"], [])
            if (ex.uid, ex.pid, ex.worker_id, ex.lease)
            == (uid, receipt["pid"], receipt["worker"], receipt["lease"])
        ]
        problems = []
        if len(matching) != 1 or len(by_run.get(receipt["run"], [])) != 1:
            problems.append(
                f"its run {receipt['run']} is logged {len(by_run.get(receipt['run'], []))} "
                f"time(s), {len(matching)} matching the receipt"
            )
        # "?": the worker could not tell its id (see chaos_task); trust node.worker then.
        worker_id = node.worker if receipt["worker"] == "?" else str(receipt["worker"])
        if worker_id != node.worker:
            problems.append(
                f"the result came from {worker_id}, the task was last leased to {node.worker}"
            )
        session = book.records.get(str(worker_id))
        ended = node.ended_at or 0.0
        if session is None:
            problems.append(f"the coordinator never had a session {worker_id}")
        else:
            if pid_of(session.name) != receipt["pid"]:
                problems.append(f"{session.worker_id} is {session.name}, not pid {receipt['pid']}")
            if ended < session.joined_at:
                problems.append(f"recorded before {session.worker_id} joined")
            if session.left_at is not None and ended > session.left_at:
                problems.append(
                    f"recorded {ended - session.left_at:.3f} s after {session.worker_id} left "
                    f"({session.left_because})"
                )
        earlier = receipts_seen.setdefault(receipt["run"], uid)
        if earlier != uid:
            problems.append(f"same receipt as {earlier}")
        if problems:
            duplicates.append(f"{uid}: " + "; ".join(problems))
        # Executions of a succeeded task that started after its result was recorded.
        for ex in runs:
            if ex.run == receipt["run"] or ex.started <= ended:
                continue
            stale = book.records.get(ex.worker_id)
            if stale is not None and dropped(stale):
                zombie_runs += 1  # a dropped (frozen) worker finishing what it had queued
            else:
                anomalies.append(
                    f"{uid}: executed by {ex.worker_id} (pid {ex.pid}, lease {ex.lease}) "
                    f"{ex.started - ended:.3f} s after its result was recorded"
                )
    for lease, runs in by_lease.items():
        if lease >= 0 and len(runs) > 1:
            anomalies.append(f"lease {lease} executed {len(runs)} times: {runs[0].uid}")
    figures = {
        "zombie_executions": zombie_runs,
        "tasks_executed_more_than_once": sum(1 for runs in by_task.values() if len(runs) > 1),
        "max_executions_of_one_task": max((len(r) for r in by_task.values()), default=0),
    }
    return duplicates, anomalies, figures


def worker_problems(
    cluster: Cluster, freeze: FreezeRecord | None, poisoned: set[int] | None = None
) -> list[str]:
    """Worker processes that exited with an error unasked, or wrote a traceback. A
    process in ``poisoned`` (the pids a poison task ran on) may exit 1."""
    problems = []
    for record in cluster.processes:
        text = Path(record.stderr_path).read_text(errors="replace")
        if record.killed_at_end:
            problems.append(
                f"worker pid {record.pid} still running {EXIT_WAIT_S:g} s after the run ended "
                "(killed): " + " | ".join(text.splitlines()[-3:])
            )
        if "Traceback" in text:
            problems.append(
                f"worker pid {record.pid} ({Path(record.stderr_path).name}) wrote a traceback:\n"
                + "\n".join("    " + line for line in text.splitlines()[-25:])
            )
        elif record.pid in (poisoned or set()) and record.returncode == 1:
            pass  # a poison task ended it, as it should
        elif not record.killed and record.returncode not in (0, None):
            frozen = " (the frozen one)" if freeze and record.pid == freeze.pid else ""
            problems.append(
                f"worker pid {record.pid}{frozen} exited {record.returncode}: "
                + " | ".join(text.splitlines()[-3:])
            )
    return problems


@dataclass
class Report:
    seed: int
    tasks: int
    workers: int
    slots: int
    shapes: dict[str, int]
    wall_s: float
    succeeded: int
    failed: int
    failed_lost_too_often: int
    poison: int
    innocent_failed: int
    precondition_failed: int
    lost: int
    duplicates: int
    anomalies: int
    executions: int
    reruns: int
    tasks_executed_more_than_once: int
    max_executions_of_one_task: int
    zombie_executions: int
    attempts_total: int
    losses_total: int
    max_losses_of_one_task: int
    kills: int
    kills_mid_task: int
    worker_processes: int
    late_workers_killed: int
    sessions: int
    sessions_dropped: int
    counters: dict[str, int]
    freeze: dict[str, Any] | None
    capped: bool
    coordinator_error: str | None
    hang: str | None
    stalls: int
    coordinator_log_warnings: int
    problems: list[str]
    run_dir: str
    passed: bool


def analyse(
    args: argparse.Namespace, state: RunState, shapes: Shapes, wall: float, run_dir: Path
) -> Report:
    coordinator, book, cluster = state.coordinator, state.book, state.cluster
    assert cluster is not None
    nodes = coordinator.graph.nodes
    statuses = Counter(str(n.task_status) for n in nodes.values())
    unfinished = [n for n in nodes.values() if str(n.task_status) not in FINAL]
    failed = [n for n in nodes.values() if n.task_status == "failed"]
    lost_too_often = [
        n for n in failed if (n.exception_trace or "").startswith("killed its worker")
    ]
    poison = [n for n in nodes.values() if n.task_handle == "poison"]
    innocent_failed = [n for n in failed if n.task_handle != "poison"]
    poison_unblamed = [
        n
        for n in poison
        if n.task_status != "failed"
        or not (n.exception_trace or "").startswith("killed its worker")
    ]
    poison_uids = {n.uid for n in poison}
    poisoned = {
        pid_of(r.name)
        for r in book.records.values()
        if any(uid in poison_uids for uid, _ in r.lost_while_running)
    }
    executions, bad_lines = read_executions(run_dir)
    duplicates, anomalies, figures = check_results(nodes, executions, book, state.capped)
    problems: list[str] = []
    problems += [f"never finished: {n.uid} {n.task_status} on {n.worker}" for n in unfinished[:20]]
    problems += [f"result recorded wrongly: {d}" for d in duplicates[:20]]
    problems += [f"anomaly: {a}" for a in anomalies[:20]]
    problems += [f"unreadable execution log line: {b}" for b in bad_lines[:20]]
    worker_issues = worker_problems(cluster, state.freeze, poisoned)
    problems += worker_issues
    problems += [f"innocent task failed: {n.uid}" for n in innocent_failed[:20]] if poison else []
    problems += [f"poison task not blamed: {n.uid} {n.task_status}" for n in poison_unblamed]
    for node in failed[:5]:
        trace = (node.exception_trace or "").strip().splitlines()
        problems.append(f"failed: {node.uid} on {node.worker}: {trace[-1] if trace else '?'}")
    if state.serve_error:
        problems.append(f"Coordinator.serve raised:\n{state.serve_error}")
    if state.hang:
        problems.append(state.hang)
    problems += state.stalls
    freeze = state.freeze
    if freeze is not None and freeze.note:
        problems.append(f"freeze: {freeze.note}")
    log_text = (run_dir / "coordinator.log").read_text(errors="replace")
    if "Traceback" in log_text:
        problems.append("the coordinator logged a traceback (see coordinator.log)")
    anomaly_count = (
        (len(innocent_failed) if poison else 0)
        + len(poison_unblamed)
        + len(anomalies)
        + len(bad_lines)
        + len(worker_issues)
        + bool(state.serve_error)
        + bool(state.hang)
        + ("Traceback" in log_text)
    )
    passed = not unfinished and not duplicates and anomaly_count == 0
    records = book.records.values()
    return Report(
        seed=args.seed,
        tasks=len(nodes),
        workers=args.workers,
        slots=args.slots,
        shapes={
            "independent": shapes.independent,
            f"chains_of_{CHAIN_LENGTH}": shapes.chains,
            f"fan_ins_of_{FAN_IN_LEAVES}": shapes.fan_ins,
        },
        wall_s=round(wall, 2),
        succeeded=statuses.get("success", 0),
        failed=len(failed),
        failed_lost_too_often=len(lost_too_often),
        poison=len(poison),
        innocent_failed=len(innocent_failed),
        precondition_failed=statuses.get("precondition_failed", 0),
        lost=len(unfinished),
        duplicates=len(duplicates),
        anomalies=anomaly_count,
        executions=len(executions),
        reruns=len(executions) - len({ex.uid for ex in executions}),
        tasks_executed_more_than_once=figures["tasks_executed_more_than_once"],
        max_executions_of_one_task=figures["max_executions_of_one_task"],
        zombie_executions=figures["zombie_executions"],
        attempts_total=sum(n.attempts for n in nodes.values()),
        losses_total=sum(n.losses for n in nodes.values()),
        max_losses_of_one_task=max((n.losses for n in nodes.values()), default=0),
        kills=len(cluster.kills),
        kills_mid_task=sum(1 for k in cluster.kills if k.leases > 0),
        worker_processes=len(cluster.processes),
        late_workers_killed=sum(1 for p in cluster.processes if p.late),
        sessions=len(book.records),
        sessions_dropped=sum(1 for r in records if dropped(r)),
        counters=asdict(coordinator.statistics()),
        freeze=None if freeze is None else asdict(freeze),
        capped=state.capped,
        coordinator_error=state.serve_error,
        hang=state.hang,
        stalls=len(state.stalls),
        coordinator_log_warnings=sum(
            1 for line in log_text.splitlines() if " WARNING " in line or " ERROR " in line
        ),
        problems=problems,
        run_dir=str(run_dir),
        passed=passed,
    )


def print_report(report: Report) -> None:
    def row(name: str, value: Any, note: str = "") -> None:
        print(f"  {name:<34} {value!s:>12}  {note}")

    print()
    print(
        f"chaos run: {report.tasks:,} tasks, {report.workers} workers x {report.slots} slots, "
        f"seed {report.seed}"
    )
    print(
        "  shapes: " + ", ".join(f"{v:,} {k.replace('_', ' ')}" for k, v in report.shapes.items())
    )
    print("-" * 78)
    row("tasks succeeded", f"{report.succeeded:,}")
    row("tasks failed", report.failed, f"{report.failed_lost_too_often} of them lost too often")
    if report.poison:
        row("poison tasks", report.poison, "each must fail: killed its worker")
        row("innocent tasks failed", report.innocent_failed, "must be 0")
    row("tasks precondition_failed", report.precondition_failed)
    row("tasks lost (never finished)", report.lost, "must be 0")
    row("results recorded twice", report.duplicates, "must be 0")
    row("anomalies", report.anomalies, "must be 0")
    row("executions (from the logs)", f"{report.executions:,}")
    row(
        "re-runs (executions - tasks run)",
        report.reruns,
        f"{report.tasks_executed_more_than_once} tasks ran more than once, "
        f"at most {report.max_executions_of_one_task} times",
    )
    row(
        "zombie executions",
        report.zombie_executions,
        "started on a dropped worker after the task ended",
    )
    row(
        "attempts (coordinator)",
        f"{report.attempts_total:,}",
        f"losses {report.losses_total}, at most {report.max_losses_of_one_task} for one task",
    )
    row("kills (SIGKILL)", report.kills, f"{report.kills_mid_task} with tasks leased to the worker")
    row(
        "worker processes started",
        report.worker_processes,
        f"{report.late_workers_killed} not yet joined at the end (killed)",
    )
    row("worker sessions", report.sessions, f"{report.sessions_dropped} dropped by the coordinator")
    for name, value in report.counters.items():
        row(f"counters.{name}", value)
    freeze = report.freeze
    if freeze is None:
        row("frozen worker", "-", "no freeze phase (--freeze-at 0)")
    elif freeze["pid"] == 0:
        row("frozen worker", "-", freeze["note"])
    else:

        def secs(value: float | None) -> str:
            return "-" if value is None else f"{value:.3f} s"

        row(
            "freeze: SIGSTOP at",
            f"{freeze['at_s']:.1f} s",
            f"pid {freeze['pid']} ({freeze['worker_id']}), "
            f"{freeze['leases_at_stop']} task(s) leased",
        )
        row("freeze: until workers_lost += 1", secs(freeze["detect_counter_s"]))
        row(
            "freeze: until its session left",
            secs(freeze["detect_session_s"]),
            "its tasks are requeued here",
        )
        if freeze["reconnect_s"] is not None:
            row(
                "freeze: SIGCONT to reconnect",
                secs(freeze["reconnect_s"]),
                f"as {freeze['reconnected_as']}",
            )
        elif freeze["exit_code"] is not None:
            row("freeze: after SIGCONT", f"exit {freeze['exit_code']}")
        else:
            row("freeze: after SIGCONT", "?", freeze["note"])
    row("coordinator log warnings", report.coordinator_log_warnings)
    row("wall time", f"{report.wall_s:.1f} s", "capped by --duration" if report.capped else "")
    print("-" * 78)
    if report.problems:
        print("problems:")
        for problem in report.problems:
            print("  " + problem.replace("\n", "\n  "))
    print(f"result: {'PASS' if report.passed else 'FAIL'}")


# -- main --------------------------------------------------------------------------------------


def parse_pair(text: str) -> tuple[float, float]:
    try:
        low, high = (float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected MIN,MAX seconds, got {text!r}") from None
    if not 0 < low <= high:
        raise argparse.ArgumentTypeError(f"expected 0 < MIN <= MAX, got {text!r}")
    return low, high


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=10_000, help="tasks in the graph (10,000)")
    parser.add_argument("--workers", type=int, default=4, help="worker processes (4)")
    parser.add_argument(
        "--slots", type=int, default=2, help="tasks at once per worker (--max-tasks; 2)"
    )
    parser.add_argument(
        "--kill-every",
        type=parse_pair,
        default=(1.0, 3.0),
        metavar="MIN,MAX",
        help="seconds between kills, drawn uniformly (default 1,3)",
    )
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: random)")
    parser.add_argument(
        "--duration", type=float, default=600.0, help="stop the run after this many seconds (600)"
    )
    parser.add_argument(
        "--freeze-at",
        type=float,
        default=0.25,
        metavar="FRACTION",
        help="SIGSTOP a worker once this share of the tasks has ended (0.25; 0: no freeze)",
    )
    parser.add_argument("--heartbeat-interval", type=float, default=0.2, help="seconds (0.2)")
    parser.add_argument("--heartbeat-timeout", type=float, default=1.0, help="seconds (1.0)")
    parser.add_argument(
        "--max-lost-attempts",
        type=int,
        default=None,
        help="a task that kills its worker this many times fails (100, or 3 with --poison)",
    )
    parser.add_argument(
        "--poison",
        type=int,
        default=0,
        metavar="N",
        help="N more tasks that end their worker process (os._exit); 0: none",
    )
    parser.add_argument(
        "--connect-timeout", type=float, default=10.0, help="workers' --connect-timeout (10)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the run's logs even on a pass")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the report here")
    args = parser.parse_args(argv)
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(2**31)
    if args.max_lost_attempts is None:
        args.max_lost_attempts = 3 if args.poison else 100
    if args.tasks < 1 or args.workers < 1 or args.slots < 1:
        parser.error("--tasks, --workers and --slots must be at least 1")
    if not 0 <= args.freeze_at < 1:
        parser.error("--freeze-at must be in [0, 1)")
    if args.freeze_at and args.workers < 2:
        parser.error("the freeze phase needs at least 2 workers (or --freeze-at 0)")
    return args


def log_to(path: Path) -> None:
    """The library's warnings (workers dropped, tasks lost) go to ``path``."""
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    logger = logging.getLogger("tgs")
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    logger.propagate = False


def main(argv: list[str] | None = None) -> int:
    given = list(argv if argv is not None else sys.argv[1:])
    if "--kill-coordinator" in given:
        # The coordinator killed too: another harness (a coordinator process with a
        # journal, restarted after each kill); see scripts/chaos_coordinator.py.
        from chaos_coordinator import main as chaos_with_coordinator_kills

        return chaos_with_coordinator_kills([a for a in given if a != "--kill-coordinator"])
    args = parse_args(argv)
    if not WORKER.exists():
        raise SystemExit(f"{WORKER} not found: install the project in this interpreter's venv")
    run_dir = Path(tempfile.mkdtemp(prefix="tgs-chaos-"))
    log_to(run_dir / "coordinator.log")
    rng = random.Random(args.seed)
    graph, shapes = build_graph(args.tasks, args.workers * args.slots, run_dir, rng, args.poison)
    given = list(argv if argv is not None else sys.argv[1:])
    if "--seed" not in given:
        given += ["--seed", str(args.seed)]
    command = " ".join(["python scripts/chaos.py", *given])
    print(
        f"trio-graph-scheduler chaos: {args.tasks:,} tasks, {args.workers} workers x "
        f"{args.slots} slots, a kill every {args.kill_every[0]:g}-{args.kill_every[1]:g} s, "
        f"seed {args.seed}, Python {platform.python_version()}, {os.cpu_count()} CPUs"
    )
    print(f"logs in {run_dir}")
    started = time.monotonic()
    state = trio.run(chaos, args, graph, run_dir)
    wall = time.monotonic() - started
    report = analyse(args, state, shapes, wall, run_dir)
    print_report(report)
    print(f"command: {command}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        figures = {"command": command, **asdict(report)}
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
        print(f"report written to {args.json}")
    if report.passed and not args.keep:
        shutil.rmtree(run_dir, ignore_errors=True)
    else:
        print(f"logs kept in {run_dir}")
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
