"""Graph builder for the large-values test (``tests/e2e/test_e2e_values.py``, issue 10).

Values are made from a seed, the same on every side, so that the test process never
holds them: the builder makes the argument, a producer its result, and each checker
makes again what it should have received and compares checksums. Producers run in loop
``a`` and checkers in loop ``b``: with one worker per loop, every value crosses from one
worker to the coordinator and on to the other. Each task records its pid and what it
found in ``events.jsonl``.
"""

from __future__ import annotations

import hashlib
import random
from typing import Any

from tgs_e2e_helpers import out_dir, record

from trio_graph_scheduler import TaskGraph, WorkerLoop

MIB = 2**20
#: Done-when rows of issue 10: a 200 MiB result read by a successor on another worker,
#: 50 predecessors of 4 MiB each read by one successor, a 100 MiB builder argument.
BIG_RESULT = 200 * MIB
FAN_IN = 50
FAN_IN_SIZE = 4 * MIB
BIG_ARGUMENT = 100 * MIB


def make(seed: int, size: int) -> bytes:
    """``size`` bytes from ``seed``: a different random MiB each (so that a chunk out of
    place changes the checksum)."""
    blocks = [random.Random(seed * 100_003 + i).randbytes(MIB) for i in range(size // MIB)]
    return b"".join(blocks) + random.Random(-seed).randbytes(size % MIB)


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def produce(out: str, seed: int, size: int, **_: Any) -> bytes:
    """A sync task (its thread makes the bytes): the value of ``seed``."""
    record(out, "produced", f"produce-{seed}")
    return make(seed, size)


def check_predecessors(out: str, sizes: dict[int, int], *, task_node: Any, **_: Any) -> str:
    """Compare each predecessor's result with what its seed makes."""
    found = {}
    for node in task_node.get_predecessor_task_nodes():
        seed, _size = node.task_arguments[0][1:3]
        found[seed] = node.task_result
    wrong = [s for s, size in sizes.items() if digest(found[s]) != digest(make(s, size))]
    record(out, "checked", f"predecessors-{len(sizes)}", wrong=wrong)
    if wrong:
        raise ValueError(f"predecessors' results differ for seeds {wrong}")
    return "ok"


def check_argument(out: str, data: bytes, seed: int, **_: Any) -> str:
    """Compare the argument with what its seed makes."""
    same = digest(data) == digest(make(seed, len(data)))
    record(out, "checked", "argument", wrong=[] if same else [seed])
    if not same:
        raise ValueError("the argument differs")
    return "ok"


FUNCTIONS = {
    "produce": produce,
    "check_predecessors": check_predecessors,
    "check_argument": check_argument,
}


async def build_values() -> TaskGraph:
    """The three checks of issue 10's first done-when row, in one graph."""
    out = out_dir()
    graph = TaskGraph(
        FUNCTIONS,
        [
            WorkerLoop("default", 1, None),
            WorkerLoop("a", 2, ["produce"]),
            WorkerLoop("b", 2, ["check_predecessors", "check_argument"]),
        ],
    )
    big = await graph.create_task("produce", ((out, 1, BIG_RESULT), {}))
    await graph.create_task("check_predecessors", ((out, {1: BIG_RESULT}), {}), [big.uid])
    seeds = range(100, 100 + FAN_IN)
    many = [await graph.create_task("produce", ((out, s, FAN_IN_SIZE), {})) for s in seeds]
    sizes = dict.fromkeys(seeds, FAN_IN_SIZE)
    await graph.create_task("check_predecessors", ((out, sizes), {}), [n.uid for n in many])
    await graph.create_task("check_argument", ((out, make(7, BIG_ARGUMENT), 7), {}))
    return graph
