"""The scheduling core, driven by hand without trio: feed events, check states.

Every step is followed by ``graph.check_invariants()``, which asserts that the counters
the core keeps for O(1) decisions agree with a full recount of the graph.
"""

from __future__ import annotations

from typing import Any

import pytest

from trio_graph_scheduler import (
    ConditionStatus,
    GenericSchedulingCondition,
    GraphDefinitionError,
    TaskGraph,
    TaskNode,
    TaskPolicy,
    TaskStatus,
    UnknownUidError,
    WorkerLoop,
)
from trio_graph_scheduler.coordinator.core.nodes import EarlierRun
from trio_graph_scheduler.shared.states import EndReason


async def noop(**_: Any) -> None:
    return None


def make_graph(**loops: int) -> TaskGraph:
    specs = [WorkerLoop("default", loops.pop("default", 10), None)]
    specs += [WorkerLoop(name, concurrency, [name]) for name, concurrency in loops.items()]
    functions = {"f": noop, "g": noop} | dict.fromkeys(loops, noop)
    return TaskGraph(functions, specs)


class Driver:
    """Plays the part of the worker slots: claims tasks and reports outcomes."""

    def __init__(self, graph: TaskGraph) -> None:
        self.graph = graph
        self.scheduler = graph.scheduler
        self.ended = 0
        self.scheduler.on_graph_end = self._on_end
        self.scheduler.start()
        graph.check_invariants()

    def _on_end(self) -> None:
        self.ended += 1

    def claim(self, loop: str = "default") -> TaskNode:
        """The next ready task; else the next suspect, for a lone claimant of its own."""
        queue = self.scheduler.loops[loop]
        node = queue.claim_nowait() or queue.claim_suspect(Runner())
        assert node is not None, f"nothing ready in {loop}"
        self.graph.check_invariants()
        return node

    def succeed(self, node: TaskNode, result: object = None) -> None:
        self.scheduler.task_succeeded(node, result)
        self.graph.check_invariants()

    def fail(self, node: TaskNode) -> None:
        self.scheduler.task_failed(node, "Traceback: boom")
        self.graph.check_invariants()

    def run(self, node: TaskNode, ok: bool = True) -> None:
        claimed = self.claim(node._loop.name)
        assert claimed is node, (claimed, node)
        self.succeed(node) if ok else self.fail(node)


def statuses(*nodes: TaskNode) -> list[str]:
    return [node.task_status for node in nodes]


def test_tasks_created_before_start_are_created_then_ready() -> None:
    graph = make_graph()
    a = graph.create_task_nowait("f")
    b = graph.create_task_nowait("f", None, [a.uid])
    assert statuses(a, b) == ["created", "waiting_for_predecessors"]
    graph.check_invariants()
    Driver(graph)
    assert statuses(a, b) == ["ready_for_execution", "waiting_for_predecessors"]


def test_chain_runs_in_order_and_ends_the_graph_once() -> None:
    graph = make_graph()
    a = graph.create_task_nowait("f")
    b = graph.create_task_nowait("f", None, [a.uid])
    c = graph.create_task_nowait("f", None, [b.uid])
    driver = Driver(graph)
    driver.run(a)
    assert statuses(b, c) == ["ready_for_execution", "waiting_for_predecessors"]
    driver.run(b)
    assert driver.ended == 0
    driver.run(c)
    assert statuses(a, b, c) == ["success"] * 3
    assert driver.ended == 1


def test_success_all_fails_on_first_failure_and_cascades_downstream() -> None:
    graph = make_graph()
    a, b = graph.create_task_nowait("f"), graph.create_task_nowait("f")
    c = graph.create_task_nowait("f", None, [a.uid, b.uid])
    d = graph.create_task_nowait("f", None, [c.uid])
    e = graph.create_task_nowait("f", None, [d.uid])
    driver = Driver(graph)
    driver.run(a, ok=False)
    # b is still unfinished, yet everything downstream of the failure is settled already.
    assert statuses(c, d, e) == ["precondition_failed"] * 3
    assert c.waits_on[0].condition_status == ConditionStatus.FAILED
    assert driver.ended == 0
    driver.run(b)
    assert driver.ended == 1


