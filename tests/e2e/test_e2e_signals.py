"""Stopping and killing real processes mid-graph.

These run ``build_blocking``: tasks that record their start, then run until the test
creates the ``release`` file. A task that ends before that was cut off.
"""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from e2e_procs import Processes

pytestmark = pytest.mark.slow

#: How many tasks build_blocking has (tgs_e2e_graphs.HOLD_TASKS).
HOLD_TASKS = 4


def started_on(events: list[dict[str, Any]], pid: int) -> set[str]:
    return {e["task"] for e in events if e["event"] == "start" and e["pid"] == pid}


@pytest.mark.parametrize(
    ("signum", "exit_status"),
    [
        pytest.param(signal.SIGINT, 128 + signal.SIGINT, id="SIGINT"),
        pytest.param(signal.SIGTERM, 128 + signal.SIGTERM, id="SIGTERM"),
        pytest.param(signal.SIGKILL, -signal.SIGKILL, id="SIGKILL"),
    ],
)
def test_worker_stopped_mid_task_its_tasks_rerun_on_the_other(
    procs: Processes, signum: int, exit_status: int
) -> None:
    # A short heartbeat timeout only bounds how long a lost worker could go unnoticed.
    coordinator = procs.coordinator("build_blocking", "--heartbeat-timeout", "3")
    url = coordinator.wait_listening()
    # Two slots each: the four tasks can only all run with both workers holding two.
    doomed = procs.worker(url, "--max-tasks", "2", "--name", "doomed")
    survivor = procs.worker(url, "--max-tasks", "2", "--name", "survivor")
    events = procs.wait_events(
        lambda events: (
            len(started_on(events, doomed.pid)) == 2 and len(started_on(events, survivor.pid)) == 2
        ),
        "two tasks started on each worker",
    )
    cut_off = started_on(events, doomed.pid)

    doomed.signal(signum)
    # Promptly: its tasks run until release, so it cannot have waited for them.
    assert procs.wait(doomed, timeout=10) == exit_status, procs.logs()
    if signum != signal.SIGKILL:
        assert "handing back 2 unfinished task(s)" in doomed.stderr, procs.logs()
    assert coordinator.running(), procs.logs()

    procs.release("release")
    assert procs.wait(coordinator) == 0, procs.logs()
    assert coordinator.summary() == {"success": HOLD_TASKS}
    assert procs.wait(survivor) == 0, procs.logs()

    events = procs.events()
    ended = {e["task"]: e["pid"] for e in events if e["event"] == "end"}
    # Every task finished, all on the survivor, including the two the doomed worker held.
    assert ended == {f"hold-{i}": survivor.pid for i in range(HOLD_TASKS)}
    assert cut_off <= started_on(events, survivor.pid)
    # A stopped worker handed its tasks back and left; only a killed one was lost.
    stopped = "(doomed) left: stopped, handed back 2 task(s)"
    if signum == signal.SIGKILL:
        assert "dropped: connection lost" in coordinator.stderr, procs.logs()
        assert stopped not in coordinator.stderr, procs.logs()
    else:
        assert stopped in coordinator.stderr, procs.logs()
        assert "dropped" not in coordinator.stderr, procs.logs()
        assert "lost while running" not in coordinator.stderr, procs.logs()


@pytest.mark.parametrize(
    ("signum", "exit_status"),
    [
        pytest.param(signal.SIGINT, 130, id="SIGINT"),
        pytest.param(signal.SIGTERM, 128 + signal.SIGTERM, id="SIGTERM"),
    ],
)
def test_signal_to_coordinator_dismisses_workers_and_exits_128_plus_signum(
    procs: Processes, signum: int, exit_status: int
) -> None:
    coordinator = procs.coordinator("build_blocking")
    worker = procs.worker(coordinator.wait_listening())
    procs.wait_events(
        lambda events: len(started_on(events, worker.pid)) == HOLD_TASKS,
        "every task started on the worker",
    )
    coordinator.signal(signum)
    assert procs.wait(coordinator) == exit_status, procs.logs()
    assert procs.wait(worker) == 0, procs.logs()
    # None ended: the stopped run reports them unfinished (back to "created", so far).
    summary = coordinator.summary()
    assert sum(summary.values()) == HOLD_TASKS, procs.logs()
    assert not set(summary) & {"success", "failed", "precondition_failed"}, procs.logs()
    last_line = coordinator.stdout.splitlines()[-1]
    assert last_line.startswith("tgs-coordinator: stopped: "), procs.logs()
    assert f"{HOLD_TASKS} unfinished" in coordinator.stdout, procs.logs()  # the summary said so
    assert "dismissed by the coordinator: the coordinator was stopped" in worker.stderr
    # The tasks were cut off, not run to their end.
    assert not [e for e in procs.events() if e["event"] == "end"]


def test_worker_whose_coordinator_dies_gives_up_after_connect_timeout(procs: Processes) -> None:
    coordinator = procs.coordinator("build_blocking")
    worker = procs.worker(coordinator.wait_listening(), "--connect-timeout", "1")
    procs.wait_events(
        lambda events: len(started_on(events, worker.pid)) == HOLD_TASKS,
        "every task started on the worker",
    )
    coordinator.kill()
    assert procs.wait(worker) == 1, procs.logs()
    assert "lost the coordinator" in worker.stderr, procs.logs()
    last = worker.stderr_lines()[-1]
    assert last.startswith(
        f"tgs-worker: error: cannot reach the coordinator at {coordinator.url} (tried for 1 s)"
    ), procs.logs()
    assert "Traceback" not in worker.stderr, procs.logs()
