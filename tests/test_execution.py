"""In-process execution through the public API.

Time-dependent tests use pytest-trio's ``autojump_clock`` (a MockClock that jumps ahead
whenever every task is blocked), so sleeps cost no wall time and times are exact.
"""

from __future__ import annotations

import itertools
import math
import threading
from collections import defaultdict
from typing import TYPE_CHECKING, Any

import pytest
import trio
import trio.lowlevel
import trio.testing

from trio_graph_scheduler import (
    GenericSchedulingCondition,
    GraphDefinitionError,
    GraphStalledError,
    TaskGraph,
    TaskNode,
    TaskPolicy,
    UnknownFunctionError,
    UnknownUidError,
    WorkerContextError,
    WorkerLoop,
    execute_graph,
)
from trio_graph_scheduler.shared.states import EndReason

if TYPE_CHECKING:
    from collections.abc import Callable


class PeakMeter:
    """Counts tasks running at once, per loop."""

    def __init__(self) -> None:
        self.running: dict[str, int] = defaultdict(int)
        self.peak: dict[str, int] = defaultdict(int)

    def sleeper(self, loop: str, seconds: float = 1.0) -> Callable[..., Any]:
        async def sleep_task(*_: Any, **__: Any) -> str:
            self.running[loop] += 1
            self.peak[loop] = max(self.peak[loop], self.running[loop])
            try:
                await trio.sleep(seconds)
            finally:
                self.running[loop] -= 1
            return loop

        return sleep_task


async def test_returns_when_last_task_ends(autojump_clock: trio.testing.MockClock) -> None:
    meter = PeakMeter()
    graph = TaskGraph({"sleep": meter.sleeper("default", 5)}, [WorkerLoop("default", 1)])
    await graph.create_task("sleep")
    start = trio.current_time()
    await execute_graph(graph)
    # No polling: the graph ends at the very moment its one task does.
    assert trio.current_time() - start == 5


async def test_empty_graph_returns_at_once(autojump_clock: trio.testing.MockClock) -> None:
    graph = TaskGraph({}, [WorkerLoop("default", 1)])
    start = trio.current_time()
    await execute_graph(graph)
    assert trio.current_time() == start


async def test_concurrency_limit_per_loop(autojump_clock: trio.testing.MockClock) -> None:
    meter = PeakMeter()
    functions = {"a": meter.sleeper("default"), "b": meter.sleeper("slow")}
    graph = TaskGraph(functions, [WorkerLoop("default", 3, None), WorkerLoop("slow", 2, ["b"])])
    for _ in range(10):
        await graph.create_task("a")
        await graph.create_task("b")
    start = trio.current_time()
    await execute_graph(graph)
    assert dict(meter.peak) == {"default": 3, "slow": 2}
    # Ten one-second tasks two at a time take five seconds: the loops really ran in parallel.
    assert trio.current_time() - start == 5
    assert {n.task_result for n in graph.nodes.values()} == {"default", "slow"}


async def test_results_flow_to_successors_and_args_are_passed() -> None:
    async def square(x: int, *, task_node: TaskNode, **_: Any) -> int:
        return x * x

    async def total(offset: int = 0, *, task_node: TaskNode, **_: Any) -> int:
        return offset + sum(p.task_result for p in task_node.get_predecessor_task_nodes())

    graph = TaskGraph({"square": square, "total": total}, [WorkerLoop("default", 2)])
    squares = [await graph.create_task("square", ((i,), {})) for i in range(1, 5)]
    result = await graph.create_task("total", ((), {"offset": 100}), [s.uid for s in squares])
    await execute_graph(graph)
    assert result.task_result == 100 + 1 + 4 + 9 + 16
    assert result.task_arguments == ((), {"offset": 100})  # the scheduler's kwargs not added


