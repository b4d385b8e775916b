"""Bad command-line input and unreachable coordinators: one clear line, a non-zero exit."""

from __future__ import annotations

import socket
import struct
from typing import TYPE_CHECKING

import pytest
from e2e_procs import WAIT, free_port

if TYPE_CHECKING:
    from e2e_procs import Proc, Processes

pytestmark = pytest.mark.slow


def assert_one_error_line(proc: Proc, prog: str, *fragments: str) -> str:
    """stderr is exactly one ``PROG: error: ...`` line holding every fragment."""
    lines = proc.stderr_lines()
    assert len(lines) == 1, proc.describe()
    (line,) = lines
    assert line.startswith(f"{prog}: error: "), proc.describe()
    for fragment in fragments:
        assert fragment in line, proc.describe()
    assert proc.stdout == "", proc.describe()
    return line


@pytest.mark.parametrize(
    ("spec", "listen", "fragments"),
    [
        pytest.param(
            "no_such_module:build",
            "127.0.0.1:0",
            ["cannot import module 'no_such_module'", "No module named"],
            id="unknown-module",
        ),
        pytest.param(
            "tgs_e2e_graphs", "127.0.0.1:0", ["'tgs_e2e_graphs'", "MODULE:FUNC"], id="no-colon"
        ),
        pytest.param(
            "tgs_e2e_graphs:",
            "127.0.0.1:0",
            ["'tgs_e2e_graphs:'", "MODULE:FUNC"],
            id="no-function",
        ),
        pytest.param(
            "tgs_e2e_graphs:no_such_builder",
            "127.0.0.1:0",
            ["'no_such_builder'"],
            id="unknown-function",
        ),
        pytest.param(
            "tgs_e2e_graphs:build_not_async",
            "127.0.0.1:0",
            ["build_not_async", "async function"],
            id="not-async",
        ),
        pytest.param(
            "tgs_e2e_graphs:build_quick",
            "127.0.0.1",
            ["bad --listen address '127.0.0.1'", "HOST:PORT"],
            id="listen-no-port",
        ),
        pytest.param(
            "tgs_e2e_graphs:build_quick",
            "localhost:http",
            ["bad --listen address 'localhost:http'"],
            id="listen-port-not-a-number",
        ),
        pytest.param(
            "tgs_e2e_graphs:build_quick", "127.0.0.1:70000", ["70000"], id="listen-port-too-big"
        ),
        pytest.param(
            "tgs_e2e_graphs:build_quick",
            "0.0.0.0:0",
            ["refusing to listen on 0.0.0.0 without a token", "TGS_TOKEN"],
            id="non-loopback-without-token",
        ),
        pytest.param(
            "tgs_e2e_graphs:build_quick",
            "[::]:0",
            ["refusing to listen on :: without a token"],
            id="non-loopback-v6-without-token",
        ),
    ],
)
def test_coordinator_bad_usage_exits_2_with_one_line(
    procs: Processes, spec: str, listen: str, fragments: list[str]
) -> None:
    coordinator = procs.coordinator(spec, listen=listen, raw_spec=True)
    assert procs.wait(coordinator) == 2, procs.logs()
    assert_one_error_line(coordinator, "tgs-coordinator", *fragments)


def test_coordinator_builder_that_raises_exits_1_with_its_traceback(procs: Processes) -> None:
    # Issue 12 changed this on purpose: the error line used to be all of stderr, and a
    # bare repr named no file; the builder's traceback (file, line, source) follows it.
    coordinator = procs.coordinator("build_raises")
    assert procs.wait(coordinator) == 1, procs.logs()
    first, *rest = coordinator.stderr_lines()
    assert first == (
        "tgs-coordinator: error: the graph builder raised RuntimeError: the builder failed "
        "on purpose"
    ), procs.logs()
    source = procs.graph_dir / "tgs_e2e_graphs.py"
    line = (
        source.read_text()
        .splitlines()
        .index('    raise RuntimeError("the builder failed on purpose")')
    )
    assert rest == [
        "Traceback (most recent call last):",
        f'  File "{source}", line {line + 1}, in build_raises',
        '    raise RuntimeError("the builder failed on purpose")',
        "RuntimeError: the builder failed on purpose",
    ], procs.logs()


