"""The dashboard's web server over in-memory streams: routes, the token, the live updates.

No sockets: each test hands :meth:`Dashboard.handle` one end of a trio in-memory stream
and speaks HTTP/1.1 on the other through an ``h11`` client. The autojump clock makes the
waits (update interval, throttled wrong tokens, send timeouts) instant.
"""

from __future__ import annotations

import json
import ssl
from typing import Any

import h11
import pytest
import trio
import trio.testing
from test_dashboard_state import make_run
from text_graphs import noop

from trio_graph_scheduler import Coordinator, TaskGraph, WorkerLoop
from trio_graph_scheduler.coordinator.config import CoordinatorConfig
from trio_graph_scheduler.coordinator.dashboard.server import (
    COOKIE,
    QUEUE_LIMIT,
    SEND_TIMEOUT,
    Dashboard,
    Subscriber,
)
from trio_graph_scheduler.shared.errors import ConfigError

TOKEN = "a-token-of-twenty-chars"


class Response:
    def __init__(self, head: h11.Response, body: bytes) -> None:
        self.status = head.status_code
        self.headers = {name.decode(): value.decode() for name, value in head.headers}
        self.body = body

    @property
    def text(self) -> str:
        return self.body.decode()

    def json(self) -> Any:
        return json.loads(self.body)


async def request(
    dashboard: Dashboard,
    target: str,
    *,
    method: str = "GET",
    body: bytes = b"",
    cookie: str | None = None,
) -> Response:
    """One request on a fresh connection, answered by ``dashboard.handle``."""
    client, server = trio.testing.memory_stream_pair()
    conn = h11.Connection(h11.CLIENT)
    headers = [("host", "dash"), ("connection", "close")]
    if cookie:
        headers.append(("cookie", cookie))
    if body:
        headers += [("content-length", str(len(body)))]
        headers += [("content-type", "application/x-www-form-urlencoded")]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(dashboard.handle, server)
        data = conn.send(h11.Request(method=method, target=target, headers=headers))
        if body:
            data += conn.send(h11.Data(data=body))
        data += conn.send(h11.EndOfMessage())
        await client.send_all(data)
        head: h11.Response | None = None
        received = b""
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await client.receive_some())
            elif isinstance(event, h11.Response):
                head = event
            elif isinstance(event, h11.Data):
                received += event.data
            elif isinstance(event, h11.EndOfMessage):
                break
    assert head is not None
    return Response(head, received)


@pytest.fixture
async def dashboard() -> Dashboard:
    run, driver, _ = await make_run()
    driver.fail(driver.start())
    return Dashboard(run)


@pytest.fixture
async def locked() -> Dashboard:
    run, _, _ = await make_run()
    return Dashboard(run, token=TOKEN)


async def test_the_page_its_script_and_style_come_from_the_package(dashboard: Dashboard) -> None:
    page = await request(dashboard, "/")
    assert page.status == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '<script src="/app.js"' in page.text
    assert "http" not in page.text.replace('"http://www.w3.org/2000/svg"', "")  # no CDN
    assert "default-src 'self'" in page.headers["content-security-policy"]
    script = await request(dashboard, "/app.js")
    assert script.headers["content-type"].startswith("text/javascript")
    assert "EventSource" in script.text
    assert (await request(dashboard, "/app.css")).status == 200
    assert (await request(dashboard, "/nothing")).status == 404
    assert (await request(dashboard, "/", method="DELETE")).status == 405


async def test_search_and_task_answer_as_json(dashboard: Dashboard) -> None:
    answer = (await request(dashboard, "/api/search?q=f")).json()
    assert len(answer["found"]) == 4
    failed = next(row for row in answer["found"] if row["status"] == "failed")
    task = (await request(dashboard, f"/api/task?uid={failed['uid']}")).json()
    assert task["error"] == "ValueError: boom"
    assert task["why"].startswith(f"{failed['uid']} (f) has run and failed")
    layout = (await request(dashboard, "/api/graph")).json()
    assert layout["n"] == 8


