"""What a task call is made of, checked the same on the coordinator and on a worker.

The shape of a task's arguments, the keyword arguments the scheduler reserves for itself,
and whether a function is awaited or run in a thread. Pure: no trio, no I/O.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any, Final

from .errors import GraphDefinitionError

if TYPE_CHECKING:
    from collections.abc import Callable

#: ``((args...), {kwargs})`` as the seed wrote task arguments, or ``None`` for none.
TaskArguments = tuple[tuple[Any, ...] | list[Any] | None, dict[str, Any] | None] | None

#: Keyword arguments every task function receives from the scheduler.
RESERVED_KWARGS: Final = frozenset({"task_node", "graph", "worker_context"})


def check_task_arguments(task_handle: str, arguments: object) -> None:
    """Check ``((args...), {kwargs})`` or ``None``, as ``create_task`` accepts them.

    Raises:
        GraphDefinitionError: another shape, non-str kwargs keys, or a reserved kwarg.
    """
    if arguments is None:
        return
    args: object = None
    kwargs: object = None
    if isinstance(arguments, tuple | list) and len(arguments) == 2:
        args, kwargs = arguments
    shape_ok = (
        isinstance(arguments, tuple | list)
        and len(arguments) == 2
        and (args is None or isinstance(args, tuple | list))
        and (kwargs is None or (isinstance(kwargs, dict) and all(type(k) is str for k in kwargs)))
    )
    if not shape_ok:
        raise GraphDefinitionError(
            f"task {task_handle!r}: arguments must be None or ((args...), {{kwargs}}), "
            f"got {arguments!r:.80}"
        )
    reserved = RESERVED_KWARGS.intersection(kwargs or ())  # type: ignore[arg-type]
    if reserved:
        raise GraphDefinitionError(
            f"task {task_handle!r}: {', '.join(sorted(reserved))} are passed by the scheduler "
            "and cannot be task kwargs"
        )


#: The types a task key may be built of: what msgpack, JSON reports and the text views
#: carry exactly. Tuples of them are keys too.
_KEY_ATOMS: Final = (str, bytes, int, float, bool)


def check_task_key(key: object) -> None:
    """Check a task key as ``create_task(..., key=K)`` accepts it.

    A key is a ``str``, ``bytes``, ``int``, ``float`` or ``bool``, or a tuple of keys:
    hashable, and carried exactly over the wire and into the report. ``None`` means "no
    key" and is never looked up.

    Raises:
        GraphDefinitionError: any other value (a list, a dict, an object ...).
    """
    if isinstance(key, _KEY_ATOMS):
        if key != key:  # NaN equals nothing, itself included: it could never be found
            raise GraphDefinitionError("a task key cannot be NaN")
        return
    if isinstance(key, tuple):
        for item in key:
            check_task_key(item)
        return
    raise GraphDefinitionError(
        f"a task key must be a str, bytes, int, float, bool or a tuple of them, "
        f"got {type(key).__name__}: {key!r:.80}"
    )


def is_async_function(function: Callable[..., Any]) -> bool:
    """True for ``async def`` functions and objects whose ``__call__`` is one."""
    call = getattr(function, "__call__", None)  # noqa: B004 - async callable objects count too
    return inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(call)
