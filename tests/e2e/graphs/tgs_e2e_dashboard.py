"""Graphs for the dashboard's end-to-end test and its screenshots.

``build_watched``: two loops, tasks that take a little while, failures of two kinds, a
task skipped behind one, and ``hold`` tasks that run until the test creates ``release``,
so that the run is still going while the browser looks at it.

``build_many``: ``TGS_E2E_TASKS`` tasks (3,000 by default) of four functions in chains and
a fan-in, a few failing, for screenshots of a run over three workers.
"""

from __future__ import annotations

import os
import random
from typing import Any

import trio
from tgs_e2e_helpers import out_dir

from trio_graph_scheduler import GenericSchedulingCondition, TaskGraph, WorkerLoop

#: The longest a task polls for a file the test creates, so nothing hangs forever (long:
#: the test reads the page while these run, and a loaded machine is slow).
POLL_LIMIT = 300.0


async def fetch(i: int, seconds: float, **_: Any) -> int:
    await trio.sleep(seconds)
    return i


async def parse(i: int, seconds: float, **_: Any) -> int:
    await trio.sleep(seconds)
    if i % 50 == 7:
        raise ValueError(f"bad row in record {i % 3}")
    return i


async def broken(**_: Any) -> None:
    raise KeyError("no such column: price")


async def report(**_: Any) -> str:
    return "reported"


async def hold(out: str, **_: Any) -> str:
    """Run until the test creates ``release`` (at most :data:`POLL_LIMIT` seconds)."""
    path = os.path.join(out, "release")
    with trio.move_on_after(POLL_LIMIT):
        # Another process creates the file: there is no trio.Event to wait on.
        while not os.path.exists(path):  # noqa: ASYNC110, ASYNC240 - a cheap stat
            await trio.sleep(0.05)
    return "released"


FUNCTIONS = {"fetch": fetch, "parse": parse, "broken": broken, "report": report, "hold": hold}


async def build_watched() -> TaskGraph:
    """``fetch`` x20 -> ``parse`` each (one raises), ``broken`` (raises) -> ``report``
    (skipped), and 2 ``hold`` tasks in a loop of their own."""
    out = out_dir()
    graph = TaskGraph(
        FUNCTIONS,
        [
            WorkerLoop("default", 4, None),
            WorkerLoop("parsing", 2, ["parse"]),
            WorkerLoop("held", 2, ["hold"]),
        ],
    )
    for i in range(20):
        fetched = await graph.create_task("fetch", ((i, 0.2), {}))
        await graph.create_task("parse", ((i, 0.1), {}), waits_on=[fetched.uid])
    failed = await graph.create_task("broken")
    await graph.create_task("report", None, waits_on=[failed.uid])
    for _ in range(2):
        await graph.create_task("hold", ((out,), {}))
    return graph


async def build_many() -> TaskGraph:
    """Chains fetch -> parse, joined by one report per 100 chains."""
    count = int(os.environ.get("TGS_E2E_TASKS", "3000"))
    seconds = float(os.environ.get("TGS_E2E_SECONDS", "0.3"))
    rng = random.Random(13)
    graph = TaskGraph(
        FUNCTIONS,
        [WorkerLoop("default", 12, None), WorkerLoop("parsing", 6, ["parse"])],
    )
    chains = count // 2
    ends = []
    for i in range(chains):
        fetched = await graph.create_task("fetch", ((i, seconds * rng.uniform(0.3, 1.5)), {}))
        parsed = await graph.create_task(
            "parse", ((i, seconds * rng.uniform(0.2, 1.0)), {}), waits_on=[fetched.uid]
        )
        ends.append(parsed.uid)
        if len(ends) == 100 or i == chains - 1:
            joined = GenericSchedulingCondition(graph, "COMPLETE__ALL", ends)
            await graph.create_task("report", None, waits_on=[joined.uid])
            ends = []
    failed = await graph.create_task("broken")
    await graph.create_task("report", None, waits_on=[failed.uid])
    return graph
