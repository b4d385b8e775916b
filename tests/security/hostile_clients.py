"""Hostile and broken clients for the security tests, and a run that must survive them.

:func:`serving` serves a small graph whose first task (``gate``) holds the run open until
the test opens the gate: a good :class:`Worker` joins and takes it, the test throws its
hostile connection at the same coordinator, and leaving the block opens the gate, after
which the good worker must finish the graph. :func:`assert_survived` then checks the run
and the coordinator's counters.

The hostile side talks three ways: raw bytes on a stream (not even HTTP), raw HTTP, and a
real WebSocket client (:func:`websocket`) that sends whatever frames it is given. Streams
are in-memory (:class:`MemoryListener`) or loopback TCP; this module closes every stream
it opens itself, since trio-websocket 0.12 would leak a client socket whose server
closed first.

Task functions here are user code: the coordinator ships them to the worker by value.
"""

from __future__ import annotations

import importlib
import os
import pickle
import sys
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import trio
import trio_websocket

from trio_graph_scheduler import (
    Coordinator,
    CoordinatorConfig,
    TaskGraph,
    Worker,
    WorkerConfig,
    WorkerLoop,
)
from trio_graph_scheduler.protocol import (
    PROTOCOL_VERSION,
    Hello,
    Message,
    Welcome,
    decode_frame,
    encode_frame,
)
from trio_graph_scheduler.testing import MemoryListener

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable
    from types import ModuleType

    #: Opens a connection to a coordinator: :meth:`Run.open_stream`, or :func:`tcp_opener`.
    Opener = Callable[[], Awaitable[trio.abc.Stream]]

#: The bound on every test of this folder, in seconds (virtual under the autojump clock).
TIME_LIMIT: Final = 10
#: How many ``double`` tasks wait behind the gate.
DOUBLES: Final = 4
#: What the good worker calls itself, and what a hostile WebSocket client says it is.
GOOD: Final = "good"
HOSTILE: Final = "hostile"
#: The largest message our own WebSocket client accepts (the coordinator's frames are small).
CLIENT_MAX_MESSAGE: Final = 2**24
#: A WebSocket upgrade request, for the HTTP-level tests.
UPGRADE_REQUEST: Final = (
    b"GET / HTTP/1.1\r\n"
    b"Host: 127.0.0.1\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n"
    b"\r\n"
)


# -- the graph -----------------------------------------------------------------------


async def gate(path: str, **_: Any) -> str:
    """Hold the run open until the test creates ``path``."""
    # The test opens the gate from outside the graph: there is no event to wait on. A
    # thread for the check would let the autojump clock run ahead: os.path it is.
    while not os.path.exists(path):  # noqa: ASYNC110, ASYNC240
        await trio.sleep(0.05)
    return "open"


async def double(x: int, **_: Any) -> int:
    return 2 * x


def gated_graph(gate_path: str, doubles: int = DOUBLES) -> TaskGraph:
    """``gate``, then ``doubles`` tasks ``double(i)`` that wait on it."""
    graph = TaskGraph({"gate": gate, "double": double}, [WorkerLoop("default", 2)])
    opened = graph.create_task_nowait("gate", ((gate_path,), {}))
    for i in range(doubles):
        graph.create_task_nowait("double", ((i,), {}), [opened.uid])
    return graph


def doubles_graph(doubles: int = DOUBLES) -> TaskGraph:
    """``doubles`` tasks ``double(i)``, all ready at once."""
    graph = TaskGraph({"double": double}, [WorkerLoop("default", 2)])
    for i in range(doubles):
        graph.create_task_nowait("double", ((i,), {}))
    return graph


# -- the run -------------------------------------------------------------------------


