"""Faults with real processes on loopback: killed, frozen and restarted workers, tasks lost
with their worker too often, cancellation of a remote task, TLS, timeouts and retries.

The graphs come from ``graphs/tgs_e2e_faults.py``. Its tasks write one ``start`` line per
*execution* (with a run id unique to it) and an ``end`` line when they run to their end,
so the tests can tell executions (at least once) from recorded results (exactly once):
``report`` tasks write what the coordinator recorded for their predecessors.
"""

from __future__ import annotations

import json
import re
import signal
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pytest
import trio
from e2e_procs import WAIT, await_until, import_graph_module

from trio_graph_scheduler import Coordinator, CoordinatorConfig, TaskStatus

if TYPE_CHECKING:
    from e2e_procs import Coordinator as CoordinatorProc
    from e2e_procs import Proc, Processes

pytestmark = pytest.mark.slow

#: The graph module of these tests, and what its builders create (kept in step by hand).
FAULTS = "tgs_e2e_faults"
KILL_STEPS = 8
FREEZE_TASKS = 4
LOST_PLAIN = 3
FLAKY_ATTEMPTS = 3
#: What tgs_e2e_graphs.build_blocking creates.
HOLD_TASKS = 4

Events = list[dict[str, Any]]


def runs(events: Events, event: str, prefix: str = "", pid: int | None = None) -> Events:
    """The ``event`` records of tasks named ``prefix...``, on process ``pid`` if given."""
    return [
        e
        for e in events
        if e["event"] == event and e["task"].startswith(prefix) and (pid is None or e["pid"] == pid)
    ]


def tasks_started_on(events: Events, pid: int, prefix: str = "") -> set[str]:
    return {e["task"] for e in runs(events, "start", prefix, pid)}


def read_report(procs: Processes, label: str) -> list[dict[str, Any]]:
    """What a ``report`` task wrote: its predecessors as the coordinator recorded them."""
    report: list[dict[str, Any]] = json.loads((procs.out_dir / f"report-{label}.json").read_text())
    return report


def start_faults_coordinator(procs: Processes, builder: str, *args: str) -> CoordinatorProc:
    """A coordinator running a builder of ``tgs_e2e_faults``."""
    procs.add_graph_module(FAULTS)
    return procs.coordinator(f"{FAULTS}:{builder}", *args, raw_spec=True)


def log_time(line: str) -> float:
    """The ``time.time()`` of a log line (``2024-01-02 03:04:05,678 tgs... ``)."""
    stamp = " ".join(line.split(" ", 2)[:2])
    return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()


