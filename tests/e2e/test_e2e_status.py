"""tgs-status against a live coordinator, with real processes.

The run (``build_status``) is held in place while the test asks: one task running, one
ready behind it in a full loop, one waiting on a condition, one in a loop no connected
worker serves.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
from typing import TYPE_CHECKING

import pytest
from e2e_procs import STATUS, WAIT, start_status_run, status

if TYPE_CHECKING:
    from e2e_procs import Processes

pytestmark = pytest.mark.slow


def test_status_and_why_on_a_live_run(procs: Processes) -> None:
    coordinator, url, uids = start_status_run(procs, "s3cret")

    shown = status(url, "--token", "s3cret")
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout
    assert "1 in_progress" in text
    assert "(solo)" in text
    assert "serves default: 1 running" in text
    lines = {line.split()[0]: line.split()[1:] for line in text.splitlines() if line}
    assert lines["default"] == ["1/1", "1", "1"]  # running/limit, ready, workers
    assert lines["gpu"] == ["0/1", "1", "0"]
    assert f"{uids['hold-0']} hold on worker-1" in text

    answer = json.loads(status(url, "--token", "s3cret", "--json").stdout)
    assert answer["tasks_by_status"] == {"ready_for_execution": 2, "in_progress": 1,
                                         "waiting_for_predecessors": 1}  # fmt: skip
    assert [task["task_uid"] for task in answer["slowest"]] == [uids["hold-0"]]

    def why(task: str) -> str:
        done = status(url, "--token", "s3cret", "--why", uids[task])
        assert done.returncode == 0, done.stderr
        return done.stdout.split("\n\n")[-1]

    explained = {task: why(task) for task in uids}
    print(json.dumps(explained, indent=2))  # shown with -s: the closing note quotes it
    assert "is running (on worker-1 (solo), attempt 1, started " in explained["hold-0"]
    assert "loop default is full: 1 of 1 running" in explained["hold-1"]
    assert "SUCCESS__2" in explained["waiter"]
    assert "0 of 2 succeeded" in explained["waiter"]
    assert "no connected worker serves loop gpu" in explained["on_gpu"]
    # A task's key names it as well as its uid (issue 12), and its label shows the key.
    by_key = status(url, "--token", "s3cret", "--why", "https://example.org/waiter")
    assert by_key.returncode == 0, by_key.stderr
    assert by_key.stdout.split("\n\n")[-1] == explained["waiter"]
    assert f"{uids['waiter']} (work, key 'https://example.org/waiter')" in explained["waiter"]

    for args in ([], ["--json"]):  # a uid the run does not have: an error, exit 1
        unknown = status(url, "--token", "s3cret", "--why", "task-nope", *args)
        assert unknown.returncode == 1, unknown
        assert unknown.stdout == ""
        assert unknown.stderr == (
            "tgs-status: error: no task or condition with uid 'task-nope' in this graph\n"
        )

    refused = status(url, "--token", "wrong")
    assert refused.returncode == 1
    assert refused.stdout == ""
    assert (
        refused.stderr.strip()
        == "tgs-status: error: the coordinator refused the query: wrong token"
    )

    # No worker will ever serve gpu: the run ends only when stopped.
    coordinator.signal(signal.SIGINT)
    assert procs.wait(coordinator) == 128 + signal.SIGINT, procs.logs()


def test_status_of_nothing_listening_says_so_in_one_line(procs: Processes) -> None:
    shown = status("ws://127.0.0.1:9", "--timeout", "2")
    assert shown.returncode == 1
    # What happened, and no "(tried for 2 s)": it failed at once (issue 16).
    assert shown.stderr == (
        "tgs-status: error: cannot reach the coordinator at ws://127.0.0.1:9: connection refused\n"
    )


def test_status_of_a_plain_http_server_says_so_in_one_line() -> None:
    # A web server answering the upgrade with 404: the refusal comes out of
    # trio-websocket's reader task, and must still be one line, not a traceback.
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.settimeout(WAIT)
        url = f"ws://127.0.0.1:{server.getsockname()[1]}"
        query = subprocess.Popen(
            [str(STATUS), url, "--timeout", "5"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        connection, _ = server.accept()
        with connection:
            connection.settimeout(WAIT)
            assert connection.recv(4096).startswith(b"GET / HTTP/1.1\r\n")
            page = b"<html><body><h1>Not Found</h1>\n<p>nothing here</p></body></html>\n"
            connection.sendall(
                b"HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(page), page)
            )
        stdout, stderr = query.communicate(timeout=WAIT)
    assert query.returncode == 1
    assert stdout == ""
    # One line naming what answered, not the raw ConnectionRejected with its page (issue 16).
    assert stderr == f"tgs-status: error: {url} is not a tgs coordinator (HTTP 404 Not Found)\n"