async def test_failure_is_recorded_with_traceback_and_propagates() -> None:
    async def boom(**_: Any) -> None:
        raise ValueError("no such page")

    graph = TaskGraph({"boom": boom, "after": boom}, [WorkerLoop("default", 2)])
    failing = await graph.create_task("boom")
    child = await graph.create_task("after", None, [failing.uid])
    grandchild = await graph.create_task("after", None, [child.uid])
    await execute_graph(graph)
    assert failing.task_status == "failed"
    assert failing.exception_trace is not None
    assert "Traceback (most recent call last)" in failing.exception_trace
    assert failing.exception_trace.rstrip().endswith("ValueError: no such page")
    assert [child.task_status, grandchild.task_status] == ["precondition_failed"] * 2


async def test_arguments_a_function_does_not_take_fail_its_task_alone() -> None:
    calls: list[int] = []

    async def one(x: int, *, task_node: TaskNode, graph: TaskGraph, worker_context: Any) -> int:
        calls.append(x)
        return x

    graph = TaskGraph({"one": one}, [WorkerLoop("default", 1)])
    missing = await graph.create_task("one")  # no x
    extra = await graph.create_task("one", ((1, 2), {}))  # one too many
    unknown = await graph.create_task("one", ((3,), {"y": 4}))  # a kwarg it has not
    fine = await graph.create_task("one", ((5,), None))
    after = await graph.create_task("one", ((6,), {}), [missing.uid])
    summary = await execute_graph(graph)
    for node in (missing, extra, unknown):
        assert node.task_status == "failed"
        assert node.end_reason is EndReason.RAISED
        assert isinstance(node.task_exception, TypeError)
        assert node.attempts == 1
    assert after.task_status == "precondition_failed"
    assert fine.task_result == 5
    assert calls == [5]  # the failed calls ran nothing of the function
    assert len(summary.failed_tasks) == 3


async def test_task_that_marks_itself_failed_is_failed() -> None:
    async def give_up(*, task_node: TaskNode, **_: Any) -> str:
        task_node.task_status = "failed"  # the seed allowed this
        return "partial"

    graph = TaskGraph({"give_up": give_up}, [WorkerLoop("default", 1)])
    node = await graph.create_task("give_up")
    after = await graph.create_task("give_up", None, [node.uid])
    await execute_graph(graph)
    assert (node.task_status, after.task_status) == ("failed", "precondition_failed")


async def test_tasks_grow_the_graph_while_it_runs() -> None:
    async def fan_out(n: int, *, graph: TaskGraph, task_node: TaskNode, **_: Any) -> int:
        children = [await graph.create_task("leaf", ((i,), {})) for i in range(n)]
        await graph.create_task("collect", None, [c.uid for c in children])
        return n

    async def leaf(i: int, **_: Any) -> int:
        await trio.lowlevel.checkpoint()
        return i * 10

    async def collect(*, task_node: TaskNode, **_: Any) -> list[int]:
        return sorted(p.task_result for p in task_node.get_predecessor_task_nodes())

    functions = {"fan_out": fan_out, "leaf": leaf, "collect": collect}
    graph = TaskGraph(functions, [WorkerLoop("default", 4)])
    await graph.create_task("fan_out", ((5,), {}))
    await execute_graph(graph)
    (collector,) = [n for n in graph.nodes.values() if n.task_handle == "collect"]
    assert collector.task_result == [0, 10, 20, 30, 40]
    assert all(n.task_status == "success" for n in graph.nodes.values())


async def test_caller_adds_tasks_during_execution(autojump_clock: trio.testing.MockClock) -> None:
    meter = PeakMeter()
    graph = TaskGraph({"sleep": meter.sleeper("default", 10)}, [WorkerLoop("default", 2)])
    first = await graph.create_task("sleep")

    async def add_later() -> TaskNode:
        await trio.sleep(3)
        return await graph.create_task("sleep", None, [first.uid])

    async with trio.open_nursery() as nursery:
        added: list[TaskNode] = []

        async def adder() -> None:
            added.append(await add_later())

        nursery.start_soon(adder)
        await execute_graph(graph)
    assert added[0].task_status == "success"
    assert trio.current_time() == 20