def test_sigkill_mid_task_reruns_it_and_records_exactly_one_result_per_task(
    procs: Processes,
) -> None:
    coordinator = start_faults_coordinator(procs, "build_kill")
    url = coordinator.wait_listening()
    # Two slots each: the worker that joins first takes the first two steps, the other
    # the next two, and neither can take more while those run.
    doomed = procs.worker(url, "--max-tasks", "2", "--name", "doomed")
    events = procs.wait_events(
        lambda ev: len(tasks_started_on(ev, doomed.pid)) == 2, "two steps started on doomed"
    )
    finished_on_doomed = tasks_started_on(events, doomed.pid)
    survivor = procs.worker(url, "--max-tasks", "2", "--name", "survivor")
    procs.wait_events(
        lambda ev: len(tasks_started_on(ev, survivor.pid)) == 2, "two steps started on survivor"
    )
    # Let doomed finish its two (their results are recorded) and take two more.
    for task in finished_on_doomed:
        procs.release(task.replace("step-", "release-"))
    events = procs.wait_events(
        lambda ev: (
            len(tasks_started_on(ev, doomed.pid)) == 4
            and {e["task"] for e in runs(ev, "end", pid=doomed.pid)} == finished_on_doomed
        ),
        "doomed finished two steps and started two more",
    )
    cut_off = tasks_started_on(events, doomed.pid) - finished_on_doomed
    assert len(cut_off) == 2

    doomed.signal(signal.SIGKILL)
    assert procs.wait(doomed) == -signal.SIGKILL, procs.logs()
    coordinator.wait_for_stderr(r"worker worker-1 \(\S+\) lost while running 2 tasks: ")
    procs.release("release")
    assert procs.wait(coordinator) == 0, procs.logs()
    assert procs.wait(survivor) == 0, procs.logs()
    assert coordinator.summary() == {"success": KILL_STEPS + 1}, procs.logs()  # + the report

    events = procs.events()
    started = runs(events, "start", "step-")
    completed = {e["run"]: e for e in runs(events, "end", "step-")}
    report = read_report(procs, "kill")
    # Exactly one recorded result per task, each from a run that completed.
    assert len(report) == KILL_STEPS
    assert len({entry["uid"] for entry in report}) == KILL_STEPS
    assert sorted(entry["result"]["task"] for entry in report) == list(range(KILL_STEPS))
    for entry in report:
        assert entry["status"] == "success", entry
        task = f"step-{entry['result']['task']}"
        run = entry["result"]["run"]
        assert run in completed, (entry, "the result is not from a completed run")
        assert completed[run]["task"] == task, entry
        assert completed[run]["pid"] == entry["result"]["pid"], entry
        # The two finished on doomed were recorded from doomed; the rest from survivor.
        expected_pid = doomed.pid if task in finished_on_doomed else survivor.pid
        assert entry["result"]["pid"] == expected_pid, entry
    # At least once: the two cut off ran twice (the first run never ended), others once.
    executions = {f"step-{i}": 0 for i in range(KILL_STEPS)}
    for e in started:
        executions[e["task"]] += 1
    assert executions == {task: 2 if task in cut_off else 1 for task in executions}
    assert len(started) == KILL_STEPS + 2
    unfinished = {e["run"] for e in started} - set(completed)
    assert {e["task"] for e in started if e["run"] in unfinished} == cut_off
    assert all(e["pid"] == doomed.pid for e in started if e["run"] in unfinished)


