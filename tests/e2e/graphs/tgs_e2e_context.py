"""A graph whose loop has a worker context with a teardown (``tests/e2e/test_e2e_errors.py``).

Each slot's context records, in the directory tasks write to, that it was opened and
closed, under its ``worker_index``: the test reads which numbers the slots of the whole
cluster had, and that every one was closed when its worker stopped.
"""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING, Any

import trio
from tgs_e2e_helpers import out_dir

from trio_graph_scheduler import TaskGraph, WorkerLoop

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

#: The loop's concurrency: each worker runs this many slots of it.
SLOTS = 2


def _touch(path: str) -> None:
    with open(path, "a"):
        pass


def slot_context(out: str) -> Callable[[int], Any]:
    @contextlib.asynccontextmanager
    async def init(worker_index: int) -> AsyncIterator[int]:
        _touch(os.path.join(out, f"open-{worker_index}-{os.getpid()}"))
        try:
            yield worker_index
        finally:
            await trio.lowlevel.checkpoint()  # a teardown may await
            _touch(os.path.join(out, f"closed-{worker_index}-{os.getpid()}"))

    return init


async def index(**kwargs: Any) -> int:
    await trio.sleep(0.05)
    number: int = kwargs["worker_context"]
    return number


async def build_context() -> TaskGraph:
    """Eight tasks on one loop whose slots open and close a context."""
    graph = TaskGraph(
        {"index": index},
        [WorkerLoop("default", SLOTS)],
        worker_context_init_functions={"default": slot_context(out_dir())},
    )
    for _ in range(8):
        await graph.create_task("index")
    return graph
