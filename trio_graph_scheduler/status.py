"""``tgs-status``: ask a running coordinator how the run is going, and why a task waits.

The query is a connection of its own: a ``status_request`` instead of a worker's hello,
answered by one ``status_reply``, after which the coordinator closes. It needs the token,
as a worker does, and no pickled value ever crosses it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import TYPE_CHECKING, Final

import msgspec
import trio
import trio_websocket

from .coordinator.observe.task_list import DEFAULT_TASK_LIMIT, parse_status
from .coordinator.observe.text_table import Column, cut, format_table, output_width
from .coordinator.observe.wording import STATUS_WORDS, format_seconds, plural
from .protocol.codec import MAX_FRAME_BYTES
from .protocol.messages import (
    MAX_TASKS_LISTED,
    PROTOCOL_VERSION,
    Reject,
    StatusReply,
    StatusRequest,
    TaskFilter,
)
from .protocol.session import ProtocolSession, Role
from .shared.errors import ConfigError, CoordinatorUnreachableError, LinkError, TGSError
from .shared.programs import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    add_token_options,
    fail,
    print_out,
    token_from_args,
)
from .worker.connect import (
    CONNECT_ERRORS,
    CoordinatorAddress,
    EndWatchingStream,
    describe_failure,
    in_connection_nursery,
    rejected_upgrade,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from .shared.states import TaskStatus

PROG: Final = "tgs-status"
#: Seconds a query may take, connection included.
DEFAULT_QUERY_TIMEOUT: Final = 10.0


async def query_status(
    url: str,
    *,
    token: str = "",
    why: str | None = None,
    tasks: TaskFilter | None = None,
    tls_ca: str | None = None,
    time_limit: float = DEFAULT_QUERY_TIMEOUT,
) -> StatusReply:
    """Ask the coordinator at ``url`` for the run's state (and why ``why`` waits, and the
    tasks ``tasks`` selects).

    Raises:
        ConfigError: a bad URL or CA file.
        CoordinatorUnreachableError: no connection, or no answer within ``time_limit``
            seconds.
        LinkError: the coordinator refused the query (a wrong token), or what answered
            is not a coordinator (an HTTP server).
        RemoteProtocolError: the coordinator answered with something else.
    """
    address = CoordinatorAddress.parse(url)
    opener = address.opener(tls_ca)
    with trio.move_on_after(time_limit):
        try:
            stream = await opener()
            async with stream:
                watched = EndWatchingStream(stream)
                return await in_connection_nursery(
                    lambda nursery: _ask(nursery, address, watched, token, why, tasks)
                )
        except CONNECT_ERRORS as exc:
            if rejected_upgrade(exc) is not None:
                raise LinkError(f"{url} is {describe_failure(exc)}") from None
            # One attempt, failed at once: no "(tried for N s)", that wait did not happen.
            raise CoordinatorUnreachableError(url, None, describe_failure(exc)) from None
    raise CoordinatorUnreachableError(url, time_limit, "no answer in time")


async def _ask(
    nursery: trio.Nursery,
    address: CoordinatorAddress,
    stream: EndWatchingStream,
    token: str,
    why: str | None,
    tasks: TaskFilter | None,
) -> StatusReply:
    with trio.CancelScope() as attempt:
        stream.on_end = attempt.cancel  # trio-websocket would wait on a dead stream
        ws = await trio_websocket.wrap_client_stream(
            nursery,
            stream,  # type: ignore[arg-type]  # any trio Stream works
            address.host,
            address.resource,
            max_message_size=MAX_FRAME_BYTES,
        )
        session = ProtocolSession(Role.WORKER)
        request = StatusRequest(version=PROTOCOL_VERSION, token=token, why=why, tasks=tasks)
        await ws.send_message(session.send([request]))
        (answer,) = session.receive(await ws.get_message())
    if attempt.cancelled_caught:
        raise ConnectionResetError("the connection ended before the answer")
    with trio.move_on_after(1):
        await ws.aclose()
    if isinstance(answer, Reject):
        raise LinkError(f"the coordinator refused the query: {answer.reason}")
    assert isinstance(answer, StatusReply)  # the protocol session admits nothing else
    return answer


def format_status(reply: StatusReply, width: int | None = None) -> str:
    """The reply as text for a terminal: counts, loops, workers, the slowest tasks.

    Every line fits ``width`` characters (a terminal's; None: no limit), cut with an
    ellipsis, never wrapped; only the explanation of ``--why`` is kept whole.
    """
    lines = []
    counts = ", ".join(f"{n} {status}" for status, n in reply.tasks_by_status.items())
    if reply.waiting_for_workers:
        # Not started: a time "running" would be 0.0 ms, which says nothing true.
        more = plural(reply.waiting_for_workers, "more worker")
        head = f"waiting for {more} (--min-workers {reply.min_workers})"
    else:
        head = f"running for {format_seconds(reply.elapsed)}"
    lines.append(f"{head}: {counts or 'no tasks'}")
    lines.append("")
    lines += format_table(
        [
            Column("loop", min_width=8),
            Column("running", right=True),
            Column("ready", right=True),
            Column("workers", right=True),
        ],
        [
            [loop.name, f"{loop.running}/{loop.concurrency}", str(loop.ready), str(loop.workers)]
            for loop in reply.loops
        ],
        width,
    )
    lines.append("")
    if not reply.workers:
        lines.append("no worker is connected")
    for worker in reply.workers:
        since = time.strftime("%H:%M:%S", time.localtime(worker.joined_at))
        lines.append(
            f"{worker.worker_id} ({worker.name}) since {since}, serves "
            f"{', '.join(worker.loops)}: {len(worker.running)} running"
        )
    if reply.slowest:
        lines.append("")
        lines.append("longest running:")
        for task in reply.slowest:
            lines.append(
                f"  {task.task_uid} {task.handle} on {task.worker or '?'} for "
                f"{format_seconds(task.running_for)} (run {task.attempt})"
            )
    if reply.lost:
        lines.append("")
        lines.append("lost:")
        lines.extend(f"  {line}" for line in reply.lost)
    if width is not None:
        lines = [cut(line, width) for line in lines]
    if reply.explanation is not None:
        lines.append("")
        lines.append(reply.explanation)
    return "\n".join(lines)


def format_tasks(reply: StatusReply, width: int | None = None, asked: int | None = None) -> str:
    """The tasks ``--tasks`` listed, as a table within ``width`` characters (None: no
    limit), and a line saying how many more matched (``asked``: the ``--limit`` given).

    Uids are never cut (``--why`` needs them whole); when the table does not fit, the
    names are cut first, then columns go (ended, runs, started, worker).
    """
    if not reply.tasks:
        return "no task matches"
    keyed = any(task.key is not None for task in reply.tasks)
    columns = [Column("uid")]
    columns += [Column("key", min_width=8, drop=4)] * keyed
    columns += [
        Column("function", min_width=8),
        Column("status"),
        Column("runs", right=True, drop=1),
        Column("worker", drop=3),  # an id: useless cut
        Column("started", drop=2),
        Column("ended", drop=0),
    ]
    rows = []
    for task in reply.tasks:
        row = [task.task_uid]
        row += [task.key or ""] * keyed
        row += [
            task.handle,
            STATUS_WORDS[task.status],
            str(task.attempts),
            task.worker or "-",
            _clock(task.started_at),
            _clock(task.ended_at),
        ]
        rows.append(row)
    lines = format_table(columns, rows, width)
    more = reply.tasks_matched - len(reply.tasks)
    if more > 0:
        if asked is not None and len(reply.tasks) < asked:
            # The coordinator listed fewer than asked: that many would not fit in a frame.
            hint = "more than a frame holds; narrow with --status or --function"
        else:
            hint = f"--limit {reply.tasks_matched} shows them"
        more_line = f"... and {plural(more, 'more task')} matched ({hint})"
        lines.append(more_line if width is None else cut(more_line, width))
    return "\n".join(lines)


def _clock(timestamp: float | None) -> str:
    return "-" if timestamp is None else time.strftime("%H:%M:%S", time.localtime(timestamp))


def reply_as_json(reply: StatusReply) -> dict[str, object]:
    """The reply as ``--json`` prints it: every field, also those the frame left out
    because they held their default (``omit_defaults``), so that scripts find them all."""
    fields = {name: getattr(reply, name) for name in reply.__struct_fields__}
    converted = msgspec.to_builtins(fields)
    assert isinstance(converted, dict)
    return converted


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``tgs-status``."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        # Broken by hand: the raw formatter keeps these lines as they are.
        description="Show how a running tgs-coordinator's run is going: tasks by status,\n"
        "each loop's load, the connected workers and the longest-running tasks; or, with\n"
        "--tasks, list its tasks. On a terminal, tables fit its width.\n\n"
        "Exit status: 0 on an answer; 1 if there was none (unreachable, refused, not a\n"
        "coordinator), or --why named no task of the run, or --function no function of\n"
        "its graph; 2 for bad usage.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("url", metavar="URL", help="the coordinator's address, ws://HOST:PORT")
    add_token_options(parser)
    parser.add_argument(
        "--why",
        metavar="TASK",
        help="also explain why this task has not run (yet): its uid, or the key it was "
        "created with (a string key, e.g. a URL); one the run does not have is an error "
        "(exit status 1)",
    )
    tasks = parser.add_argument_group(
        "listing tasks",
        "find a task's uid for --why; --status, --function, --limit imply --tasks",
    )
    tasks.add_argument(
        "--tasks",
        action="store_true",
        help="list the run's tasks, in the order they were created: uid, key (if any), "
        "function, status, runs, worker, started and ended times",
    )
    tasks.add_argument(
        "--status",
        metavar="S",
        help="only tasks in this status: a status (in_progress, success, ...) or its word "
        "(running, succeeded, failed, skipped, waiting, ready); a,b for several",
    )
    tasks.add_argument("--function", metavar="F", help="only tasks of function F")
    tasks.add_argument(
        "--limit",
        type=int,
        metavar="N",
        help=f"list at most N tasks (default: {DEFAULT_TASK_LIMIT}, at most "
        f"{MAX_TASKS_LISTED}); the listing says how many more matched",
    )
    parser.add_argument("--json", action="store_true", help="print the answer as JSON")
    parser.add_argument("--tls-ca", metavar="PEM", help="for wss://, the CAs to trust")
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_QUERY_TIMEOUT,
        metavar="S",
        help=f"seconds to wait for the answer (default: {DEFAULT_QUERY_TIMEOUT:g})",
    )
    return parser


def task_query(args: argparse.Namespace) -> TaskFilter | None:
    """The listing ``--tasks`` (or one of its filters) asks for, or None.

    Raises:
        ConfigError: an unknown status, or a limit out of range.
    """
    if not (args.tasks or args.status or args.function or args.limit is not None):
        return None
    limit = DEFAULT_TASK_LIMIT if args.limit is None else args.limit
    statuses: set[TaskStatus] = set()
    for part in (args.status or "").split(","):
        if part.strip():
            statuses |= parse_status(part)
    if not 1 <= limit <= MAX_TASKS_LISTED:
        raise ConfigError(f"--limit must be 1 to {MAX_TASKS_LISTED}, got {limit}")
    return TaskFilter(
        statuses=sorted(statuses),
        function=args.function or None,
        limit=limit,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``tgs-status``; return its exit status."""
    args = build_parser().parse_args(argv)
    try:
        token = token_from_args(args)
        tasks = task_query(args)
        reply = trio.run(
            lambda: query_status(
                args.url,
                token=token,
                why=args.why,
                tasks=tasks,
                tls_ca=args.tls_ca,
                time_limit=args.timeout,
            )
        )
    except ConfigError as exc:
        fail(PROG, str(exc), EXIT_USAGE)
    except TGSError as exc:
        fail(PROG, str(exc), EXIT_FAILED)
    if reply.why_unknown:  # asked about a task the run does not have: no answer to give
        fail(PROG, reply.explanation or f"no task or condition with uid {args.why!r}")
    if reply.tasks_error is not None:  # --function named no function of the graph
        fail(PROG, reply.tasks_error)
    if args.json:
        text = json.dumps(reply_as_json(reply), indent=2)
    elif tasks is not None:
        text = format_tasks(reply, output_width(sys.stdout), tasks.limit)
        if reply.explanation is not None:
            text += "\n\n" + reply.explanation
    else:
        text = format_status(reply, output_width(sys.stdout))
    print_out(text)  # a reader that stops early (| head) is no error
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
