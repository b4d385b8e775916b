"""Reaching the coordinator: its URL, the TCP stream, retries with backoff.

The WebSocket is wrapped around a stream this module opens (``trio.open_tcp_stream``)
rather than through ``trio_websocket.open_websocket_url``: trio-websocket 0.12 never
closes the client socket when the server closes first, which leaks it. Whoever opens a
stream owns it and closes it (``async with stream:``).
"""

from __future__ import annotations

import os
import random
import ssl
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from http import HTTPStatus
from typing import Final, TypeVar
from urllib.parse import urlsplit

import trio
import trio_websocket

from ..shared.errors import ConfigError

_T = TypeVar("_T")
_E = TypeVar("_E", bound=BaseException)

#: What a failed connection attempt can raise, from TCP to the WebSocket handshake.
CONNECT_ERRORS: Final = (
    OSError,
    trio.BrokenResourceError,
    trio_websocket.HandshakeError,
    trio_websocket.ConnectionClosed,
)

#: Opens the byte stream a WebSocket is wrapped around; tests pass in-memory streams.
StreamOpener = Callable[[], Awaitable[trio.abc.Stream]]

#: The first pause between connection attempts, and the longest (seconds).
FIRST_RETRY_DELAY: Final = 0.1
MAX_RETRY_DELAY: Final = 2.0


@dataclass(frozen=True, slots=True)
class CoordinatorAddress:
    """Where a coordinator listens, parsed from ``ws://HOST:PORT`` or ``wss://HOST:PORT``."""

    host: str
    port: int
    resource: str
    #: True for ``wss://``: TLS, with the server's certificate checked.
    tls: bool

    @staticmethod
    def parse(url: str) -> CoordinatorAddress:
        """Parse a ``ws://`` or ``wss://`` URL.

        Raises:
            ConfigError: not a ``ws://HOST:PORT`` or ``wss://HOST:PORT`` URL.
        """
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise ConfigError(f"bad coordinator URL {url!r}: {exc}") from None
        if parts.scheme not in ("ws", "wss") or not parts.hostname or port is None:
            raise ConfigError(f"bad coordinator URL {url!r}: expected ws://HOST:PORT or wss://")
        return CoordinatorAddress(parts.hostname, port, parts.path or "/", parts.scheme == "wss")

    def opener(self, tls_ca: str | None = None) -> StreamOpener:
        """A stream opener: TCP, with TLS for ``wss://``.

        Args:
            tls_ca: a PEM file of the certificate authorities to trust for ``wss://``;
                the system's by default.

        Raises:
            ConfigError: ``tls_ca`` cannot be read, or is given for a ``ws://`` URL.
        """
        if not self.tls:
            if tls_ca is not None:
                raise ConfigError("a CA file only makes sense for a wss:// coordinator URL")

            async def open_tcp() -> trio.abc.Stream:
                return await trio.open_tcp_stream(self.host, self.port)

            return open_tcp

        try:
            context = ssl.create_default_context(cafile=tls_ca)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"cannot load the CA file {tls_ca}: {exc}") from None

        async def open_tls() -> trio.abc.Stream:
            stream = await trio.open_ssl_over_tcp_stream(
                self.host,
                self.port,
                ssl_context=context,
                https_compatible=True,  # as the coordinator: no close_notify exchange
            )
            try:
                # Now, not lazily inside trio-websocket, which would swallow a certificate
                # error and wait for a handshake that never comes.
                await stream.do_handshake()
            except BaseException:
                await trio.aclose_forcefully(stream)
                raise
            return stream

        return open_tls


#: Seconds a probe for TLS on a plain ``ws://`` port may take.
TLS_PROBE_TIMEOUT: Final = 1.0