@pytest.mark.parametrize(
    ("mode", "outcomes", "expected"),
    [
        # SUCCESS__2 over 3 with 1 failure is satisfied (the seed got this wrong).
        ("SUCCESS__2", [False, True, True], "satisfied"),
        ("SUCCESS__2", [True, False, False], "failed"),
        ("SUCCESS__1", [False, False, True], "satisfied"),
        ("SUCCESS__3", [True, True, False], "failed"),
        ("SUCCESS__ALL", [True, True, True], "satisfied"),
        ("SUCCESS__ALL", [True, True, False], "failed"),
        ("COMPLETE__ALL", [False, False, False], "satisfied"),
        ("COMPLETE__2", [False, True, False], "satisfied"),
        ("COMPLETE__3", [True, False, True], "satisfied"),
    ],
)
def test_condition_modes(mode: str, outcomes: list[bool], expected: str) -> None:
    graph = make_graph()
    tasks = [graph.create_task_nowait("f") for _ in outcomes]
    condition = GenericSchedulingCondition(graph, mode, [t.uid for t in tasks])
    successor = graph.create_task_nowait("g", None, [condition.uid])
    driver = Driver(graph)
    for task, ok in zip(tasks, outcomes, strict=True):
        driver.run(task, ok)
    assert condition.condition_status == expected
    assert condition.successes == sum(outcomes)
    assert condition.completions == len(outcomes)
    want = "ready_for_execution" if expected == "satisfied" else "precondition_failed"
    assert successor.task_status == want


def test_success_n_fails_as_soon_as_n_is_out_of_reach() -> None:
    graph = make_graph()
    tasks = [graph.create_task_nowait("f") for _ in range(4)]
    condition = GenericSchedulingCondition(graph, "SUCCESS__3", [t.uid for t in tasks])
    successor = graph.create_task_nowait("g", None, [condition.uid])
    driver = Driver(graph)
    driver.run(tasks[0], ok=False)
    assert condition.condition_status == "waiting_on_tasks"
    driver.run(tasks[1], ok=False)
    # Two of four failed: three successes are impossible, with two tasks still unfinished.
    assert condition.condition_status == "failed"
    assert successor.task_status == "precondition_failed"
    assert statuses(tasks[2], tasks[3]) == ["ready_for_execution"] * 2


def test_complete_n_is_satisfied_before_all_end() -> None:
    graph = make_graph()
    tasks = [graph.create_task_nowait("f") for _ in range(3)]
    condition = GenericSchedulingCondition(graph, "COMPLETE__1", [t.uid for t in tasks])
    successor = graph.create_task_nowait("g", None, [condition.uid])
    driver = Driver(graph)
    driver.run(tasks[0], ok=False)
    assert successor.task_status == "ready_for_execution"


def test_task_waits_on_every_condition_and_task_uid_mix() -> None:
    graph = make_graph()
    a, b, c = (graph.create_task_nowait("f") for _ in range(3))
    any_of = GenericSchedulingCondition(graph, "COMPLETE__1", [a.uid, b.uid])
    d = graph.create_task_nowait("g", None, [any_of.uid, c.uid])
    assert len(d.waits_on) == 2  # the condition, plus an implicit SUCCESS__ALL over c
    driver = Driver(graph)
    driver.run(a)
    driver.run(b)
    assert d.task_status == "waiting_for_predecessors"
    driver.run(c)
    assert d.task_status == "ready_for_execution"
    assert d.get_predecessor_task_nodes() == [a, b, c]


def test_task_on_a_condition_that_already_failed_is_precondition_failed_at_once() -> None:
    graph = make_graph()
    a = graph.create_task_nowait("f")
    driver = Driver(graph)
    driver.run(a, ok=False)
    late = graph.create_task_nowait("g", None, [a.uid])
    assert late.task_status == "precondition_failed"
    graph.check_invariants()


def test_task_on_finished_predecessors_is_ready_at_once() -> None:
    graph = make_graph()
    a = graph.create_task_nowait("f")
    driver = Driver(graph)
    driver.run(a)
    assert driver.ended == 1
    late = graph.create_task_nowait("g", None, [a.uid])
    assert late.task_status == "ready_for_execution"
    graph.check_invariants()