def test_frozen_worker_is_dropped_and_its_late_results_are_never_recorded(
    procs: Processes,
) -> None:
    coordinator = start_faults_coordinator(
        procs, "build_freeze", "--heartbeat-interval", "0.2", "--heartbeat-timeout", "1"
    )
    url = coordinator.wait_listening()
    # frozen and survivor serve only the held tasks' loop; the tail (which keeps the graph
    # open until the test says) runs on a worker of its own, so that survivor is idle
    # once its own two have ended: frozen's two, lost together, are suspects, which run
    # only alone on an idle worker.
    frozen = procs.worker(
        url, "--max-tasks", "2", "--loops", "default", "--name", "frozen", "--connect-timeout", "10"
    )
    procs.wait_events(
        lambda ev: len(tasks_started_on(ev, frozen.pid, "held-")) == 2, "two held on frozen"
    )
    survivor = procs.worker(url, "--max-tasks", "2", "--loops", "default", "--name", "survivor")
    tailer = procs.worker(url, "--loops", "tail", "--name", "tailer")
    events = procs.wait_events(
        lambda ev: (
            len(tasks_started_on(ev, survivor.pid)) == 2 and tasks_started_on(ev, tailer.pid)
        ),
        "two held on survivor and the tail on tailer",
    )
    on_frozen = tasks_started_on(events, frozen.pid)

    stopped_at = time.time()
    frozen.signal(signal.SIGSTOP)
    try:
        procs.release("release")
        (dropped,) = coordinator.wait_for_stderr(r"(?m)^.* worker worker-1 dropped: .*$")
        noticed_at = time.time()
        coordinator.wait_for_stderr(r"worker worker-1 \(\S+\) lost while running 2 tasks: ")
        # frozen's tasks ran again, to their end, on survivor.
        events = procs.wait_events(
            lambda ev: (
                len({e["task"] for e in runs(ev, "end", "held-", survivor.pid)}) == FREEZE_TASKS
            ),
            "every held task ended on survivor",
        )
        rerun_at = min(
            e["t"] for e in runs(events, "start", "held-", survivor.pid) if e["task"] in on_frozen
        )
    finally:
        frozen.signal(signal.SIGCONT)
    # Thawed, frozen's two runs go on to their end and their worker has results to send,
    # for leases the coordinator took back when it dropped the connection.
    procs.wait_events(
        lambda ev: len(runs(ev, "end", "held-", frozen.pid)) == 2, "frozen's late runs ended"
    )
    # It notices it lost the coordinator and reconnects (as a new worker), or gives up.
    frozen.wait_for_stderr(r"lost the coordinator|coordinator was silent")
    coordinator.wait_for_stderr(r"worker worker-4 \(frozen\) joined")
    procs.release("finish")
    assert procs.wait(coordinator) == 0, procs.logs()
    assert procs.wait(survivor) == 0, procs.logs()
    assert procs.wait(tailer) == 0, procs.logs()
    assert procs.wait(frozen) == 0, procs.logs()
    assert coordinator.summary() == {"success": FREEZE_TASKS + 2}, procs.logs()

    assert "silent for 1 s" in dropped.group(0), procs.logs()
    detected = log_time(dropped.group(0)) - stopped_at
    print(
        f"\nfrozen worker: SIGSTOP to 'dropped: silent for 1 s' logged {detected:.2f} s "
        f"(seen by polling after {noticed_at - stopped_at:.2f} s); "
        f"its tasks ran again {rerun_at - stopped_at:.2f} s after SIGSTOP"
    )

    events = procs.events()
    completed = {e["run"]: e for e in runs(events, "end", "held-")}
    late = {e["run"] for e in runs(events, "end", "held-", frozen.pid)}
    report = [entry for entry in read_report(procs, "freeze") if entry["handle"] == "held"]
    assert len(report) == FREEZE_TASKS
    assert sorted(entry["result"]["task"] for entry in report) == list(range(FREEZE_TASKS))
    for entry in report:
        assert entry["status"] == "success", entry
        run = entry["result"]["run"]
        # The run the coordinator counted: survivor's, never a late one from frozen.
        assert run in completed, entry
        assert run not in late, entry
        assert completed[run]["pid"] == survivor.pid == entry["result"]["pid"], entry
    # frozen's late runs really completed (so there were late results to refuse).
    assert {completed[run]["task"] for run in late} == on_frozen


def test_killed_worker_replaced_by_a_new_one_finishes_the_graph(procs: Processes) -> None:
    coordinator = procs.coordinator("build_blocking")
    url = coordinator.wait_listening()
    first = procs.worker(url, "--name", "node-a")
    procs.wait_events(
        lambda ev: len(tasks_started_on(ev, first.pid)) == HOLD_TASKS, "every task on first"
    )
    first.kill()  # SIGKILL
    assert first.popen.returncode == -signal.SIGKILL
    coordinator.wait_for_stderr(rf"worker worker-1 \(\S+\) lost while running {HOLD_TASKS} tasks: ")
    assert coordinator.running(), procs.logs()

    # The same worker restarted: the coordinator knows it as a new one.
    second = procs.worker(url, "--name", "node-a")
    coordinator.wait_for_stderr(r"worker worker-2 \(node-a\) joined")
    # Lost together, the tasks are suspects: second runs them one at a time, so each
    # must be able to end before the next starts.
    procs.release("release")
    assert procs.wait(coordinator) == 0, procs.logs()
    assert procs.wait(second) == 0, procs.logs()
    assert coordinator.summary() == {"success": HOLD_TASKS}

    events = procs.events()
    assert {e["task"]: e["pid"] for e in runs(events, "end")} == {
        f"hold-{i}": second.pid for i in range(HOLD_TASKS)
    }
    assert not runs(events, "end", pid=first.pid)


