"""The dashboard's web server: HTTP/1.1 through ``h11`` on trio streams.

``h11`` parses and writes HTTP (nothing here does), and this module routes: the page, its
script and style, ``/events`` (server-sent events: the live updates), ``/api/graph``,
``/api/search``, ``/api/task`` and the files the run wrote. One publisher task updates the
:class:`~.state.DashboardState` every :data:`UPDATE_INTERVAL` seconds while a browser
watches (never while none does) and hands each browser's :class:`Subscriber` the delta.

A slow or stalled browser never slows the run: the publisher only appends to each
subscriber's queue, which holds at most :data:`QUEUE_LIMIT` deltas; past that the queue
is emptied and the browser gets one full snapshot when it reads again. A browser that
takes longer than :data:`SEND_TIMEOUT` to take one message is disconnected (its page
reconnects by itself).

With a token (the run's, which a non-loopback address requires), every request needs the
session cookie; without it, the answer is the login form and nothing else. The form, or
``?token=`` on any page's URL, sets the cookie (HttpOnly, SameSite=Strict) and redirects
to the same address without the token, so the token never stays in the address bar.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import secrets
import time
from collections import deque
from http.cookies import CookieError, SimpleCookie
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qs, urlencode, urlsplit

import h11
import trio

from ...shared.errors import ConfigError
from ..listeners import CappedListener
from ..throttle import FailedHandshakes
from .state import DashboardState, graph_layout, search, task_details

if TYPE_CHECKING:
    import ssl
    from collections.abc import Callable, Sequence

    from .state import RunView

logger = logging.getLogger("tgs.coordinator")

#: Seconds between two updates sent to browsers: a few a second, whatever the run's size.
UPDATE_INTERVAL: Final = 0.5
#: The most of the coordinator's time updates may take: past it, they come less often.
#: An update costs about 1 us per task (and more while many tasks end): a graph of 3,000
#: tasks updates twice a second, one of 10,000 about once a second, one of 100,000 every
#: ten seconds or so.
CPU_SHARE: Final = 0.01
#: Deltas a browser may have waiting; past that it gets one full snapshot instead.
QUEUE_LIMIT: Final = 8
#: Seconds a browser may take to take one message before it is disconnected.
SEND_TIMEOUT: Final = 30.0
#: Seconds between two keep-alive comments on an idle event stream (finds closed tabs).
KEEPALIVE: Final = 15.0
#: Seconds a connection may sit without sending a whole request.
IDLE_TIMEOUT: Final = 30.0
#: Connections served at once.
MAX_CONNECTIONS: Final = 64
#: The largest request head and body accepted (the login form is the only body).
MAX_HEAD: Final = 16 * 1024
MAX_BODY: Final = 4 * 1024
#: The session cookie's name.
COOKIE: Final = "tgs_dashboard"

_STATIC: Final = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/app.css": ("app.css", "text/css; charset=utf-8"),
}
_SECURITY_HEADERS: Final = [
    (b"cache-control", b"no-store"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (
        b"content-security-policy",
        b"default-src 'self'; style-src 'self'; script-src 'self'; frame-ancestors 'none'",
    ),
]


class Subscriber:
    """One browser's live updates: at most ``limit`` deltas waiting, or one full snapshot.

    The publisher calls :meth:`push` (never blocks); the browser's connection task waits on
    :attr:`wake` and calls :meth:`take`.
    """

    def __init__(self, limit: int = QUEUE_LIMIT) -> None:
        self.limit = limit
        self.queue: deque[bytes] = deque()
        #: True when the browser must be sent a full snapshot next (it starts so).
        self.resync = True
        #: Deltas dropped because the browser fell behind.
        self.dropped = 0
        self.wake = trio.Event()

    def push(self, message: bytes) -> None:
        """Queue one delta; past the limit, drop them all for a snapshot later."""
        if not self.resync:
            if len(self.queue) >= self.limit:
                self.dropped += len(self.queue) + 1
                self.queue.clear()
                self.resync = True
            else:
                self.queue.append(message)
        self.wake.set()

    def take(self, full: Callable[[], bytes]) -> list[bytes]:
        """What to send now: the full snapshot if it fell behind, else the waiting deltas."""
        self.wake = trio.Event()
        if self.resync:
            self.resync = False
            self.queue.clear()
            return [full()]
        messages = list(self.queue)
        self.queue.clear()
        return messages


def event_message(data: dict[str, Any]) -> bytes:
    """One server-sent event carrying ``data`` as JSON (which has no newline)."""
    return b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"


class Dashboard:
    """Serves the dashboard of one run. Start :meth:`serve` in a nursery.

    Args:
        run: the run to show (the coordinator).
        host, port: where to listen (port 0 lets the OS choose).
        token: the run's token; when set, every request needs it (through the cookie the
            login sets).
        tls: serve ``https://`` with this context instead of ``http://``.
        interval: seconds between two updates.

    Attributes:
        url: ``http://host:port/`` once listening.
        state: what the page shows.
        subscribers: the browsers watching now.
        files: the files the run wrote, by the name they are served under.
        update_seconds: seconds spent making and queueing updates so far.
    """

    def __init__(
        self,
        run: RunView,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        tls: ssl.SSLContext | None = None,
        interval: float = UPDATE_INTERVAL,
    ) -> None:
        self.run = run
        self.host = host
        self.port = port
        self.token = token or None
        self.tls = tls
        self.interval = interval
        self.url = ""
        self.state = DashboardState(run)
        self.subscribers: set[Subscriber] = set()
        self.files: dict[str, Path] = {}
        #: Seconds spent making and queueing updates so far (what the dashboard costs).
        self.update_seconds = 0.0
        # The cookie's value: a secret of this process, not the token itself.
        self._session = secrets.token_urlsafe(32)
        self._watched = trio.Event()
        self._failed_logins = FailedHandshakes()

    def add_file(self, label: str, path: str | Path) -> None:
        """Link ``path`` (written by the run) from the page, as ``label``."""
        path = Path(path)
        name = f"{len(self.files)}-{path.name}"
        self.files[name] = path.resolve()
        self.state.set_outputs((f"{label}: {p.name}", f"/files/{n}") for n, p in self.files.items())

    async def listen(self) -> Sequence[trio.abc.Listener[trio.abc.Stream]]:
        """Open the dashboard's listeners; set :attr:`url` and log it.

        Raises:
            ConfigError: the address cannot be listened on (in use, not local, ...).
        """
        listeners: Sequence[trio.abc.Listener[trio.abc.Stream]]
        try:
            if self.tls is None:
                listeners = await trio.open_tcp_listeners(self.port, host=self.host)
            else:
                listeners = await trio.open_ssl_over_tcp_listeners(
                    self.port, self.tls, host=self.host, https_compatible=True
                )
        except OSError as exc:
            where = f"{self.host}:{self.port}"
            message = f"cannot serve the dashboard on {where}: {exc.strerror or exc}"
            raise ConfigError(message) from exc
        self.url = _url_of(listeners[0], self.tls is not None)
        login = " (it asks for the run's token)" if self.token else ""
        logger.info("dashboard on %s%s", self.url, login)
        return listeners

    async def serve(self, listeners: Sequence[trio.abc.Listener[trio.abc.Stream]]) -> None:
        """Serve on ``listeners`` (from :meth:`listen`, or in-memory ones) until cancelled."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._publish)
            for listener in listeners:
                capped = CappedListener(listener, MAX_CONNECTIONS)
                nursery.start_soon(trio.serve_listeners, self.handle, [capped])

    async def _publish(self) -> None:
        while True:
            if not self.subscribers:
                self._watched = trio.Event()
                await self._watched.wait()
            began = time.perf_counter()
            message = event_message(self.state.update(time.time()))
            for subscriber in self.subscribers:
                subscriber.push(message)
            cost = time.perf_counter() - began
            self.update_seconds += cost
            # An update scans every task: on a big graph, update less often rather than
            # take more than CPU_SHARE of the coordinator's time.
            await trio.sleep(max(self.interval, cost / CPU_SHARE - cost))

    def full_message(self) -> bytes:
        """The full snapshot, as one event."""
        return event_message(self.state.full())

    # -- one connection ---------------------------------------------------------------

    async def handle(self, stream: trio.abc.Stream) -> None:
        """Serve one connection's requests, one after another, until it closes."""
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        peer = _peer(stream)
        try:
            while True:
                request = None
                with trio.move_on_after(IDLE_TIMEOUT):
                    request = await _read_request(stream, conn)
                if request is None:  # closed, or silent for too long
                    return
                await self._answer(stream, conn, peer, *request)
                if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    return
                conn.start_next_cycle()
        except h11.RemoteProtocolError as exc:
            with contextlib.suppress(h11.LocalProtocolError, *_GONE):
                await _send(stream, conn, exc.error_status_hint, b"bad request\n", "text/plain")
        except _GONE:
            pass
        finally:
            await trio.aclose_forcefully(stream)

    async def _answer(
        self,
        stream: trio.abc.Stream,
        conn: h11.Connection,
        peer: str,
        request: h11.Request,
        body: bytes,
    ) -> None:
        target = urlsplit(request.target.decode("ascii", "replace"))
        path = target.path
        query = parse_qs(target.query)
        method = request.method
        if self.token is not None and not self._has_session(request):
            await self._login(stream, conn, peer, method, path, query, body)
            return
        if method != b"GET":
            await _send(stream, conn, 405, b"method not allowed\n", "text/plain")
        elif path in _STATIC:
            name, content_type = _STATIC[path]
            await _send(stream, conn, 200, _asset(name), content_type)
        elif path == "/events":
            await self._events(stream, conn)
        elif path == "/api/graph":
            await _send_json(stream, conn, graph_layout(self.run.graph))
        elif path == "/api/search":
            await _send_json(stream, conn, search(self.run, _first(query, "q")))
        elif path == "/api/task":
            await _send_json(stream, conn, task_details(self.run, _first(query, "uid")))
        elif path.startswith("/files/") and path[len("/files/") :] in self.files:
            await self._file(stream, conn, self.files[path[len("/files/") :]])
        else:
            await _send(stream, conn, 404, b"not found\n", "text/plain")

    def _has_session(self, request: h11.Request) -> bool:
        for name, value in request.headers:
            if name == b"cookie":
                try:
                    cookie = SimpleCookie(value.decode("latin-1"))
                except CookieError:
                    continue
                morsel = cookie.get(COOKIE)
                if morsel is not None and hmac.compare_digest(
                    morsel.value.encode(), self._session.encode()
                ):
                    return True
        return False

    async def _login(
        self,
        stream: trio.abc.Stream,
        conn: h11.Connection,
        peer: str,
        method: bytes,
        path: str,
        query: dict[str, list[str]],
        body: bytes,
    ) -> None:
        """Without the session cookie: the login form, or the cookie for the right token."""
        offered: str | None = None
        back = "/"
        if method == b"POST" and path == "/login":
            offered = _first(parse_qs(body.decode("utf-8", "replace")), "token")
        elif method == b"GET" and "token" in query:
            offered = _first(query, "token")
            rest = {name: values for name, values in query.items() if name != "token"}
            back = path + (f"?{urlencode(rest, doseq=True)}" if rest else "")
        if offered is not None:
            assert self.token is not None
            if hmac.compare_digest(offered.encode(), self.token.encode()):
                self._failed_logins.succeeded(peer)
                cookie = f"{COOKIE}={self._session}; Path=/; HttpOnly; SameSite=Strict"
                if self.tls is not None:
                    cookie += "; Secure"
                headers = [(b"location", back.encode()), (b"set-cookie", cookie.encode())]
                await _send(stream, conn, 303, b"", "text/plain", headers)
                return
            # A wrong token waits longer each time from the same address (the token
            # itself is never logged).
            logger.warning("dashboard: wrong token from %s", peer)
            await trio.sleep(self._failed_logins.failed(peer, time.monotonic()))
        if path.startswith(("/api/", "/events", "/files/")):
            await _send(stream, conn, 401, b"log in first\n", "text/plain")
            return
        await _send(stream, conn, 401, _login_page(offered is not None), "text/html; charset=utf-8")

    async def _events(self, stream: trio.abc.Stream, conn: h11.Connection) -> None:
        headers = [
            (b"content-type", b"text/event-stream"),
            *_SECURITY_HEADERS,
        ]
        subscriber = Subscriber()
        self.subscribers.add(subscriber)
        self._watched.set()
        try:
            with trio.fail_after(SEND_TIMEOUT):
                await stream.send_all(conn.send(h11.Response(status_code=200, headers=headers)))
            while True:
                with trio.move_on_after(KEEPALIVE):
                    await subscriber.wake.wait()
                messages = subscriber.take(self.full_message) or [b": keep-alive\n\n"]
                with trio.fail_after(SEND_TIMEOUT):
                    await stream.send_all(conn.send(h11.Data(data=b"".join(messages))))
        except trio.TooSlowError:
            logger.info("dashboard: a browser took longer than %g s to read; dropped", SEND_TIMEOUT)
        finally:
            self.subscribers.discard(subscriber)

    async def _file(self, stream: trio.abc.Stream, conn: h11.Connection, path: Path) -> None:
        try:
            data = await trio.Path(path).read_bytes()
        except OSError:
            await _send(stream, conn, 404, b"not written\n", "text/plain")
            return
        kind = "application/json" if path.suffix == ".json" else "text/html; charset=utf-8"
        # The pictures run their own (inlined) scripts: they get a policy of their own.
        policy = [(b"content-security-policy", b"frame-ancestors 'none'")]
        await _send(stream, conn, 200, data, kind, policy)