async def test_without_the_token_only_the_login_is_served(locked: Dashboard) -> None:
    for target in ("/", "/app.js", "/app.css", "/anything"):
        answer = await request(locked, target)
        assert answer.status == 401
        assert '<form method="post" action="/login"' in answer.text
        assert "EventSource" not in answer.text
    for target in ("/events", "/api/search?q=f", "/api/graph", "/files/0-report.json"):
        answer = await request(locked, target)
        assert (answer.status, answer.text) == (401, "log in first\n")
    assert (await request(locked, "/", cookie=f"{COOKIE}=guessed")).status == 401


async def test_the_token_in_the_url_sets_a_cookie_and_leaves_the_url(
    locked: Dashboard, autojump_clock: trio.testing.MockClock
) -> None:
    wrong = await request(locked, "/?token=nope")
    assert wrong.status == 401
    assert "That is not the token" in wrong.text
    right = await request(locked, f"/?token={TOKEN}&x=1#search=f")
    assert right.status == 303
    assert right.headers["location"] == "/?x=1"
    cookie = right.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert TOKEN not in cookie
    session = cookie.split(";")[0]
    assert (await request(locked, "/", cookie=session)).status == 200
    assert (await request(locked, "/api/search?q=f", cookie=session)).status == 200


async def test_the_login_form_sets_the_cookie(locked: Dashboard) -> None:
    answer = await request(locked, "/login", method="POST", body=f"token={TOKEN}".encode())
    assert answer.status == 303
    assert answer.headers["location"] == "/"
    session = answer.headers["set-cookie"].split(";")[0]
    assert (await request(locked, "/", cookie=session)).status == 200


def test_a_non_loopback_dashboard_needs_a_token() -> None:
    with pytest.raises(ConfigError, match=r"refusing to serve the dashboard on 0\.0\.0\.0"):
        CoordinatorConfig(dashboard="0.0.0.0:8787")
    with pytest.raises(ConfigError, match="bad --dashboard address"):
        CoordinatorConfig(dashboard="8787")
    CoordinatorConfig(dashboard="0.0.0.0:8787", token=TOKEN)
    CoordinatorConfig(dashboard="127.0.0.1:0")


def test_a_subscriber_that_falls_behind_gets_one_snapshot_instead() -> None:
    subscriber = Subscriber(limit=3)
    assert subscriber.take(lambda: b"full-1") == [b"full-1"]
    for i in range(3):
        subscriber.push(b"delta-%d" % i)
    assert subscriber.take(lambda: b"unused") == [b"delta-0", b"delta-1", b"delta-2"]
    for i in range(100):
        subscriber.push(b"delta-%d" % i)
        assert len(subscriber.queue) <= 3
    assert subscriber.resync
    assert subscriber.take(lambda: b"full-2") == [b"full-2"]
    assert subscriber.take(lambda: b"unused") == []


class EventReader:
    """The JSON of each server-sent event on a stream (skipping the response head)."""

    def __init__(self, stream: trio.abc.ReceiveStream) -> None:
        self.stream = stream
        self.buffer = b""
        self.ready: list[dict[str, Any]] = []

    async def next(self) -> dict[str, Any]:
        while not self.ready:
            chunk = await self.stream.receive_some()
            assert chunk, "the event stream ended"
            self.buffer += chunk
            while b"\n\n" in self.buffer:
                event, self.buffer = self.buffer.split(b"\n\n", 1)
                for line in event.split(b"\n"):
                    if line.startswith(b"data: "):
                        self.ready.append(json.loads(line[len(b"data: ") :]))
        return self.ready.pop(0)


async def test_events_start_full_then_carry_deltas(autojump_clock: trio.testing.MockClock) -> None:
    run, driver, _ = await make_run()
    dashboard = Dashboard(run, interval=0.5)
    client, server = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(dashboard.serve, [])
        nursery.start_soon(dashboard.handle, server)
        await client.send_all(b"GET /events HTTP/1.1\r\nhost: dash\r\n\r\n")
        events = EventReader(client)
        first = await events.next()
        assert first["full"]
        assert first["loops"][0]["ready"] == 4
        driver.start()
        second = await events.next()
        assert "full" not in second
        assert second["loops"][0]["running"] == 1
        assert second["status_changes"] == [[0, "r"]]
        nursery.cancel_scope.cancel()


