"""Dispatch that follows the workers that keep up (issue 15), through real sessions.

A *stalled* worker here is a raw WebSocket client: it says hello, grants credit for all
its slots, and then starts nothing (a frozen or cut-off worker looks the same from the
coordinator). The coordinator must send it no more than its prefetch window, take those
tasks back for a worker that waits, ignore whatever the stalled one says about them
later, and count none of them as a run. Time is trio's autojump clock.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import trio
import trio.testing
import trio_websocket
from memcluster import TIME_LIMIT, Cluster, open_cluster

from trio_graph_scheduler import CoordinatorConfig, TaskGraph, TaskStatus, WorkerLoop
from trio_graph_scheduler.coordinator.dispatch import prefetch_window
from trio_graph_scheduler.protocol import (
    PROTOCOL_VERSION,
    Assign,
    Cancel,
    Claim,
    HandBack,
    Heartbeat,
    Hello,
    Message,
    Started,
    TaskSucceeded,
    Welcome,
    decode_frame,
    encode_frame,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

CONCURRENCY = 8
TASKS = 20
#: The prefetch window these tests set (the default is half the worker's slots).
WINDOW = 2


async def timed(seconds: float, **_: Any) -> str:
    await trio.sleep(seconds)
    return "ran"


def sleepy_graph() -> TaskGraph:
    graph = TaskGraph({"timed": timed}, [WorkerLoop("default", CONCURRENCY)])
    for _ in range(TASKS):
        graph.create_task_nowait("timed", ((1.0,), None))
    return graph


class StalledWorker:
    """A worker that takes its credit and then starts nothing it is sent."""

    def __init__(self, ws: trio_websocket.WebSocketConnection) -> None:
        self.ws = ws
        self.received: list[Message] = []

    async def join(self, credit: int) -> Welcome:
        hello = Hello(
            version=PROTOCOL_VERSION, token="", worker_name="stalled", loops=[], max_tasks=0
        )
        await self.ws.send_message(encode_frame([hello]))
        (welcome,) = decode_frame(await self.ws.get_message(), allow_pickle=True)
        assert isinstance(welcome, Welcome), welcome
        await self.send(Claim(loop="default", credit=credit))
        return welcome

    async def send(self, *messages: Message) -> None:
        await self.ws.send_message(encode_frame(list(messages)))

    async def read_for(self, seconds: float) -> None:
        """Keep what arrives for ``seconds`` (it answers nothing, not even heartbeats)."""
        with trio.move_on_after(seconds):
            while True:
                self.received.extend(decode_frame(await self.ws.get_message(), allow_pickle=True))

    def of_type(self, kind: type[Message]) -> list[Any]:
        return [m for m in self.received if isinstance(m, kind)]


@asynccontextmanager
async def stalled_worker(cluster: Cluster) -> AsyncIterator[StalledWorker]:
    stream = await cluster.listener.connect()
    async with stream, trio.open_nursery() as nursery:
        ws = await trio_websocket.wrap_client_stream(
            nursery,
            stream,  # type: ignore[arg-type]  # any trio Stream works
            "in-memory",
            "/",
        )
        try:
            yield StalledWorker(ws)
        finally:
            nursery.cancel_scope.cancel()


def test_the_default_window_is_half_the_slots_and_at_least_two() -> None:
    assert prefetch_window(1, None) == 2
    assert prefetch_window(8, None) == 4
    assert prefetch_window(1000, None) == 500
    assert prefetch_window(1000, 3) == 3


async def test_a_stalled_worker_gets_only_its_window_and_loses_it_to_a_waiting_one(
    autojump_clock: trio.testing.MockClock,
) -> None:
    graph = sleepy_graph()
    config = CoordinatorConfig(heartbeat_interval=1, heartbeat_timeout=60, prefetch=WINDOW)
    with trio.fail_after(TIME_LIMIT * 3):
        async with open_cluster(graph, config) as cluster, stalled_worker(cluster) as stalled:
            coordinator = cluster.coordinator
            await stalled.join(credit=CONCURRENCY)
            await stalled.read_for(0.5)
            # It granted credit for all 8 slots, and was sent its window: 2.
            sent = stalled.of_type(Assign)
            assert len(sent) == WINDOW == 2
            (session,) = coordinator.sessions
            assert set(session.unstarted) == {a.lease for a in sent}
            # A task sent and not started is no run yet... though it was handed out.
            first = graph.nodes[sent[0].task_uid]
            assert first.task_status is TaskStatus.IN_PROGRESS

            # A worker that keeps up joins: it runs the other 6 slots' worth at once,
            # and, waiting while the loop is full, takes back the 2 the stalled one holds.
            cluster.start_worker(max_tasks=CONCURRENCY)
            while len(stalled.of_type(Cancel)) < 2:
                await stalled.read_for(0.1)
            assert graph.scheduler.unfinished, "the run goes on"
            cancels = stalled.of_type(Cancel)
            assert sorted(c.lease for c in cancels) == sorted(a.lease for a in sent)
            assert coordinator.statistics().tasks_taken_back == 2
            assert session.unstarted == {}
            assert session.leases == {}
            # Nothing more went to the stalled worker meanwhile: it has not answered.
            assert len(stalled.of_type(Assign)) == 2

            # Its late word on them is ignored (fenced): no protocol error, no result.
            await stalled.send(
                Started(leases=[sent[0].lease]),
                TaskSucceeded(lease=sent[1].lease, result="stale"),
            )
            await stalled.read_for(0.1)
            assert session in coordinator.sessions
            assert coordinator.statistics().results_dropped == 1
            await coordinator.wait_ended()

    for node in graph.nodes.values():
        assert node.task_status is TaskStatus.SUCCESS, node
        assert node.task_result == "ran"
        assert node.attempts == 1, "only the run that started counts"
    graph.check_invariants()


async def test_tasks_a_lost_worker_never_started_are_no_runs(
    autojump_clock: trio.testing.MockClock,
) -> None:
    graph = sleepy_graph()
    with trio.fail_after(TIME_LIMIT * 3):
        async with open_cluster(graph, CoordinatorConfig(prefetch=WINDOW)) as cluster:
            coordinator = cluster.coordinator
            async with stalled_worker(cluster) as stalled:
                await stalled.join(credit=CONCURRENCY)
                await stalled.read_for(0.5)
                sent = [graph.nodes[a.task_uid] for a in stalled.of_type(Assign)]
                assert len(sent) == 2
            # Its connection ends: the two it never started go back, and count no run.
            while True:  # until the coordinator has noticed
                await trio.sleep(0.01)
                if not coordinator.sessions:
                    break
            assert coordinator.statistics().tasks_lost == 0
            for node in sent:
                assert node.task_status is TaskStatus.READY_FOR_EXECUTION
                assert node.attempts == 0
                assert node.earlier_runs is None
            graph.check_invariants()
            cluster.start_worker()
    for node in graph.nodes.values():
        assert node.task_status is TaskStatus.SUCCESS, node
        assert node.attempts == 1
    graph.check_invariants()


async def test_a_worker_is_sent_more_as_it_starts_what_it_has(
    autojump_clock: trio.testing.MockClock,
) -> None:
    graph = sleepy_graph()
    with trio.fail_after(TIME_LIMIT * 3):
        async with open_cluster(graph, CoordinatorConfig(prefetch=WINDOW)) as cluster:
            async with stalled_worker(cluster) as stalled:
                await stalled.join(credit=CONCURRENCY)
                await stalled.read_for(0.5)
                first = stalled.of_type(Assign)
                assert len(first) == 2
                # It says it started them: its window has room for 2 more, no more.
                await stalled.send(Started(leases=[a.lease for a in first]))
                await stalled.read_for(0.5)
                assert len(stalled.of_type(Assign)) == 4
                # It answers one: the answer alone frees nothing in the window (its
                # task had started), the credit that comes with it is one more task.
                await stalled.send(TaskSucceeded(lease=first[0].lease, result="ran"))
                await stalled.read_for(0.5)
                assert len(stalled.of_type(Assign)) == 4
            cluster.start_worker()
    assert sum(n.task_status is TaskStatus.SUCCESS for n in graph.nodes.values()) == TASKS
    graph.check_invariants()


async def test_what_a_worker_that_still_talks_was_sent_is_left_to_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Taking a task back from a worker that is alive would race its start and could run
    # the task twice with no failure at all: only a silent worker's tasks are taken back.
    graph = sleepy_graph()
    config = CoordinatorConfig(heartbeat_interval=1, heartbeat_timeout=60, prefetch=WINDOW)
    with trio.fail_after(TIME_LIMIT * 3):
        async with open_cluster(graph, config) as cluster, stalled_worker(cluster) as talker:
            coordinator = cluster.coordinator
            await talker.join(credit=CONCURRENCY)
            await talker.read_for(0.5)
            sent = talker.of_type(Assign)
            assert len(sent) == 2
            cluster.start_worker(max_tasks=CONCURRENCY)
            for _ in range(30):  # 3 s: three times the take-back age
                await talker.send(Heartbeat())
                await talker.read_for(0.1)
            assert talker.of_type(Cancel) == []
            assert coordinator.statistics().tasks_taken_back == 0
            # It falls silent: now they go to the waiting worker.
            while len(talker.of_type(Cancel)) < 2:
                await talker.read_for(0.1)
            assert coordinator.statistics().tasks_taken_back == 2
            await coordinator.wait_ended()
    assert all(n.task_status is TaskStatus.SUCCESS for n in graph.nodes.values())


async def test_tasks_a_stopping_worker_hands_back_unstarted_are_not_taken_back_again(
    autojump_clock: trio.testing.MockClock,
) -> None:
    graph = sleepy_graph()
    config = CoordinatorConfig(heartbeat_interval=1, heartbeat_timeout=60, prefetch=WINDOW)
    with trio.fail_after(TIME_LIMIT * 3):
        async with open_cluster(graph, config) as cluster, stalled_worker(cluster) as stopping:
            coordinator = cluster.coordinator
            await stopping.join(credit=CONCURRENCY)
            await stopping.read_for(0.5)
            sent = stopping.of_type(Assign)
            assert len(sent) == 2
            # It stops: it hands back what it never started, and then says nothing more.
            await stopping.send(HandBack(leases=[a.lease for a in sent]))
            await stopping.read_for(0.1)
            (session,) = coordinator.sessions
            assert session.unstarted == {}
            cluster.start_worker(max_tasks=CONCURRENCY)
            await coordinator.wait_ended()
    assert coordinator.statistics().tasks_taken_back == 0
    for node in graph.nodes.values():
        assert node.task_status is TaskStatus.SUCCESS, node
        assert node.attempts == 1