def test_task_lost_with_its_worker_too_often_fails_saying_so(procs: Processes) -> None:
    coordinator = start_faults_coordinator(procs, "build_lost", "--max-lost-attempts", "2")
    url = coordinator.wait_listening()
    steady = procs.worker(url, "--loops", "default", "--name", "steady")
    # kill_my_worker runs alone in loop "deadly": only workers serving that loop die.
    victims = []
    for n in (1, 2):
        victim = procs.worker(url, "--loops", "deadly", "--name", f"victim{n}")
        assert procs.wait(victim) == -signal.SIGKILL, procs.logs()
        victims.append(victim)
    assert procs.wait(coordinator) == 1, procs.logs()
    assert procs.wait(steady) == 0, procs.logs()
    # The plain tasks and the report succeeded; the task that kills its worker failed.
    assert coordinator.summary() == {"success": LOST_PLAIN + 1, "failed": 1}, procs.logs()

    report = {entry["handle"]: entry for entry in read_report(procs, "lost")}
    failed = report.pop("kill_my_worker")
    assert failed["status"] == "failed", failed
    assert "killed its worker 2 times" in failed["trace"], failed
    assert "(victim2)" in failed["trace"], failed  # the last loss is named
    assert set(report) == {"plain"}
    plain = [e for e in read_report(procs, "lost") if e["handle"] == "plain"]
    assert sorted(e["result"] for e in plain) == [10 * i for i in range(LOST_PLAIN)]
    assert {e["status"] for e in plain} == {"success"}

    events = procs.events()
    # Run once on each victim, never again; the plain tasks ran on steady only.
    assert [e["pid"] for e in runs(events, "start", "kill_my_worker")] == [v.pid for v in victims]
    assert {e["pid"] for e in runs(events, "start", "plain-")} == {steady.pid}
    assert len(runs(events, "start", "plain-")) == LOST_PLAIN


async def test_cancelling_a_running_remote_task_frees_its_slot_only_once_it_stopped(
    procs: Processes,
) -> None:
    faults = import_graph_module(FAULTS)
    graph, uids = faults.cancel_graph(str(procs.out_dir))
    victim = graph.nodes[uids["victim"]]
    next_in_line = graph.nodes[uids["next_in_line"]]
    after_victim = graph.nodes[uids["after_victim"]]
    coordinator = Coordinator(graph, CoordinatorConfig())
    workers: list[Proc] = []
    with trio.fail_after(WAIT):
        async with trio.open_nursery() as nursery:
            await nursery.start(coordinator.serve)
            # Two workers serve loop "solo" (limit 1): the second has a free slot of its
            # own, so only the coordinator's accounting keeps next_in_line waiting.
            workers += [procs.worker(coordinator.url, "--name", f"w{n}") for n in (1, 2)]
            await await_until(
                lambda: coordinator.statistics().workers_joined == 2, "both joined", logs=procs.logs
            )
            started = procs.out_dir / "victim-started"
            await await_until(started.exists, "victim started", logs=procs.logs)
            assert victim.task_status is TaskStatus.IN_PROGRESS
            assert next_in_line.task_status is TaskStatus.READY_FOR_EXECUTION
            cancelled_at = time.time()
            assert graph.cancel_task(victim.uid, "the test says stop")
            # Asked to stop, it runs on until its worker confirms that it has stopped.
            assert victim.task_status is TaskStatus.IN_PROGRESS
        await await_until(lambda: not any(w.running() for w in workers), "both workers exit")

    logs = procs.logs()
    for worker in workers:
        assert worker.popen.returncode == 0, logs
    assert coordinator.summary is not None
    assert not coordinator.summary.succeeded
    assert victim.task_status is TaskStatus.FAILED, logs
    assert victim.exception_trace == "cancelled: the test says stop\n", logs
    assert victim.attempts == 1
    assert after_victim.task_status is TaskStatus.PRECONDITION_FAILED
    assert next_in_line.task_status is TaskStatus.SUCCESS
    assert next_in_line.task_result == "ran"
    counters = coordinator.statistics()
    assert (counters.workers_lost, counters.tasks_lost, counters.results_dropped) == (0, 0, 0)

    events = procs.events()
    (cleanup,) = runs(events, "finally", "victim")
    assert not runs(events, "end", "victim"), "the victim ran to its end: it was not stopped"
    assert not runs(events, "start", "after_victim")
    (second_start,) = runs(events, "start", "next_in_line")
    # The slot was freed only once the victim's finally: had run on its worker: the
    # coordinator handed next_in_line out after that, and it started after that.
    assert cancelled_at <= cleanup["t"] <= victim.ended_at, (cancelled_at, cleanup, victim)
    assert next_in_line.started_at is not None
    assert cleanup["t"] <= next_in_line.started_at <= second_start["t"], (cleanup, second_start)


