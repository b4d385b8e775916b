"""Calling a task function: the same in a worker slot in-process and on a remote worker."""

from __future__ import annotations

import functools
import inspect
import traceback
from typing import TYPE_CHECKING, Any, NoReturn

import trio

from .errors import TaskTimeoutError, WorkerContextError, exception_headline
from .states import EndReason

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine


class SlotThread:
    """The worker thread a slot runs its sync task functions in, one call at a time.

    A thread cannot be stopped from outside. When the call of a sync function is cancelled
    (its timeout, a ``cancel_task``, the slot being stopped) the call ends at once and the
    thread is *abandoned*: it runs on until the function returns, and what it returns or
    raises is thrown away. :attr:`outlived` then says so, and the slot must wait for
    :meth:`returned` before it takes another task, so that its loop's limit stays true.
    A function that wants to stop early can call ``trio.from_thread.check_cancelled()``,
    which raises once its call was cancelled.
    """

    __slots__ = ("_limiter", "outlived")

    def __init__(self) -> None:
        # One token: trio holds it from the thread's start until the function has really
        # returned, abandoned or not, so acquiring it waits for exactly that.
        self._limiter = trio.CapacityLimiter(1)
        #: Whether the last call ended while its function still ran in the thread.
        self.outlived = False

    async def run(self, job: Callable[[], Any]) -> Any:
        """Run ``job`` in the thread; a cancel ends this call at once and abandons it."""
        try:
            return await trio.to_thread.run_sync(job, limiter=self._limiter, abandon_on_cancel=True)
        except BaseException:
            # A function that returned or raised has given the token back already (trio
            # releases it before it delivers the outcome): held, the thread runs on.
            if self._limiter.borrowed_tokens:
                self.outlived = True
            raise

    async def returned(self) -> None:
        """Wait until the abandoned function has returned (at once if none runs)."""
        async with self._limiter:
            pass
        self.outlived = False


def invoke_task_function(
    function: Callable[..., Any],
    is_async: bool,
    arguments: Any,
    extra_kwargs: dict[str, Any],
    thread: SlotThread,
    *,
    time_limit: float | None = None,
) -> Coroutine[Any, Any, Any]:
    """The call of ``function`` with a task's arguments plus ``extra_kwargs``, to await
    for its result.

    An ``async`` function is awaited in the awaiting trio task; any other runs in the
    slot's worker ``thread``. Exceptions propagate unchanged, when awaited (arguments
    that do not fit the function's signature too). Without a time limit, an ``async``
    function's own coroutine is returned: no coroutine of ours around each small task.

    Args:
        arguments: ``((args...), {kwargs})`` or ``None``; either half may be ``None``.
        extra_kwargs: ``task_node``, ``graph`` and ``worker_context``.
        thread: the slot's thread, for a sync function.
        time_limit: seconds the call may take; ``None`` for no limit.

    Raises:
        TaskTimeoutError: the call took longer than ``time_limit``. An async one is
            cancelled then; a sync one is abandoned (``thread.outlived``), as no thread can
            be stopped.
    """
    args, kwargs = arguments if arguments is not None else ((), None)
    # A fresh dict: the task's stored kwargs must not gain the scheduler's extras.
    call_kwargs = {**kwargs, **extra_kwargs} if kwargs else extra_kwargs
    if time_limit is not None:
        return _limited(function, is_async, args or (), call_kwargs, thread, time_limit)
    if not is_async:
        return thread.run(functools.partial(function, *(args or ()), **call_kwargs))
    try:
        call: Coroutine[Any, Any, Any] = function(*(args or ()), **call_kwargs)
    except Exception as exc:  # arguments its signature refuses: raised when awaited
        return _raise(exc)
    return call


async def _limited(
    function: Callable[..., Any],
    is_async: bool,
    args: Any,
    kwargs: dict[str, Any],
    thread: SlotThread,
    time_limit: float,
) -> Any:
    # The function is called only once this is awaited: closed unawaited, it leaves no
    # coroutine of the function's never awaited.
    with trio.move_on_after(time_limit) as deadline:
        if is_async:
            result = await function(*args, **kwargs)
        else:
            result = await thread.run(functools.partial(function, *args, **kwargs))
    if deadline.cancel_called:
        raise TaskTimeoutError(time_limit)
    return result


async def _raise(error: Exception) -> NoReturn:
    raise error


def failure_reason(error: Exception) -> EndReason:
    """How a task whose call raised ``error`` ended: timed out, or raised."""
    return EndReason.TIMED_OUT if isinstance(error, TaskTimeoutError) else EndReason.RAISED


def format_exception_trace(exc: BaseException) -> str:
    """The full traceback of ``exc`` as one string, as ``exception_trace`` holds it."""
    return "".join(traceback.format_exception(exc))


async def run_context_init(loop: str, init: Callable[[int], Any], worker_index: int) -> Any:
    """Call a loop's worker-context init function (async or not) for one worker slot.

    Raises:
        WorkerContextError: the init function raised (its error is the ``__cause__``).
    """
    try:
        context = init(worker_index)
        if inspect.isawaitable(context):
            context = await context
    except Exception as exc:
        raise WorkerContextError(loop, worker_index, exception_headline(exc)) from exc
    return context
