"""``tgs-coordinator``: build a graph from the user's code and serve it to workers."""

from __future__ import annotations

import argparse
import dataclasses
import functools
import importlib
import inspect
import logging
import os
import signal
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

import trio

from ..protocol.codec import MAX_FRAME_BYTES
from ..shared.concurrency import run_beside
from ..shared.errors import ConfigError, TGSError, exception_headline
from ..shared.programs import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    SignalStop,
    add_common_options,
    add_frame_option,
    configure_logging,
    fail,
    print_out,
    token_from_args,
)
from .config import (
    DEFAULT_HEARTBEAT_INTERVAL,
    DEFAULT_HEARTBEAT_TIMEOUT,
    CoordinatorConfig,
    parse_host_port,
    server_tls_context,
)
from .core.scheduler import DEFAULT_MAX_LOST_ATTEMPTS
from .journal import Journal
from .observe.progress import ProgressSnapshot, run_progress, snapshot_of
from .observe.report import stream_report
from .observe.summary import format_summary
from .observe.text_table import output_width
from .result_store import configure_results, default_memory_limit, format_size, parse_size
from .server import Coordinator
from .task_graph import TaskGraph

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine, Sequence
    from typing import Any

    from .run import RunSummary
    from .worker_session import WorkerRecord

PROG: Final = "tgs-coordinator"
DESCRIPTION: Final = """\
Build a task graph with MODULE:FUNC (an async function of no arguments that returns a
TaskGraph with its first tasks created), then serve it to tgs-worker processes until every
task has ended. MODULE is imported as `python -m` would: from the current directory (and
each --path DIR), then the installed packages. Workers need none of your code: the
graph's functions are shipped to them. SIGINT or SIGTERM stops the run and
dismisses the workers; a second signal stops the coordinator at once.

Exit status: 0 if every task succeeded, 1 if any did not (or on an error),
2 for bad usage, 128+N when stopped by signal N (130 for Ctrl-C)."""
EPILOG: Final = """\
example:
  tgs-coordinator examples.word_count:build_graph --listen 127.0.0.1:8765
  tgs-coordinator word_count:build_graph --path ~/src/tgs/examples
  tgs-worker --connect ws://127.0.0.1:8765"""

