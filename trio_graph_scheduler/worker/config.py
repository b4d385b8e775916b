"""A worker's settings, in one frozen record."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from typing import Final

from ..protocol.chunks import MAX_VALUE_BYTES
from ..protocol.codec import MAX_FRAME_BYTES
from ..shared.errors import ConfigError
from .result_cache import DEFAULT_RESULT_CACHE_BYTES

#: Seconds a worker keeps trying to reach its coordinator (at start and after losing it)
#: before it gives up.
DEFAULT_CONNECT_TIMEOUT: Final = 30.0
#: Seconds the worker's event loop may be blocked (by a task) before it warns.
DEFAULT_BLOCKED_LOOP_WARNING: Final = 3.0


def _default_name() -> str:
    # Hostname and pid: enough to find the process in `ps` on the right machine.
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """How a worker reaches its coordinator and how much work it takes.

    Raises:
        ConfigError: ``max_tasks`` below 1.

    Attributes:
        url: the coordinator's address, ``ws://HOST:PORT`` (``wss://`` for TLS).
        token: the shared secret the coordinator expects (``""`` when it has none).
        loops: the worker loops this worker serves; empty means every loop of the graph.
        max_tasks: at most this many tasks of each loop at once on this worker, on top of
            the loop's cluster-wide limit; ``None`` (the default) means no cap of its own.
        name: how the coordinator's logs name this worker; ``host:pid`` by default.
        connect_timeout: seconds to keep trying to reach the coordinator, at start and
            after losing it, before giving up.
        max_frame_bytes: the largest frame accepted or sent.
        max_value_bytes: the largest value the coordinator may send (arguments, a
            predecessor's result), as a stream of frames; a larger one fails its task.
        result_cache_bytes: the large results (256 KiB or more) of tasks run here, or
            sent here, kept so that the coordinator need not send them again; 0 keeps
            none.
        tls_ca: for ``wss://``, a PEM file of the certificate authorities to trust
            instead of the system's.
        blocked_loop_warning: seconds the worker's event loop may stay blocked (by a
            task that does not yield) before the worker logs which task it is; 0 turns
            the watchdog off.
    """

    url: str
    token: str = ""
    loops: tuple[str, ...] = ()
    max_tasks: int | None = None
    name: str = field(default_factory=_default_name)
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    max_frame_bytes: int = MAX_FRAME_BYTES
    max_value_bytes: int = MAX_VALUE_BYTES
    result_cache_bytes: int = DEFAULT_RESULT_CACHE_BYTES
    tls_ca: str | None = None
    blocked_loop_warning: float = DEFAULT_BLOCKED_LOOP_WARNING

    def __post_init__(self) -> None:
        # 0 used to mean "no cap"; a cap of 0 would run nothing, so neither is accepted.
        if self.max_tasks is not None and self.max_tasks < 1:
            raise ConfigError(f"max_tasks must be at least 1 (None: no cap), got {self.max_tasks}")
        if self.max_value_bytes < 1:
            raise ConfigError(f"max_value_bytes must be at least 1, got {self.max_value_bytes}")
        if self.result_cache_bytes < 0:
            raise ConfigError(
                f"result_cache_bytes must not be negative, got {self.result_cache_bytes}"
            )