def test_concurrency_limit_is_held_by_the_queue() -> None:
    graph = make_graph(slow=2)
    tasks = [graph.create_task_nowait("slow") for _ in range(3)]
    driver = Driver(graph)
    first, second = driver.claim("slow"), driver.claim("slow")
    assert graph.scheduler.loops["slow"].claim_nowait() is None
    driver.succeed(first)
    third = driver.claim("slow")
    assert {first, second, third} == set(tasks)


class Recorder:
    """A claimant that records what it was handed, holding ``credit`` tasks at most;
    with ``keeps``, it takes back the slots its tasks free while it has credit."""

    def __init__(self, credit: int, *, keeps: bool = False) -> None:
        self.credit = credit
        self.keeps = keeps
        self.got: list[TaskNode] = []

    def deliver(self, node: TaskNode) -> bool:
        self.got.append(node)
        self.credit -= 1
        return self.credit > 0

    def keeps_freed_slot(self) -> bool:
        return self.keeps and self.credit > 1


def test_waiting_claimants_are_served_round_robin_within_the_limit() -> None:
    graph = make_graph(default=3)
    driver = Driver(graph)
    queue = graph.scheduler.loops["default"]
    one, two = Recorder(credit=5), Recorder(credit=5)
    queue.wait(one)
    queue.wait(two)
    tasks = [graph.create_task_nowait("f") for _ in range(5)]
    # Three slots cluster-wide, shared in turn: one, two, one.
    assert one.got == [tasks[0], tasks[2]]
    assert two.got == [tasks[1]]
    graph.check_invariants()
    driver.succeed(tasks[1])
    assert two.got == [tasks[1], tasks[3]]
    queue.withdraw(one)
    queue.withdraw(two)
    driver.succeed(tasks[0])
    assert len(queue.ready) == 1
    graph.check_invariants()


def test_a_freed_slot_goes_back_to_its_claimant_if_it_keeps_it() -> None:
    graph = make_graph(default=2)
    driver = Driver(graph)
    queue = graph.scheduler.loops["default"]
    keeper, other = Recorder(credit=4, keeps=True), Recorder(credit=5)
    queue.wait(keeper)
    queue.wait(other)
    tasks = [graph.create_task_nowait("f") for _ in range(5)]
    assert (keeper.got, other.got) == ([tasks[0]], [tasks[1]])
    driver.succeed(tasks[1])  # other's: round robin, keeper is first in line
    assert keeper.got == [tasks[0], tasks[2]]
    driver.succeed(tasks[0])  # keeper's: it takes the slot back, ahead of other
    assert (keeper.got, other.got) == ([tasks[0], tasks[2], tasks[3]], [tasks[1]])
    driver.succeed(tasks[2])  # keeper has credit for one more only: the line serves
    assert (keeper.got, other.got) == ([tasks[0], tasks[2], tasks[3]], tasks[1::3])
    graph.check_invariants()


def test_hand_back_requeues_first_in_line() -> None:
    graph = make_graph(default=1)
    a, b = graph.create_task_nowait("f"), graph.create_task_nowait("f")
    driver = Driver(graph)
    assert driver.claim() is a
    graph.scheduler.hand_back(a)
    graph.check_invariants()
    assert a.task_status == "ready_for_execution"
    assert driver.claim() is a
    driver.succeed(a)
    driver.run(b)


def test_prepend_to_successor_postpones_it() -> None:
    graph = make_graph()
    a = graph.create_task_nowait("f")
    successor = graph.create_task_nowait("g", None, [a.uid])
    driver = Driver(graph)
    claimed = driver.claim()
    extra = graph.create_task_nowait("f")
    claimed.prepend_to_successor("g", extra)
    graph.check_invariants()
    driver.succeed(claimed)
    assert successor.task_status == "waiting_for_predecessors"
    driver.run(extra)
    assert successor.task_status == "ready_for_execution"
    assert successor.get_predecessor_task_nodes() == [a, extra]
    assert a.get_successors("g") == [(successor, successor.waits_on[0])]


