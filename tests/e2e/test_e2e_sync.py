"""Sync tasks and blocked event loops with real processes on loopback.

The graphs come from ``graphs/tgs_e2e_sync.py``; their tasks block until the test
creates ``release``, so nothing here depends on how fast this machine is.
"""

from __future__ import annotations

import json
import re
import signal
import time
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from e2e_procs import Coordinator, Processes

pytestmark = pytest.mark.slow

SYNC = "tgs_e2e_sync"


def start_coordinator(procs: Processes, builder: str, *args: str) -> Coordinator:
    procs.add_graph_module(SYNC)
    # A long heartbeat timeout: nothing here may pass for a worker dropped as silent.
    return procs.coordinator(f"{SYNC}:{builder}", "--heartbeat-timeout", "60", *args, raw_spec=True)


def starts(events: list[dict[str, Any]], task: str) -> list[int]:
    """The pids that started ``task``, in order."""
    return [e["pid"] for e in events if e["event"] == "start" and e["task"] == task]


def uids(procs: Processes) -> dict[str, str]:
    result: dict[str, str] = json.loads((procs.out_dir / "uids.json").read_text())
    return result


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_to_a_worker_running_a_sync_task_hands_it_back_at_once(
    procs: Processes, signum: int
) -> None:
    coordinator = start_coordinator(procs, "build_held")
    url = coordinator.wait_listening()
    doomed = procs.worker(url, "--name", "doomed")
    procs.wait_events(lambda ev: starts(ev, "held") == [doomed.pid], "held started on doomed")
    survivor = procs.worker(url, "--name", "survivor")
    coordinator.wait_joined(2)

    signalled = time.monotonic()
    doomed.signal(signum)
    # At once: its thread is blocked until release, and the coordinator would wait 60 s
    # for a silent worker.
    assert procs.wait(doomed, timeout=15) == 128 + signum, procs.logs()
    exited = time.monotonic() - signalled
    assert "handing back 1 unfinished task(s)" in doomed.stderr, procs.logs()
    procs.wait_events(
        lambda ev: starts(ev, "held") == [doomed.pid, survivor.pid], "held started on survivor"
    )
    procs.release("release")
    assert procs.wait(coordinator) == 0, procs.logs()
    assert procs.wait(survivor) == 0, procs.logs()
    assert coordinator.summary() == {"success": 1}, procs.logs()
    # Handed back, never lost: no lost task, and the run counted once.
    assert not re.search(r"lost with \d+ task", coordinator.stderr), procs.logs()
    assert "dropped: silent" not in coordinator.stderr, procs.logs()
    name = signal.Signals(signum).name
    print(f"\nworker running a sync task: {name} to exit {exited:.2f} s (seen by polling)")


def test_an_async_task_that_blocks_its_workers_loop_is_named(procs: Processes) -> None:
    coordinator = start_coordinator(procs, "build_blocker")
    url = coordinator.wait_listening()
    worker = procs.worker(url, "--blocked-loop-warning", "0.5")
    (warning,) = worker.wait_for_stderr(
        r"the event loop has been blocked for [\d.]+ s by task (task-\S+) \(blocks_its_loop\)"
    )
    uid = uids(procs)["blocker"]
    assert warning.group(1) == uid, procs.logs()
    procs.release("release")
    worker.wait_for_stderr(rf"the event loop runs again after [\d.]+ s blocked by task {uid}")
    # Once the loop ran again, the worker told the coordinator, which logs it.
    coordinator.wait_for_stderr(
        rf"worker worker-1 \(.*\): its event loop was blocked for [\d.]+ s by task {uid} "
        r"\(blocks_its_loop\)"
    )
    assert procs.wait(coordinator) == 0, procs.logs()
    assert procs.wait(worker) == 0, procs.logs()
    assert coordinator.summary() == {"success": 1}, procs.logs()


def test_a_block_that_cost_the_connection_is_reported_on_the_next_one(procs: Processes) -> None:
    coordinator = start_coordinator(
        procs, "build_blocker", "--heartbeat-interval", "0.2", "--heartbeat-timeout", "1"
    )
    url = coordinator.wait_listening()
    worker = procs.worker(url, "--blocked-loop-warning", "0.5", "--connect-timeout", "20")
    worker.wait_for_stderr(r"the event loop has been blocked for [\d.]+ s by task task-")
    uid = uids(procs)["blocker"]
    # Silent while blocked: dropped (its task runs again, on its next connection).
    coordinator.wait_for_stderr(r"worker worker-1 dropped: silent")
    procs.release("release")
    (report,) = coordinator.wait_for_stderr(
        r"worker worker-2 \(.*\): its event loop was blocked for ([\d.]+) s by task "
        rf"{uid} \(blocks_its_loop\)"
    )
    # At least the warning's threshold (the watchdog measures from its last probe).
    assert float(report.group(1)) >= 0.5, procs.logs()
    assert procs.wait(coordinator) == 0, procs.logs()
    assert procs.wait(worker) == 0, procs.logs()
    assert coordinator.summary() == {"success": 1}, procs.logs()


def test_worker_refuses_a_negative_blocked_loop_warning(procs: Processes) -> None:
    worker = procs.worker("ws://127.0.0.1:1", "--blocked-loop-warning", "-1")
    assert procs.wait(worker) == 2, procs.logs()
    (line,) = worker.stderr_lines()
    assert line.startswith("tgs-worker: error: --blocked-loop-warning must be 0 or more"), line
