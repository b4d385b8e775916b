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

from .coordinator.observe.wording import format_seconds, plural
from .protocol.codec import MAX_FRAME_BYTES
from .protocol.messages import PROTOCOL_VERSION, Reject, StatusReply, StatusRequest
from .protocol.session import ProtocolSession, Role
from .shared.errors import ConfigError, CoordinatorUnreachableError, LinkError, TGSError
from .shared.programs import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    add_token_options,
    fail,
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

PROG: Final = "tgs-status"
#: Seconds a query may take, connection included.
DEFAULT_QUERY_TIMEOUT: Final = 10.0


async def query_status(
    url: str,
    *,
    token: str = "",
    why: str | None = None,
    tls_ca: str | None = None,
    time_limit: float = DEFAULT_QUERY_TIMEOUT,
) -> StatusReply:
    """Ask the coordinator at ``url`` for the run's state (and why ``why`` waits).

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
                    lambda nursery: _ask(nursery, address, watched, token, why)
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
        request = StatusRequest(version=PROTOCOL_VERSION, token=token, why=why)
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


def format_status(reply: StatusReply) -> str:
    """The reply as text for a terminal: counts, loops, workers, the slowest tasks."""
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
    lines.append(f"{'loop':<20} {'running':>9} {'ready':>7} {'workers':>8}")
    for loop in reply.loops:
        running = f"{loop.running}/{loop.concurrency}"
        lines.append(f"{loop.name:<20} {running:>9} {loop.ready:>7} {loop.workers:>8}")
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
    if reply.explanation is not None:
        lines.append("")
        lines.append(reply.explanation)
    return "\n".join(lines)


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
        description="Show how a running tgs-coordinator's run is going: tasks by status, "
        "each loop's load, the connected workers and the longest-running tasks.\n\n"
        "Exit status: 0 on an answer, 1 if there was none (unreachable, refused, not a "
        "coordinator) or --why named no task of the run, 2 for bad usage.",
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


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``tgs-status``; return its exit status."""
    args = build_parser().parse_args(argv)
    try:
        token = token_from_args(args)
        reply = trio.run(
            lambda: query_status(
                args.url,
                token=token,
                why=args.why,
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
    if args.json:
        print(json.dumps(reply_as_json(reply), indent=2))
    else:
        print(format_status(reply))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