def test_prepend_of_an_ended_task_counts_it_at_once() -> None:
    graph = make_graph()
    b, a = graph.create_task_nowait("f"), graph.create_task_nowait("f")
    successor = graph.create_task_nowait("g", None, [a.uid])
    driver = Driver(graph)
    driver.run(b, ok=False)
    a.prepend_to_successor("g", b.uid)
    assert successor.task_status == "precondition_failed"
    graph.check_invariants()
    driver.run(a)
    assert driver.ended == 1


def test_prepend_to_a_settled_condition_is_refused() -> None:
    graph = make_graph()
    a, b = graph.create_task_nowait("f"), graph.create_task_nowait("f")
    condition = GenericSchedulingCondition(graph, "SUCCESS__1", [a.uid, b.uid])
    graph.create_task_nowait("g", None, [condition.uid])
    driver = Driver(graph)
    driver.run(a)
    extra = graph.create_task_nowait("f")
    with pytest.raises(GraphDefinitionError, match="already satisfied"):
        b.prepend_to_successor("g", extra)


def test_prepend_of_the_successor_itself_is_refused() -> None:
    graph = make_graph()
    a = graph.create_task_nowait("f")
    successor = graph.create_task_nowait("g", None, [a.uid])
    with pytest.raises(GraphDefinitionError, match="wait on itself"):
        a.prepend_to_successor("g", successor)
    graph.check_invariants()


def test_failure_cascade_down_a_long_chain_does_not_recurse() -> None:
    graph = make_graph()
    head = graph.create_task_nowait("f")
    node = head
    for _ in range(20_000):
        node = graph.create_task_nowait("f", None, [node.uid])
    driver = Driver(graph)
    driver.run(head, ok=False)
    assert node.task_status == "precondition_failed"
    assert driver.ended == 1


def test_stall_is_reported_for_a_cycle() -> None:
    graph = make_graph()
    a = graph.create_task_nowait("f")
    b = graph.create_task_nowait("g", None, [a.uid])
    c = graph.create_task_nowait("f", None, [b.uid])
    stalls: list[bool] = []
    graph.scheduler.on_graph_stalled = lambda: stalls.append(True)
    driver = Driver(graph)
    claimed = driver.claim()
    claimed.prepend_to_successor("g", c)  # b now waits on c, which waits on b
    driver.succeed(claimed)
    assert stalls == [True]
    assert statuses(b, c) == [TaskStatus.WAITING_FOR_PREDECESSORS] * 2


def test_ending_a_task_that_is_not_running_is_an_internal_error() -> None:
    graph = make_graph()
    a = graph.create_task_nowait("f")
    Driver(graph)
    with pytest.raises(Exception, match="not in progress"):
        graph.scheduler.task_succeeded(a, None)


# -- detours: retries, lost workers, hand-backs, cancellation -------------------------------


class Runner:
    """A runner that records the cancels it is asked for."""

    def __init__(self) -> None:
        self.cancelled: list[TaskNode] = []

    def cancel(self, node: TaskNode) -> None:
        self.cancelled.append(node)


def retrying_graph(attempts: int) -> tuple[TaskGraph, list[tuple[TaskNode, float]]]:
    graph = TaskGraph(
        {"f": noop, "g": noop},
        [WorkerLoop("default", 10)],
        task_policies={"f": TaskPolicy(attempts=attempts, backoff=2.0, max_backoff=3.0)},
    )
    retries: list[tuple[TaskNode, float]] = []
    graph.scheduler.on_retry = lambda node, delay: retries.append((node, delay))
    return graph, retries


def test_a_failed_task_with_attempts_left_is_retried_after_a_backoff() -> None:
    graph, retries = retrying_graph(attempts=3)
    a = graph.create_task_nowait("f")
    b = graph.create_task_nowait("g", None, [a.uid])
    driver = Driver(graph)
    driver.run(a, ok=False)
    assert retries[-1][0] is a
    assert 0 <= retries[-1][1] <= 2.0  # full jitter under the first backoff
    # Waiting out its delay, it is ready but in no queue, and nothing downstream moved.
    assert statuses(a, b) == ["ready_for_execution", "waiting_for_predecessors"]
    assert graph.scheduler.loops["default"].claim_nowait() is None
    graph.scheduler.requeue(a)
    graph.check_invariants()
    driver.run(a, ok=False)
    assert 0 <= retries[-1][1] <= 3.0  # 4 s, capped by max_backoff
    graph.scheduler.requeue(a)
    driver.run(a, ok=False)  # the third failure is the last attempt
    assert len(retries) == 2
    assert a.attempts == 3
    assert statuses(a, b) == ["failed", "precondition_failed"]
    assert a.exception_trace == "Traceback: boom"
    assert driver.ended == 1