@dataclass
class Run:
    """A coordinator serving a graph, the nursery its workers run in, and its gate."""

    coordinator: Coordinator
    graph: TaskGraph
    listener: MemoryListener | None
    nursery: trio.Nursery
    gate: Path

    async def open_stream(self) -> trio.abc.Stream:
        """A new connection to the coordinator: in memory, or loopback TCP."""
        if self.listener is not None:
            return await self.listener.connect()
        return await tcp_opener(self.coordinator.url)()

    def good_worker(self, **settings: Any) -> Worker:
        """A well-behaved worker for this coordinator (not started)."""
        config = WorkerConfig(
            url=self.coordinator.url,
            name=settings.pop("name", GOOD),
            token=self.coordinator.config.token or "",
            **settings,
        )
        opener = self.listener.connect if self.listener is not None else None
        return Worker(config, open_stream=opener)

    async def join_good_worker(self) -> Worker:
        """Start a good worker and wait until the coordinator has welcomed it."""
        worker = self.good_worker()
        await self.nursery.start(worker.run)
        return worker

    def open_gate(self) -> None:
        self.gate.touch()

    def session_names(self) -> set[str]:
        """The names of the workers the coordinator is serving now."""
        return {session.worker_name for session in self.coordinator.sessions}


@asynccontextmanager
async def serving(
    tmp_path: Path,
    config: CoordinatorConfig | None = None,
    *,
    in_memory: bool = True,
    graph: TaskGraph | None = None,
    join_good: bool = True,
) -> AsyncIterator[Run]:
    """Serve a gated graph (or ``graph``), with a good worker joined unless ``join_good``
    is false; leaving the block opens the gate and waits for the run to end."""
    gate_path = tmp_path / "gate-open"
    if graph is None:
        graph = gated_graph(str(gate_path))
    coordinator = Coordinator(graph, config or CoordinatorConfig())
    listener = MemoryListener() if in_memory else None
    async with trio.open_nursery() as nursery:
        await nursery.start(coordinator.serve, [listener] if listener is not None else None)
        run = Run(coordinator, graph, listener, nursery, gate_path)
        if join_good:
            await run.join_good_worker()
        yield run
        run.open_gate()


def assert_survived(
    run: Run,
    *,
    joined: int = 1,
    lost: int = 0,
    tasks_lost: int = 0,
    results_dropped: int = 0,
) -> None:
    """The run ended with every task succeeded, and the counters say what happened."""
    summary = run.coordinator.summary
    assert summary is not None, "the run has not ended"
    assert summary.succeeded, summary
    results = sorted(
        node.task_result for node in run.graph.nodes.values() if node.task_handle == "double"
    )
    assert results == [2 * i for i in range(DOUBLES)]
    counters = run.coordinator.statistics()
    assert (
        counters.workers_joined,
        counters.workers_lost,
        counters.tasks_lost,
        counters.results_dropped,
    ) == (joined, lost, tasks_lost, results_dropped), counters
    assert not run.coordinator.sessions  # everyone left at the end


# -- hostile clients -----------------------------------------------------------------


@dataclass
class Closed:
    """How the coordinator ended a WebSocket connection, and what it sent before."""

    code: int
    reason: str
    messages: list[Message]


def tcp_opener(url: str) -> Opener:
    """Opens loopback TCP connections to the coordinator at ``ws://host:port``."""
    host, port = url.removeprefix("ws://").rsplit(":", 1)

    async def open_stream() -> trio.abc.Stream:
        return await trio.open_tcp_stream(host, int(port))

    return open_stream


@asynccontextmanager
async def websocket(opener: Opener) -> AsyncIterator[trio_websocket.WebSocketConnection]:
    """A raw WebSocket client connected to a coordinator (upgrade done, no hello yet)."""
    stream = await opener()
    async with stream, trio.open_nursery() as nursery:
        ws = await trio_websocket.wrap_client_stream(
            nursery,
            stream,  # type: ignore[arg-type]  # any trio Stream works
            "127.0.0.1",
            "/",
            max_message_size=CLIENT_MAX_MESSAGE,
        )
        try:
            yield ws
        finally:
            nursery.cancel_scope.cancel()


async def send(ws: trio_websocket.WebSocketConnection, data: bytes | str) -> None:
    """Send one message; the coordinator may have closed the connection already."""
    with suppress(trio_websocket.ConnectionClosed):
        await ws.send_message(data)


