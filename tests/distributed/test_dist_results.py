"""What tasks compute on remote workers, and how errors come back: results, arguments,
predecessors, dynamic graph calls, failures, worker contexts.

Every test runs a real coordinator and real workers over in-memory streams through
``memcluster``. Task functions here are cloudpickled by value, so they report what they
saw through their results, never through module state.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
import trio
import trio.lowlevel
import trio.testing
from memcluster import TIME_LIMIT, run_cluster, timed

from trio_graph_scheduler import (
    GenericSchedulingCondition,
    TaskGraph,
    TGSError,
    UnknownFunctionError,
    UnknownUidError,
    WorkerLoop,
)

#: The keyword arguments the scheduler adds to every call.
EXTRAS = ("task_node", "graph", "worker_context")
#: A well-formed uid that no graph holds.
NO_SUCH_TASK = "task-" + "0" * 32


async def echo(*args: Any, **kwargs: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Return the task's own args and kwargs, as the worker received them."""
    return args, {key: value for key, value in kwargs.items() if key not in EXTRAS}


async def leaf(x: int = 0, **_: Any) -> int:
    await trio.sleep(1)
    return x * 10


async def read_predecessors(**kwargs: Any) -> list[tuple[str, str, str, Any, str | None]]:
    """What the worker sees of the task's predecessors."""
    return [
        (p.uid, p.task_handle, str(p.task_status), p.task_result, p.exception_trace)
        for p in kwargs["task_node"].get_predecessor_task_nodes()
    ]


def one_loop(functions: dict[str, Any], concurrency: int = 4) -> TaskGraph:
    return TaskGraph(functions, [WorkerLoop("default", concurrency)])


# -- results and arguments ---------------------------------------------------------


async def test_arguments_and_results_round_trip(autojump_clock: trio.testing.MockClock) -> None:
    args = (1, "two", (3, (4, 5)), {6, 7}, frozenset({8}), None, b"\x00bytes", 2**70, 1.5)
    kwargs = {"t": (1, (2,)), "s": {"a"}, "none": None, "d": {1: "int key", (2, 3): [4]}}
    graph = one_loop({"echo": echo})
    full = await graph.create_task("echo", (args, kwargs))
    no_arguments = await graph.create_task("echo", None)
    no_kwargs = await graph.create_task("echo", ((None,), None))
    no_args = await graph.create_task("echo", (None, {"k": None}))
    empty = await graph.create_task("echo", ((), {}))

    with trio.fail_after(TIME_LIMIT):
        summary, _ = await run_cluster(graph, 2)

    assert summary.succeeded
    got_args, got_kwargs = full.task_result
    # Containers compare equal only to their own kind (a tuple never equals a list), but
    # a set equals a frozenset: check those kinds by hand.
    assert (got_args, got_kwargs) == (args, kwargs)
    assert type(got_args) is tuple
    assert [type(v) for v in got_args] == [type(v) for v in args]
    assert type(got_kwargs["s"]) is set
    assert type(got_args[4]) is frozenset
    assert no_arguments.task_result == ((), {})
    assert no_kwargs.task_result == ((None,), {})
    assert no_args.task_result == ((), {"k": None})
    assert empty.task_result == ((), {})


async def test_predecessors_results_are_read_on_the_worker(
    autojump_clock: trio.testing.MockClock,
) -> None:
    graph = one_loop({"leaf": leaf, "read": read_predecessors})
    first = await graph.create_task("leaf", ((1,), None))
    second = await graph.create_task("leaf", ((2,), None))
    reader = await graph.create_task("read", None, waits_on=[second.uid, first.uid])

    with trio.fail_after(TIME_LIMIT):
        summary, _ = await run_cluster(graph, 2)

    assert summary.succeeded
    # In the order of waits_on, with the results the predecessors' functions returned.
    assert reader.task_result == [
        (second.uid, "leaf", "success", 20, None),
        (first.uid, "leaf", "success", 10, None),
    ]


async def structure(**_: Any) -> dict[str, Any]:
    return {"tuple": (1, 2), "set": {3}, "nested": [(4, {5: (6,)})]}


async def predecessor_result(**kwargs: Any) -> Any:
    (predecessor,) = kwargs["task_node"].get_predecessor_task_nodes()
    return predecessor.task_result


async def test_structured_result_reaches_the_successor_intact(
    autojump_clock: trio.testing.MockClock,
) -> None:
    graph = one_loop({"structure": structure, "take": predecessor_result})
    producer = await graph.create_task("structure")
    consumer = await graph.create_task("take", None, waits_on=[producer.uid])

    with trio.fail_after(TIME_LIMIT):
        summary, _ = await run_cluster(graph, 1)

    assert summary.succeeded
    expected = {"tuple": (1, 2), "set": {3}, "nested": [(4, {5: (6,)})]}
    assert producer.task_result == expected
    assert consumer.task_result == expected
    assert type(consumer.task_result["nested"][0]) is tuple