def test_a_retried_task_that_succeeds_ends_as_success() -> None:
    graph, _ = retrying_graph(attempts=2)
    a = graph.create_task_nowait("f")
    driver = Driver(graph)
    driver.run(a, ok=False)
    graph.scheduler.requeue(a)
    driver.run(a)
    assert a.task_status == "success"
    assert a.attempts == 2


def test_without_a_retry_timer_nothing_is_retried() -> None:
    graph, _ = retrying_graph(attempts=3)
    graph.scheduler.on_retry = None
    a = graph.create_task_nowait("f")
    Driver(graph).run(a, ok=False)
    assert a.task_status == "failed"


def test_stopping_requeues_tasks_waiting_out_a_retry() -> None:
    graph, _ = retrying_graph(attempts=2)
    a = graph.create_task_nowait("f")
    Driver(graph).run(a, ok=False)
    graph.scheduler.stop()
    graph.check_invariants()
    assert a.task_status == "created"
    assert list(graph.scheduler.loops["default"].ready) == [a]


def test_a_task_lost_too_often_fails_saying_so() -> None:
    graph = make_graph()
    a = graph.create_task_nowait("f")
    driver = Driver(graph)
    for lost in range(1, 4):
        claimed = driver.claim()
        assert claimed is a
        graph.scheduler.task_lost(a, f"worker-{lost}: connection lost")
        graph.check_invariants()
    assert a.task_status == "failed"
    assert (a.attempts, a.losses) == (3, 3)
    assert a.exception_trace == "killed its worker 3 times (the last: worker-3: connection lost)\n"
    assert driver.ended == 1


def test_a_task_handed_back_runs_again_and_the_run_was_no_attempt() -> None:
    graph = make_graph()
    a = graph.create_task_nowait("f")
    b = graph.create_task_nowait("f")
    driver = Driver(graph)
    assert driver.claim() is a
    graph.scheduler.hand_back(a)
    graph.check_invariants()
    assert a.attempts == 0
    assert driver.claim() is a  # back at the front of the queue, ahead of b
    driver.succeed(a)
    assert statuses(a, b) == ["success", "ready_for_execution"]


def test_cancelling_a_task_that_has_not_started_ends_it_at_once() -> None:
    graph = make_graph()
    a = graph.create_task_nowait("f")
    b = graph.create_task_nowait("f", None, [a.uid])
    c = graph.create_task_nowait("f", None, [b.uid])
    d = graph.create_task_nowait("f")
    driver = Driver(graph)
    assert graph.cancel_task(b.uid, "not needed")  # waiting
    graph.check_invariants()
    assert statuses(b, c) == ["failed", "precondition_failed"]
    assert b.exception_trace == "cancelled: not needed\n"
    assert graph.cancel_task(d.uid)  # ready, in its queue
    graph.check_invariants()
    assert driver.claim() is a
    driver.succeed(a)
    assert d.task_status == "failed"
    assert driver.ended == 1
    assert not graph.cancel_task(a.uid)  # ended already
    with pytest.raises(UnknownUidError):
        graph.cancel_task("task-nope")


def test_cancelling_a_running_task_waits_for_its_runner() -> None:
    graph = make_graph()
    a = graph.create_task_nowait("f")
    b = graph.create_task_nowait("f", None, [a.uid])
    driver = Driver(graph)
    runner = Runner()
    claimed = driver.claim()
    claimed._claimant = runner
    assert graph.cancel_task(a.uid, "too slow")
    assert graph.cancel_task(a.uid)  # asked once only
    assert runner.cancelled == [a]
    # Until the runner says the task has stopped, it holds its slot.
    assert a.task_status == "in_progress"
    assert graph.scheduler.loops["default"].running == 1
    graph.check_invariants()
    graph.scheduler.task_cancelled(a)
    graph.check_invariants()
    assert statuses(a, b) == ["failed", "precondition_failed"]
    assert a.exception_trace == "cancelled: too slow\n"