@pytest.mark.parametrize(
    "max_lost_attempts",
    [
        pytest.param(3, id="losses-to-spare"),
        pytest.param(1, id="last-loss"),
    ],
)
async def test_cancelled_task_whose_worker_dies_before_confirming_ends_cancelled(
    procs: Processes, max_lost_attempts: int
) -> None:
    faults = import_graph_module(FAULTS)
    graph, uids = faults.cancel_graph(str(procs.out_dir))
    victim = graph.nodes[uids["victim"]]
    config = CoordinatorConfig(max_lost_attempts=max_lost_attempts)
    coordinator = Coordinator(graph, config)
    with trio.fail_after(WAIT):
        async with trio.open_nursery() as nursery:
            await nursery.start(coordinator.serve)
            doomed = procs.worker(coordinator.url, "--name", "doomed")
            started = procs.out_dir / "victim-started"
            await await_until(started.exists, "victim started", logs=procs.logs)
            assert graph.cancel_task(victim.uid, "the test says stop")
            # Killed while the victim cleans up, before it could confirm it stopped.
            cleanup = procs.out_dir / "victim-cleanup"
            await await_until(cleanup.exists, "victim cleaning up", logs=procs.logs)
            doomed.kill()
            await await_until(
                lambda: victim.task_status is not TaskStatus.IN_PROGRESS, "victim ended"
            )
            # It was asked to stop and it has stopped (with its worker): cancelled,
            # however many losses it had left.
            assert victim.task_status is TaskStatus.FAILED
            assert victim.exception_trace == "cancelled: the test says stop\n"
            graph.check_invariants()
            # The rest of the graph needs a worker.
            rescuer = procs.worker(coordinator.url, "--name", "rescuer")
        await await_until(lambda: not rescuer.running(), "rescuer exits")
    assert rescuer.popen.returncode == 0, procs.logs()
    assert coordinator.statistics().tasks_lost == 1
    assert graph.nodes[uids["next_in_line"]].task_status is TaskStatus.SUCCESS
    assert graph.nodes[uids["after_victim"]].task_status is TaskStatus.PRECONDITION_FAILED
    assert not runs(procs.events(), "finally", "victim"), "the worker was not killed in time"