def test_coordinator_port_in_use_exits_1_with_one_line(procs: Processes) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        coordinator = procs.coordinator("build_quick", listen=f"127.0.0.1:{port}")
        assert procs.wait(coordinator) == 1, procs.logs()
    assert_one_error_line(
        coordinator, "tgs-coordinator", f"cannot listen on 127.0.0.1:{port}", "in use"
    )


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        pytest.param(
            ["--connect", "http://127.0.0.1:1"],
            ["bad coordinator URL 'http://127.0.0.1:1'", "ws://HOST:PORT"],
            id="not-ws",
        ),
        pytest.param(
            ["--connect", "ws://127.0.0.1"], ["bad coordinator URL"], id="url-without-port"
        ),
        pytest.param(
            ["--connect", "ws://127.0.0.1:1", "--connect-timeout", "0"],
            ["--connect-timeout must be positive"],
            id="zero-connect-timeout",
        ),
        pytest.param(
            ["--connect", "ws://127.0.0.1:1", "--max-tasks", "-1"],
            ["--max-tasks must be at least 1; leave it out for no cap"],
            id="negative-max-tasks",
        ),
        pytest.param(
            # 0 once meant "no cap", silently (issue 16).
            ["--connect", "ws://127.0.0.1:1", "--max-tasks", "0"],
            ["--max-tasks must be at least 1; leave it out for no cap"],
            id="zero-max-tasks",
        ),
        pytest.param(
            ["--connect", "ws://127.0.0.1:1", "--max-frame-bytes", "1000"],
            ["--max-frame-bytes must be at least 65536"],
            id="tiny-frames",
        ),
    ],
)
def test_worker_bad_usage_exits_2_with_one_line(
    procs: Processes, args: list[str], fragments: list[str]
) -> None:
    worker = procs.worker(None, *args)
    assert procs.wait(worker) == 2, procs.logs()
    assert_one_error_line(worker, "tgs-worker", *fragments)


def test_worker_with_nothing_listening_gives_up_after_connect_timeout(procs: Processes) -> None:
    url = f"ws://127.0.0.1:{free_port()}"
    worker = procs.worker(url, "--connect-timeout", "1")
    assert procs.wait(worker) == 1, procs.logs()
    # Issue 16: it says that it waits (once: "still no coordinator" comes after 10 s),
    # then one error line.
    waiting, error = worker.stderr_lines()
    assert waiting.endswith(f"waiting for the coordinator at {url} (trying for 1 s)"), waiting
    assert error == (
        f"tgs-worker: error: cannot reach the coordinator at {url} (tried for 1 s): "
        "connection refused"
    ), worker.describe()
    assert worker.stdout == "", worker.describe()


def test_worker_pointed_at_a_plain_http_server_fails_with_one_line(procs: Processes) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.settimeout(WAIT)
        url = f"ws://127.0.0.1:{server.getsockname()[1]}"
        worker = procs.worker(url, "--connect-timeout", "2")
        connection, _ = server.accept()
        with connection:
            connection.settimeout(WAIT)
            assert connection.recv(4096).startswith(b"GET / HTTP/1.1\r\n")
            connection.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
        # Retrying or giving up at once are both fine; a traceback is not.
        assert procs.wait(worker) == 1, procs.logs()
    assert "Traceback" not in worker.stderr, worker.describe()
    last = worker.stderr_lines()[-1]
    assert last.startswith(f"tgs-worker: error: cannot reach the coordinator at {url} ")
    # The refusal in words, not the raw ConnectionRejected with its body (issue 16).
    assert last.endswith(": not a tgs coordinator (HTTP 404 Not Found)"), worker.describe()


def test_worker_retries_after_a_connection_closed_during_the_handshake(
    procs: Processes,
) -> None:
    with socket.socket() as stray:
        stray.bind(("127.0.0.1", 0))
        stray.listen()
        stray.settimeout(WAIT)
        port = stray.getsockname()[1]
        worker = procs.worker(f"ws://127.0.0.1:{port}", "--connect-timeout", "5")
        connection, _ = stray.accept()
        with connection:
            connection.settimeout(WAIT)
            assert connection.recv(4096).startswith(b"GET / HTTP/1.1\r\n")
            # Reset, not closed: a closed connection would hold the port (FIN_WAIT2)
            # for as long as the worker keeps its end open, and the coordinator needs it.
            connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        # Cut off without an answer, as by a coordinator killed at that moment.
    coordinator = procs.coordinator("build_quick", listen=f"127.0.0.1:{port}")
    coordinator.wait_listening()
    assert procs.wait(worker) == 0, procs.logs()
    assert procs.wait(coordinator) == 0, procs.logs()