def test_a_cancel_that_comes_too_late_changes_nothing() -> None:
    graph = make_graph()
    a = graph.create_task_nowait("f")
    driver = Driver(graph)
    driver.claim()._claimant = Runner()
    graph.cancel_task(a.uid)
    driver.succeed(a)
    assert a.task_status == "success"
    assert graph.scheduler.cancelling == {}


def test_a_task_being_cancelled_is_not_retried_nor_requeued() -> None:
    graph, retries = retrying_graph(attempts=3)
    a = graph.create_task_nowait("f")
    b = graph.create_task_nowait("f")
    driver = Driver(graph)
    for node in (driver.claim(), driver.claim()):
        node._claimant = Runner()
    graph.cancel_task(a.uid)
    driver.fail(a)  # it raised while being cancelled: no retry
    assert a.task_status == "failed"
    graph.cancel_task(b.uid)
    graph.scheduler.task_lost(b, "worker-1: connection lost")  # its worker died meanwhile
    graph.check_invariants()
    assert b.task_status == "failed"
    assert b.exception_trace == "cancelled: cancelled by a graph call\n"
    assert retries == []


def test_cancelling_a_task_waiting_out_a_retry() -> None:
    graph, _ = retrying_graph(attempts=3)
    a = graph.create_task_nowait("f")
    driver = Driver(graph)
    driver.run(a, ok=False)
    assert graph.cancel_task(a.uid)
    graph.check_invariants()
    graph.scheduler.requeue(a)  # the timer fires later: nothing happens
    graph.check_invariants()
    assert a.task_status == "failed"
    assert driver.ended == 1


def test_a_task_being_cancelled_whose_worker_is_lost_for_the_last_time_ends_cancelled() -> None:
    graph = make_graph()
    graph.scheduler.max_lost_attempts = 1
    a = graph.create_task_nowait("f")
    driver = Driver(graph)
    driver.claim()._claimant = Runner()
    graph.cancel_task(a.uid, "stop")
    graph.scheduler.task_lost(a, "worker-1: connection lost")
    graph.check_invariants()
    assert a.exception_trace == "cancelled: stop\n"
    assert a.losses == 1
    assert graph.scheduler.cancelling == {}


def test_earlier_runs_are_kept_only_for_tasks_that_run_again() -> None:
    now = [100.0]
    graph = TaskGraph(
        {"f": noop, "g": noop},
        [WorkerLoop("default", 10)],
        task_policies={"f": TaskPolicy(attempts=2, backoff=0.0, max_backoff=0.0)},
        clock=lambda: now[0],
    )
    graph.scheduler.on_retry = lambda node, delay: None
    retried, once, lost, handed_back = (graph.create_task_nowait(f) for f in "fggg")
    driver = Driver(graph)
    for node in (retried, once, lost, handed_back):
        assert driver.claim() is node
        node.worker = "worker-1"  # as the shell does when it hands a task out
    now[0] = 101.0
    driver.fail(retried)  # attempts left: retried
    driver.succeed(once)
    graph.scheduler.task_lost(lost, "worker-1: connection lost")  # run again elsewhere
    graph.scheduler.hand_back(handed_back)  # given back unfinished: no run to keep
    graph.check_invariants()
    assert once.earlier_runs is None
    assert handed_back.earlier_runs is None
    assert retried.earlier_runs == [
        EarlierRun("worker-1", 100.0, 101.0, EndReason.RAISED, "Traceback: boom")
    ]
    assert lost.earlier_runs == [
        EarlierRun("worker-1", 100.0, 101.0, EndReason.WORKER_LOST, "worker-1: connection lost")
    ]
    graph.scheduler.requeue(retried)
    now[0] = 102.0
    assert driver.claim() is handed_back  # back at the front of the queue
    assert driver.claim() is retried
    retried.worker = "worker-2"
    now[0] = 103.0
    driver.fail(retried)  # the last attempt: it ends, and the last run stays on the node
    assert retried.earlier_runs is not None
    assert len(retried.earlier_runs) == 1
    assert (retried.worker, retried.started_at, retried.ended_at) == ("worker-2", 102.0, 103.0)
