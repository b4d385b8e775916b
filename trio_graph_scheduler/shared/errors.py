"""The one exception hierarchy of trio-graph-scheduler.

Every error the library raises on purpose derives from :class:`TGSError`::

    TGSError
    ├── GraphDefinitionError (also a ValueError)   a graph, loop, task or condition is ill-formed
    │   └── UnknownFunctionError                   a function name the graph does not know
    ├── UnknownUidError (also a KeyError)          a task or condition uid the graph does not know
    ├── GraphStalledError                          unfinished tasks, none of which can ever run
    ├── ResultReleasedError (also a LookupError)   a result release_results dropped
    ├── WorkerContextError                         a loop's worker-context init function raised
    ├── RemoteTaskError                            a task's exception that could not travel
    ├── TasksFailedError                           tasks failed (execute_graph's raise_on_failure)
    ├── NotOnWorkerError                           a graph call a task on a worker cannot make
    ├── TaskTimeoutError (also a TimeoutError)     a task ran longer than its policy's timeout
    ├── ProtocolError                              a frame or message breaks the wire protocol
    │   ├── LocalProtocolError                     we tried to send something illegal
    │   │   ├── protocol.InvalidFieldError         a message built with a bad field value
    │   │   ├── protocol.ValueEncodeError          a task value that cannot be serialised
    │   │   └── protocol.FrameTooLargeError        a frame over the size limit
    │   └── RemoteProtocolError                    the peer sent something illegal
    ├── LinkError                                  a worker's link to its coordinator failed
    │   ├── CoordinatorUnreachableError            no connection (within the connect timeout)
    │   └── WorkerRejectedError                    the coordinator refused this worker
    ├── ConfigError                                bad command-line or service configuration
    └── JournalError                               a run's journal cannot be used (another
                                                   graph's, damaged, or not a journal)

``TGSInternalError`` stands outside the tree on purpose: an ``except TGSError`` written
around a user-facing error must never swallow a bug in the library.

Errors carry what went wrong as attributes (``name``, ``uid``, ``stuck``, ...), not only as
text. Mixing in ``ValueError``/``KeyError`` keeps the seed's promise that an unknown name
raises ``ValueError`` and an unknown uid ``KeyError``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from collections.abc import Mapping


class TGSError(Exception):
    """Root of every error raised by trio-graph-scheduler."""


class TGSInternalError(Exception):
    """A state that cannot happen unless trio-graph-scheduler has a bug: please report it.

    Not a :class:`TGSError`, so that handlers for the library's user-facing errors do not
    catch it.
    """


class GraphDefinitionError(TGSError, ValueError):
    """A graph, worker loop, task or condition was defined wrongly.

    Raised at the call that is wrong: the ``TaskGraph`` constructor, ``create_task``,
    ``GenericSchedulingCondition`` or ``prepend_to_successor``.
    """


class UnknownFunctionError(GraphDefinitionError):
    """A task or loop names a function that is not in the graph's ``functions``."""

    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        self.known = known
        super().__init__(f"unknown function {name!r}; the graph knows {', '.join(known) or 'none'}")

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.name, self.known)


class UnknownUidError(TGSError, KeyError):
    """A uid names no task or condition of this graph."""

    def __init__(self, uid: str) -> None:
        self.uid = uid
        super().__init__(f"no task or condition with uid {uid!r} in this graph")

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.uid,)

    def __str__(self) -> str:
        # KeyError's own __str__ shows repr(args[0]); keep the sentence readable.
        return str(self.args[0])


class ResultReleasedError(TGSError, LookupError):
    """A task's result was released by ``release_results`` (``--release-results``): every
    task that waited on it had ended, so it was dropped to free memory.

    Raised by reading ``node.task_result``, and by making a new task wait on that task
    (it could only read a wrong value). Keep a result with ``create_task(...,
    keep_result=True)``, or run without ``release_results``.
    """

    def __init__(self, uid: str, doing: str = "it cannot be read") -> None:
        self.uid = uid
        self.doing = doing
        super().__init__(
            f"the result of {uid} was released once every task waiting on it had ended "
            f"(release_results, --release-results): {doing}; create it with "
            "keep_result=True to keep it"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.uid, self.doing)


class GraphStalledError(TGSError):
    """Tasks are unfinished but none is running or ready, so none ever will be.

    This happens only when a graph waits on itself in a cycle (``prepend_to_successor`` can
    build one). ``stuck`` holds the uids of the tasks that can never run.
    """

    def __init__(self, stuck: list[str]) -> None:
        self.stuck = stuck
        shown = ", ".join(stuck[:5]) + (", ..." if len(stuck) > 5 else "")
        super().__init__(
            f"{len(stuck)} task(s) wait on conditions that can never resolve "
            f"(a dependency cycle?): {shown}"
        )


class WorkerContextError(TGSError):
    """A worker loop's context init function raised, so that slot cannot run tasks: each
    task it takes fails with this error (end reason ``worker_error``), in-process and on
    workers alike. ``error`` is the init's error as ``repr`` (the error itself is the
    ``__cause__`` where it was raised)."""

    def __init__(self, loop: str, worker_index: int, error: str | None = None) -> None:
        self.loop = loop
        self.worker_index = worker_index
        self.error = error
        text = f"worker context init of loop {loop!r} (worker {worker_index}) failed"
        super().__init__(text if error is None else f"{text}: {error}")

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled to travel from a worker: rebuilt from its fields, not from its message.
        return type(self), (self.loop, self.worker_index, self.error)