_GONE: Final = (trio.BrokenResourceError, trio.ClosedResourceError)


async def _read_request(
    stream: trio.abc.Stream, conn: h11.Connection
) -> tuple[h11.Request, bytes] | None:
    """The next request and its body, or None when the peer closed the connection."""
    request: h11.Request | None = None
    body = bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            data = await stream.receive_some(MAX_HEAD)
            conn.receive_data(bytes(data))  # b"" says the peer closed its side
        elif isinstance(event, h11.Request):
            request = event
        elif isinstance(event, h11.Data):
            body += event.data
            if len(body) > MAX_BODY:
                raise h11.RemoteProtocolError("request body too large", error_status_hint=413)
        elif isinstance(event, h11.EndOfMessage):
            assert request is not None
            return request, bytes(body)
        elif isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
            return None


async def _send(
    stream: trio.abc.Stream,
    conn: h11.Connection,
    status: int,
    body: bytes,
    content_type: str,
    headers: Sequence[tuple[bytes, bytes]] = (),
) -> None:
    names = {name for name, _ in headers}
    all_headers = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(body)).encode()),
        *headers,
        *(header for header in _SECURITY_HEADERS if header[0] not in names),
    ]
    data = conn.send(h11.Response(status_code=status, headers=all_headers))
    data += conn.send(h11.Data(data=body)) or b""
    data += conn.send(h11.EndOfMessage()) or b""
    await stream.send_all(data or b"")