# -- dynamic graphs ------------------------------------------------------------------


async def spawner(**kwargs: Any) -> dict[str, str]:
    """Grow the graph from a worker with every kind of graph call a task can make."""
    graph, node = kwargs["graph"], kwargs["task_node"]
    awaited = await graph.create_task("leaf", ((1,), None))
    unawaited = graph.create_task_nowait("leaf", ((2,), None))
    # The uid of a task just created is usable at once, awaited or not.
    chained = await graph.create_task("leaf", ((3,), None), waits_on=[awaited.uid])
    condition = GenericSchedulingCondition(graph, "SUCCESS__1", [unawaited.uid, chained.uid])
    gather = graph.create_task_nowait("read", None, waits_on=[condition.uid, awaited.uid])
    postponer = graph.create_task_nowait("leaf", ((4,), None))
    node.prepend_to_successor("read", postponer)
    return {
        "awaited": awaited.uid,
        "unawaited": unawaited.uid,
        "chained": chained.uid,
        "condition": condition.uid,
        "gather": gather.uid,
        "postponer": postponer.uid,
    }


async def test_remote_task_grows_the_graph(autojump_clock: trio.testing.MockClock) -> None:
    graph = one_loop({"spawn": spawner, "leaf": leaf, "read": read_predecessors})
    spawn = await graph.create_task("spawn")
    after = await graph.create_task("read", None, waits_on=[spawn.uid])

    with trio.fail_after(TIME_LIMIT):
        summary, _ = await run_cluster(graph, 2)

    assert summary.succeeded
    uids = spawn.task_result
    nodes = graph.nodes
    assert set(nodes) == {spawn.uid, after.uid} | (set(uids.values()) - {uids["condition"]})
    assert all(node.task_status == "success" for node in nodes.values())
    assert nodes[uids["awaited"]].task_result == 10
    assert nodes[uids["unawaited"]].task_result == 20
    assert nodes[uids["chained"]].task_result == 30
    assert nodes[uids["postponer"]].task_result == 40
    condition = graph.conditions[uids["condition"]]
    assert condition.condition_status == "satisfied"
    assert [p.uid for p in condition.predecessors] == [uids["unawaited"], uids["chained"]]
    # The gathering task waited on the condition and on the awaited task. SUCCESS__1 held
    # as soon as the unawaited leaf succeeded, while the chained one had not ended yet.
    gathered = {
        uid: (status, result) for uid, _, status, result, _ in nodes[uids["gather"]].task_result
    }
    assert gathered[uids["unawaited"]] == ("success", 20)
    assert gathered[uids["awaited"]] == ("success", 10)
    assert gathered[uids["chained"]] in {("in_progress", None), ("ready_for_execution", None)}
    # prepend_to_successor made `after` wait for the postponer too, which it saw succeed.
    seen = {uid: (status, result) for uid, _, status, result, _ in after.task_result}
    assert seen[uids["postponer"]] == ("success", 40)
    assert set(seen) == {spawn.uid, uids["postponer"]}


# -- graph calls that fail -----------------------------------------------------------


async def catch_bad_calls(**kwargs: Any) -> dict[str, Any]:
    """Awaited graph calls that the coordinator refuses raise in the task, catchably."""
    graph = kwargs["graph"]
    caught: dict[str, Any] = {}
    try:
        await graph.create_task("nope")
    except UnknownFunctionError as exc:
        caught["function"] = (isinstance(exc, ValueError), str(exc))
    try:
        await graph.create_task("leaf", None, waits_on=[NO_SUCH_TASK])
    except UnknownUidError as exc:
        caught["uid"] = (isinstance(exc, KeyError), str(exc))
    try:
        await graph.create_task("leaf", ((threading.Lock(),), None))
    except TGSError as exc:
        caught["unpicklable"] = (type(exc).__name__, str(exc))
    # The task and its connection carry on after all that.
    caught["still_works"] = (await graph.create_task("leaf", ((5,), None))).uid
    return caught


async def create_unknown(**kwargs: Any) -> None:
    await kwargs["graph"].create_task("nope")


