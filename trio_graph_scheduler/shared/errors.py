"""The one exception hierarchy of trio-graph-scheduler.

Every error the library raises on purpose derives from :class:`TGSError`::

    TGSError
    ├── GraphDefinitionError (also a ValueError)   a graph, loop, task or condition is ill-formed
    │   └── UnknownFunctionError                   a function name the graph does not know
    ├── UnknownUidError (also a KeyError)          a task or condition uid the graph does not know
    ├── GraphStalledError                          unfinished tasks, none of which can ever run
    ├── WorkerContextError                         a loop's worker-context init function raised
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
    └── ConfigError                                bad command-line or service configuration

``TGSInternalError`` stands outside the tree on purpose: an ``except TGSError`` written
around a user-facing error must never swallow a bug in the library.

Errors carry what went wrong as attributes (``name``, ``uid``, ``stuck``, ...), not only as
text. Mixing in ``ValueError``/``KeyError`` keeps the seed's promise that an unknown name
raises ``ValueError`` and an unknown uid ``KeyError``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

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


class UnknownUidError(TGSError, KeyError):
    """A uid names no task or condition of this graph."""

    def __init__(self, uid: str) -> None:
        self.uid = uid
        super().__init__(f"no task or condition with uid {uid!r} in this graph")

    def __str__(self) -> str:
        # KeyError's own __str__ shows repr(args[0]); keep the sentence readable.
        return str(self.args[0])


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
    """A worker loop's context init function raised; the loop cannot start."""

    def __init__(self, loop: str, worker_index: int) -> None:
        self.loop = loop
        self.worker_index = worker_index
        super().__init__(f"worker context init of loop {loop!r} (worker {worker_index}) failed")


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


class ValueTooLargeError(TGSError, ValueError):
    """A task's arguments need a larger frame than the other end accepts
    (``--max-frame-bytes``), so the task cannot travel."""


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
    )
}