async def speaks_tls(host: str, port: int) -> bool:
    """Whether ``host:port`` completes a TLS handshake (certificate unchecked: this only
    asks which protocol the port speaks, after a plain ``ws://`` connection ended
    without an answer)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with trio.move_on_after(TLS_PROBE_TIMEOUT):
        try:
            stream = await trio.open_ssl_over_tcp_stream(host, port, ssl_context=context)
            try:
                await stream.do_handshake()
            finally:
                await trio.aclose_forcefully(stream)
        except (OSError, trio.BrokenResourceError, ssl.SSLError):
            return False
        return True
    return False


def mismatched_scheme(address: CoordinatorAddress, error: ssl.SSLError) -> str | None:
    """What to say when a ``wss://`` worker met a plain ``ws://`` coordinator (the TLS
    handshake read an HTTP answer), or ``None`` for any other TLS failure."""
    if address.tls and error.reason in ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE"):
        return (
            f"the coordinator at {address.host}:{address.port} does not speak TLS: "
            f"connect with ws://{address.host}:{address.port}"
        )
    return None


def tls_failure(error: BaseException) -> ssl.SSLError | None:
    """The TLS error behind a failed connection attempt, if one is (a wrong certificate
    will not become right by retrying)."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def retry_delays() -> Iterator[float]:
    """Pauses between connection attempts: exponential backoff with full jitter.

    Full jitter (a uniform pick below the backoff) keeps many workers started together, or
    cut off together, from retrying in step.
    """
    ceiling = FIRST_RETRY_DELAY
    while True:
        yield random.uniform(0, ceiling)
        ceiling = min(ceiling * 2, MAX_RETRY_DELAY)


class EndWatchingStream(trio.abc.Stream):
    """A stream that calls ``on_end`` when it ends: at end of file, or broken.

    Wraps the stream under a WebSocket being opened: trio-websocket 0.12 never returns
    from its handshake if the connection ends first, and this lets the caller give up.
    """

    def __init__(self, stream: trio.abc.Stream) -> None:
        self._stream = stream
        #: Called (once per end seen) when the stream ends; ``None`` to ignore it.
        self.on_end: Callable[[], object] | None = None

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        try:
            data = await self._stream.receive_some(max_bytes)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._ended()
            raise
        if not data:
            self._ended()
        return data

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        try:
            await self._stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._ended()
            raise

    async def wait_send_all_might_not_block(self) -> None:
        await self._stream.wait_send_all_might_not_block()

    async def aclose(self) -> None:
        await self._stream.aclose()

    def _ended(self) -> None:
        if self.on_end is not None:
            self.on_end()


async def in_connection_nursery(body: Callable[[trio.Nursery], Awaitable[_T]]) -> _T:
    """Run ``body(nursery)`` in a nursery for trio-websocket's reader task to live in.

    The nursery is cancelled as soon as ``body`` returns or raises. ``body``'s exception
    comes out as itself, not in an ExceptionGroup, and so does a refused upgrade
    (``HandshakeError``), which trio-websocket's reader task raises into the nursery when
    an HTTP server, not a coordinator, answered.
    """
    error: Exception | None = None
    try:
        async with trio.open_nursery() as nursery:
            try:
                return await body(nursery)
            except Exception as exc:
                error = exc
            finally:
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        refused, rest = group.split(trio_websocket.HandshakeError)
        if refused is None or rest is not None:
            raise
        raise _first_leaf(refused) from None
    assert error is not None
    raise error


def describe_failure(error: BaseException) -> str:
    """A failed connection attempt in a few words, for a one-line error:
    ``connection refused``, ``not a tgs coordinator (HTTP 404 Not Found)``."""
    if (status := rejected_upgrade(error)) is not None:
        return f"not a tgs coordinator ({status})"
    cause = _os_error(error)
    if cause is not None and cause.errno is not None and cause.errno > 0:
        # "connection refused", not trio's "all attempts to connect to ... failed" or
        # "Error connecting to ('127.0.0.1', 9): Connection refused".
        text = os.strerror(cause.errno)
        return text[:1].lower() + text[1:]
    if cause is not None and cause.strerror:
        return cause.strerror  # a name that does not resolve, say
    return f"{type(error).__name__}: {error}"


def rejected_upgrade(error: BaseException) -> str | None:
    """``HTTP 404 Not Found`` when an HTTP server, not a coordinator, refused the
    WebSocket upgrade; ``None`` for any other failure. The body (often a whole HTML
    page) is left out."""
    if not isinstance(error, trio_websocket.ConnectionRejected):
        return None
    try:
        phrase = f" {HTTPStatus(error.status_code).phrase}"
    except ValueError:
        phrase = ""
    return f"HTTP {error.status_code}{phrase}"


def _os_error(error: BaseException) -> OSError | None:
    """The OSError that says most about a failed connection: trio's own says only "all
    attempts failed" and keeps each attempt's error in its cause, a group."""
    if not isinstance(error, OSError):
        return None
    if error.errno is None and isinstance(error.__cause__, BaseExceptionGroup):
        first = _first_leaf(error.__cause__)
        if isinstance(first, OSError):
            return first
    return error


def _first_leaf(group: BaseExceptionGroup[_E]) -> _E:
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first
