"""Why a task ended reads the same on the coordinator as in-process: one graph whose
tasks end every way a task function can make them end, run both ways."""

from __future__ import annotations

from typing import Any

import trio
import trio.testing
from memcluster import TIME_LIMIT, run_cluster

from trio_graph_scheduler import TaskGraph, TaskPolicy, WorkerLoop, execute_graph
from trio_graph_scheduler.shared.states import EndReason


async def returns(**_: Any) -> str:
    return "ok"


async def raises(**_: Any) -> None:
    raise ValueError("bad row")


async def too_slow(**_: Any) -> None:
    await trio.sleep(10)


async def marks_itself_failed(*, task_node: Any, **_: Any) -> None:
    task_node.task_status = "failed"


async def calls_badly(*, graph: Any, **_: Any) -> None:
    graph.create_task_nowait("no_such_function")  # not awaited: fails the task later


EXPECTED = {
    "returns": EndReason.SUCCEEDED,
    "raises": EndReason.RAISED,
    "too_slow": EndReason.TIMED_OUT,
    "marks_itself_failed": EndReason.MARKED_FAILED,
    "skipped": EndReason.PRECONDITION_FAILED,
}


def build() -> TaskGraph:
    functions = {
        "returns": returns,
        "raises": raises,
        "too_slow": too_slow,
        "marks_itself_failed": marks_itself_failed,
        "skipped": returns,
    }
    graph = TaskGraph(
        functions,
        [WorkerLoop("default", 8)],
        task_policies={"too_slow": TaskPolicy(timeout=1)},
    )
    for name in functions:
        if name != "skipped":
            graph.create_task_nowait(name)
    failing = next(n for n in graph.nodes.values() if n.task_handle == "raises")
    graph.create_task_nowait("skipped", None, [failing.uid])
    return graph


def reasons(graph: TaskGraph) -> dict[str, Any]:
    return {node.task_handle: node.end_reason for node in graph.nodes.values()}


async def test_in_process(autojump_clock: trio.testing.MockClock) -> None:
    graph = build()
    await execute_graph(graph)
    assert reasons(graph) == EXPECTED
    marked = next(n for n in graph.nodes.values() if n.task_handle == "marks_itself_failed")
    assert marked.exception_trace is None


async def test_on_workers(autojump_clock: trio.testing.MockClock) -> None:
    graph = build()
    with trio.fail_after(TIME_LIMIT):
        await run_cluster(graph, 1)
    assert reasons(graph) == EXPECTED
    marked = next(n for n in graph.nodes.values() if n.task_handle == "marks_itself_failed")
    assert marked.exception_trace is None  # as in-process: it raised nothing


async def test_an_unawaited_graph_call_that_fails_is_the_tasks_end_reason(
    autojump_clock: trio.testing.MockClock,
) -> None:
    graph = TaskGraph({"calls_badly": calls_badly}, [WorkerLoop("default", 1)])
    node = graph.create_task_nowait("calls_badly")
    with trio.fail_after(TIME_LIMIT):
        await run_cluster(graph, 1)
    assert (node.task_status, node.end_reason) == ("failed", EndReason.CALL_FAILED)
    assert node.exception_trace is not None
    assert "UnknownFunctionError" in node.exception_trace