#: Seconds between two redraws of the live view, and two status lines by default.
LIVE_INTERVAL: Final = 0.5
DEFAULT_STATUS_INTERVAL: Final = 5.0

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
        "--path",
        metavar="DIR",
        action="append",
        default=[],
        help="also import MODULE from DIR (put before the current directory on the import "
        "path; may be given more than once)",
    )
    parser.add_argument(
        "--listen",
        metavar="HOST:PORT",
        default="127.0.0.1:8765",
        help="where workers connect (default: 127.0.0.1:8765; port 0 picks a free one); "
        "an address other than loopback needs a token of 16 characters or more",
    )
    add_common_options(parser)
    add_frame_option(parser, MAX_FRAME_BYTES)
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
        "--prefetch",
        type=int,
        metavar="N",
        default=None,
        help="at most N tasks sent to a worker and not yet started there, per loop "
        "(default: half the worker's slots on the loop, at least 2, or its share of the "
        "loop's concurrency among the workers that keep up if more, and less for a worker "
        "slower to start its tasks than the others: it follows each worker's turnaround); "
        "a worker that stops answering holds what it ran plus these, which go to a "
        "waiting worker after --heartbeat-interval of silence",
    )
    parser.add_argument(
        "--tls-cert",
        metavar="PEM",
        help="serve wss:// (TLS) with this certificate chain (workers then connect to wss://)",
    )
    parser.add_argument("--tls-key", metavar="PEM", help="the private key of --tls-cert")
    parser.add_argument(
        "--min-workers",
        type=int,
        metavar="N",
        default=0,
        help="hand out no task until N workers have joined, so that a small graph spreads "
        "over them (default: start with the first)",
    )
    parser.add_argument(
        "--report",
        metavar="PATH",
        help="write a JSON report of the run, readable by its owner only (see docs/report.md)",
    )
    parser.add_argument(
        "--graph-html",
        metavar="PATH",
        help="draw the graph of the run as one self-contained HTML page (SVG, a colour per "
        "status, a legend); a PATH ending in .dot or .gv gets Graphviz DOT",
    )
    parser.add_argument(
        "--timeline-html",
        metavar="PATH",
        help="draw the run's timeline as one self-contained HTML page (SVG): a bar per run "
        "of a task (every attempt of a retried one), a row per worker slot, a time axis "
        "that zooms",
    )
    parser.add_argument(
        "--journal",
        metavar="PATH",
        help="record the run in this file (SQLite) as it goes; started again with the same "
        "MODULE:FUNC and journal after a crash, the run resumes: tasks that ended keep their "
        "outcome and do not run again (see docs/operations.md)",
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="run nothing: write --report, --graph-html and --timeline-html from --journal "
        "(e.g. of a run that crashed), then exit",
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="show no progress view or status lines"
    )
    parser.add_argument(
        "--status-interval",
        type=float,
        metavar="S",
        default=DEFAULT_STATUS_INTERVAL,
        help="seconds between two status lines when stderr is not a terminal "
        f"(default: {DEFAULT_STATUS_INTERVAL:g}); a terminal gets a live view instead",
    )
    parser.add_argument(
        "--dashboard",
        metavar="HOST:PORT",
        help="serve a live web dashboard of the run here (off unless given, so that no "
        "port opens unasked; e.g. 127.0.0.1:8787, port 0 picks a free one) and log its "
        "URL; with a token it asks for it (a login form, or ?token= once), and an address "
        "other than loopback needs one",
    )
    parser.add_argument(
        "--dashboard-linger",
        type=float,
        metavar="S",
        default=0.0,
        help="keep serving the dashboard S seconds after the run ended, with links to the "
        "report and pictures written (default: 0; a signal ends the wait)",
    )
    default_limit = default_memory_limit()
    parser.add_argument(
        "--memory-limit",
        metavar="SIZE",
        default=None,
        help="keep at most SIZE of task results in memory (e.g. 128MiB, 2GiB, 500MB); past "
        "it the coldest go to a SQLite file in a temporary directory (see --spill-dir) and "
        "come back when a task reads them (default: a quarter of this "
        f"machine's memory, {format_size(default_limit)} here)",
    )
    parser.add_argument(
        "--release-results",
        action="store_true",
        help="drop a task's result once every task waiting on it has ended; the results of "
        "tasks nothing waits on, and of tasks created with keep_result=True, are kept "
        "(default: keep every result)",
    )
    parser.add_argument(
        "--spill-dir",
        metavar="DIR",
        help="make the temporary directory of results past --memory-limit in DIR, removed "
        "at exit (default: the system's temporary directory, $TMPDIR or /tmp)",
    )
    parser.add_argument(
        "--max-lost-attempts",
        type=int,
        metavar="N",
        default=DEFAULT_MAX_LOST_ATTEMPTS,
        help="a task whose worker is lost N times while it runs there alone fails instead "
        f"of running again (default: {DEFAULT_MAX_LOST_ATTEMPTS})",
    )
    return parser


def parse_listen(address: str) -> tuple[str, int]:
    """Split ``HOST:PORT`` (``[v6]:PORT`` for IPv6).

    Raises:
        ConfigError: not of that form.
    """
    return parse_host_port(address, "--listen")


def load_builder(
    spec: str, paths: Sequence[str] = ()
) -> Callable[[], Coroutine[Any, Any, TaskGraph]]:
    """Import ``MODULE:FUNC`` as ``python -m`` would: from ``paths`` (``--path``, first
    given first), the current directory, then the installed packages.

    Raises:
        ConfigError: the spec is malformed, the module cannot be imported, or FUNC is not
            an async function. A module not found says where it was looked for.
    """
    module_name, sep, func_name = spec.partition(":")
    if not sep or not module_name or not func_name:
        raise ConfigError(f"bad graph builder {spec!r}: expected MODULE:FUNC")
    if "" not in sys.path:
        sys.path.insert(0, "")  # the current directory, as `python -m` would have it
    # Absolute: a later chdir (none today) must not change what they mean.
    sys.path[:0] = [str(Path(path).expanduser().resolve()) for path in paths]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (module_name + ".").startswith(exc.name + "."):
            # MODULE itself (or a package on its way) is missing, not one it imports:
            # the usual cause is the directory the coordinator was started in.
            raise ConfigError(_not_found(module_name, exc, paths)) from exc
        raise ConfigError(f"cannot import module {module_name!r}: {user_traceback(exc)}") from exc
    except Exception as exc:  # an import runs the user's code: anything can go wrong
        raise ConfigError(f"cannot import module {module_name!r}: {user_traceback(exc)}") from exc
    builder = getattr(module, func_name, None)
    if builder is None:
        raise ConfigError(f"module {module_name!r} has no {func_name!r}")
    if not inspect.iscoroutinefunction(builder):
        raise ConfigError(f"{spec} must be an async function returning a TaskGraph")
    return builder  # type: ignore[no-any-return]