async def test_a_browser_that_never_reads_never_holds_up_updates(
    autojump_clock: trio.testing.MockClock,
) -> None:
    run, driver, _ = await make_run()
    dashboard = Dashboard(run, interval=0.5)
    # A stream with no buffer: a send waits until the other end reads, which it never does.
    client, server = trio.testing.lockstep_stream_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(dashboard.serve, [])
        nursery.start_soon(dashboard.handle, server)
        await client.send_all(b"GET /events HTTP/1.1\r\nhost: dash\r\n\r\n")
        # It reads the first snapshot, then stalls for good.
        assert (await EventReader(client).next())["full"]
        (subscriber,) = dashboard.subscribers
        versions = []
        running = []
        queue = run.graph.scheduler.loops["default"]
        for _ in range(40):  # 40 updates' time, well under SEND_TIMEOUT
            if queue.ready and queue.running < queue.concurrency:
                running.append(driver.start())  # something changes at every update
            elif running:
                driver.succeed(running.pop())
            await trio.sleep(0.5)
            versions.append(dashboard.state.version)
            assert len(subscriber.queue) <= QUEUE_LIMIT
        assert versions[-1] - versions[0] >= 35  # the publisher kept its pace
        assert subscriber.dropped > 0
        # After SEND_TIMEOUT the stalled browser is let go.
        await trio.sleep(SEND_TIMEOUT)
        assert not dashboard.subscribers
        nursery.cancel_scope.cancel()


async def test_serve_coordinator_serves_the_dashboard_while_it_runs() -> None:
    graph = TaskGraph({"f": noop}, [WorkerLoop("default", 2, None), WorkerLoop("solo", 1, [])])
    for _ in range(4):
        await graph.create_task("f")
    config = CoordinatorConfig(dashboard="127.0.0.1:0", min_workers=1)
    coordinator = Coordinator(graph, config)
    async with trio.open_nursery() as nursery:
        await nursery.start(coordinator.serve)
        dashboard = coordinator.dashboard
        assert dashboard is not None
        assert dashboard.url.startswith("http://127.0.0.1:")
        port = int(dashboard.url.rsplit(":", 1)[1].rstrip("/"))
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            await stream.send_all(b"GET /events HTTP/1.1\r\nhost: dash\r\n\r\n")
            first = await EventReader(stream).next()
        assert first["run"]["started"] is False  # it waits for its one worker
        assert [loop["ready"] for loop in first["loops"]] == [4, 0]
        coordinator.stop()
    assert coordinator.dashboard is None


async def test_with_a_certificate_the_dashboard_is_served_over_https(
    certificates: dict[str, str],
) -> None:
    graph = TaskGraph({"f": noop}, [WorkerLoop("default", 2, None)])
    await graph.create_task("f")
    config = CoordinatorConfig(
        dashboard="127.0.0.1:0", min_workers=1, tls_cert=certificates["cert"],
        tls_key=certificates["key"], token=TOKEN,
    )  # fmt: skip
    coordinator = Coordinator(graph, config)
    async with trio.open_nursery() as nursery:
        await nursery.start(coordinator.serve)
        assert coordinator.dashboard is not None
        url = coordinator.dashboard.url
        assert url.startswith("https://127.0.0.1:")
        port = int(url.rsplit(":", 1)[1].rstrip("/"))
        context = ssl.create_default_context(cafile=certificates["ca"])
        stream = await trio.open_ssl_over_tcp_stream(
            "127.0.0.1", port, ssl_context=context, https_compatible=True
        )
        async with stream:
            await stream.send_all(
                f"GET /?token={TOKEN} HTTP/1.1\r\nhost: dash\r\nconnection: close\r\n\r\n".encode()
            )
            answer = b""
            while chunk := await stream.receive_some():
                answer += chunk
        head = answer.split(b"\r\n\r\n", 1)[0].decode()
        assert head.startswith("HTTP/1.1 303 ")
        assert "; Secure" in head  # the cookie travels over TLS only
        coordinator.stop()
