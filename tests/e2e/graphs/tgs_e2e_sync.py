"""Graph builders for the sync-task and blocked-loop tests (``tests/e2e/test_e2e_sync.py``).

Like the other graph modules, this one lives only in the coordinator's directory; workers
get its functions shipped by value. Tasks write to the directory named by ``TGS_E2E_DIR``
on the coordinator (``events.jsonl``, one line per event), and the builders write the
tasks' uids to ``uids.json`` there.
"""

from __future__ import annotations

import os
from typing import Any

from tgs_e2e_helpers import out_dir, record, wait_for_file_blocking, write_json

from trio_graph_scheduler import TaskGraph, WorkerLoop


def held(out: str, **_: Any) -> int:
    """A sync task (it runs in a thread, which nothing can stop): run until ``release``."""
    record(out, "start", "held")
    wait_for_file_blocking(os.path.join(out, "release"))
    record(out, "end", "held")
    return os.getpid()


async def blocks_its_loop(out: str, **_: Any) -> int:
    """An async task that blocks its worker's event loop (sleeps without awaiting) until
    ``release``: the wrong way to wait, on purpose."""
    record(out, "start", "blocker")
    wait_for_file_blocking(os.path.join(out, "release"))
    record(out, "end", "blocker")
    return os.getpid()


FUNCTIONS = {"held": held, "blocks_its_loop": blocks_its_loop}


async def build_held() -> TaskGraph:
    """One sync ``held`` task, in a loop of one."""
    out = out_dir()
    graph = TaskGraph(FUNCTIONS, [WorkerLoop("default", 1, None)])
    node = await graph.create_task("held", ((out,), {}))
    write_json(os.path.join(out, "uids.json"), {"held": node.uid})
    return graph


async def build_blocker() -> TaskGraph:
    """One ``blocks_its_loop`` task."""
    out = out_dir()
    graph = TaskGraph(FUNCTIONS, [WorkerLoop("default", 1, None)])
    node = await graph.create_task("blocks_its_loop", ((out,), {}))
    write_json(os.path.join(out, "uids.json"), {"blocker": node.uid})
    return graph