def _not_found(module_name: str, exc: ModuleNotFoundError, paths: Sequence[str]) -> str:
    where = f"the current directory {Path.cwd()}"
    if paths:
        where = f"--path {', '.join(paths)} and {where}"
    return (
        f"cannot import module {module_name!r}: {exc} (MODULE:FUNC is imported from "
        f"{where}; run from the directory that holds it, or pass --path DIR)"
    )


_IMPORTLIB_DIR: Final = os.path.dirname(importlib.__file__ or "") + os.sep


def user_traceback(error: BaseException) -> str:
    """``Type: message`` of an error the user's code raised, then its traceback with the
    frames of the import machinery and of this module left out: what the user needs to
    find the line (a bare ``NameError(...)`` names no file)."""
    described = traceback.TracebackException.from_exception(error)
    frames = [
        frame
        for frame in described.stack
        if not frame.filename.startswith(("<frozen ", _IMPORTLIB_DIR))
        and frame.filename != __file__
    ]
    if not frames:  # nothing of the user's ran (no such module): the headline says it all
        return exception_headline(error)
    described.stack = traceback.StackSummary.from_list(frames)
    return f"{exception_headline(error)}\n" + "".join(described.format()).rstrip("\n")


class StoppedWhileBuilding(Exception):
    """A signal stopped the coordinator while the graph builder ran."""


@dataclass(frozen=True, slots=True)
class Outputs:
    """What to show and write about the run besides the logs."""

    #: Show progress on stderr: a live view on a terminal, else a line per interval.
    progress: bool
    #: Seconds between two progress lines when stderr is not a terminal.
    status_interval: float
    #: Where to write the JSON report and the pictures, if anywhere.
    report: str | None
    graph_html: str | None
    timeline_html: str | None
    #: Seconds to keep serving the dashboard after the run ended.
    dashboard_linger: float = 0.0


async def call_builder(builder: Callable[[], Coroutine[Any, Any, TaskGraph]]) -> TaskGraph:
    """The graph ``builder`` (the user's ``MODULE:FUNC``) returns.

    Raises:
        ConfigError: the builder raised (with the user's traceback), or did not return a
            TaskGraph.
    """
    try:
        graph: object = await builder()
    except Exception as exc:  # the user's code: anything can go wrong
        raise ConfigError(f"the graph builder raised {user_traceback(exc)}") from exc
    if not isinstance(graph, TaskGraph):
        name = type(graph).__name__
        raise ConfigError(f"the graph builder returned {name}, not a TaskGraph")
    return graph


async def run_coordinator(
    builder: Callable[[], Coroutine[Any, Any, TaskGraph]],
    config: CoordinatorConfig,
    stopper: SignalStop,
    outputs: Outputs,
) -> tuple[Coordinator, RunSummary, list[str] | None]:
    """Build the graph and serve it until it has ended or a signal stops it.

    With a dashboard, it is served from before the run until after the outputs are
    written (and ``outputs.dashboard_linger`` seconds more), which are then returned
    (what :func:`write_outputs` says); without one they are left to the caller (None).

    Raises:
        ConfigError: the builder raised, or did not return a TaskGraph.
        StoppedWhileBuilding: a signal came before the graph was built.
        GraphDefinitionError: a function of the graph cannot be shipped to workers.
        GraphStalledError: the graph waits on itself in a cycle.
        OSError: the address cannot be listened on.
    """
    building = trio.CancelScope()

    async def build() -> TaskGraph | None:
        with building:  # a signal stops the builder too
            return await call_builder(builder)
        return None

    with stopper.receiving():  # from the start, so that no signal finds us deaf
        graph = await run_beside(build, functools.partial(stopper.watch, building.cancel))
        if stopper.signal is not None or graph is None:
            raise StoppedWhileBuilding
        coordinator = Coordinator(graph, config)
        helpers = [functools.partial(stopper.watch, coordinator.stop)]
        if outputs.progress:
            helpers.append(functools.partial(_show_progress, coordinator, outputs))
        if config.dashboard is None:
            return coordinator, await run_beside(coordinator.serve, *helpers), None
        dashboard = coordinator.make_dashboard()
        listeners = await dashboard.listen()

        async def run_and_write() -> tuple[RunSummary, list[str]]:
            summary = await run_beside(coordinator.serve, *helpers)
            written = write_run_outputs(coordinator, outputs)
            paths = [
                ("report", outputs.report),
                ("graph", outputs.graph_html),
                ("timeline", outputs.timeline_html),
            ]
            for label, path in paths:
                if path and any(line.endswith(f"written to {path}") for line in written):
                    dashboard.add_file(label, path)
            if outputs.dashboard_linger > 0 and stopper.signal is None:
                await _linger(stopper, outputs.dashboard_linger)
            return summary, written

        summary, written = await run_beside(
            run_and_write, functools.partial(dashboard.serve, listeners)
        )
    return coordinator, summary, written