async def test_awaited_graph_call_errors_raise_in_the_task(
    autojump_clock: trio.testing.MockClock,
) -> None:
    functions = {"catch": catch_bad_calls, "uncaught": create_unknown, "leaf": leaf}
    graph = one_loop(functions)
    catcher = await graph.create_task("catch")
    uncaught = await graph.create_task("uncaught")

    with trio.fail_after(TIME_LIMIT):
        summary, _ = await run_cluster(graph, 1)

    assert summary.tasks_by_status == {"success": 2, "failed": 1}
    caught = catcher.task_result
    assert caught["function"][0] is True
    assert "'nope'" in caught["function"][1]
    assert caught["uid"] == (True, f"no task or condition with uid {NO_SUCH_TASK!r} in this graph")
    kind, message = caught["unpicklable"]
    assert kind == "ValueEncodeError"
    assert "lock" in message
    assert graph.nodes[caught["still_works"]].task_result == 50
    # Nothing was created by the refused calls: the graph holds the two tasks and the one
    # leaf created last.
    assert len(graph.nodes) == 3
    assert uncaught.task_status == "failed"
    assert uncaught.exception_trace is not None
    assert "UnknownFunctionError" in uncaught.exception_trace
    assert "unknown function 'nope'" in uncaught.exception_trace


async def nowait_unknown_uid(**kwargs: Any) -> str:
    kwargs["graph"].create_task_nowait("leaf", None, waits_on=[NO_SUCH_TASK])
    return "returned normally"


async def condition_unknown_uid(**kwargs: Any) -> str:
    GenericSchedulingCondition(kwargs["graph"], "SUCCESS__ALL", [NO_SUCH_TASK])
    return "returned normally"


async def prepend_unknown_function(**kwargs: Any) -> str:
    task_node = kwargs["task_node"]
    task_node.prepend_to_successor("nope", task_node.uid)
    return "returned normally"


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (nowait_unknown_uid, f"UnknownUidError: no task or condition with uid {NO_SUCH_TASK!r}"),
        (condition_unknown_uid, f"UnknownUidError: no task or condition with uid {NO_SUCH_TASK!r}"),
        (prepend_unknown_function, "UnknownFunctionError: unknown function 'nope'"),
    ],
)
async def test_unawaited_graph_call_error_fails_the_calling_task(
    autojump_clock: trio.testing.MockClock, call: Any, error: str
) -> None:
    graph = one_loop({"call": call, "leaf": leaf})
    caller = await graph.create_task("call")
    successor = await graph.create_task("leaf", None, waits_on=[caller.uid])
    bystander = await graph.create_task("leaf")

    with trio.fail_after(TIME_LIMIT):
        summary, _ = await run_cluster(graph, 1)

    assert not summary.succeeded
    assert caller.task_status == "failed"
    assert caller.exception_trace is not None
    assert "a graph call by this task failed" in caller.exception_trace
    assert error in caller.exception_trace
    assert caller.task_result is None  # its return value was not recorded
    assert successor.task_status == "precondition_failed"
    assert bystander.task_status == "success"


# -- tasks that fail -----------------------------------------------------------------


async def boom(**_: Any) -> None:
    await trio.sleep(1)
    raise ValueError("kaput 42")


async def test_failure_travels_with_its_traceback(autojump_clock: trio.testing.MockClock) -> None:
    graph = one_loop({"boom": boom, "leaf": leaf, "read": read_predecessors})
    failing = await graph.create_task("boom")
    fine = await graph.create_task("leaf", ((1,), None))
    child = await graph.create_task("leaf", None, waits_on=[failing.uid])
    grandchild = await graph.create_task("leaf", None, waits_on=[child.uid])
    complete = GenericSchedulingCondition(graph, "COMPLETE__ALL", [failing.uid, fine.uid])
    cleanup = await graph.create_task("read", None, waits_on=[complete.uid])

    with trio.fail_after(TIME_LIMIT):
        summary, _ = await run_cluster(graph, 2)

    assert not summary.succeeded
    assert summary.tasks_by_status == {"success": 2, "failed": 1, "precondition_failed": 2}
    assert failing.task_status == "failed"
    trace = failing.exception_trace
    assert trace is not None
    assert trace.startswith("Traceback (most recent call last):")
    assert "in boom" in trace
    assert trace.rstrip().endswith("ValueError: kaput 42")
    assert child.task_status == grandchild.task_status == "precondition_failed"
    # COMPLETE__ALL ran its task, and that task saw the failure and its traceback.
    assert cleanup.task_status == "success"
    assert cleanup.task_result == [
        (failing.uid, "boom", "failed", None, trace),
        (fine.uid, "leaf", "success", 10, None),
    ]


def blocking(x: int, **kwargs: Any) -> tuple[int, bool, Any]:
    """A plain function: it must run in a thread, not in the worker's trio thread."""
    in_thread = threading.current_thread() is not threading.main_thread()
    return x * 2, in_thread, kwargs["worker_context"]


async def slot_context(**kwargs: Any) -> Any:
    await trio.sleep(1)
    return kwargs["worker_context"]


async def init_slot(worker_index: int) -> dict[str, int]:
    await trio.lowlevel.checkpoint()
    return {"slot": worker_index}


