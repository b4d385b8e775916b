"""How a failed connection is said, in one line (issue 16): what happened, without a wait
that did not happen, and without the HTML page an HTTP server answered with."""

from __future__ import annotations

import socket

import pytest
import trio
import trio_websocket

from trio_graph_scheduler import CoordinatorUnreachableError
from trio_graph_scheduler.status import query_status
from trio_graph_scheduler.worker.connect import describe_failure, rejected_upgrade


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_refused_upgrade_is_said_without_its_body() -> None:
    page = b"<html><body><h1>Not Found</h1>" + b"x" * 5000 + b"</body></html>"
    refused = trio_websocket.ConnectionRejected(404, ((b"content-type", b"text/html"),), page)
    assert rejected_upgrade(refused) == "HTTP 404 Not Found"
    assert describe_failure(refused) == "not a tgs coordinator (HTTP 404 Not Found)"
    odd = trio_websocket.ConnectionRejected(599, (), None)
    assert describe_failure(odd) == "not a tgs coordinator (HTTP 599)"
    assert rejected_upgrade(ConnectionRefusedError(111, "Connection refused")) is None


async def test_a_closed_port_is_connection_refused() -> None:
    # trio's own error says only "all attempts to connect to 127.0.0.1:N failed".
    with pytest.raises(OSError, match="all attempts to connect") as raised:
        await trio.open_tcp_stream("127.0.0.1", closed_port())
    assert describe_failure(raised.value) == "connection refused"


def test_unreachable_claims_a_wait_only_when_there_was_one() -> None:
    once = CoordinatorUnreachableError("ws://h:1", None, "connection refused")
    assert str(once) == "cannot reach the coordinator at ws://h:1: connection refused"
    assert once.seconds is None
    waited = CoordinatorUnreachableError("ws://h:1", 30, "connection refused")
    assert str(waited) == (
        "cannot reach the coordinator at ws://h:1 (tried for 30 s): connection refused"
    )


async def test_a_status_query_to_a_closed_port_says_what_happened() -> None:
    url = f"ws://127.0.0.1:{closed_port()}"
    with pytest.raises(CoordinatorUnreachableError) as raised:
        await query_status(url, time_limit=30)
    assert str(raised.value) == f"cannot reach the coordinator at {url}: connection refused"
