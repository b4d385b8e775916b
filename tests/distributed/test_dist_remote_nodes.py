"""The graph and node a task gets on a worker, as the worker builds them per assignment
(issue 14): its predecessors' nodes made only when asked for, and nothing of a task
left for the cyclic garbage collector once the task is done with it."""

from __future__ import annotations

import gc
import weakref
from typing import Any

import pytest
import trio
import trio.testing
from memcluster import TIME_LIMIT, run_cluster

from trio_graph_scheduler import TaskGraph, TaskStatus, WorkerLoop
from trio_graph_scheduler.protocol.messages import PredecessorRecord
from trio_graph_scheduler.worker.remote_graph import RemoteGraph


class _NoLink:
    def next_request_id(self) -> int:
        return 1


def record(uid: str, result: Any, *, cached: bool = False) -> PredecessorRecord:
    return PredecessorRecord(
        task_uid=uid,
        handle="up",
        status=TaskStatus.SUCCESS,
        arguments=((uid,), None),
        result=None if cached else result,
        exception_trace=None,
        cached=cached,
    )


def adopted(records: list[PredecessorRecord], results: dict[str, Any] | None = None) -> Any:
    graph = RemoteGraph(_NoLink(), 7)  # type: ignore[arg-type]
    node = graph.adopt_task("task-own", "down", None, records, key="k", attempts=2, results=results)
    return graph, node


@pytest.mark.parametrize("first", ["nodes", "predecessors"])
def test_predecessors_are_made_when_asked_for_whichever_way(first: str) -> None:
    records = [record("task-a", 1), record("task-b", None, cached=True)]
    graph, node = adopted(records, results={"task-b": b"from the cache"})
    if first == "nodes":
        nodes = graph.nodes
        predecessors = node.get_predecessor_task_nodes()
    else:
        predecessors = node.get_predecessor_task_nodes()
        nodes = graph.nodes
    # In the assignment's order, then the task itself; the same objects both ways.
    assert list(nodes) == ["task-a", "task-b", "task-own"]
    assert nodes["task-own"] is node
    assert [nodes["task-a"], nodes["task-b"]] == predecessors
    a, b = predecessors
    assert (a.task_result, a.task_status, a.task_arguments) == (
        1,
        TaskStatus.SUCCESS,
        (("task-a",), None),
    )
    assert b.task_result == b"from the cache"  # the cache's value, not the record's None
    assert (a.attempts, a.end_reason, a.key) == (0, None, None)
    assert a.get_predecessor_task_nodes() == []
    assert (node.task_status, node.key, node.attempts) == (TaskStatus.IN_PROGRESS, "k", 2)
    # Asked again: nothing made twice.
    assert node.get_predecessor_task_nodes() == predecessors
    assert graph.nodes is nodes


def test_a_task_without_predecessors_knows_only_itself() -> None:
    graph, node = adopted([])
    assert node.get_predecessor_task_nodes() == []
    assert graph.nodes == {"task-own": node}


def test_a_task_s_graph_and_node_need_no_cyclic_collection() -> None:
    """Held weakly by its graph until the task reads ``graph.nodes``, a task's node and
    graph go by reference counting alone: no cycle per task for the collector."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        graph, node = adopted([record("task-a", 1)])
        node.get_predecessor_task_nodes()  # the predecessors' nodes, made, hold the graph
        gone = weakref.ref(node), weakref.ref(graph)
        assert graph.nodes["task-own"] is node
        del graph, node
        # Once the task looked at graph.nodes the graph holds its nodes: a cycle, as
        # in-process. Not looked at, none:
        graph, node = adopted([record("task-a", 1)])
        kept = weakref.ref(node), weakref.ref(graph)
        del graph, node
        assert [ref() for ref in kept] == [None, None]
    finally:
        if was_enabled:
            gc.enable()
    gc.collect()
    assert [ref() for ref in gone] == [None, None]


def test_a_graph_whose_task_is_gone_still_lists_the_predecessors() -> None:
    graph, node = adopted([record("task-a", 1)])
    del node  # nothing holds the task's node any more (its task is over)
    assert list(graph.nodes) == ["task-a"]


async def look(*, task_node: Any, graph: Any, **_: Any) -> list[Any]:
    before = task_node.get_predecessor_task_nodes()
    return [
        [p.task_result for p in before],
        sorted(graph.nodes) == sorted([*(p.uid for p in before), task_node.uid]),
        graph.nodes[task_node.uid] is task_node,
    ]


async def value(tag: int, **_: Any) -> int:
    return tag


async def test_a_task_on_a_worker_sees_its_predecessors(
    autojump_clock: trio.testing.MockClock,
) -> None:
    graph = TaskGraph({"look": look, "value": value}, [WorkerLoop("default", 4)])
    ups = [graph.create_task_nowait("value", ((n,), None)).uid for n in range(3)]
    node = graph.create_task_nowait("look", None, ups)
    with trio.fail_after(TIME_LIMIT):
        await run_cluster(graph, 1)
    assert node.task_result == [[0, 1, 2], True, True]


def test_a_task_may_set_attributes_on_its_graph_as_in_process() -> None:
    graph, _ = adopted([])
    graph.mine = 1
    assert graph.mine == 1
