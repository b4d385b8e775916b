"""``tgs-coordinator``: build a graph from the user's code and serve it to workers."""

from __future__ import annotations

import argparse
import importlib
import inspect
import logging
import sys
from typing import TYPE_CHECKING, Final

import trio

from ..shared.cli import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    SignalStop,
    add_common_options,
    configure_logging,
    fail,
)
from ..shared.errors import ConfigError, TGSError
from .config import (
    DEFAULT_HEARTBEAT_INTERVAL,
    DEFAULT_HEARTBEAT_TIMEOUT,
    CoordinatorConfig,
    server_tls_context,
)
from .graph import TaskGraph
from .scheduler import DEFAULT_MAX_LOST_ATTEMPTS
from .server import Coordinator

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine, Sequence
    from typing import Any

    from .server import RunSummary

PROG: Final = "tgs-coordinator"
DESCRIPTION: Final = """\
Build a task graph with MODULE:FUNC (an async function of no arguments that returns a
TaskGraph with its first tasks created), then serve it to tgs-worker processes until every
task has ended. The current directory is on the import path. Workers need none of your
code: the graph's functions are shipped to them.

Exit status: 0 if every task succeeded, 1 if any did not (or on an error),
2 for bad usage, 128+N when stopped by signal N (130 for Ctrl-C)."""
EPILOG: Final = """\
example:
  tgs-coordinator examples.word_count:build_graph --listen 127.0.0.1:8765
  tgs-worker --connect ws://127.0.0.1:8765"""

logger = logging.getLogger("tgs.coordinator")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``tgs-coordinator``."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("graph", metavar="MODULE:FUNC", help="the graph builder to run")
    parser.add_argument(
        "--listen",
        metavar="HOST:PORT",
        default="127.0.0.1:8765",
        help="where workers connect (default: 127.0.0.1:8765; port 0 picks a free one); "
        "an address other than loopback needs a token",
    )
    add_common_options(parser)
    parser.add_argument(
        "--heartbeat-interval",
        type=float,
        metavar="S",
        default=DEFAULT_HEARTBEAT_INTERVAL,
        help="seconds between heartbeats to idle workers "
        f"(default: {DEFAULT_HEARTBEAT_INTERVAL:g})",
    )
    parser.add_argument(
        "--heartbeat-timeout",
        type=float,
        metavar="S",
        default=DEFAULT_HEARTBEAT_TIMEOUT,
        help="seconds of silence after which a worker counts as lost and its tasks run "
        f"elsewhere (default: {DEFAULT_HEARTBEAT_TIMEOUT:g})",
    )
    parser.add_argument(
        "--tls-cert",
        metavar="PEM",
        help="serve wss:// (TLS) with this certificate chain (workers then connect to wss://)",
    )
    parser.add_argument("--tls-key", metavar="PEM", help="the private key of --tls-cert")
    parser.add_argument(
        "--max-lost-attempts",
        type=int,
        metavar="N",
        default=DEFAULT_MAX_LOST_ATTEMPTS,
        help="a task whose worker is lost N times fails instead of running again "
        f"(default: {DEFAULT_MAX_LOST_ATTEMPTS})",
    )
    return parser


def parse_listen(address: str) -> tuple[str, int]:
    """Split ``HOST:PORT`` (``[v6]:PORT`` for IPv6).

    Raises:
        ConfigError: not of that form.
    """
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdecimal():
        raise ConfigError(f"bad --listen address {address!r}: expected HOST:PORT")
    return host.strip("[]"), int(port)


def load_builder(spec: str) -> Callable[[], Coroutine[Any, Any, TaskGraph]]:
    """Import ``MODULE:FUNC`` from the current directory or the installed packages.

    Raises:
        ConfigError: the spec is malformed, the module cannot be imported, or FUNC is not
            an async function.
    """
    module_name, sep, func_name = spec.partition(":")
    if not sep or not module_name or not func_name:
        raise ConfigError(f"bad graph builder {spec!r}: expected MODULE:FUNC")
    if "" not in sys.path:
        sys.path.insert(0, "")  # the current directory, as `python -m` would have it
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # an import runs the user's code: anything can go wrong
        raise ConfigError(f"cannot import module {module_name!r}: {exc!r}") from exc
    builder = getattr(module, func_name, None)
    if builder is None:
        raise ConfigError(f"module {module_name!r} has no {func_name!r}")
    if not inspect.iscoroutinefunction(builder):
        raise ConfigError(f"{spec} must be an async function returning a TaskGraph")
    return builder  # type: ignore[no-any-return]


async def run_coordinator(
    builder: Callable[[], Coroutine[Any, Any, TaskGraph]],
    config: CoordinatorConfig,
    stopper: SignalStop,
) -> RunSummary:
    """Build the graph and serve it until it has ended or a signal stops it.

    Raises:
        ConfigError: the builder raised, or did not return a TaskGraph.
        GraphDefinitionError: a function of the graph cannot be shipped to workers.
        GraphStalledError: the graph waits on itself in a cycle.
        OSError: the address cannot be listened on.
    """
    try:
        graph = await builder()
    except Exception as exc:  # the user's code: anything can go wrong
        raise ConfigError(f"the graph builder raised {exc!r}") from exc
    if not isinstance(graph, TaskGraph):
        raise ConfigError(f"the graph builder returned {type(graph).__name__}, not a TaskGraph")
    coordinator = Coordinator(graph, config)
    return await stopper.run(coordinator.serve, coordinator.stop)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``tgs-coordinator``; return its exit status."""
    args = build_parser().parse_args(argv)
    configure_logging(args.log_level)
    try:
        host, port = parse_listen(args.listen)
        config = CoordinatorConfig(
            host=host,
            port=port,
            token=args.token,
            heartbeat_interval=args.heartbeat_interval,
            heartbeat_timeout=args.heartbeat_timeout,
            max_lost_attempts=args.max_lost_attempts,
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
        )
        server_tls_context(config)  # a bad certificate is a usage error, said now
        builder = load_builder(args.graph)
    except ConfigError as exc:
        fail(PROG, str(exc), EXIT_USAGE)
    stopper = SignalStop()
    try:
        summary = trio.run(run_coordinator, builder, config, stopper)
    except KeyboardInterrupt:  # a second signal: stop at once
        return stopper.exit_code or 128 + 2
    except OSError as exc:
        fail(PROG, f"cannot listen on {args.listen}: {exc.strerror or exc}")
    except TGSError as exc:
        fail(PROG, str(exc))
    counts = ", ".join(f"{n} {status}" for status, n in summary.tasks_by_status.items())
    print(f"{PROG}: {'stopped' if summary.interrupted else 'graph ended'}: {counts or 'no tasks'}")
    if stopper.exit_code is not None:
        return stopper.exit_code
    return EXIT_OK if summary.succeeded else EXIT_FAILED