class RemoteTaskError(TGSError):
    """Stands in for a task's exception that could not travel from its worker (it could
    not be pickled there, or not unpickled here): ``node.task_exception`` is one of these
    then. ``type_name`` is the original exception's class name, ``message`` its
    ``str()``, ``why`` why the original could not come; the traceback text is in
    ``node.exception_trace`` as always.
    """

    def __init__(self, type_name: str, message: str, why: str = "") -> None:
        self.type_name = type_name
        self.message = message
        self.why = why
        super().__init__(f"{type_name}: {message}" if message else type_name)

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.type_name, self.message, self.why)


class TasksFailedError(TGSError):
    """``execute_graph(..., raise_on_failure=True)``: the graph ended with failed tasks.

    ``summary`` is the run's :class:`~trio_graph_scheduler.RunSummary`; its
    ``failed_tasks`` are the tasks that failed, each with its headline.
    """

    def __init__(self, summary: Any) -> None:
        self.summary = summary
        failed = summary.failed_tasks
        lines = [f"  {task.uid} ({task.function}): {task.headline}" for task in failed[:10]]
        if len(failed) > 10:
            lines.append(f"  ... and {len(failed) - 10} more")
        super().__init__(f"{len(failed)} task(s) failed:\n" + "\n".join(lines))


class NotOnWorkerError(TGSError):
    """A task running on a remote worker made a graph call that only the graph's owner
    can answer at once (the coordinator, or the in-process graph).

    The message names the call to use instead, e.g. ``await graph.acancel_task(uid)``.
    """


class TaskTimeoutError(TGSError, TimeoutError):
    """A task ran longer than its :class:`~trio_graph_scheduler.TaskPolicy` timeout.

    It fails the task (retried if the policy allows); ``seconds`` is the limit it broke.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        super().__init__(f"the task took longer than its timeout of {seconds:g} s")

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.seconds,)


class ProtocolError(TGSError):
    """A frame or message breaks the wire protocol. Never raised directly."""

    def __init__(self, message: str) -> None:
        if type(self) is ProtocolError:
            raise TypeError("raise LocalProtocolError or RemoteProtocolError, not ProtocolError")
        super().__init__(message)


class LocalProtocolError(ProtocolError):
    """We were about to send something the protocol forbids: a bug on this side."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something the protocol forbids; its connection is closed."""


class ConfigError(TGSError):
    """A command-line option or service setting is invalid."""


class JournalError(TGSError):
    """A run's journal cannot be used: it belongs to another graph, it is damaged, or the
    file is no journal. Nothing was run from it."""


class ValueTooLargeError(TGSError, ValueError):
    """A value is larger than the other end takes in (``--max-value-bytes``), or a
    message needs a larger frame than it accepts (``--max-frame-bytes``), so the task
    or the graph call cannot travel."""


class LinkError(TGSError):
    """A worker's connection to its coordinator failed for good."""


class CoordinatorUnreachableError(LinkError):
    """The coordinator could not be reached: a worker kept trying for its connect
    timeout, or a status query's one attempt failed.

    ``url`` is where it tried, ``seconds`` how long (``None`` for one attempt, which
    claims no wait), ``last_error`` what the last attempt ran into.
    """

    def __init__(self, url: str, seconds: float | None, last_error: str) -> None:
        self.url = url
        self.seconds = seconds
        self.last_error = last_error
        tried = "" if seconds is None else f" (tried for {seconds:g} s)"
        super().__init__(f"cannot reach the coordinator at {url}{tried}: {last_error}")


class WorkerRejectedError(LinkError):
    """The coordinator refused this worker at the handshake; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"the coordinator refused this worker: {reason}")


#: The errors a graph call (``create_task`` ...) can raise, by the name a ``reply``
#: carries them under: a task on a worker gets the same class as in-process. Any other
#: name comes back as a plain :class:`TGSError`.
GRAPH_CALL_ERRORS: Final[Mapping[str, type[TGSError]]] = {
    cls.__name__: cls
    for cls in (
        TGSError,
        GraphDefinitionError,
        UnknownFunctionError,
        UnknownUidError,
        NotOnWorkerError,
        ValueTooLargeError,
        ResultReleasedError,
    )
}


#: Longest error headline shown in one line before it is cut with "...".
MAX_HEADLINE_CHARS: Final = 160


def exception_headline(error: BaseException) -> str:
    """What went wrong, in one line: ``Type: message`` of the exception itself.

    Not the traceback's last line: an exception whose ``str`` has several lines (httpx's
    ``HTTPStatusError`` ends with a link) or that carries notes ends its traceback with
    something else. The message's first line is kept, cut to :data:`MAX_HEADLINE_CHARS`.
    A :class:`RemoteTaskError` reads as the exception it stands in for.
    """
    if isinstance(error, RemoteTaskError):
        name, message = error.type_name, error.message
    else:
        name = type(error).__qualname__
        try:
            message = str(error)
        except Exception:  # a user's __str__ can raise
            message = "<str() failed>"
    first = next((line.strip() for line in message.splitlines() if line.strip()), "")
    line = f"{name}: {first}" if first else name
    if len(line) > MAX_HEADLINE_CHARS:
        line = line[: MAX_HEADLINE_CHARS - 3] + "..."
    return line