async def test_cancel_right_after_a_task_was_handed_out_stops_it(procs: Processes) -> None:
    faults = import_graph_module(FAULTS)
    graph = faults.cancel_race_graph(str(procs.out_dir))
    coordinator = Coordinator(graph, CoordinatorConfig())
    with trio.fail_after(WAIT):
        async with trio.open_nursery() as nursery:
            await nursery.start(coordinator.serve)
            procs.worker(coordinator.url, "--name", "w1")
            # Internal, but exact: the worker's session waits in line for loop default.
            default = graph.scheduler.loops["default"]
            await await_until(
                lambda: default.waiting_claimants == 1,
                "the worker's credit waiting on loop default",
                logs=procs.logs,
            )
            # The worker's credit on "default" is waiting: the new task is handed to it at
            # once, and cancelled in the same step, before its Assign was sent.
            victim = graph.create_task_nowait("victim", ((str(procs.out_dir),), {}))
            assert victim.task_status is TaskStatus.IN_PROGRESS
            assert graph.cancel_task(victim.uid, "changed my mind")
            started = procs.out_dir / "victim-started"
            await await_until(
                lambda: victim.task_status is not TaskStatus.IN_PROGRESS or started.exists(),
                "the cancelled task to end (or start)",
                logs=procs.logs,
            )
            assert not started.exists(), "the task was cancelled before it was sent, yet it ran"
            assert victim.task_status is TaskStatus.FAILED
            assert victim.exception_trace == "cancelled: changed my mind\n"
            graph.check_invariants()
            procs.release("finish")
    assert coordinator.summary is not None
    assert coordinator.summary.tasks_by_status == {"success": 1, "failed": 1}


def test_tls_worker_trusting_the_ca_runs_the_graph_and_another_ca_fails_at_once(
    procs: Processes, certificates: dict[str, str]
) -> None:
    certs = certificates
    coordinator = procs.coordinator(
        "build_quick", "--tls-cert", certs["cert"], "--tls-key", certs["key"]
    )
    url = coordinator.wait_listening()
    assert re.fullmatch(r"wss://127\.0\.0\.1:\d+", url), url

    # A certificate will not become trusted by retrying: it gives up at once, long
    # before its --connect-timeout, in one line.
    stranger = procs.worker(url, "--tls-ca", certs["other_ca"], "--connect-timeout", "60")
    assert procs.wait(stranger, timeout=WAIT) == 1, procs.logs()
    errors = [line for line in stranger.stderr_lines() if "error" in line.lower()]
    assert len(errors) == 1, procs.logs()
    assert errors[0].startswith("tgs-worker: error: "), procs.logs()
    assert "certificate verify failed" in errors[0], procs.logs()
    assert stranger.stderr_lines()[-1] == errors[0], procs.logs()
    assert "Traceback" not in stranger.stderr, procs.logs()
    assert coordinator.running(), procs.logs()

    trusted = procs.worker(url, "--tls-ca", certs["ca"])
    assert procs.wait(coordinator) == 0, procs.logs()
    assert procs.wait(trusted) == 0, procs.logs()
    assert coordinator.summary() == {"success": 4}, procs.logs()
    assert "Traceback" not in coordinator.stderr, procs.logs()


def test_policy_timeout_and_retries_work_across_processes(procs: Processes) -> None:
    coordinator = start_faults_coordinator(procs, "build_policies")
    worker = procs.worker(coordinator.wait_listening())
    assert procs.wait(coordinator) == 1, procs.logs()
    assert procs.wait(worker) == 0, procs.logs()
    assert coordinator.summary() == {"success": 2, "failed": 1}, procs.logs()  # + the report

    report = {entry["handle"]: entry for entry in read_report(procs, "policies")}
    slow, flaky = report["slow"], report["flaky"]
    assert slow["status"] == "failed", slow
    assert "TimeoutError" in slow["trace"], slow
    assert "timeout of 0.5 s" in slow["trace"], slow
    assert flaky["status"] == "success", flaky
    assert flaky["result"] == FLAKY_ATTEMPTS, flaky
    assert flaky["trace"] is None or "flaky on purpose, run 2" in flaky["trace"], flaky

    events = procs.events()
    # slow ran once (no retries by default) and was stopped on its worker, not abandoned.
    assert len(runs(events, "start", "slow")) == 1
    assert len(runs(events, "stopped", "slow")) == 1
    assert len(runs(events, "start", "flaky")) == FLAKY_ATTEMPTS
    assert len((procs.out_dir / "flaky-runs").read_text().splitlines()) == FLAKY_ATTEMPTS