async def test_prepend_to_successor_postpones_it() -> None:
    order: list[str] = []

    async def first(*, graph: TaskGraph, task_node: TaskNode, **_: Any) -> None:
        order.append("first")
        extra = await graph.create_task("extra")
        task_node.prepend_to_successor("last", extra)

    async def extra(**_: Any) -> None:
        await trio.sleep(0.01)
        order.append("extra")

    async def last(*, task_node: TaskNode, **_: Any) -> None:
        order.append("last")

    graph = TaskGraph({"first": first, "extra": extra, "last": last}, [WorkerLoop("default", 3)])
    head = await graph.create_task("first")
    await graph.create_task("last", None, [head.uid])
    await execute_graph(graph)
    assert order == ["first", "extra", "last"]


async def test_worker_context_per_slot() -> None:
    async def init(worker_index: int) -> dict[str, int]:
        return {"index": worker_index}

    async def which(*, worker_context: dict[str, int], **_: Any) -> int:
        await trio.sleep(0.01)  # hold the slot so the others take the rest
        return worker_context["index"]

    async def plain(*, worker_context: object, **_: Any) -> object:
        return worker_context

    graph = TaskGraph(
        {"which": which, "plain": plain},
        [WorkerLoop("default", 1, ["plain"]), WorkerLoop("io", 3, ["which"])],
        worker_context_init_functions={"io": init},
    )
    nodes = [await graph.create_task("which") for _ in range(3)]
    bare = await graph.create_task("plain")
    await execute_graph(graph)
    assert sorted(n.task_result for n in nodes) == [0, 1, 2]
    assert bare.task_result == {}


async def test_failing_context_init_fails_the_loops_tasks() -> None:
    # Issue 12 changed this on purpose: it used to raise an ExceptionGroup out of
    # execute_graph; now the loop's tasks fail with the init's error, as on a worker.
    async def init(worker_index: int) -> None:
        raise OSError("database down")

    graph = TaskGraph(
        {"f": lambda **_: None},
        [WorkerLoop("default", 1)],
        worker_context_init_functions={"default": init},
    )
    node = await graph.create_task("f")
    summary = await execute_graph(graph)
    assert node.task_status == "failed"
    assert node.end_reason is EndReason.WORKER_ERROR
    assert isinstance(node.task_exception, WorkerContextError)
    assert [t.headline for t in summary.failed_tasks] == [
        "WorkerContextError: worker context init of loop 'default' (worker 0) failed: "
        "OSError: database down"
    ]


async def test_sync_functions_run_in_a_thread() -> None:
    def blocking(x: int, **_: Any) -> tuple[int, bool]:
        return x + 1, threading.current_thread() is threading.main_thread()

    graph = TaskGraph({"blocking": blocking}, [WorkerLoop("default", 2)])
    node = await graph.create_task("blocking", ((41,), None))
    await execute_graph(graph)
    assert node.task_result == (42, False)


async def test_cancellation_cancels_running_tasks_and_requeues_them(
    autojump_clock: trio.testing.MockClock,
) -> None:
    cancelled: list[str] = []

    async def slow(*, task_node: TaskNode, **_: Any) -> str:
        try:
            await trio.sleep(10)
        except trio.Cancelled:
            cancelled.append(task_node.uid)
            raise
        return "done"

    graph = TaskGraph({"slow": slow}, [WorkerLoop("default", 2)])
    nodes = [await graph.create_task("slow") for _ in range(3)]
    with trio.move_on_after(5):
        await execute_graph(graph)
    assert sorted(cancelled) == sorted(n.uid for n in nodes[:2])
    assert [n.task_status for n in nodes] == ["created"] * 3
    graph.check_invariants()
    # Nothing was lost: running the graph again finishes every task.
    await execute_graph(graph)
    assert [n.task_result for n in nodes] == ["done"] * 3


