"""Stopping at once on a second signal, and frame limits, with real processes.

The graphs are in ``graphs/tgs_e2e_stop.py``.
"""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from e2e_procs import BIN, WAIT

if TYPE_CHECKING:
    from e2e_procs import Coordinator, Proc, Processes

pytestmark = pytest.mark.slow

MODULE = "tgs_e2e_stop"
SIGNALS = [
    pytest.param(signal.SIGINT, id="SIGINT"),
    pytest.param(signal.SIGTERM, id="SIGTERM"),
]


def start_stubborn(procs: Processes) -> tuple[Coordinator, Proc]:
    """A coordinator and a worker running a task that ignores cancellation: a graceful
    stop of either program waits for it."""
    procs.add_graph_module(MODULE)
    coordinator = procs.coordinator(f"{MODULE}:build_stubborn", raw_spec=True)
    worker = procs.worker(coordinator.wait_listening())
    procs.wait_events(
        lambda events: any(e["task"] == "stubborn" for e in events), "the stubborn task started"
    )
    return coordinator, worker


def assert_stopped_at_once(proc: Proc, prog: str, signum: int) -> None:
    name = signal.Signals(signum).name
    assert proc.stderr_lines()[-1] == f"{prog}: stopped at once by a second {name}"
    assert "Traceback" not in proc.stderr
    assert "ExceptionGroup" not in proc.stderr


@pytest.mark.parametrize("signum", SIGNALS)
def test_second_signal_stops_a_worker_at_once(procs: Processes, signum: int) -> None:
    _, worker = start_stubborn(procs)
    worker.signal(signal.SIGINT)
    # The graceful stop waits for the stubborn task, which never ends by itself.
    worker.wait_for_stderr(r"SIGINT: stopping \(send it again to stop at once\)")
    assert worker.running(), procs.logs()
    worker.signal(signum)
    assert procs.wait(worker) == 128 + signum, procs.logs()
    assert_stopped_at_once(worker, "tgs-worker", signum)


@pytest.mark.parametrize("signum", SIGNALS)
def test_second_signal_stops_the_coordinator_at_once(procs: Processes, signum: int) -> None:
    coordinator, _ = start_stubborn(procs)
    coordinator.signal(signal.SIGTERM)
    # It dismisses the worker, which cannot leave while the stubborn task runs: the
    # coordinator waits for it (for a few seconds) when the second signal comes.
    coordinator.wait_for_stderr(r"SIGTERM: stopping \(send it again to stop at once\)")
    coordinator.signal(signum)
    assert procs.wait(coordinator) == 128 + signum, procs.logs()
    assert_stopped_at_once(coordinator, "tgs-coordinator", signum)


@pytest.mark.parametrize("signum", SIGNALS)
def test_signal_while_the_graph_is_built_stops_with_one_line(procs: Processes, signum: int) -> None:
    procs.add_graph_module(MODULE)
    coordinator = procs.coordinator(f"{MODULE}:build_slowly", raw_spec=True)
    procs.wait_events(
        lambda events: any(e["task"] == "builder" for e in events), "the builder started"
    )
    coordinator.signal(signum)
    assert procs.wait(coordinator) == 128 + signum, procs.logs()
    assert "Traceback" not in coordinator.stderr, procs.logs()
    last = coordinator.stderr_lines()[-1]
    assert last == "tgs-coordinator: stopped while building the graph", procs.logs()


