"""The worker slot loop: the same for an in-process slot and a slot on a remote worker.

A slot runs one task at a time, back to back while tasks are ready: it takes the next task
without a checkpoint when one is ready and parks only when none is, so a burst of small
tasks costs no channel hop or checkpoint per task. Its owner plugs in the parts that
differ (a :class:`SlotOwner`): where the tasks come from, how one is run and its outcome
reported, and how a cancelled task is acknowledged. This is the hottest path of the
library: the loop itself awaits the task's call, and the owner's steps around it are
plain calls (no coroutine, closure or cancel scope per task).
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, Final, Generic, NoReturn, Protocol, TypeVar

import trio

from .errors import WorkerContextError, exception_headline
from .invoke import SlotThread, format_exception_trace, run_context_init
from .states import TaskStatus

if TYPE_CHECKING:
    import logging
    from collections.abc import AsyncIterator, Awaitable, Callable
    from types import FrameType

#: A slot yields to trio after this many tasks that never yielded themselves, so a burst
#: of tiny tasks cannot starve other trio tasks (a worker's receiver and sender among
#: them) or delay cancellation for long.
TASKS_PER_FORCED_YIELD: Final = 64

TaskT = TypeVar("TaskT")


class Slot(Generic[TaskT]):
    """One worker slot's state: the task it runs now, the cancel scope serving it, and the
    thread it runs sync functions in."""

    __slots__ = ("cancelled", "scope", "task", "thread")

    def __init__(self) -> None:
        #: The task it runs now, if any.
        self.task: TaskT | None = None
        #: Serves the slot's tasks until a :meth:`cancel` uses it up.
        self.scope = trio.CancelScope()
        #: Whether ``scope`` was cancelled (cheaper to read than ``scope.cancel_called``,
        #: which looks at the clock).
        self.cancelled = False
        #: Runs the slot's sync task functions; it may outlive a task that timed out or
        #: was cancelled, and the slot stays busy until it returns.
        self.thread = SlotThread()

    def cancel(self) -> None:
        """Stop the task this slot runs; the owner hears of it once it has really ended."""
        self.cancelled = True
        self.scope.cancel()


class TaskView(Protocol):
    """What the slot loop reads of the task node a task function was given."""

    @property
    def task_status(self) -> str: ...


class SlotOwner(Protocol[TaskT]):
    """The side-specific parts of a slot, which :func:`run_slot` calls.

    Running a task is split into synchronous steps around the one ``await`` of the task's
    call, which :func:`run_slot` makes itself: an ``async`` step would cost a coroutine
    per task, a measurable share of a small task. For the same reason an owner may make
    ``take_nowait`` and ``succeeded`` attributes holding another object's bound methods.
    """

    def take_nowait(self) -> TaskT | None:
        """The next task if one is ready, taken without a checkpoint; else ``None``."""
        ...

    async def wait_for_task(self) -> TaskT:
        """Park until a task comes, and return it."""
        ...

    def start(self, slot: Slot[TaskT], task: TaskT) -> tuple[Awaitable[Any], TaskView] | None:
        """Begin ``task`` (now ``slot.task``).

        Returns:
            The call of its function, not yet awaited, and the task node the function was
            given; or ``None`` when the task ended without a call (the owner has reported
            it already).
        """
        ...

    def succeeded(self, task: TaskT, result: Any) -> None:
        """The call returned ``result``: report it."""
        ...

    def failed(self, task: TaskT, error: Exception | None, *, slot_busy: bool = False) -> None:
        """The call raised ``error``, or (``None``) returned after the task marked itself
        failed: report it.

        ``slot_busy``: the call timed out while its sync function runs on in the slot's
        thread; the task ends now, and :meth:`slot_freed` follows once the thread returns.
        """
        ...

    def interrupted(self, task: TaskT) -> None:
        """The call was stopped from outside, not by :meth:`Slot.cancel` (the slot is
        being stopped): the task did not finish. The exception propagates afterwards."""
        ...

    def task_cancelled(self, task: TaskT, *, slot_busy: bool = False) -> None:
        """``task`` was stopped by :meth:`Slot.cancel` and has now really ended.

        ``slot_busy``: its sync function runs on in the slot's thread (abandoned);
        :meth:`slot_freed` follows once the thread returns.
        """
        ...

    def slot_freed(self, task: TaskT) -> None:
        """The thread that ``task`` (ended with ``slot_busy``) left running has returned,
        or the slot stops waiting for it because the slot is being stopped."""
        ...


async def run_slot(slot: Slot[TaskT], owner: SlotOwner[TaskT]) -> NoReturn:
    """Run ``owner``'s tasks in ``slot`` until cancelled from outside.

    Raises:
        trio.Cancelled: the slot was stopped (or whatever else ended it).
    """
    while True:
        outlived: TaskT | None = None
        # One cancel scope serves the slot's tasks until a cancel uses it up: a scope per
        # task would cost more than a small task itself.
        with trio.CancelScope() as slot.scope:
            slot.cancelled = False
            outlived = await _serve(slot, owner)
        task = slot.task
        if task is not None:  # stopped by a cancel, and now really ended
            slot.task = None
            if slot.thread.outlived:  # ... but its sync function runs on
                outlived = task
            owner.task_cancelled(task, slot_busy=outlived is not None)
        if outlived is not None:
            # Outside the slot's scope, which a late cancel may have hit: only stopping
            # the slot itself ends this wait.
            try:
                await slot.thread.returned()
            finally:
                owner.slot_freed(outlived)


async def _serve(slot: Slot[TaskT], owner: SlotOwner[TaskT]) -> TaskT | None:
    """Run tasks back to back; return once the slot's scope was cancelled, or with the
    task that timed out while its sync function runs on in the slot's thread."""
    # Looked up once here, not per task.
    take_nowait = owner.take_nowait
    start = owner.start
    succeeded = owner.succeeded
    marked_failed = TaskStatus.FAILED
    unyielded = 0
    while not slot.cancelled:  # a cancel that came too late (the task had ended): fresh scope
        task = take_nowait()
        if task is None:
            task = await owner.wait_for_task()
            unyielded = 0
        slot.task = task
        started = start(slot, task)
        if started is not None:
            call, node = started
            try:
                result = await call
            except Exception as exc:
                if slot.thread.outlived:  # timed out; the slot waits for its thread
                    slot.task = None
                    owner.failed(task, exc, slot_busy=True)
                    return task
                owner.failed(task, exc)
            except BaseException:
                if not slot.cancelled:
                    # Not the slot's own cancel: the task did not finish.
                    owner.interrupted(task)
                    slot.task = None
                raise  # the slot's own cancel is caught by its scope, in run_slot
            else:
                if node.task_status == marked_failed:
                    owner.failed(task, None)  # the seed let a task mark itself failed
                else:
                    succeeded(task, result)
        slot.task = None
        unyielded += 1
        if unyielded >= TASKS_PER_FORCED_YIELD:
            unyielded = 0
            await trio.lowlevel.checkpoint()
    return None


