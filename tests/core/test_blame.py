"""Blame on evidence: a task is charged a lost worker only when it ran there alone.

Driven by hand, without trio, like ``test_scheduler.py``; every step is followed by
``check_invariants`` (which also checks that a suspect never shares its claimant).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from test_scheduler import Driver, Runner, make_graph, retrying_graph

from trio_graph_scheduler.shared.states import EndReason, TaskStatus

if TYPE_CHECKING:
    from trio_graph_scheduler import TaskGraph, TaskNode


def lose(
    graph: TaskGraph, nodes: list[TaskNode], reason: str = "w-1 (host:1): connection lost"
) -> None:
    """The worker that ran ``nodes`` (and nothing else) was lost."""
    alone = len(nodes) == 1
    for node in nodes:
        graph.scheduler.task_lost(node, reason, alone=alone)
        graph.check_invariants()


def test_a_worker_lost_with_several_tasks_charges_none_and_makes_them_suspects() -> None:
    graph = make_graph()
    a, b, c = (graph.create_task_nowait("f") for _ in range(3))
    d = graph.create_task_nowait("f")
    driver = Driver(graph)
    held = [driver.claim(), driver.claim(), driver.claim()]
    assert held == [a, b, c]
    lose(graph, held)
    for node in (a, b, c):
        assert (node.task_status, node.attempts, node.losses) == ("ready_for_execution", 1, 0)
        assert node.shared_losses == 1
        assert node._suspect
    queue = graph.scheduler.loops["default"]
    assert list(queue.suspects) == [a, b, c]
    # Ready tasks go to any claimant; suspects never do.
    assert queue.claim_nowait() is d
    assert queue.claim_nowait() is None
    # A suspect is handed out only on purpose, to a claimant that runs nothing else.
    assert queue.claim_suspect(Runner()) is a
    graph.check_invariants()


def test_a_suspect_that_ends_normally_is_cleared() -> None:
    graph, _ = retrying_graph(attempts=2)
    a, b = graph.create_task_nowait("f"), graph.create_task_nowait("f")
    driver = Driver(graph)
    lose(graph, [driver.claim(), driver.claim()])
    assert driver.claim() is a
    driver.succeed(a)
    assert driver.claim() is b
    driver.fail(b)  # it raised: a normal end, retried as an ordinary ready task
    assert not b._suspect
    graph.scheduler.requeue(b)
    graph.check_invariants()
    assert list(graph.scheduler.loops["default"].ready) == [b]
    assert (a.losses, b.losses, b.attempts, b.shared_losses) == (0, 0, 2, 1)


def test_a_suspect_lost_alone_is_charged_and_fails_on_evidence() -> None:
    graph = make_graph()
    poison = graph.create_task_nowait("f")
    innocent = graph.create_task_nowait("f")
    driver = Driver(graph)
    lose(graph, [driver.claim(), driver.claim()])  # together: nobody is charged
    for n in (1, 2, 3):
        assert driver.claim() is poison
        lose(graph, [poison], f"worker-{n} (host:{n}): connection lost")
        assert poison.losses == n
        if n == 1:  # the poison went back behind the other suspect
            assert driver.claim() is innocent
            driver.succeed(innocent)
    assert poison.task_status == "failed"
    assert poison.end_reason is EndReason.WORKER_LOST
    assert poison.exception_trace == (
        "killed its worker 3 times (the last: worker-3 (host:3): connection lost)\n"
    )
    assert (innocent.losses, innocent.attempts, innocent.shared_losses) == (0, 2, 1)
    assert driver.ended == 1


def test_a_task_lost_alone_once_says_once() -> None:
    graph = make_graph()
    graph.scheduler.max_lost_attempts = 1
    a = graph.create_task_nowait("f")
    driver = Driver(graph)
    lose(graph, [driver.claim()], "worker-1 (h:1): silent for 10 s")
    assert (
        a.exception_trace == "killed its worker once (the last: worker-1 (h:1): silent for 10 s)\n"
    )


def test_suspects_obey_the_loops_concurrency() -> None:
    graph = make_graph(default=2)
    a, b = graph.create_task_nowait("f"), graph.create_task_nowait("f")
    c = graph.create_task_nowait("f")
    driver = Driver(graph)
    lose(graph, [driver.claim(), driver.claim()])
    queue = graph.scheduler.loops["default"]
    assert driver.claim() is c
    assert queue.claim_suspect(Runner()) is a
    assert queue.claim_suspect(Runner()) is None  # 2 of 2 running
    driver.succeed(c)
    assert queue.claim_suspect(Runner()) is b
    graph.check_invariants()


def test_suspects_survive_hand_back_stop_start_and_cancel() -> None:
    graph = make_graph()
    a, b, c = (graph.create_task_nowait("f") for _ in range(3))
    driver = Driver(graph)
    lose(graph, [driver.claim(), driver.claim(), driver.claim()])
    queue = graph.scheduler.loops["default"]
    assert driver.claim() is a
    graph.scheduler.hand_back(a)  # its worker stopped cleanly: a suspect still
    graph.check_invariants()
    assert list(queue.suspects) == [b, c, a]
    graph.scheduler.stop()
    graph.check_invariants()
    assert a.task_status == "created"
    graph.scheduler.start()
    graph.check_invariants()
    assert graph.cancel_task(b.uid, "not needed")
    graph.check_invariants()
    assert list(queue.suspects) == [c, a]
    assert b.task_status == "failed"


def test_a_running_suspect_asked_to_stop_whose_worker_dies_ends_cancelled() -> None:
    graph = make_graph()
    a, b = graph.create_task_nowait("f"), graph.create_task_nowait("f")
    driver = Driver(graph)
    lose(graph, [driver.claim(), driver.claim()])
    assert driver.claim() is a
    graph.cancel_task(a.uid, "stop")
    lose(graph, [a])
    assert (a.task_status, a.end_reason, a.losses) == ("failed", EndReason.CANCELLED, 1)
    assert b._suspect
    assert b.task_status is TaskStatus.READY_FOR_EXECUTION


def test_one_poison_task_among_innocents_never_fails_an_innocent() -> None:
    """The issue's trial, played by hand: loop concurrency 4, workers that each take up
    to 4 tasks, 1 task that kills whichever worker runs it, 6 innocent tasks, fresh
    workers whenever needed. Workers take suspects only while they hold nothing else."""
    graph = make_graph(default=4)
    poison = graph.create_task_nowait("f")
    innocents = [graph.create_task_nowait("f") for _ in range(6)]
    driver = Driver(graph)
    queue = graph.scheduler.loops["default"]
    for worker in range(1, 30):
        if driver.ended:
            break
        held = []
        while len(held) < 4 and (node := queue.claim_nowait()) is not None:
            held.append(node)
        if not held and (node := queue.claim_suspect(Runner())) is not None:
            held.append(node)  # idle: one suspect, and nothing else meanwhile
        graph.check_invariants()
        if poison in held:
            lose(graph, held, f"worker-{worker} (host:{worker}): connection lost")
        else:
            for node in held:
                driver.succeed(node)
    assert driver.ended == 1
    assert [n.task_status for n in innocents] == ["success"] * 6
    assert [n.attempts - n.shared_losses for n in innocents] == [1] * 6
    assert [n.losses for n in innocents] == [0] * 6
    assert poison.task_status == "failed"
    assert poison.exception_trace is not None
    assert poison.exception_trace.startswith("killed its worker 3 times (the last: worker-")


def test_a_task_lost_before_its_worker_said_it_started_counts_no_run() -> None:
    # Issue 15: of the tasks a lost worker held, those it never said it started may never
    # have reached it. They count no attempt and no loss; they are suspects all the same
    # (one of them may have started and killed the worker before the word came).
    graph = make_graph()
    a, b = graph.create_task_nowait("f"), graph.create_task_nowait("f")
    driver = Driver(graph)
    assert [driver.claim(), driver.claim()] == [a, b]
    graph.scheduler.task_lost(a, "w-1 (host:1): connection lost", alone=False)
    graph.check_invariants()
    graph.scheduler.task_lost(b, "w-1 (host:1): connection lost", alone=False, started=False)
    graph.check_invariants()
    assert (a.attempts, a.shared_losses, a.losses) == (1, 1, 0)
    assert (b.attempts, b.shared_losses, b.losses) == (0, 0, 0)
    assert b.earlier_runs is None
    assert b._suspect
    assert b.task_status is TaskStatus.READY_FOR_EXECUTION
    assert list(graph.scheduler.loops["default"].suspects) == [a, b]
