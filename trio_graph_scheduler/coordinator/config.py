"""The coordinator's settings, in one frozen record."""

from __future__ import annotations

import ipaddress
import ssl
from dataclasses import dataclass
from typing import Final

from ..protocol.chunks import MAX_VALUE_BYTES
from ..protocol.codec import MAX_FRAME_BYTES
from ..shared.errors import ConfigError
from .core.scheduler import DEFAULT_MAX_LOST_ATTEMPTS

#: Seconds between heartbeats each side sends while it has nothing else to say.
DEFAULT_HEARTBEAT_INTERVAL: Final = 1.0
#: Seconds of silence after which a worker counts as lost and its tasks run elsewhere.
DEFAULT_HEARTBEAT_TIMEOUT: Final = 10.0
#: The shortest token accepted on an address other than loopback.
MIN_TOKEN_LENGTH: Final = 16


@dataclass(frozen=True, slots=True)
class CoordinatorConfig:
    """How a coordinator listens and treats its workers.

    Raises:
        ConfigError: a value out of range, or a non-loopback ``host`` without a token of
            at least :data:`MIN_TOKEN_LENGTH` characters (anyone who can reach the port
            could run code on the workers; a short token can be guessed).

    Attributes:
        host: the address to listen on; ``127.0.0.1`` by default.
        port: the TCP port; 0 lets the OS choose one.
        token: the shared secret workers must present; ``None`` (or ``""``) is allowed
            only on a loopback address, elsewhere it needs :data:`MIN_TOKEN_LENGTH`
            characters (not all blank).
        heartbeat_interval: seconds between heartbeats when idle.
        heartbeat_timeout: seconds of silence after which a worker is dropped.
        handshake_timeout: seconds a new connection has to say hello.
        max_frame_bytes: the largest frame accepted or sent.
        max_value_bytes: the largest value a worker may send (a result, a graph call's
            arguments), as a stream of frames; a larger one fails its task.
        shutdown_grace: seconds to wait for workers to leave after the graph ended.
        max_lost_attempts: a task whose worker is lost this many times while it ran
            there alone fails ("killed its worker 3 times") instead of running again.
        max_connections: connections served at once; more are closed at once.
        min_workers: hand out no task until this many workers have joined (0: start at
            once), so that the first worker to arrive does not take all the work.
        tls_cert: a PEM certificate chain: serve ``wss://`` (TLS) instead of ``ws://``.
        tls_key: the PEM private key of ``tls_cert`` (if not in the same file).
        journal: a file (SQLite) recording the run as it goes; if it holds a run of
            this graph already, that run resumes (see docs/operations.md, "Journal").
        dashboard: ``HOST:PORT`` to serve the live web dashboard on (``https://`` with
            ``tls_cert``), or ``None`` for none (the default). With a token, the dashboard
            asks for it; an address other than loopback needs one, as ``host`` does.
        memory_limit: bytes of results to keep in memory; past it the coldest go to a
            SQLite file in a temporary directory and come back when read. ``None`` (the
            default here; ``tgs-coordinator`` defaults to a quarter of the machine's
            memory): no limit. See docs/operations.md, "Memory".
        release_results: drop a result once every task waiting on it has ended (not the
            results of sinks, nor of tasks created with ``keep_result=True``).
        spill_dir: where to make that temporary directory (default: the system's).
        prefetch: at most this many tasks sent to one worker and not yet started there,
            per loop; ``None`` (the default): half the worker's slots on the
            loop, at least 2, or its share of the loop's concurrency if more, and less
            for a worker slower to start its tasks than the loop's fastest (the window
            follows each worker's turnaround). A worker that
            stops answering holds no more than what it was running plus this
            (docs/operations.md, "How work is spread").
    """

    host: str = "127.0.0.1"
    port: int = 0
    token: str | None = None
    heartbeat_interval: float = DEFAULT_HEARTBEAT_INTERVAL
    heartbeat_timeout: float = DEFAULT_HEARTBEAT_TIMEOUT
    handshake_timeout: float = 10.0
    max_frame_bytes: int = MAX_FRAME_BYTES
    max_value_bytes: int = MAX_VALUE_BYTES
    shutdown_grace: float = 5.0
    max_lost_attempts: int = DEFAULT_MAX_LOST_ATTEMPTS
    max_connections: int = 1024
    min_workers: int = 0
    tls_cert: str | None = None
    tls_key: str | None = None
    journal: str | None = None
    dashboard: str | None = None
    memory_limit: int | None = None
    release_results: bool = False
    spill_dir: str | None = None
    prefetch: int | None = None

    def __post_init__(self) -> None:
        self._check_token(self.host, "listen", "could run code on the workers")
        if self.dashboard is not None:
            host, _ = self.dashboard_address
            self._check_token(host, "serve the dashboard", "could watch the run")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port must be between 0 and 65535, got {self.port}")
        for name in ("heartbeat_interval", "heartbeat_timeout", "handshake_timeout"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        if self.heartbeat_timeout <= self.heartbeat_interval:
            raise ConfigError(
                f"heartbeat_timeout ({self.heartbeat_timeout:g} s) must be longer than "
                f"heartbeat_interval ({self.heartbeat_interval:g} s)"
            )
        if self.shutdown_grace < 0:
            raise ConfigError(f"shutdown_grace must not be negative, got {self.shutdown_grace}")
        if self.max_lost_attempts < 1:
            raise ConfigError(f"max_lost_attempts must be at least 1, got {self.max_lost_attempts}")
        if self.prefetch is not None and self.prefetch < 1:
            raise ConfigError(f"prefetch must be at least 1, got {self.prefetch}")
        if self.min_workers < 0:
            raise ConfigError(f"min_workers must not be negative, got {self.min_workers}")
        if self.max_connections < 1:
            raise ConfigError(f"max_connections must be at least 1, got {self.max_connections}")
        if self.tls_key is not None and self.tls_cert is None:
            raise ConfigError("a TLS key needs its certificate (tls_cert)")
        if self.memory_limit is not None and self.memory_limit <= 0:
            raise ConfigError(f"memory_limit must be positive, got {self.memory_limit}")
        if self.max_frame_bytes < 2**16:
            raise ConfigError(f"max_frame_bytes must be at least 65536, got {self.max_frame_bytes}")
        if self.max_value_bytes < 1:
            raise ConfigError(f"max_value_bytes must be at least 1, got {self.max_value_bytes}")

    @property
    def dashboard_address(self) -> tuple[str, int]:
        """The dashboard's host and port.

        Raises:
            ConfigError: ``dashboard`` is not ``HOST:PORT``, or there is none.
        """
        if self.dashboard is None:
            raise ConfigError("no dashboard address")
        return parse_host_port(self.dashboard, "--dashboard")

    def _check_token(self, host: str, what: str, danger: str) -> None:
        if is_loopback(host):
            return
        if not self.token or not self.token.strip():
            raise ConfigError(
                f"refusing to {what} on {host} without a token: anyone who can reach it "
                f"{danger}; set --token-file, --token or TGS_TOKEN"
            )
        if len(self.token) < MIN_TOKEN_LENGTH:
            raise ConfigError(
                f"refusing to {what} on {host} with a token of {len(self.token)} "
                f"characters: it must have at least {MIN_TOKEN_LENGTH}, e.g. python -c "
                "'import secrets; print(secrets.token_urlsafe(24))'"
            )


def parse_host_port(address: str, option: str = "--listen") -> tuple[str, int]:
    """Split ``HOST:PORT`` (``[v6]:PORT`` for IPv6).

    Raises:
        ConfigError: not of that form, or the port is out of range.
    """
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdecimal():
        raise ConfigError(f"bad {option} address {address!r}: expected HOST:PORT")
    if not 0 <= int(port) <= 65535:
        raise ConfigError(f"bad {option} address {address!r}: the port must be 0 to 65535")
    return host.strip("[]"), int(port)


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # another host name: it may resolve to anything


def server_tls_context(config: CoordinatorConfig) -> ssl.SSLContext | None:
    """The TLS context to serve with, or None for plain ``ws://``.

    Raises:
        ConfigError: the certificate or key cannot be loaded.
    """
    if config.tls_cert is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(config.tls_cert, config.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load the TLS certificate {config.tls_cert}: {exc}") from None
    return context
