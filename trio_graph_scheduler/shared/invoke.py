"""Calling a task function: the same in a worker slot in-process and on a remote worker."""

from __future__ import annotations

import functools
import inspect
import traceback
from typing import TYPE_CHECKING, Any

import trio

from .errors import TaskTimeoutError, WorkerContextError
from .states import EndReason

if TYPE_CHECKING:
    from collections.abc import Callable


async def invoke_task_function(
    function: Callable[..., Any],
    is_async: bool,
    arguments: Any,
    extra_kwargs: dict[str, Any],
    thread_limiter: trio.CapacityLimiter,
    *,
    time_limit: float | None = None,
) -> Any:
    """Call ``function`` with a task's arguments plus ``extra_kwargs``; return its result.

    An ``async`` function is awaited in the calling trio task; any other runs in a worker
    thread drawn from ``thread_limiter``. Exceptions propagate unchanged.

    Args:
        arguments: ``((args...), {kwargs})`` or ``None``; either half may be ``None``.
        extra_kwargs: ``task_node``, ``graph`` and ``worker_context``.
        time_limit: seconds the call may take; ``None`` for no limit.

    Raises:
        TaskTimeoutError: the call took longer than ``time_limit`` (an async one is cancelled
            then; a thread cannot be, so a sync one is judged when it returns).
    """
    args, kwargs = arguments if arguments is not None else ((), None)
    # A fresh dict: the task's stored kwargs must not gain the scheduler's extras.
    call_kwargs = {**kwargs, **extra_kwargs} if kwargs else extra_kwargs
    if is_async:
        call = function(*(args or ()), **call_kwargs)
    else:
        job = functools.partial(function, *(args or ()), **call_kwargs)
        call = trio.to_thread.run_sync(job, limiter=thread_limiter)
    if time_limit is None:
        return await call
    with trio.move_on_after(time_limit) as deadline:
        result = await call
    if deadline.cancel_called:
        raise TaskTimeoutError(time_limit)
    return result


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
        raise WorkerContextError(loop, worker_index) from exc
    return context
