"""``tgs-worker``: connect to a coordinator and run the tasks it assigns."""

from __future__ import annotations

import argparse
import gc
import math
import signal
import sys
from typing import TYPE_CHECKING, Final

import trio

from ..protocol.codec import MAX_FRAME_BYTES
from ..shared.errors import ConfigError, TGSError
from ..shared.programs import (
    EXIT_OK,
    EXIT_USAGE,
    SignalStop,
    add_common_options,
    add_frame_option,
    configure_logging,
    fail,
    token_from_args,
)
from .config import DEFAULT_BLOCKED_LOOP_WARNING, DEFAULT_CONNECT_TIMEOUT, WorkerConfig
from .result_cache import DEFAULT_RESULT_CACHE_BYTES
from .runner import Worker

if TYPE_CHECKING:
    from collections.abc import Sequence

PROG: Final = "tgs-worker"
DESCRIPTION: Final = """\
Connect to a tgs-coordinator, run the tasks it assigns, and exit when it says the graph
has ended. The coordinator ships the graph's functions: none of your code needs to be here.
If the coordinator is not up yet, or the connection drops, the worker keeps trying for
--connect-timeout seconds. On SIGINT or SIGTERM it hands its unfinished tasks back at once;
a second signal stops it at once, handing nothing back.

Exit status: 0 once the coordinator dismissed it, 1 on an error (unreachable, refused),
2 for bad usage, 128+N when stopped by signal N (130 for Ctrl-C)."""


#: The one line for ``--max-tasks 0`` (or less): 0 once meant "no cap", silently.
NO_CAP_IS_NO_OPTION: Final = "--max-tasks must be at least 1; leave it out for no cap"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``tgs-worker``."""
    parser = argparse.ArgumentParser(
        prog=PROG, description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--connect",
        metavar="URL",
        required=True,
        help="the coordinator's address, ws://HOST:PORT (wss:// when it uses TLS)",
    )
    add_common_options(parser)
    add_frame_option(parser, MAX_FRAME_BYTES)
    parser.add_argument(
        "--loops",
        metavar="A,B",
        default="",
        help="the worker loops to serve, comma-separated (default: every loop of the graph)",
    )
    parser.add_argument(
        "--max-tasks",
        type=int,
        metavar="N",
        help="run at most N tasks of each loop at once here, below the loop's cluster-wide "
        "limit; N is 1 or more (default: no cap of its own)",
    )
    parser.add_argument(
        "--result-cache-bytes",
        type=int,
        metavar="N",
        default=DEFAULT_RESULT_CACHE_BYTES,
        help="keep up to N bytes of large results (256 KiB or more) of tasks run here or "
        "sent here, so that the coordinator need not send them again; 0: keep none "
        f"(default: {DEFAULT_RESULT_CACHE_BYTES}, {DEFAULT_RESULT_CACHE_BYTES // 2**20} MiB)",
    )
    parser.add_argument("--name", help="the name the coordinator logs (default: HOST:PID)")
    parser.add_argument(
        "--tls-ca",
        metavar="PEM",
        help="for wss://, the certificate authorities to trust (default: the system's)",
    )
    parser.add_argument(
        "--connect-timeout",
        type=float,
        metavar="S",
        default=DEFAULT_CONNECT_TIMEOUT,
        help="seconds to keep trying to reach the coordinator, at start and after losing it "
        f"(default: {DEFAULT_CONNECT_TIMEOUT:g})",
    )
    parser.add_argument(
        "--blocked-loop-warning",
        type=float,
        metavar="S",
        default=DEFAULT_BLOCKED_LOOP_WARNING,
        help="warn, naming the task, when a task blocks the worker's event loop for S "
        f"seconds (an async task that never yields); 0: never (default: "
        f"{DEFAULT_BLOCKED_LOOP_WARNING:g})",
    )
    return parser


def config_from_args(args: argparse.Namespace) -> WorkerConfig:
    """The worker's settings from parsed arguments.

    Raises:
        ConfigError: a value out of range.
    """
    if args.max_tasks is not None and args.max_tasks < 1:
        raise ConfigError(NO_CAP_IS_NO_OPTION)
    if args.result_cache_bytes < 0:
        raise ConfigError(
            f"--result-cache-bytes must not be negative, got {args.result_cache_bytes}"
        )
    if args.max_frame_bytes < 2**16:
        raise ConfigError(f"--max-frame-bytes must be at least 65536, got {args.max_frame_bytes}")
    if not args.connect_timeout > 0:
        raise ConfigError(f"--connect-timeout must be positive, got {args.connect_timeout}")
    if not 0 <= args.blocked_loop_warning < math.inf:
        raise ConfigError(
            f"--blocked-loop-warning must be 0 or more seconds, got {args.blocked_loop_warning}"
        )
    loops = tuple(loop.strip() for loop in args.loops.split(",") if loop.strip())
    extra = {"name": args.name} if args.name else {}
    return WorkerConfig(
        url=args.connect,
        token=token_from_args(args),
        loops=loops,
        max_tasks=args.max_tasks,
        connect_timeout=args.connect_timeout,
        tls_ca=args.tls_ca,
        max_frame_bytes=args.max_frame_bytes,
        max_value_bytes=args.max_value_bytes,
        result_cache_bytes=args.result_cache_bytes,
        blocked_loop_warning=args.blocked_loop_warning,
        **extra,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``tgs-worker``; return its exit status."""
    args = build_parser().parse_args(argv)
    configure_logging(args.log_level)
    try:
        worker = Worker(config_from_args(args))
    except ConfigError as exc:
        fail(PROG, str(exc), EXIT_USAGE)
    stopper = SignalStop(PROG)
    # What is loaded by now (the modules, trio's and ours) lives as long as the program:
    # frozen, the cyclic collector's full collections no longer walk it. They came every
    # few thousand tasks and walked all of it, a few microseconds per task.
    gc.collect()
    gc.freeze()
    try:
        trio.run(stopper.run, worker.run, worker.stop)
    except KeyboardInterrupt:  # Ctrl-C before the signal watcher started or after it ended
        print(f"{PROG}: stopped by SIGINT", file=sys.stderr)
        return 128 + signal.SIGINT
    except TGSError as exc:
        fail(PROG, str(exc))
    return stopper.exit_code or EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