def task_on_stack(frame: FrameType | None) -> tuple[Any] | None:
    """The task a slot runs in this stack of frames (innermost first), in a 1-tuple; or
    ``None`` when no slot is on it. For a watchdog reading another thread's stack."""
    while frame is not None:
        if frame.f_code is _SERVE_CODE:
            slot = frame.f_locals.get("slot")
            return (getattr(slot, "task", None),)
        frame = frame.f_back
    return None


#: How long a worker context's teardown (its ``__aexit__``) may take when its slot
#: stops; it runs shielded from the stop's cancel, so it must end on its own.
CONTEXT_TEARDOWN_SECONDS: Final = 10.0


class ContextFailure:
    """Stands in for the worker context of a slot whose init function raised: every task
    the slot takes fails with :attr:`error` (end reason ``worker_error``), the same way
    in-process and on a worker."""

    __slots__ = ("error", "trace")

    def __init__(self, error: WorkerContextError) -> None:
        #: The error, with the init's error as its ``__cause__`` where it was raised.
        self.error = error
        #: Its traceback, the init function's own frames included.
        self.trace = format_exception_trace(error)

    def __str__(self) -> str:
        return str(self.error)


def _is_async_context_manager(value: Any) -> bool:
    kind = type(value)
    return hasattr(kind, "__aenter__") and hasattr(kind, "__aexit__")


@contextlib.asynccontextmanager
async def slot_context(
    loop: str, init: Callable[[int], Any] | None, index: int, logger: logging.Logger
) -> AsyncIterator[Any]:
    """The worker context of slot ``index`` of ``loop`` while the slot runs.

    ``init(index)`` (awaited if it returns an awaitable), or ``{}`` without an init. When
    that value is an async context manager (``init`` decorated with
    ``contextlib.asynccontextmanager``, or returning an ``httpx.AsyncClient``), the slot
    enters it, its tasks get what ``__aenter__`` returned, and it is exited when the slot
    stops: shielded from the stop's cancel, for at most
    :data:`CONTEXT_TEARDOWN_SECONDS`; an error there is logged, not raised.

    An init that raises gives a :class:`ContextFailure` (logged at ERROR) instead.
    """
    if init is None:
        yield {}
        return
    failure: ContextFailure | None = None
    try:
        context = await run_context_init(loop, init, index)
        manager = context if _is_async_context_manager(context) else None
        if manager is not None:
            try:
                context = await manager.__aenter__()
            except Exception as exc:
                raise WorkerContextError(loop, index, exception_headline(exc)) from exc
    except WorkerContextError as exc:
        logger.error("%s", exc, exc_info=exc)
        failure = ContextFailure(exc)
    if failure is not None:  # yielded outside the handler: the slot's end chains nothing
        yield failure
        return
    if manager is None:
        yield context
        return
    try:
        yield context
    except trio.Cancelled:
        # The slot's normal end (its loop or worker stops): exited as after a normal
        # ``async with`` body, so that code after a bare ``yield`` runs too.
        await _exit_context(manager, None, loop, index, logger)
        raise
    except BaseException as exc:
        await _exit_context(manager, exc, loop, index, logger)
        raise
    else:
        await _exit_context(manager, None, loop, index, logger)


async def _exit_context(
    manager: Any, error: BaseException | None, loop: str, index: int, logger: logging.Logger
) -> None:
    what = f"the worker context of loop {loop!r} (worker {index})"
    with trio.CancelScope(shield=True), trio.move_on_after(CONTEXT_TEARDOWN_SECONDS) as limit:
        try:
            if error is None:
                await manager.__aexit__(None, None, None)
            else:
                await manager.__aexit__(type(error), error, error.__traceback__)
        except Exception as exc:  # the user's teardown: anything can go wrong
            logger.warning("%s raised when exited: %s", what, exception_headline(exc))
    if limit.cancelled_caught:
        logger.warning("%s took over %g s to exit; left", what, CONTEXT_TEARDOWN_SECONDS)


_SERVE_CODE: Final = _serve.__code__
