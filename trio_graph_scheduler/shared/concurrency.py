"""Running a main task with helpers beside it, without ExceptionGroups for the caller."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, TypeVar

import trio

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

_T = TypeVar("_T")

#: A receiver yields after handling this many messages of one frame, so that the tasks
#: it fed (slots, the sender) start on the first ones while it handles the rest: a big
#: frame then overlaps work on both ends instead of moving in lockstep.
MESSAGES_PER_YIELD: Final = 32


async def run_beside(
    main: Callable[[], Awaitable[_T]], *helpers: Callable[[], Awaitable[object]]
) -> _T:
    """Run ``main()`` with ``helpers`` running beside it until ``main`` ends.

    The helpers are cancelled as soon as ``main`` returns or raises. An exception from
    ``main`` comes out as itself, not inside an ExceptionGroup (trio nurseries group
    everything); an exception from a helper comes out grouped, as the bug it is.
    """
    error: Exception | None = None
    async with trio.open_nursery() as nursery:
        for helper in helpers:
            nursery.start_soon(helper)
        try:
            result = await main()
        except Exception as exc:
            error = exc
        nursery.cancel_scope.cancel()
    if error is not None:
        raise error
    return result