async def _linger(stopper: SignalStop, seconds: float) -> None:
    """Wait ``seconds``, or until a signal; the run's exit status stays the run's."""
    logger.info("the run has ended; serving the dashboard for %g s more", seconds)
    waiting = trio.CancelScope()

    async def wait() -> None:
        with waiting:
            await trio.sleep(seconds)

    await run_beside(wait, functools.partial(stopper.watch, waiting.cancel))
    stopper.signal = None


async def _show_progress(coordinator: Coordinator, outputs: Outputs) -> None:
    def snapshot() -> ProgressSnapshot:
        # After the run's end, time stops there: dismissing workers is not the run's.
        ended_at = coordinator.ended_at
        now = time.time() if ended_at is None else ended_at
        started = coordinator.started_at or now
        taken = snapshot_of(
            coordinator.graph, workers=coordinator.sessions, started_at=started, now=now
        )
        return taken if ended_at is None else dataclasses.replace(taken, finished=True)

    await coordinator.wait_started()
    live = sys.stderr.isatty()
    await run_progress(
        snapshot,
        file=sys.stderr,
        interval=LIVE_INTERVAL if live else outputs.status_interval,
        live=live,
    )


def write_run_outputs(coordinator: Coordinator, outputs: Outputs) -> list[str]:
    """:func:`write_outputs` for the run ``coordinator`` served."""
    return write_outputs(
        coordinator.graph,
        outputs,
        workers=list(coordinator.workers.values()),
        counters=coordinator.statistics(),
        started_at=coordinator.started_at or time.time(),
        ended_at=time.time(),
    )


