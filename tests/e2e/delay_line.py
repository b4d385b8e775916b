"""A TCP delay line: forwards every connection to a target, holding each chunk of bytes
for a fixed time in each direction, in order.

This kernel has no ``netem`` (``tc qdisc ... netem delay`` fails), so a worker "further
away" is one that connects through this. It adds latency, not loss, and keeps each
direction's byte order; bandwidth is whatever loopback gives.

Usage::

    python tests/e2e/delay_line.py --listen 127.0.0.1:PORT --to 127.0.0.1:PORT --delay 0.025

It prints ``delay line listening on HOST:PORT`` once it accepts connections.
"""

from __future__ import annotations

import argparse
import math
import sys
from typing import Final

import trio

#: The most bytes read at once from either side.
CHUNK: Final = 65536


async def _carry(source: trio.SocketStream, sink: trio.SocketStream, delay: float) -> None:
    """Forward ``source`` to ``sink``, each chunk ``delay`` seconds after it arrived."""
    send, receive = trio.open_memory_channel[tuple[float, bytes]](math.inf)

    async def read() -> None:
        async with send:
            while chunk := await source.receive_some(CHUNK):
                send.send_nowait((trio.current_time() + delay, chunk))

    async def write() -> None:
        async with receive:
            async for due, chunk in receive:
                await trio.sleep_until(due)
                await sink.send_all(chunk)
        await sink.send_eof()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(read)
        nursery.start_soon(write)


async def _connection(client: trio.SocketStream, host: str, port: int, delay: float) -> None:
    try:
        upstream = await trio.open_tcp_stream(host, port)
    except OSError:
        await client.aclose()
        return
    async with client, upstream:
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_carry, client, upstream, delay)
                nursery.start_soon(_carry, upstream, client, delay)
        except* (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass  # one side went away: the other is closed with it


async def serve_delay_line(
    listen: tuple[str, int],
    target: tuple[str, int],
    delay: float,
    *,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until cancelled; ``task_status.started`` gets the port listened on."""
    (listener,) = await trio.open_tcp_listeners(listen[1], host=listen[0])
    port: int = listener.socket.getsockname()[1]
    async with trio.open_nursery() as nursery:
        task_status.started(port)
        async with listener:
            while True:
                client = await listener.accept()
                nursery.start_soon(_connection, client, target[0], target[1], delay)


def _address(text: str) -> tuple[str, int]:
    host, port = text.rsplit(":", 1)
    return host, int(port)


async def _main(listen: tuple[str, int], target: tuple[str, int], delay: float) -> None:
    async with trio.open_nursery() as nursery:
        port = await nursery.start(serve_delay_line, listen, target, delay)
        print(f"delay line listening on {listen[0]}:{port}", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", type=_address, required=True, help="HOST:PORT (port 0: any)")
    parser.add_argument("--to", type=_address, required=True, help="the target's HOST:PORT")
    parser.add_argument("--delay", type=float, required=True, help="seconds, each way")
    args = parser.parse_args(argv)
    try:
        trio.run(_main, args.listen, args.to, args.delay)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
