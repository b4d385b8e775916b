"""Graph builders for the error tests (``tests/e2e/test_e2e_errors.py``).

Like the other graph modules it lives only in the coordinator's directory (the tests copy
it there with :meth:`Processes.add_graph_module`), and workers get its functions shipped
by value. Its tests rename it once the coordinator has loaded it, so that a worker's
tracebacks can only show its source lines if they travelled with the code.
"""

from __future__ import annotations

from typing import Any

from trio_graph_scheduler import TaskGraph, WorkerLoop


class HTTPStatusError(Exception):
    """Like httpx's: a message whose last line is a link, keyword-only arguments (which
    plain pickle could not load again), a status code."""

    def __init__(self, message: str, *, status_code: int) -> None:
        super().__init__(message)
        self.status_code = status_code


async def fetch(url: str, **_: Any) -> None:
    status = 404
    raise HTTPStatusError(
        f"Client error '{status} Not Found' for url '{url}'\n"
        "For more information check: https://developer.mozilla.org/en-US/docs/Web/HTTP/404",
        status_code=status,
    )


def no_kwargs(x: int) -> int:  # no **kwargs: the call fails with a TypeError
    return x


async def build_errors() -> TaskGraph:
    """One ``fetch`` that raises, one ``no_kwargs`` that cannot even be called."""
    graph = TaskGraph({"fetch": fetch, "no_kwargs": no_kwargs}, [WorkerLoop("default", 2)])
    await graph.create_task("fetch", (("https://example.org/missing",), None))
    await graph.create_task("no_kwargs", ((1,), None))
    return graph


async def build_broken() -> TaskGraph:
    """A builder with a mistake in it: the coordinator shows where."""
    graph = TaskGraph({"fetch": fetch}, [WorkerLoop("default", 1)])
    await graph.create_task(fetch_handle)  # type: ignore[name-defined]  # noqa: F821
    return graph