def write_outputs(
    graph: TaskGraph,
    outputs: Outputs,
    *,
    workers: Sequence[WorkerRecord] = (),
    counters: object = None,
    started_at: float,
    ended_at: float,
) -> list[str]:
    """Write the report and pictures asked for; return a line about each."""
    done: list[str] = []
    if outputs.report:
        stream_report(
            outputs.report,
            graph,
            workers=workers,
            counters=counters,
            started_at=started_at,
            ended_at=ended_at,
        )
        done.append(f"report written to {outputs.report}")
    pictures = [(outputs.graph_html, graph.draw), (outputs.timeline_html, graph.draw_timeline)]
    for path, draw in pictures:
        if path:
            draw(path)
            done.append(f"picture written to {path}")
    return done


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``tgs-coordinator``; return its exit status."""
    args = build_parser().parse_args(argv)
    configure_logging(args.log_level)
    try:
        host, port = parse_listen(args.listen)
        config = CoordinatorConfig(
            host=host,
            port=port,
            token=token_from_args(args),
            heartbeat_interval=args.heartbeat_interval,
            heartbeat_timeout=args.heartbeat_timeout,
            max_lost_attempts=args.max_lost_attempts,
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
            min_workers=args.min_workers,
            prefetch=args.prefetch,
            max_frame_bytes=args.max_frame_bytes,
            max_value_bytes=args.max_value_bytes,
            journal=args.journal,
            dashboard=args.dashboard,
            memory_limit=(
                default_memory_limit()
                if args.memory_limit is None
                else parse_size(args.memory_limit)
            ),
            release_results=args.release_results,
            spill_dir=args.spill_dir,
        )
        server_tls_context(config)  # a bad certificate is a usage error, said now
        if args.report_only:
            check_report_only(args)
        if args.dashboard_linger < 0:
            linger = args.dashboard_linger
            raise ConfigError(f"--dashboard-linger must not be negative, got {linger}")
        if not args.status_interval > 0:
            raise ConfigError(f"--status-interval must be positive, got {args.status_interval}")
        builder = load_builder(args.graph, args.path)
    except ConfigError as exc:
        fail(PROG, str(exc), EXIT_USAGE)
    outputs = Outputs(
        progress=not args.no_progress,
        status_interval=args.status_interval,
        report=args.report,
        graph_html=args.graph_html,
        timeline_html=args.timeline_html,
        dashboard_linger=args.dashboard_linger,
    )
    if args.report_only:
        return report_from_journal(builder, args.journal, outputs, config)
    stopper = SignalStop(PROG)
    try:
        coordinator, summary, written = trio.run(run_coordinator, builder, config, stopper, outputs)
    except StoppedWhileBuilding:
        print(f"{PROG}: stopped while building the graph", file=sys.stderr)
        return stopper.exit_code or EXIT_FAILED
    except KeyboardInterrupt:  # Ctrl-C before the signal watcher started or after it ended
        print(f"{PROG}: stopped by SIGINT", file=sys.stderr)
        return 128 + signal.SIGINT
    except OSError as exc:
        fail(PROG, f"cannot listen on {args.listen}: {exc.strerror or exc}")
    except TGSError as exc:
        fail(PROG, str(exc))
    lines = []
    if coordinator.graph.nodes:
        width = output_width(sys.stdout)
        lines.append(format_summary(coordinator.graph, coordinator.workers.values(), width))
    if written is None:
        written = write_run_outputs(coordinator, outputs)
    lines += written
    counts = ", ".join(f"{n} {status}" for status, n in summary.tasks_by_status.items())
    lines.append(
        f"{PROG}: {'stopped' if summary.interrupted else 'graph ended'}: {counts or 'no tasks'}"
    )
    print_out("\n".join(lines))  # a reader that stopped early (| head) is no error
    if stopper.exit_code is not None:
        return stopper.exit_code
    return EXIT_OK if summary.succeeded else EXIT_FAILED


def check_report_only(args: argparse.Namespace) -> None:
    """Check the options ``--report-only`` needs.

    Raises:
        ConfigError: no ``--journal``, no journal at that path, or nothing to write.
    """
    if not args.journal:
        raise ConfigError("--report-only reads a run from --journal PATH: give one")
    if not os.path.exists(args.journal):
        raise ConfigError(f"--report-only: there is no journal at {args.journal}")
    if not (args.report or args.graph_html or args.timeline_html):
        raise ConfigError(
            "--report-only writes --report, --graph-html or --timeline-html: give at least one"
        )


def report_from_journal(
    builder: Callable[[], Coroutine[Any, Any, TaskGraph]],
    path: str,
    outputs: Outputs,
    config: CoordinatorConfig | None = None,
) -> int:
    """Rebuild the run recorded in the journal at ``path`` and write what ``outputs`` ask
    for, running nothing. Return the exit status: 0 once written.

    The results read back keep to ``config.memory_limit`` (spilling to disk) as a
    resumed run's do."""

    async def rebuild() -> TaskGraph:
        graph = await call_builder(builder)
        if config is not None:
            configure_results(
                graph,
                memory_limit=config.memory_limit,
                release_results=False,  # a report of the run as it stood: nothing dropped
                spill_dir=config.spill_dir,
            )
        Journal.read_into(path, graph)
        return graph

    try:
        graph = trio.run(rebuild)
    except TGSError as exc:
        fail(PROG, str(exc))
    started = [n.started_at for n in graph.nodes.values() if n.started_at is not None]
    ended = [n.ended_at for n in graph.nodes.values() if n.ended_at is not None]
    now = time.time()
    lines = [format_summary(graph, width=output_width(sys.stdout))]
    lines += write_outputs(
        graph,
        outputs,
        started_at=min(started, default=now),
        ended_at=max(ended, default=now),
    )
    print_out("\n".join(lines))  # a reader that stopped early (| head) is no error
    return EXIT_OK