async def _send_json(stream: trio.abc.Stream, conn: h11.Connection, value: Any) -> None:
    body = json.dumps(value, separators=(",", ":")).encode()
    await _send(stream, conn, 200, body, "application/json")


def _first(query: dict[str, list[str]], name: str) -> str:
    values = query.get(name)
    return values[0] if values else ""


def _asset(name: str) -> bytes:
    return resources.files(__package__).joinpath("static", name).read_bytes()


def _login_page(wrong: bool) -> bytes:
    note = '<p class="wrong">That is not the token.</p>' if wrong else ""
    page = _asset("login.html").decode()
    return page.replace("<!--note-->", note).encode()


def _peer(stream: trio.abc.Stream) -> str:
    inner = getattr(stream, "_stream", stream)  # inside the CappedListener's wrapper
    inner = getattr(inner, "transport_stream", inner)  # inside TLS
    socket = getattr(inner, "socket", None)
    if socket is None:
        return "unknown"
    try:
        return str(socket.getpeername()[0])
    except OSError:
        return "unknown"


def _url_of(listener: trio.abc.Listener[trio.abc.Stream], tls: bool) -> str:
    if isinstance(listener, trio.SSLListener):
        listener = listener.transport_listener
    socket = getattr(listener, "socket", None)
    scheme = "https" if tls else "http"
    if socket is None:
        return f"{scheme}://in-memory/"
    address, port = socket.getsockname()[:2]
    return f"{scheme}://{address if ':' not in address else f'[{address}]'}:{port}/"
