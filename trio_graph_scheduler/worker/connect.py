"""Reaching the coordinator: its URL, the TCP stream, retries with backoff.

The WebSocket is wrapped around a stream this module opens (``trio.open_tcp_stream``)
rather than through ``trio_websocket.open_websocket_url``: trio-websocket 0.12 never
closes the client socket when the server closes first, which leaks it. Whoever opens a
stream owns it and closes it (``async with stream:``).
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

import trio

from ..shared.errors import ConfigError

#: Opens the byte stream a WebSocket is wrapped around; tests pass in-memory streams.
StreamOpener = Callable[[], Awaitable[trio.abc.Stream]]

#: The first pause between connection attempts, and the longest (seconds).
FIRST_RETRY_DELAY: Final = 0.1
MAX_RETRY_DELAY: Final = 2.0


@dataclass(frozen=True, slots=True)
class CoordinatorAddress:
    """Where a coordinator listens, parsed from ``ws://HOST:PORT[/path]``."""

    host: str
    port: int
    resource: str

    @staticmethod
    def parse(url: str) -> CoordinatorAddress:
        """Parse a ``ws://`` URL.

        Raises:
            ConfigError: not a ``ws://HOST:PORT`` URL.
        """
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise ConfigError(f"bad coordinator URL {url!r}: {exc}") from None
        if parts.scheme != "ws" or not parts.hostname or port is None:
            raise ConfigError(f"bad coordinator URL {url!r}: expected ws://HOST:PORT")
        return CoordinatorAddress(parts.hostname, port, parts.path or "/")

    def opener(self) -> StreamOpener:
        """A stream opener that connects over TCP."""

        async def open_tcp() -> trio.abc.Stream:
            return await trio.open_tcp_stream(self.host, self.port)

        return open_tcp


def retry_delays() -> Iterator[float]:
    """Pauses between connection attempts: exponential backoff with full jitter.

    Full jitter (a uniform pick below the backoff) keeps many workers started together, or
    cut off together, from retrying in step.
    """
    ceiling = FIRST_RETRY_DELAY
    while True:
        yield random.uniform(0, ceiling)
        ceiling = min(ceiling * 2, MAX_RETRY_DELAY)