async def test_sync_functions_run_in_a_thread() -> None:
    # No autojump clock here: while a thread runs, every trio task is blocked, and the
    # autojump clock would race through heartbeat timeouts and the test's deadline.
    graph = TaskGraph({"blocking": blocking}, [WorkerLoop("default", 2)])
    sync_tasks = [await graph.create_task("blocking", ((n,), None)) for n in range(3)]

    with trio.fail_after(TIME_LIMIT):
        summary, [worker] = await run_cluster(graph, 1)

    assert summary.succeeded
    # They ran in a thread, and a loop without an init function gives them {}.
    assert [t.task_result for t in sync_tasks] == [(0, True, {}), (2, True, {}), (4, True, {})]
    assert worker.statistics().tasks_succeeded == 3


async def test_each_slot_gets_its_worker_context(autojump_clock: trio.testing.MockClock) -> None:
    graph = TaskGraph(
        {"context": slot_context, "leaf": leaf},
        [WorkerLoop("default", 2, ["context"]), WorkerLoop("plain", 2, None)],
        worker_context_init_functions={"default": init_slot},
    )
    context_tasks = [await graph.create_task("context") for _ in range(4)]
    plain = await graph.create_task("leaf")

    with trio.fail_after(TIME_LIMIT):
        summary, _ = await run_cluster(graph, 1)

    assert summary.succeeded
    # Two tasks ran at once, so in two slots, each with the context it built.
    assert {t.task_result["slot"] for t in context_tasks} == {0, 1}
    assert plain.task_result == 0


def failing_init(worker_index: int) -> None:
    raise RuntimeError(f"no database for slot {worker_index}")


async def test_failing_context_init_fails_that_loops_tasks(
    autojump_clock: trio.testing.MockClock,
) -> None:
    graph = TaskGraph(
        {"leaf": leaf, "other": timed},
        [WorkerLoop("default", 2, ["leaf"]), WorkerLoop("other", 1, None)],
        worker_context_init_functions={"default": failing_init},
    )
    doomed = [await graph.create_task("leaf") for _ in range(3)]
    unaffected = await graph.create_task("other")

    with trio.fail_after(TIME_LIMIT):
        summary, [worker] = await run_cluster(graph, 1)

    assert summary.tasks_by_status == {"success": 1, "failed": 3}
    assert unaffected.task_status == "success"
    for task in doomed:
        assert task.task_status == "failed"
        assert task.exception_trace is not None
        assert "worker context init of loop 'default'" in task.exception_trace
        assert "no database for slot" in task.exception_trace
    assert worker.statistics().tasks_failed == 3


# -- values that cannot travel -------------------------------------------------------


async def unsendable_result(**_: Any) -> Any:
    await trio.sleep(1)
    return {"lock": threading.Lock()}


async def test_unsendable_result_fails_only_that_task(
    autojump_clock: trio.testing.MockClock,
) -> None:
    graph = one_loop({"bad": unsendable_result, "leaf": leaf}, concurrency=2)
    bad = await graph.create_task("bad")
    alongside = await graph.create_task("leaf", ((1,), None))
    later = [await graph.create_task("leaf", ((n,), None), waits_on=[bad.uid]) for n in (2, 3)]
    independent = [await graph.create_task("leaf", ((n,), None)) for n in (4, 5, 6)]

    with trio.fail_after(TIME_LIMIT):
        summary, [worker] = await run_cluster(graph, 1)

    assert bad.task_status == "failed"
    assert bad.exception_trace is not None
    assert "result cannot be sent to the coordinator" in bad.exception_trace
    assert "lock" in bad.exception_trace
    assert [t.task_status for t in later] == ["precondition_failed"] * 2
    assert alongside.task_result == 10
    assert [t.task_result for t in independent] == [40, 50, 60]
    assert summary.tasks_by_status == {"success": 4, "failed": 1, "precondition_failed": 2}
    # The worker carried on over the one connection it had.
    assert worker.statistics().connections == 1
    assert worker.statistics().tasks_succeeded == 4
    assert worker.statistics().tasks_failed == 1


async def test_unsendable_arguments_fail_only_that_task(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Accepted by create_task on the coordinator (it checks the shape only), but the
    # assignment carrying these arguments cannot be encoded.
    graph = one_loop({"leaf": leaf}, concurrency=1)
    bad = await graph.create_task("leaf", ((threading.Lock(),), None))
    good = [await graph.create_task("leaf", ((n,), None)) for n in (1, 2)]

    with trio.fail_after(TIME_LIMIT):
        summary, _ = await run_cluster(graph, 1)

    assert bad.task_status == "failed"
    assert bad.exception_trace is not None
    assert "cannot send the task to a worker" in bad.exception_trace
    assert [t.task_result for t in good] == [10, 20]
    assert summary.tasks_by_status == {"success": 2, "failed": 1}