async def closed(ws: trio_websocket.WebSocketConnection) -> Closed:
    """Read until the coordinator closes the connection; return the code and reason."""
    messages: list[Message] = []
    while True:
        try:
            data = await ws.get_message()
        except trio_websocket.ConnectionClosed as exc:
            reason = exc.reason
            assert reason is not None
            return Closed(reason.code, reason.reason or "", messages)
        messages.extend(decode_frame(data, allow_pickle=False))


def hello(
    token: str = "", *, version: int = PROTOCOL_VERSION, name: str = HOSTILE, **fields: Any
) -> Hello:
    return Hello(
        version=version,
        token=token,
        worker_name=name,
        loops=fields.pop("loops", []),
        max_tasks=fields.pop("max_tasks", 0),
    )


async def join(ws: trio_websocket.WebSocketConnection, token: str = "") -> Welcome:
    """Say a proper hello and return the welcome."""
    await ws.send_message(encode_frame([hello(token)]))
    (answer,) = decode_frame(await ws.get_message(), allow_pickle=False)
    assert isinstance(answer, Welcome), answer
    return answer


async def read_until_closed(stream: trio.abc.Stream) -> bytes:
    """Everything the peer sends until it closes its end (or breaks the connection)."""
    received = bytearray()
    while True:
        try:
            data = await stream.receive_some()
        except trio.BrokenResourceError:
            break
        if not data:
            break
        received += data
    return bytes(received)


async def read_http_response(stream: trio.abc.Stream) -> bytes:
    """One HTTP response (head and ``content-length`` body); the stream stays open."""
    received = bytearray()
    while b"\r\n\r\n" not in received:
        data = await stream.receive_some()
        assert data, f"closed before a whole response head: {bytes(received)!r}"
        received += data
    head, _, body = bytes(received).partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        data = await stream.receive_some()
        assert data, "closed before the whole response body"
        body += data
    return head + b"\r\n\r\n" + body


async def raw_exchange(opener: Opener, payload: bytes) -> bytes:
    """Open a stream, send ``payload``, and return all the coordinator answers."""
    stream = await opener()
    async with stream:
        with suppress(trio.BrokenResourceError):  # closed mid-send: read what it said
            await stream.send_all(payload)
        return await read_until_closed(stream)


# -- a pickle that leaves a trace ----------------------------------------------------


class Tripwire:
    """Unpickling this creates the file it names: proof that a pickle was loaded."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (Path.touch, (self.path,))


def tripwire_pickle(path: Path) -> bytes:
    """Pickle bytes whose loading creates ``path`` (and loads nothing of this module)."""
    return pickle.dumps(Tripwire(path), protocol=pickle.HIGHEST_PROTOCOL)


# -- raw WebSocket frames ------------------------------------------------------------


async def upgraded_stream(opener: Opener) -> trio.abc.Stream:
    """A connection on which the WebSocket upgrade is done by hand; frames are ours to send."""
    stream = await opener()
    await stream.send_all(UPGRADE_REQUEST)
    answer = await read_http_response(stream)
    assert answer.startswith(b"HTTP/1.1 101 "), answer
    return stream


def binary_frame_header(length: int) -> bytes:
    """The header of one final, masked binary frame of ``length`` bytes.

    The mask is all zero bits, so the payload goes on the wire as it is.
    """
    return b"\x82\xff" + length.to_bytes(8, "big") + b"\x00\x00\x00\x00"


def close_code(data: bytes) -> int | None:
    """The code of the close frame a coordinator's bytes start with, if they do."""
    if len(data) < 4 or data[0] != 0x88:
        return None
    return int.from_bytes(data[2:4], "big")


# -- real processes ------------------------------------------------------------------


def e2e_procs() -> ModuleType:
    """The end-to-end tests' process helpers (``tests/e2e/e2e_procs.py``), imported as is."""
    e2e_dir = str(Path(__file__).resolve().parent.parent / "e2e")
    if e2e_dir not in sys.path:
        sys.path.append(e2e_dir)
    return importlib.import_module("e2e_procs")
