"""``tgs-status --tasks`` against a live coordinator, through real pipes and a terminal."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import signal
import struct
import subprocess
import termios
from typing import TYPE_CHECKING

import pytest
from e2e_procs import BIN, STATUS, WAIT, start_status_run, status, wait_until

if TYPE_CHECKING:
    from e2e_procs import Processes

pytestmark = pytest.mark.slow


def test_tasks_are_listed_and_filtered_on_a_live_run(procs: Processes) -> None:
    coordinator, url, uids = start_status_run(procs, "s3cret")

    def listed(*args: str) -> list[list[str]]:
        done = status(url, "--token", "s3cret", *args)
        assert done.returncode == 0, done.stderr
        return [line.split() for line in done.stdout.splitlines()]

    every = listed("--tasks")
    # The waiter has a key, so the listing has a key column (blank, and so not split
    # out here, for the tasks without one).
    assert every[0] == ["uid", "key", "function", "status", "runs", "worker", "started", "ended"]
    rows = {row[0]: row for row in every[1:]}
    assert rows[uids["hold-0"]][1:5] == ["hold", "running", "1", "worker-1"]
    assert rows[uids["hold-0"]][6] == "-"  # not ended
    assert rows[uids["hold-1"]][1:3] == ["hold", "ready"]
    assert rows[uids["waiter"]][1:4] == ["https://example.org/waiter", "work", "waiting"]
    assert rows[uids["on_gpu"]][1:5] == ["on_gpu", "ready", "0", "-"]
    assert len(rows) == 4

    assert [row[0] for row in listed("--status", "running")[1:]] == [uids["hold-0"]]
    assert [row[0] for row in listed("--status", "ready", "--function", "hold")[1:]] == [
        uids["hold-1"]
    ]
    assert [row[0] for row in listed("--status", "in_progress,waiting")[1:]] == [
        uids["hold-0"],
        uids["waiter"],
    ]
    first = listed("--limit", "1")
    assert len(first) == 3
    assert " ".join(first[2]) == "... and 3 more tasks matched (--limit 4 shows them)"

    answer = json.loads(status(url, "--token", "s3cret", "--tasks", "--json").stdout)
    assert answer["tasks_matched"] == 4
    entry = next(t for t in answer["tasks"] if t["task_uid"] == uids["hold-0"])
    assert entry["handle"] == "hold"
    assert entry["status"] == "in_progress"
    assert entry["worker"] == "worker-1"
    assert entry["key"] is None
    assert entry["ended_at"] is None
    assert entry["started_at"] > 0

    unknown = status(url, "--token", "s3cret", "--function", "nope")
    assert unknown.returncode == 1
    assert unknown.stdout == ""
    assert unknown.stderr.startswith("tgs-status: error: the graph has no function 'nope'; ")
    assert len(unknown.stderr.splitlines()) == 1

    for bad, said in [
        (["--status", "sleeping"], "unknown task status 'sleeping'"),
        (["--limit", "0"], "--limit must be 1 to 10000"),
    ]:
        refused = status(url, "--token", "s3cret", *bad)
        assert refused.returncode == 2, refused
        assert said in refused.stderr
        assert len(refused.stderr.splitlines()) == 1

    procs.release("release")
    # No worker will ever serve gpu: the run ends only when stopped.
    coordinator.signal(signal.SIGINT)
    assert procs.wait(coordinator) == 128 + signal.SIGINT, procs.logs()


@pytest.fixture
def many(procs: Processes) -> str:
    """A coordinator of 3000 tasks that no worker serves; its URL."""
    procs.add_graph_module("tgs_e2e_listing")
    coordinator = procs.coordinator("tgs_e2e_listing:build_many", raw_spec=True)
    return coordinator.wait_listening()


def test_status_piped_into_head_exits_quietly(procs: Processes, many: str) -> None:
    whole = status(many, "--tasks", "--limit", "3000")
    assert whole.returncode == 0, whole.stderr
    # More than a pipe holds: head's early exit breaks the pipe while tgs-status writes.
    assert len(whole.stdout) > 3 * 65536
    # A real shell pipe; the shell reports tgs-status's own exit status.
    script = f'"{STATUS}" {many} --tasks --limit 3000 | head -1; echo "rc=${{PIPESTATUS[0]}}"'
    piped = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, timeout=WAIT, check=False
    )
    assert piped.stdout.splitlines() == [whole.stdout.splitlines()[0], "rc=0"], piped
    assert piped.stderr == ""  # no BrokenPipeError, no traceback


def test_status_fits_the_terminal_it_writes_to(procs: Processes, many: str) -> None:
    # A real terminal (a pty) 60 columns wide; nothing in the environment says its width.
    main, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 60, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    outputs = {}
    try:
        for what in ("status", "tasks"):
            args = ["--tasks", "--limit", "5"] if what == "tasks" else []
            query = subprocess.Popen(
                [str(STATUS), many, *args], stdout=terminal, stderr=terminal, env=env
            )
            assert query.wait(WAIT) == 0
            outputs[what] = _read_all(main)
    finally:
        os.close(terminal)
        os.close(main)
    for what, text in outputs.items():
        lines = text.replace("\r\n", "\n").splitlines()
        assert lines, what
        assert all(len(line) <= 60 for line in lines), (what, lines)
    tasks = outputs["tasks"].replace("\r\n", "\n").splitlines()
    assert tasks[0].split() == ["uid", "function", "status"]  # the rest did not fit, and went
    assert tasks[1].startswith("task-")
    assert len(tasks[1].split()[0]) == len("task-") + 32  # a uid is never cut
    assert tasks[-1] == "... and 2995 more tasks matched (--limit 3000 shows them)"
    assert outputs["status"].startswith("running for ")
    assert "3000 ready_for_execution" in outputs["status"]


def _read_all(fd: int) -> str:
    """What the terminal shows so far (the program has exited and written it all)."""
    chunks = []
    os.set_blocking(fd, False)
    try:
        while True:
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.set_blocking(fd, True)
    return b"".join(chunks).decode()


def test_the_run_summary_fits_the_terminal_it_is_printed_on(procs: Processes) -> None:
    # The coordinator's stdout is a real terminal 44 columns wide; the summary's table
    # (about 90 wide) is narrowed to it, never wrapped.
    main, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 44, 0, 0))
    env = {k: v for k, v in procs.env().items() if k not in ("COLUMNS", "LINES")}
    errors = procs.log_dir / "coordinator.err"
    try:
        with errors.open("wb") as err:
            coordinator = subprocess.Popen(
                [
                    str(BIN / "tgs-coordinator"),
                    *("tgs_e2e_graphs:build_quick", "--listen", "127.0.0.1:0", "--no-progress"),
                ],
                cwd=procs.graph_dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=terminal,
                stderr=err,
            )
        try:
            url = wait_until(
                lambda: re.search(r"listening on (ws://\S+),", errors.read_text()),
                "the coordinator listening",
            ).group(1)
            procs.worker(url)
            assert coordinator.wait(WAIT) == 0, errors.read_text()
        finally:
            if coordinator.poll() is None:
                coordinator.kill()
                coordinator.wait(WAIT)
        shown = _read_all(main).replace("\r\n", "\n").splitlines()
    finally:
        os.close(terminal)
        os.close(main)
    assert shown[0] == "4 tasks: 4 succeeded, 0 failed, 0 skipped"
    table = shown[1 : shown.index("tgs-coordinator: graph ended: 4 success")]
    # Columns went whole, the least telling first (runs, retries, the durations, then the
    # loop); the outcome stayed, and the names were not cut.
    assert table[0].split() == ["function", "tasks", "ok", "failed", "skipped"]
    assert [row.split()[0] for row in table[1:]] == ["work", "summarise", "total"]
    assert all(len(line) <= 44 for line in shown), shown