async def test_dependency_cycle_is_reported_not_hung() -> None:
    async def make_cycle(*, graph: TaskGraph, task_node: TaskNode, **_: Any) -> None:
        (successor, _condition) = task_node.get_successors("g")[0]
        loop_back = await graph.create_task("g", None, [successor.uid])
        task_node.prepend_to_successor("g", loop_back)

    graph = TaskGraph({"f": make_cycle, "g": lambda **_: None}, [WorkerLoop("default", 1)])
    head = await graph.create_task("f")
    await graph.create_task("g", None, [head.uid])
    with pytest.raises(GraphStalledError, match="2 task"):
        await execute_graph(graph)


async def test_executing_twice_at_once_is_refused() -> None:
    async def forever(**_: Any) -> None:
        await trio.sleep_forever()

    graph = TaskGraph({"f": forever}, [WorkerLoop("default", 1)])
    await graph.create_task("f")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(execute_graph, graph)
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(Exception, match="already executing"):
            await execute_graph(graph)
        nursery.cancel_scope.cancel()


# -- errors at the call that is wrong --------------------------------------------------


async def noop(**_: Any) -> None:
    return None


@pytest.mark.parametrize(
    ("loops", "message"),
    [
        ([WorkerLoop("main", 1)], "named 'default' must exist"),
        ([WorkerLoop("default", 1), WorkerLoop("default", 2)], "two worker loops are called"),
        (
            [WorkerLoop("default", 1, ["f"]), WorkerLoop("other", 1, ["f"])],
            "named by two loops",
        ),
        ([WorkerLoop("default", 1), WorkerLoop("other", 1)], "both have functions=None"),
        ([WorkerLoop("default", 1, ["nope"])], "unknown function 'nope'"),
        ([("default", 1, None)], "needs name, concurrency and functions"),
    ],
)
def test_bad_loops_are_refused(loops: list[Any], message: str) -> None:
    with pytest.raises(GraphDefinitionError, match=message):
        TaskGraph({"f": noop}, loops)


@pytest.mark.parametrize("concurrency", [0, -1, 1.5, True, "2"])
def test_bad_concurrency_is_refused(concurrency: Any) -> None:
    with pytest.raises(GraphDefinitionError, match="concurrency must be an integer"):
        WorkerLoop("default", concurrency)


def test_bad_functions_and_init_functions_are_refused() -> None:
    with pytest.raises(GraphDefinitionError, match="maps to"):
        TaskGraph({"f": 42}, [WorkerLoop("default", 1)])  # type: ignore[dict-item]
    with pytest.raises(GraphDefinitionError, match="unknown loop 'io'"):
        TaskGraph({"f": noop}, [WorkerLoop("default", 1)], {"io": noop})


def test_unnamed_functions_go_to_the_catch_all_loop() -> None:
    graph = TaskGraph(
        {"a": noop, "b": noop, "c": noop},
        [WorkerLoop("default", 1, ["a"]), WorkerLoop("rest", 1, None)],
    )
    assert {name: f.loop for name, f in graph.task_functions.items()} == {
        "a": "default",
        "b": "rest",
        "c": "rest",
    }


async def test_bad_create_task_calls_are_refused() -> None:
    graph = TaskGraph({"f": noop}, [WorkerLoop("default", 1)])
    node = await graph.create_task("f")
    with pytest.raises(ValueError, match="unknown function 'g'") as info:
        await graph.create_task("g")
    assert isinstance(info.value, UnknownFunctionError)
    with pytest.raises(KeyError, match="task-nope"):
        await graph.create_task("f", None, ["task-nope"])
    with pytest.raises(UnknownUidError):
        await graph.create_task("f", None, ["condition-nope"])
    with pytest.raises(GraphDefinitionError, match="not the string"):
        await graph.create_task("f", None, node.uid)
    with pytest.raises(GraphDefinitionError, match="arguments must be None"):
        await graph.create_task("f", (1, 2, 3))  # type: ignore[arg-type]
    with pytest.raises(GraphDefinitionError, match="arguments must be None"):
        await graph.create_task("f", ((1,), [2]))  # type: ignore[arg-type]
    with pytest.raises(GraphDefinitionError, match="graph are passed by the scheduler"):
        await graph.create_task("f", ((), {"graph": 1}))
    assert list(graph.nodes) == [node.uid]  # nothing half-made was left behind
    graph.check_invariants()


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("SUCCESS_ALL", "bad condition mode"),
        ("SOME__ALL", "bad condition mode"),
        ("SUCCESS__x", "bad condition mode"),
        ("SUCCESS__0", "at least 1"),
        ("COMPLETE__3", "needs at least 3 predecessors, got 2"),
    ],
)
async def test_bad_conditions_are_refused(mode: str, message: str) -> None:
    graph = TaskGraph({"f": noop}, [WorkerLoop("default", 1)])
    uids = [(await graph.create_task("f")).uid for _ in range(2)]
    with pytest.raises(GraphDefinitionError, match=message):
        GenericSchedulingCondition(graph, mode, uids)
    assert graph.conditions == {}


