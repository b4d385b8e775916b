"""A value the coordinator cannot read fails the task it belongs to, and nothing else: the
connection, the worker's other tasks and the rest of the run carry on."""

from __future__ import annotations

from typing import Any

import trio
import trio.testing
from memcluster import TIME_LIMIT, run_cluster, timed

from trio_graph_scheduler import TaskGraph, TaskStatus, WorkerLoop
from trio_graph_scheduler.protocol.values import UnreadableValue
from trio_graph_scheduler.shared.states import EndReason
from trio_graph_scheduler.worker.link import _unreadable_input


def _refuse_to_load() -> None:
    raise ImportError("No module named 'only_on_workers'")


class OnlyOnWorkers:
    """Pickles on the worker; loading it raises (as a class only workers have would)."""

    def __reduce__(self) -> tuple[Any, tuple[()]]:
        return (_refuse_to_load, ())


async def unreadable(**_: Any) -> OnlyOnWorkers:
    await trio.sleep(0.2)
    return OnlyOnWorkers()


async def creates_unreadable(graph: Any, **_: Any) -> str:
    try:
        await graph.create_task("timed", ((OnlyOnWorkers(),), None))
    except Exception as exc:  # the coordinator refuses the call, the task goes on
        return f"{type(exc).__name__}: {exc}"
    return "created"


async def test_an_unreadable_result_fails_its_task_only(
    autojump_clock: trio.testing.MockClock,
) -> None:
    functions = {"unreadable": unreadable, "timed": timed, "creates": creates_unreadable}
    graph = TaskGraph(functions, [WorkerLoop("default", 4)])
    bad = await graph.create_task("unreadable")
    after = await graph.create_task("timed", ((0.1,), None), [bad.uid])
    creator = await graph.create_task("creates")
    innocents = [await graph.create_task("timed", ((0.5,), None)) for _ in range(6)]

    with trio.fail_after(TIME_LIMIT):
        summary, workers = await run_cluster(graph, 2)

    assert bad.task_status is TaskStatus.FAILED
    assert bad.end_reason is EndReason.UNSENDABLE
    assert bad.exception_trace == (
        "the task's result cannot be read on the coordinator (is its class only installed "
        "on the workers?): ImportError: No module named 'only_on_workers'\n"
    )
    assert after.task_status is TaskStatus.PRECONDITION_FAILED
    assert all(node.task_status is TaskStatus.SUCCESS for node in innocents)
    assert all(node.attempts == 1 for node in innocents)
    assert creator.task_status is TaskStatus.SUCCESS
    assert creator.task_result == (
        "GraphDefinitionError: the task's arguments cannot be read on the coordinator: "
        "ImportError: No module named 'only_on_workers'"
    )
    assert summary.tasks_by_status == {"success": 7, "failed": 1, "precondition_failed": 1}
    # Neither connection was dropped: each worker connected once and ran to the end.
    assert [worker.statistics().connections for worker in workers] == [1, 1]


async def test_an_argument_the_worker_cannot_read_fails_that_task_only(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # The graph builder's argument lives on the coordinator as an object; the worker
    # cannot unpickle it (as a class installed only on the coordinator).
    graph = TaskGraph({"timed": timed}, [WorkerLoop("default", 4)])
    bad = await graph.create_task("timed", ((OnlyOnWorkers(),), None))
    after = await graph.create_task("timed", ((0.1,), None), [bad.uid])
    innocents = [await graph.create_task("timed", ((0.5,), None)) for _ in range(6)]

    with trio.fail_after(TIME_LIMIT):
        summary, workers = await run_cluster(graph, 2)

    assert bad.task_status is TaskStatus.FAILED
    assert bad.end_reason is EndReason.UNSENDABLE
    assert bad.exception_trace == (
        "UnreadableValue: the task's arguments or a predecessor's result cannot be read on "
        "this worker (is its class only installed on the coordinator?): ImportError: No "
        "module named 'only_on_workers'\n"
    )
    assert after.task_status is TaskStatus.PRECONDITION_FAILED
    assert all(node.task_status is TaskStatus.SUCCESS for node in innocents)
    assert summary.tasks_by_status == {"success": 6, "failed": 1, "precondition_failed": 1}
    assert [worker.statistics().connections for worker in workers] == [1, 1]


def test_a_value_refused_for_its_size_is_not_blamed_on_a_missing_class() -> None:
    # A stream refused by the worker (an older coordinator that did not know its limit)
    # fails the task with the size, not with the unpickling hint.
    why = "a value of 3,000 bytes, more than this side takes in (2,048 bytes, --max-value-bytes)"
    refused = _unreadable_input(7, UnreadableValue(why, refused=True))
    assert (
        refused.message
        == f"the task's arguments or a predecessor's result was refused by this worker: {why}"
    )
    assert "only installed" not in refused.message
    unpickled = _unreadable_input(7, UnreadableValue("ImportError: No module named 'x'"))
    assert "is its class only installed on the coordinator?" in unpickled.message
    assert refused.reason is unpickled.reason is EndReason.UNSENDABLE