def test_worker_with_a_smaller_value_limit_fails_only_the_task_too_large_for_it(
    procs: Processes,
) -> None:
    # Issue 10: a value over the worker's frame limit goes as a stream; one over its
    # value limit fails its task (it used to be one over its frame limit).
    procs.add_graph_module(MODULE)
    coordinator = procs.coordinator(f"{MODULE}:build_sizes", raw_spec=True)
    worker = procs.worker(
        coordinator.wait_listening(), "--max-frame-bytes", "65536", "--max-value-bytes", "65536"
    )
    assert procs.wait(coordinator) == 1, procs.logs()  # a task failed
    assert procs.wait(worker) == 0, procs.logs()
    assert coordinator.summary() == {"success": 4, "failed": 1}
    assert "task task-big cannot be sent to a worker" in coordinator.stderr, procs.logs()
    output = coordinator.stdout + coordinator.stderr
    assert "more than the peer takes in (65,536 bytes, --max-value-bytes)" in output, procs.logs()
    # The worker was never dropped, nor did it crash: one connection, no protocol error.
    assert "dropped" not in coordinator.stderr, procs.logs()
    assert "lost the coordinator" not in worker.stderr, procs.logs()
    assert "Traceback" not in worker.stderr + coordinator.stderr, procs.logs()


def test_create_task_over_the_limit_on_a_worker_fails_cleanly(procs: Processes) -> None:
    procs.add_graph_module(MODULE)
    report = procs.root / "report.json"
    # Issue 10: 20 MiB arguments are over a value limit of 1 MiB (no longer over a frame).
    coordinator = procs.coordinator(
        f"{MODULE}:build_spawn_big",
        "--report",
        str(report),
        "--max-value-bytes",
        str(2**20),
        raw_spec=True,
    )
    worker = procs.worker(coordinator.wait_listening())
    assert procs.wait(coordinator) == 1, procs.logs()
    assert procs.wait(worker) == 0, procs.logs()
    # The awaited call raised in its task (which returned the error); the unawaited one
    # failed its task; the task beside them ran; nothing was created.
    assert coordinator.summary() == {"success": 2, "failed": 1}, procs.logs()
    outcomes = {e["task"]: e["outcome"] for e in procs.events() if e["event"] == "end"}
    assert outcomes["awaited"].startswith("refused: ValueTooLargeError: the arguments of the new")
    assert outcomes["unawaited"] == "asked"
    tasks = {task["uid"]: task for task in json.loads(report.read_text())["tasks"]}
    assert tasks["task-unawaited"]["status"] == "failed", tasks
    assert "a graph call by this task failed" in tasks["task-unawaited"]["error"]
    assert "too large to send to the coordinator" in tasks["task-unawaited"]["error"]
    assert tasks["task-small"]["status"] == "success"
    assert "Traceback" not in worker.stderr, procs.logs()


# -- tokens from a file ----------------------------------------------------------------


def test_token_file_on_all_three_programs_keeps_the_token_off_the_command_line(
    procs: Processes,
) -> None:
    token = "a-token-read-from-a-file-0123456789"
    path = procs.root / "token"
    path.write_text(token + "\n")
    coordinator = procs.coordinator("build_blocking", "--token-file", str(path), listen="0.0.0.0:0")
    url = coordinator.wait_listening().replace("0.0.0.0", "127.0.0.1")
    worker = procs.worker(url, "--token-file", str(path))
    coordinator.wait_joined(1)
    for proc in (coordinator, worker):
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes()
        assert token.encode() not in cmdline
    # The same file lets tgs-status in; a wrong token does not.
    asked = subprocess.run(
        [str(BIN / "tgs-status"), url, "--token-file", str(path)],
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=False,
    )
    assert asked.returncode == 0, asked.stderr
    wrong = procs.worker(url, "--token", "not-the-token-at-all")
    assert procs.wait(wrong) == 1, procs.logs()
    assert "wrong token" in wrong.stderr
    coordinator.signal(signal.SIGTERM)
    assert procs.wait(coordinator) == 128 + signal.SIGTERM, procs.logs()
    assert procs.wait(worker) == 0, procs.logs()


def test_a_short_token_beyond_loopback_is_bad_usage(procs: Processes) -> None:
    path = procs.root / "token"
    path.write_text("short\n")
    coordinator = procs.coordinator("build_blocking", "--token-file", str(path), listen="0.0.0.0:0")
    assert procs.wait(coordinator) == 2, procs.logs()
    (line,) = coordinator.stderr_lines()
    assert line.startswith(
        "tgs-coordinator: error: refusing to listen on 0.0.0.0 with a token of 5 characters"
    )
