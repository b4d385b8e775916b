"""Graph builders for the end-to-end tests: ``tgs-coordinator tgs_e2e_graphs:build_...``.

The tests copy this file and ``tgs_e2e_helpers`` into an empty temporary directory and
start the coordinator there, so these modules are importable on the coordinator only.
Workers run in another empty directory: they can run these functions only because the
coordinator ships them, and the helper module, by value.

Tasks run in other processes, so they report through files. Every builder reads the
directory to write to from the ``TGS_E2E_DIR`` environment variable at build time, on the
coordinator, and passes it to the tasks as an argument. Tasks append JSON lines to
``events.jsonl`` in it (``{"event": "start"|"end", "task": ..., "pid": ..., "t": ...}``)
and final tasks write ``summary-<label>.json`` from their predecessors' results.
Tasks that must wait for the test poll for a file the test creates (``go``, ``release``).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
from typing import Any

import tgs_e2e_helpers
import trio
from tgs_e2e_helpers import Point, out_dir, record, write_json

from trio_graph_scheduler import GenericSchedulingCondition, TaskGraph, WorkerLoop

#: This module's name and its helper's, which must not be importable on a worker.
MODULE = "tgs_e2e_graphs"
HELPER_MODULE = "tgs_e2e_helpers"
#: Concurrency limits of the main graph's loops.
DEFAULT_LIMIT = 3
SOLO_LIMIT = 1
#: How many ``work`` and ``solo_step`` tasks the main graph starts with.
WORK_TASKS = 12
SOLO_TASKS = 4
#: The arguments of the ``work`` tasks a task creates on a worker.
SPAWNED = (100, 101, 102)
#: How many ``hold`` tasks the blocking graph has.
HOLD_TASKS = 4
#: The longest a task polls for a file the test creates, so nothing hangs forever.
POLL_LIMIT = 25.0


def exists(path: str) -> bool:
    return os.path.exists(path)


async def wait_for_file(path: str) -> None:
    """Poll for ``path``; give up (raising) after :data:`POLL_LIMIT` seconds."""
    with trio.move_on_after(POLL_LIMIT):
        # Another process creates the file: there is no trio.Event to wait on.
        while not exists(path):  # noqa: ASYNC110
            await trio.sleep(0.02)
        return
    raise TimeoutError(f"{path} never appeared")


# -- task functions ------------------------------------------------------------------


async def gate(out: str, **_: Any) -> str:
    """Wait until the test says every worker has joined (it creates ``go``)."""
    await wait_for_file(os.path.join(out, "go"))
    return "open"


async def work(out: str, i: int, seconds: float, **_: Any) -> dict[str, int]:
    record(out, "start", f"work-{i}")
    await trio.sleep(seconds)
    record(out, "end", f"work-{i}")
    return {"i": i, "square": i * i, "pid": os.getpid()}


async def solo_step(out: str, i: int, seconds: float, **_: Any) -> int:
    record(out, "start", f"solo-{i}")
    await trio.sleep(seconds)
    record(out, "end", f"solo-{i}")
    return -i


async def where_am_i(**_: Any) -> dict[str, Any]:
    """Where this task ran, and whether this module could have been imported there."""
    return {
        "pid": os.getpid(),
        "cwd": os.getcwd(),
        "module_importable": importlib.util.find_spec(MODULE) is not None,
    }


async def use_helpers(i: int, **_: Any) -> dict[str, Any]:
    """Use the helper module, through the module and through a name imported from it."""
    return {
        "tripled": tgs_e2e_helpers.triple(i),
        "point": dataclasses.asdict(Point(i, -i)),
        "helper_importable": importlib.util.find_spec(HELPER_MODULE) is not None,
    }


async def spawner(out: str, *, graph: Any, **_: Any) -> list[str]:
    """Create tasks from inside a task (on a worker), and a summary waiting on them."""
    uids = []
    for i in SPAWNED:
        node = await graph.create_task("work", ((out, i, 0.05), {}))
        uids.append(node.uid)
    await graph.create_task("summarise", ((out, "spawned"), {}), waits_on=uids)
    return uids


async def summarise(out: str, label: str, *, task_node: Any, **_: Any) -> int:
    """Write every predecessor's handle, status and result to ``summary-<label>.json``."""
    predecessors = [
        {
            "uid": p.uid,
            "handle": p.task_handle,
            "status": str(p.task_status),
            "result": p.task_result,
        }
        for p in task_node.get_predecessor_task_nodes()
    ]
    write_json(
        os.path.join(out, f"summary-{label}.json"),
        {"pid": os.getpid(), "predecessors": predecessors},
    )
    return len(predecessors)


async def boom(**_: Any) -> None:
    raise ValueError("boom on purpose")


async def hold(out: str, i: int, **_: Any) -> int:
    """Run until the test creates ``release``."""
    record(out, "start", f"hold-{i}")
    await wait_for_file(os.path.join(out, "release"))
    record(out, "end", f"hold-{i}")
    return i