async def test_condition_over_a_condition_uid_is_refused() -> None:
    graph = TaskGraph({"f": noop}, [WorkerLoop("default", 1)])
    task = await graph.create_task("f")
    condition = GenericSchedulingCondition(graph, "SUCCESS__ALL", [task.uid])
    with pytest.raises(GraphDefinitionError, match="is a condition"):
        GenericSchedulingCondition(graph, "SUCCESS__ALL", [condition.uid])


async def test_prepend_with_unknown_names_is_refused() -> None:
    graph = TaskGraph({"f": noop}, [WorkerLoop("default", 1)])
    node = await graph.create_task("f")
    with pytest.raises(UnknownFunctionError):
        node.prepend_to_successor("nope", node)
    with pytest.raises(UnknownUidError):
        node.prepend_to_successor("f", "task-nope")


# -- policies and cancellation ---------------------------------------------------------------


class Flaky:
    """Fails its first ``failures`` calls, then returns the number of calls."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls: list[float] = []

    async def __call__(self, **_: Any) -> int:
        self.calls.append(trio.current_time())
        if len(self.calls) <= self.failures:
            raise ConnectionError(f"flake {len(self.calls)}")
        return len(self.calls)


async def test_a_policy_retries_with_growing_jittered_backoff(
    autojump_clock: trio.testing.MockClock,
) -> None:
    flaky = Flaky(failures=3)
    policy = TaskPolicy(attempts=4, backoff=10.0, max_backoff=100.0)
    graph = TaskGraph({"f": flaky}, [WorkerLoop("default", 1)], task_policies={"f": policy})
    node = await graph.create_task("f")
    await execute_graph(graph)
    assert (node.task_status, node.task_result, node.attempts) == ("success", 4, 4)
    gaps = [b - a for a, b in itertools.pairwise(flaky.calls)]
    # Full jitter: each wait is somewhere under 10, 20 and 40 s.
    assert all(0 <= gap <= ceiling for gap, ceiling in zip(gaps, [10, 20, 40], strict=True))
    graph.check_invariants()


async def test_a_policy_gives_up_after_its_attempts(autojump_clock: trio.testing.MockClock) -> None:
    flaky = Flaky(failures=5)
    graph = TaskGraph(
        {"f": flaky, "g": noop},
        [WorkerLoop("default", 2)],
        task_policies={"f": TaskPolicy(attempts=2, backoff=1.0)},
    )
    node = await graph.create_task("f")
    after = await graph.create_task("g", None, [node.uid])
    await execute_graph(graph)
    assert (node.task_status, after.task_status) == ("failed", "precondition_failed")
    assert len(flaky.calls) == 2
    assert "ConnectionError: flake 2" in (node.exception_trace or "")


async def test_a_retry_waits_without_holding_a_slot(autojump_clock: trio.testing.MockClock) -> None:
    flaky = Flaky(failures=1)
    meter = PeakMeter()
    graph = TaskGraph(
        {"f": flaky, "sleep": meter.sleeper("default", 1)},
        [WorkerLoop("default", 1)],
        task_policies={"f": TaskPolicy(attempts=2, backoff=100.0, max_backoff=100.0)},
    )
    await graph.create_task("f")
    sleeper = await graph.create_task("sleep")
    await execute_graph(graph)
    # The one slot ran the sleeper while f waited out its backoff.
    assert sleeper.task_status == "success"
    assert len(flaky.calls) == 2


async def test_a_timeout_fails_the_run_and_counts_as_an_attempt(
    autojump_clock: trio.testing.MockClock,
) -> None:
    runs: list[float] = []

    async def slow(**_: Any) -> str:
        runs.append(trio.current_time())
        await trio.sleep(10 if len(runs) == 1 else 1)
        return "done"

    graph = TaskGraph(
        {"slow": slow},
        [WorkerLoop("default", 1)],
        task_policies={"slow": TaskPolicy(attempts=2, backoff=0.0, timeout=5.0)},
    )
    node = await graph.create_task("slow")
    await execute_graph(graph)
    assert (node.task_status, node.task_result, node.attempts) == ("success", "done", 2)
    assert runs[1] - runs[0] == pytest.approx(5.0)  # cancelled at its timeout, retried at once


async def test_a_timeout_without_retries_fails_the_task(
    autojump_clock: trio.testing.MockClock,
) -> None:
    graph = TaskGraph(
        {"sleep": PeakMeter().sleeper("default", 60)},
        [WorkerLoop("default", 1)],
        task_policies={"sleep": TaskPolicy(timeout=1.5)},
    )
    node = await graph.create_task("sleep")
    await execute_graph(graph)
    assert node.task_status == "failed"
    assert "TimeoutError: the task took longer than its timeout of 1.5 s" in (
        node.exception_trace or ""
    )


async def test_cancel_task_stops_a_running_task_and_frees_its_slot_when_it_ended(
    autojump_clock: trio.testing.MockClock,
) -> None:
    events: list[str] = []

    async def stubborn(**_: Any) -> None:
        try:
            await trio.sleep(100)
        finally:
            with trio.CancelScope(shield=True):
                await trio.sleep(3)  # cleaning up takes a while
            events.append(f"stubborn ended at {trio.current_time():g}")

    async def canceller(victim: str, *, graph: TaskGraph, **_: Any) -> bool:
        await trio.sleep(1)
        return graph.cancel_task(victim, "no longer needed")

    async def after(**_: Any) -> None:
        events.append(f"next task started at {trio.current_time():g}")

    graph = TaskGraph(
        {"stubborn": stubborn, "canceller": canceller, "after": after},
        [WorkerLoop("default", 1), WorkerLoop("control", 1, ["canceller"])],
    )
    start = trio.current_time()
    victim = await graph.create_task("stubborn")
    successor = await graph.create_task("after", None, [victim.uid])
    other = await graph.create_task("after")
    cancel = await graph.create_task("canceller", ((victim.uid,), {}))
    await execute_graph(graph)
    assert cancel.task_result is True
    assert (victim.task_status, successor.task_status) == ("failed", "precondition_failed")
    assert victim.exception_trace == "cancelled: no longer needed\n"
    # The default loop's only slot was taken until the stubborn task really ended.
    assert events == [f"stubborn ended at {start + 4:g}", f"next task started at {start + 4:g}"]
    assert other.task_status == "success"
    graph.check_invariants()


async def test_task_policies_are_checked() -> None:
    with pytest.raises(UnknownFunctionError):
        TaskGraph({"f": noop}, [WorkerLoop("default", 1)], task_policies={"g": TaskPolicy()})
    with pytest.raises(GraphDefinitionError, match="not a TaskPolicy"):
        TaskGraph({"f": noop}, [WorkerLoop("default", 1)], task_policies={"f": 3})  # type: ignore[dict-item]
    for bad in (
        {"attempts": 0},
        {"attempts": 1.5},
        {"backoff": -1.0},
        {"backoff": 5.0, "max_backoff": 1.0},
        {"timeout": 0.0},
        {"timeout": math.inf},
    ):
        with pytest.raises(GraphDefinitionError):
            TaskPolicy(**bad)  # type: ignore[arg-type]
