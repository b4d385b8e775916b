"""The graph of ``chaos.py --kill-coordinator`` (imported by ``tgs-coordinator`` as
``chaos_graph:build``, from this directory).

Read from the environment, so that every restart of the coordinator builds the same graph:
``CHAOS_TASKS`` (tasks), ``CHAOS_SEED`` (the random seed), ``CHAOS_DIR`` (where the tasks
log their executions), ``CHAOS_CONCURRENCY`` (the loop's concurrency), ``CHAOS_SLEEP_MAX``
(the longest a task sleeps, in seconds).

Each task carries a label that stays the same across rebuilds (uids do not): ``i12``,
``c3-4`` (link 4 of chain 3), ``f7-leaf-2``, ``f7-join``. Each execution appends
``label pid run time`` to ``exec-<pid>.log`` as it starts, and the task returns a receipt
``{"label", "pid", "run"}``; a task that waits on others checks their receipts first.
"""

from __future__ import annotations

import os
import random
from typing import Any

from trio_graph_scheduler import TaskGraph, WorkerLoop

#: Links per chain, leaves per fan-in, and the shares of tasks in each shape.
CHAIN_LENGTH = 5
FAN_IN_LEAVES = 24
CHAIN_SHARE = 0.35
FAN_IN_SHARE = 0.25


async def chaos_task(
    label: str, log_dir: str, sleep_s: float, *, task_node: Any, **_: Any
) -> dict[str, Any]:
    """Log this execution, check the predecessors' receipts, sleep, return a receipt."""
    import os
    import time

    import trio

    pid = os.getpid()
    run = os.urandom(8).hex()
    line = f"{label} {pid} {run} {time.time():.6f}\n"
    fd = os.open(os.path.join(log_dir, f"exec-{pid}.log"), os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, line.encode())  # one short O_APPEND write: whole or not at all
    finally:
        os.close(fd)
    for predecessor in task_node.get_predecessor_task_nodes():
        receipt = predecessor.task_result
        if predecessor.task_status != "success" or not isinstance(receipt, dict):
            raise RuntimeError(f"predecessor {predecessor.uid} is {predecessor.task_status}")
    await trio.sleep(sleep_s)
    return {"label": label, "pid": pid, "run": run}


async def build() -> TaskGraph:
    """The chaos graph: independent tasks, chains and fan-ins, shuffled together."""
    tasks = int(os.environ["CHAOS_TASKS"])
    rng = random.Random(int(os.environ["CHAOS_SEED"]))
    log_dir = os.environ["CHAOS_DIR"]
    concurrency = int(os.environ.get("CHAOS_CONCURRENCY", "32"))
    sleep_max = float(os.environ.get("CHAOS_SLEEP_MAX", "0.05"))
    chains = int(tasks * CHAIN_SHARE) // CHAIN_LENGTH
    fan_ins = int(tasks * FAN_IN_SHARE) // (FAN_IN_LEAVES + 1)
    independent = tasks - chains * CHAIN_LENGTH - fan_ins * (FAN_IN_LEAVES + 1)
    units = [("i", n) for n in range(independent)]
    units += [("c", n) for n in range(chains)] + [("f", n) for n in range(fan_ins)]
    rng.shuffle(units)
    graph = TaskGraph({"chaos": chaos_task}, [WorkerLoop("default", concurrency, None)])

    def create(label: str, waits_on: list[str] | None = None) -> str:
        arguments = ((label, log_dir, rng.uniform(0.001, sleep_max)), {})
        return graph.create_task_nowait("chaos", arguments, waits_on).uid

    for kind, n in units:
        if kind == "i":
            create(f"i{n}")
        elif kind == "c":
            uid = create(f"c{n}-0")
            for link in range(1, CHAIN_LENGTH):
                uid = create(f"c{n}-{link}", [uid])
        else:
            leaves = [create(f"f{n}-leaf-{leaf}") for leaf in range(FAN_IN_LEAVES)]
            create(f"f{n}-join", leaves)
    return graph