FUNCTIONS = {
    "gate": gate,
    "work": work,
    "solo_step": solo_step,
    "where_am_i": where_am_i,
    "use_helpers": use_helpers,
    "spawner": spawner,
    "summarise": summarise,
    "boom": boom,
    "hold": hold,
}


# -- graph builders ------------------------------------------------------------------


async def build_main() -> TaskGraph:
    """Everything behind a gate, so that both workers have joined when work starts.

    ``work`` tasks in ``default`` (limit 3), ``solo_step`` tasks in ``solo`` (limit 1), a
    task that reports where it ran, one that uses the helper module, one that creates
    tasks, and a final ``summarise`` over everything but the created tasks (which have
    their own).
    """
    out = out_dir()
    graph = TaskGraph(
        FUNCTIONS,
        [WorkerLoop("default", DEFAULT_LIMIT, None), WorkerLoop("solo", SOLO_LIMIT, ["solo_step"])],
    )
    opened = await graph.create_task("gate", ((out,), {}))
    after_gate = [opened.uid]
    tasks = [opened]
    for i in range(WORK_TASKS):
        tasks.append(await graph.create_task("work", ((out, i, 0.25), {}), waits_on=after_gate))
    for i in range(SOLO_TASKS):
        tasks.append(await graph.create_task("solo_step", ((out, i, 0.1), {}), waits_on=after_gate))
    tasks.append(await graph.create_task("where_am_i", None, waits_on=after_gate))
    tasks.append(await graph.create_task("use_helpers", ((7,), {}), waits_on=after_gate))
    tasks.append(await graph.create_task("spawner", ((out,), {}), waits_on=after_gate))
    everything = GenericSchedulingCondition(graph, "COMPLETE__ALL", [t.uid for t in tasks])
    await graph.create_task("summarise", ((out, "main"), {}), waits_on=[everything.uid])
    return graph


async def build_quick() -> TaskGraph:
    """Three ``work`` tasks and a summary: a graph that ends soon after a worker joins."""
    out = out_dir()
    graph = TaskGraph(FUNCTIONS, [WorkerLoop("default", 3, None)])
    uids = [(await graph.create_task("work", ((out, i, 0.01), {}))).uid for i in range(3)]
    await graph.create_task("summarise", ((out, "quick"), {}), waits_on=uids)
    return graph


async def build_failing() -> TaskGraph:
    """One task that succeeds, one that raises, one that waits on the one that raised."""
    out = out_dir()
    graph = TaskGraph(FUNCTIONS, [WorkerLoop("default", 2, None)])
    await graph.create_task("work", ((out, 1, 0.01), {}))
    failed = await graph.create_task("boom")
    await graph.create_task("work", ((out, 2, 0.01), {}), waits_on=[failed.uid])
    return graph


async def build_empty() -> TaskGraph:
    """No tasks at all: the graph has ended before any worker comes."""
    return TaskGraph(FUNCTIONS, [WorkerLoop("default", 1, None)])


async def build_blocking() -> TaskGraph:
    """:data:`HOLD_TASKS` tasks that run until the test creates ``release``, all at once."""
    out = out_dir()
    graph = TaskGraph(FUNCTIONS, [WorkerLoop("default", HOLD_TASKS, None)])
    for i in range(HOLD_TASKS):
        await graph.create_task("hold", ((out, i), {}))
    return graph


async def build_status() -> TaskGraph:
    """A run to ask about: tasks in each state a status query can explain.

    ``default`` (limit 1) runs ``hold-0`` and has ``hold-1`` ready behind it; ``waiter``
    (key ``https://example.org/waiter``) waits on a ``SUCCESS__2`` over both; ``gpu`` has
    a task that no worker will serve (the test's worker serves ``default`` only). The
    uids go to ``uids.json``.
    """
    out = out_dir()
    graph = TaskGraph(
        FUNCTIONS | {"on_gpu": boom},
        [WorkerLoop("default", 1, None), WorkerLoop("gpu", 1, ["on_gpu"])],
    )
    held = [await graph.create_task("hold", ((out, i), {})) for i in range(2)]
    both = GenericSchedulingCondition(graph, "SUCCESS__2", [t.uid for t in held])
    waiter = await graph.create_task(
        "work", ((out, 9, 0.01), {}), waits_on=[both.uid], key="https://example.org/waiter"
    )
    on_gpu = await graph.create_task("on_gpu")
    uids = {"hold-0": held[0].uid, "hold-1": held[1].uid, "waiter": waiter.uid}
    write_json(os.path.join(out, "uids.json"), uids | {"on_gpu": on_gpu.uid})
    return graph


async def build_raises() -> TaskGraph:
    """A builder that fails: the coordinator must say so, with the builder's traceback."""
    raise RuntimeError("the builder failed on purpose")


def build_not_async() -> TaskGraph:
    """Not an async function: the coordinator must refuse it."""
    raise AssertionError("never called")
