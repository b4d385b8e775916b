"""Results under a memory limit and release, driven by hand without trio or a disk.

The spill is a dictionary that counts what it is asked to do, so the tests see every
write, read and delete; ``graph.check_invariants()`` recounts the holder after each step.
"""

from __future__ import annotations

from typing import Any

import pytest

from trio_graph_scheduler import (
    GenericSchedulingCondition,
    ResultReleasedError,
    TaskGraph,
    TaskNode,
    WorkerLoop,
)
from trio_graph_scheduler.coordinator.core.results import (
    SMALL_RESULT_BYTES,
    ResultHolder,
    result_type_name,
    result_whereabouts,
)


async def noop(**_: Any) -> None:
    return None


class DictSpill:
    """A ResultSpill in a dictionary; a value's size is its length (or what ``sizes`` says)."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.writes = 0
        self.reads = 0
        self.deletes = 0
        self.refuse = False

    def measure(self, value: Any) -> int | None:
        if isinstance(value, bytes | str | list):
            return len(value)
        return None if callable(value) else 0

    def write(self, uid: str, value: Any) -> bool:
        if self.refuse:
            return False
        self.writes += 1
        self.values[uid] = value
        return True

    def read(self, uid: str) -> Any:
        self.reads += 1
        return self.values[uid]

    def delete(self, uid: str) -> None:
        self.deletes += 1
        del self.values[uid]


KIB = 1024


def make_graph(
    *, limit: int | None = None, release: bool = False
) -> tuple[TaskGraph, DictSpill, ResultHolder]:
    # "g" runs in a loop of its own: a test takes its tasks when it chooses.
    graph = TaskGraph(
        {"f": noop, "g": noop}, [WorkerLoop("default", 100, None), WorkerLoop("g", 100, ["g"])]
    )
    spill = DictSpill()
    holder = ResultHolder(spill, limit=limit, release=release)
    holder.adopt(graph.nodes.values())
    graph.scheduler.attach_results(holder)
    return graph, spill, holder


def run(graph: TaskGraph, node: TaskNode, result: object = None, *, ok: bool = True) -> None:
    """Claim ``node`` (the next ready task of its loop) and end it."""
    scheduler = graph.scheduler
    if not scheduler.started:
        scheduler.start()
    claimed = node._loop.claim_nowait()
    assert claimed is node, (claimed, node)
    if ok:
        scheduler.task_succeeded(node, result)
    else:
        scheduler.task_failed(node, "Traceback: boom")
    graph.check_invariants()


# -- the memory limit -----------------------------------------------------------------------


def test_results_past_the_limit_go_to_the_spill_coldest_first_and_read_back() -> None:
    graph, spill, holder = make_graph(limit=10 * KIB)
    nodes = [graph.create_task_nowait("f") for _ in range(5)]
    for index, node in enumerate(nodes):
        run(graph, node, bytes([index]) * (4 * KIB))
    # 20 KiB made, 10 KiB allowed: the three coldest moved out, the last two stayed.
    assert holder.held == 8 * KIB
    assert [result_whereabouts(n) for n in nodes] == ["on disk"] * 3 + [None] * 2
    assert spill.writes == 3
    assert nodes[0]._result.__class__.__name__ == "ResultAway"
    # Reading one brings it back (it is now the hottest), pushing the coldest out.
    assert nodes[0].task_result == bytes([0]) * (4 * KIB)
    assert result_whereabouts(nodes[0]) is None
    assert result_whereabouts(nodes[3]) == "on disk"
    assert spill.reads == 1
    graph.check_invariants()
    # Pushed out again, a result read back is not written again: its copy is kept.
    for node in nodes[1:3]:
        assert node.task_result[0] in (1, 2)
    assert result_whereabouts(nodes[0]) == "on disk"
    assert spill.writes == 5  # nodes[3] and nodes[4], once each; nodes[0] not again
    assert all(node.task_result == bytes([i]) * (4 * KIB) for i, node in enumerate(nodes))
    graph.check_invariants()


def test_small_and_unencodable_results_stay_with_their_node_uncounted() -> None:
    graph, spill, holder = make_graph(limit=SMALL_RESULT_BYTES)
    small, none, func, big = (graph.create_task_nowait("f") for _ in range(4))
    run(graph, small, b"x" * (SMALL_RESULT_BYTES - 1))
    run(graph, none, None)
    run(graph, func, noop)  # cannot be encoded: stays
    assert holder.held == 0
    run(graph, big, b"y" * (2 * SMALL_RESULT_BYTES))  # alone over the limit: out at once
    assert spill.writes == 1
    assert result_whereabouts(big) == "on disk"
    assert result_type_name(big) == "bytes"
    assert [small.task_result, none.task_result, func.task_result] == [
        b"x" * (SMALL_RESULT_BYTES - 1),
        None,
        noop,
    ]


def test_a_refused_write_keeps_the_result_in_memory() -> None:
    graph, spill, holder = make_graph(limit=KIB)
    spill.refuse = True
    a, b = graph.create_task_nowait("f"), graph.create_task_nowait("f")
    run(graph, a, b"a" * (2 * KIB))
    run(graph, b, b"b" * (2 * KIB))
    assert result_whereabouts(a) is None
    assert result_whereabouts(b) is None
    assert holder.held == 0  # uncounted, but never lost
    assert a.task_result == b"a" * (2 * KIB)


def test_setting_a_result_replaces_the_spilled_copy() -> None:
    graph, spill, _ = make_graph(limit=KIB)
    a = graph.create_task_nowait("f")
    run(graph, a, b"a" * (2 * KIB))
    assert spill.values
    a.task_result = "replaced"
    assert spill.values == {}
    assert spill.deletes == 1
    assert a.task_result == "replaced"
    graph.check_invariants()


def test_without_a_holder_a_result_is_a_plain_attribute() -> None:
    graph = TaskGraph({"f": noop}, [WorkerLoop("default", 1, None)])
    a = graph.create_task_nowait("f")
    run(graph, a, [1, 2])
    assert a.task_result == [1, 2]
    assert graph.scheduler.results is None
    a.task_result = 7
    assert a._result == 7


# -- release ------------------------------------------------------------------------------


def test_a_result_is_released_once_every_successor_has_ended_and_sinks_are_kept() -> None:
    graph, _, holder = make_graph(release=True)
    a = graph.create_task_nowait("f")
    b = graph.create_task_nowait("f", None, [a.uid])
    c = graph.create_task_nowait("f", None, [a.uid])
    run(graph, a, "A")
    run(graph, b, "B")
    assert a.task_result == "A"  # c still needs it
    run(graph, c, "C")
    assert result_whereabouts(a) == "released"
    assert holder.released == 1
    with pytest.raises(ResultReleasedError, match="release-results") as raised:
        _ = a.task_result
    assert raised.value.uid == a.uid
    assert isinstance(raised.value, LookupError)
    assert (b.task_result, c.task_result) == ("B", "C")  # sinks
    assert result_type_name(a) == "str"


def test_a_released_none_result_raises_instead_of_reading_none() -> None:
    graph, _, _ = make_graph(release=True)
    a = graph.create_task_nowait("f")
    b = graph.create_task_nowait("f", None, [a.uid])
    run(graph, a, None)
    run(graph, b)
    with pytest.raises(ResultReleasedError):
        _ = a.task_result


def test_keep_result_keeps_an_intermediate_result() -> None:
    graph, _, _ = make_graph(release=True)
    a = graph.create_task_nowait("f", keep_result=True)
    b = graph.create_task_nowait("f", None, [a.uid])
    run(graph, a, "A")
    run(graph, b, "B")
    assert a.task_result == "A"
    # Marking a keyed task that exists keeps it too.
    k = graph.create_task_nowait("f", key="k")
    assert graph.create_task_nowait("f", key="k", keep_result=True) is k
    assert graph._kept is not None
    assert k in graph._kept


def test_a_late_successor_of_a_released_result_is_refused_at_creation() -> None:
    graph, _, _ = make_graph(release=True)
    a = graph.create_task_nowait("f")
    b = graph.create_task_nowait("f", None, [a.uid])
    condition = GenericSchedulingCondition(graph, "COMPLETE__ALL", [a.uid])
    other = graph.create_task_nowait("f")
    run(graph, a, "A")
    run(graph, other, "O")
    # The explicit condition had no successor yet, and b has not ended: kept.
    assert a.task_result == "A"
    run(graph, b, "B")
    # a's condition has no successor: a had one (b), which ended.
    assert result_whereabouts(a) == "released"
    tasks = len(graph.nodes)
    with pytest.raises(ResultReleasedError, match="no task can wait on it"):
        graph.create_task_nowait("f", None, [a.uid])
    with pytest.raises(ResultReleasedError):
        graph.create_task_nowait("f", None, [condition.uid])
    with pytest.raises(ResultReleasedError):
        GenericSchedulingCondition(graph, "SUCCESS__ALL", [a.uid, other.uid])
    assert len(graph.nodes) == tasks  # nothing was half made
    graph.check_invariants()


def test_a_successor_added_while_running_postpones_the_release() -> None:
    graph, _, _ = make_graph(release=True)
    a = graph.create_task_nowait("f")
    b = graph.create_task_nowait("f", None, [a.uid])
    run(graph, a, "A")
    # While b waits, a new task waits on a too (the graph grows while it runs).
    late = graph.create_task_nowait("f", None, [a.uid])
    graph.check_invariants()
    run(graph, b, "B")
    assert a.task_result == "A"
    run(graph, late, "L")
    assert result_whereabouts(a) == "released"


def test_prepend_to_successor_makes_a_task_a_reader() -> None:
    graph, _, _ = make_graph(release=True)
    extra = graph.create_task_nowait("f")
    a = graph.create_task_nowait("f")
    c = graph.create_task_nowait("f", None, [a.uid])
    run(graph, extra, "X")  # a sink so far: kept
    a.prepend_to_successor("f", extra)  # now c waits on it too
    graph.check_invariants()
    run(graph, a, "A")
    assert extra.task_result == "X"
    run(graph, c, "C")
    assert result_whereabouts(extra) == "released"
    assert result_whereabouts(a) == "released"


def test_failed_and_skipped_successors_count_as_ended() -> None:
    graph, _, _ = make_graph(release=True)
    a = graph.create_task_nowait("f")
    b = graph.create_task_nowait("f", None, [a.uid])
    c = graph.create_task_nowait("f", None, [b.uid])  # skipped when b fails
    run(graph, a, "A")
    run(graph, b, ok=False)
    assert c.task_status == "precondition_failed"
    assert result_whereabouts(a) == "released"
    graph.check_invariants()


def test_a_result_whose_successors_all_ended_first_is_released_at_its_end() -> None:
    graph, _, _ = make_graph(release=True)
    a, b = graph.create_task_nowait("f"), graph.create_task_nowait("g")
    either = GenericSchedulingCondition(graph, "COMPLETE__1", [a.uid, b.uid])
    c = graph.create_task_nowait("f", None, [either.uid])
    run(graph, a, "A")
    run(graph, c, "C")
    assert result_whereabouts(a) == "released"
    run(graph, b, "B")  # c had ended before b: nobody can read b's result
    assert result_whereabouts(b) == "released"


def test_release_drops_the_spilled_copy_too() -> None:
    graph, spill, holder = make_graph(limit=KIB, release=True)
    a = graph.create_task_nowait("f")
    b = graph.create_task_nowait("f", None, [a.uid])
    run(graph, a, b"a" * (2 * KIB))
    assert spill.values
    run(graph, b, None)
    assert spill.values == {}
    assert holder.held == 0
    assert result_whereabouts(a) == "released"


def test_adopt_takes_over_a_graph_run_before() -> None:
    graph = TaskGraph({"f": noop}, [WorkerLoop("default", 10, None)])
    a = graph.create_task_nowait("f")
    b = graph.create_task_nowait("f", None, [a.uid])
    c = graph.create_task_nowait("f", None, [a.uid])
    run(graph, a, b"a" * (2 * KIB))
    run(graph, b, "B")
    holder = ResultHolder(DictSpill(), limit=KIB, release=True)
    holder.adopt(graph.nodes.values())
    graph.scheduler.attach_results(holder)
    graph.check_invariants()
    assert result_whereabouts(a) == "on disk"  # over the limit, and c still reads it
    run(graph, c, "C")
    assert result_whereabouts(a) == "released"
