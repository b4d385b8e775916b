"""The round trip under tgs's own: a small message echoed between two processes, over a
raw trio TCP stream and over trio-websocket (a benchmark, not a test).

One process sends 100 bytes and waits for them to come back; a second process (started
by this one) echoes them. The median over the run is the floor the transport puts under
tgs's idle round trip (``scripts/bench_distributed.py --cli``'s chain), which is two such
messages plus the work at both ends. The CPU each process spends per round trip (from
``/proc/PID/schedstat``) is what one message in and one out cost on each end, waking
from idle for each; the last run keeps 10 messages on their way, so that neither end
waits idle between two, as a busy coordinator does not:

    python scripts/bench_echo.py [--messages 2000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from typing import Final

import trio
import trio_websocket

HOST: Final = "127.0.0.1"
PAYLOAD: Final = b"x" * 100
#: Messages on their way at once in the busy run.
IN_FLIGHT: Final = 10


async def tcp_echo(port: int) -> None:
    async def echo(stream: trio.SocketStream) -> None:
        async for data in stream:
            await stream.send_all(data)

    await trio.serve_tcp(echo, port, host=HOST)


async def ws_echo(port: int) -> None:
    async def handler(request: trio_websocket.WebSocketRequest) -> None:
        ws = await request.accept()
        try:
            while True:
                await ws.send_message(await ws.get_message())
        except trio_websocket.ConnectionClosed:
            return  # the client is done

    await trio_websocket.serve_websocket(handler, HOST, port, ssl_context=None)


async def tcp_client(port: int, messages: int) -> list[float]:
    gaps = []
    stream = await trio.open_tcp_stream(HOST, port)
    async with stream:
        for _ in range(messages):
            start = time.perf_counter()
            await stream.send_all(PAYLOAD)
            received = 0
            while received < len(PAYLOAD):
                received += len(await stream.receive_some(65536))
            gaps.append(time.perf_counter() - start)
    return gaps


async def ws_client(port: int, messages: int) -> list[float]:
    gaps = []
    async with trio_websocket.open_websocket(HOST, port, "/", use_ssl=False) as ws:
        for _ in range(messages):
            start = time.perf_counter()
            await ws.send_message(PAYLOAD)
            await ws.get_message()
            gaps.append(time.perf_counter() - start)
    return gaps


async def ws_client_busy(port: int, messages: int) -> list[float]:
    """The echo kept busy: ``IN_FLIGHT`` messages on their way at all times, so that
    neither end waits idle between two (as a coordinator serving many workers does not);
    its gaps are each message's round trip, queueing included."""
    gaps = []
    async with trio_websocket.open_websocket(HOST, port, "/", use_ssl=False) as ws:
        sent_at = []
        for _ in range(IN_FLIGHT):
            sent_at.append(time.perf_counter())
            await ws.send_message(PAYLOAD)
        for index in range(messages):
            await ws.get_message()
            gaps.append(time.perf_counter() - sent_at[index])
            if index + IN_FLIGHT < messages:
                sent_at.append(time.perf_counter())
                await ws.send_message(PAYLOAD)
    return gaps


async def when_listening(port: int) -> None:
    """Wait (up to 30 s) until the echo process accepts connections."""
    with trio.fail_after(30):
        while True:
            try:
                stream = await trio.open_tcp_stream(HOST, port)
            except OSError:
                await trio.sleep(0.05)
            else:
                await stream.aclose()
                return


def cpu_ns(pid: int) -> int:
    """Nanoseconds ``pid`` has run on a CPU so far (the scheduler's own count)."""
    with open(f"/proc/{pid}/schedstat") as stat:
        return int(stat.read().split()[0])


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2000, help="round trips (2,000)")
    parser.add_argument("--serve", choices=("tcp", "ws"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        trio.run(tcp_echo if args.serve == "tcp" else ws_echo, args.port)
        return
    runs = {
        "raw trio TCP stream": ("tcp", tcp_client),
        "trio-websocket": ("ws", ws_client),
        f"ws, {IN_FLIGHT} in flight": ("ws", ws_client_busy),
    }
    for name, (kind, client) in runs.items():
        port = free_port()
        argv = [sys.executable, __file__, "--serve", kind, "--port", str(port)]
        server = subprocess.Popen(argv)
        try:
            trio.run(when_listening, port)
            before = cpu_ns(os.getpid()), cpu_ns(server.pid)
            gaps = trio.run(client, port, args.messages)
            after = cpu_ns(os.getpid()), cpu_ns(server.pid)
        finally:
            server.kill()
            server.wait()
        median = statistics.median(gaps) * 1e6
        spent = (b - a for a, b in zip(before, after, strict=True))
        client_us, echo_us = (ns / 1e3 / args.messages for ns in spent)
        print(
            f"{name:>20}: median round trip {median:6.0f} us over {args.messages:,}; "
            f"CPU per round trip: client {client_us:.1f} us, echo {echo_us:.1f} us"
        )


if __name__ == "__main__":
    main()
