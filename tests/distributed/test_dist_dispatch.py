"""Dispatch that follows the workers that keep up (issue 15), through real sessions.

A *stalled* worker here is a raw WebSocket client: it says hello, grants credit for all
its slots, and then starts nothing (a frozen or cut-off worker looks the same from the
coordinator). The coordinator must send it no more than its prefetch window, take those
tasks back for a worker that waits, ignore whatever the stalled one says about them
later, and count none of them as a run. Time is trio's autojump clock.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, cast

import pytest
import trio
import trio.testing
import trio_websocket
from memcluster import TIME_LIMIT, Cluster, open_cluster

from trio_graph_scheduler import CoordinatorConfig, TaskGraph, TaskStatus, WorkerLoop
from trio_graph_scheduler.coordinator.dispatch import (
    Pace,
    PrefetchLedger,
    Turnaround,
    adapted_window,
    full_window,
    prefetch_window,
)
from trio_graph_scheduler.coordinator.worker_session import LoopClaim
from trio_graph_scheduler.protocol import (
    PROTOCOL_VERSION,
    Assign,
    Cancel,
    Claim,
    HandBack,
    Heartbeat,
    Hello,
    Message,
    Shutdown,
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


def sleepy_graph(tasks: int = TASKS) -> TaskGraph:
    graph = TaskGraph({"timed": timed}, [WorkerLoop("default", CONCURRENCY)])
    for _ in range(tasks):
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


def test_a_window_is_full_while_its_worker_keeps_up_and_shrinks_as_it_falls_behind() -> None:
    # Keeping up: a turnaround at most twice the loop's pace.
    assert adapted_window(16, 0.002, 0.001) == 16
    # Four times slower than that: a quarter of the full window.
    assert adapted_window(16, 0.008, 0.001) == 4
    # Far behind: one task, never none.
    assert adapted_window(16, 1.0, 0.001) == 1


def test_a_full_window_is_half_the_slots_or_the_workers_share_of_the_loop() -> None:
    assert full_window(4, 4) == 4  # alone on a loop of 4: all of it
    assert full_window(4, 2) == 2  # one of two
    assert full_window(64, 32) == 32
    assert full_window(1000, 10) == 500  # one of 100: half its slots still
    assert full_window(4, 32) == 4  # --max-tasks 4 on a loop of 64: its slots
    assert full_window(1, 1) == 2  # never below two (credit bounds it anyway)


async def test_a_worker_alone_on_its_loop_is_sent_all_it_has_credit_for(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Half its slots as its window would hold tasks shorter than a round trip to half
    # the loop's concurrency (at concurrency 4, two at a time) with no other worker to
    # protect; a second worker's arrival halves the share.
    graph = sleepy_graph()
    with trio.fail_after(TIME_LIMIT * 3):
        async with open_cluster(graph, CoordinatorConfig()) as cluster:
            async with stalled_worker(cluster) as alone:
                await alone.join(credit=CONCURRENCY)
                await alone.read_for(0.5)
                assert len(alone.of_type(Assign)) == CONCURRENCY
                (session,) = cluster.coordinator.sessions
                (claim,) = session._claims.values()
                assert claim.window == CONCURRENCY
                async with stalled_worker(cluster) as second:
                    await second.join(credit=CONCURRENCY)
                    await second.read_for(0.5)
                    assert claim.window == CONCURRENCY // 2
                # The second left: the first has the whole loop again.
                await alone.read_for(0.5)
                assert claim.window == CONCURRENCY
            cluster.start_worker()
    assert sum(n.task_status is TaskStatus.SUCCESS for n in graph.nodes.values()) == TASKS
    graph.check_invariants()


def test_a_turnaround_moves_by_a_sixteenth_of_each_sample() -> None:
    turnaround = Turnaround()
    assert turnaround.add(0.016) == 0.016  # the first sample is the average
    assert turnaround.add(0.032) == pytest.approx(0.017)
    assert Turnaround().add(0.0) > 0.0  # 0.0 stays "no sample yet"


def test_the_pace_is_the_best_turnaround_among_the_workers() -> None:
    pace = Pace()
    a, b = object(), object()
    assert pace.update(a, 0.010) == 0.010
    assert pace.update(b, 0.001) == 0.001  # b takes the lead
    assert pace.update(a, 0.005) == 0.001  # a is slower: b keeps it
    assert pace.update(b, 0.007) == 0.007  # the leader is followed up, too...
    assert pace.update(a, 0.005) == 0.005  # ...until a lower average takes the lead
    pace.forget(b)  # not the leader: nothing changes
    assert pace.seconds == 0.005
    pace.forget(a)
    assert pace.update(b, 0.007) == 0.007  # the leader left: the next sample sets it


class LedgerSession:
    """What a claim asks of its session when its loop's shares change."""

    def __init__(self, ledger: PrefetchLedger, concurrency: int) -> None:
        self.ledger = ledger
        self.concurrency = concurrency

    def reshare(self, loop: str) -> None:
        self.ledger.regard(loop, self.concurrency)

    def _rejoin(self, claim: LoopClaim) -> None:
        pass  # no loop queue here


def test_a_claims_window_follows_its_workers_turnaround() -> None:
    # Two workers of 32 slots on a loop of 32: a share of 16 each, half their slots.
    ledger = PrefetchLedger(after=1.0)
    session: Any = LedgerSession(ledger, 32)

    def claim() -> LoopClaim:
        window = prefetch_window(32, None)
        made = LoopClaim(
            session, "default", window, adapts=True, pace=ledger.pace("default"), slots=32
        )
        ledger.join("default", made, 32)
        return made

    near, far = claim(), claim()
    assert near.window == far.window == 16
    for frame in range(20):
        now = 1.0 + frame
        near.heard_started(now - 0.001, now)
        far.heard_started(now - 0.050, now)
        far.heard_started(now - 0.001, now)  # one sample per frame: the first
    # The far worker fell behind: a task at a time (its share of 16 over 25 times the
    # pace's double), and the near one, the only one keeping up, may hold the whole loop.
    assert far.window == 1
    assert near.window == 32
    for frame in range(100):
        now = 100.0 + frame
        far.heard_started(now - 0.001, now)  # it came closer (or its host calmed down)
    assert far.window == near.window == 16


def test_a_window_set_by_prefetch_stays_as_set() -> None:
    fixed = LoopClaim(cast("Any", None), "default", prefetch_window(32, 3), adapts=False)
    for frame in range(20):
        fixed.heard_started(frame - 0.050, float(frame))
    assert fixed.window == 3


class ScriptedWorker(StalledWorker):
    """A worker that says it started each task ``start_after`` seconds after it came, and
    answers it ``run_for`` seconds later (with the credit back): how a worker behind a
    long link looks, with ``start_after`` its round trip."""

    def __init__(self, ws: trio_websocket.WebSocketConnection) -> None:
        super().__init__(ws)
        self.ran = 0

    async def serve(self, start_after: float, run_for: float) -> None:
        """Run what it is sent, until the coordinator says the run is over."""
        async with trio.open_nursery() as nursery:
            while True:
                for message in decode_frame(await self.ws.get_message(), allow_pickle=True):
                    if isinstance(message, Assign):
                        nursery.start_soon(self._run, message.lease, start_after, run_for)
                    elif isinstance(message, Shutdown):
                        return

    async def _run(self, lease: int, start_after: float, run_for: float) -> None:
        await trio.sleep(start_after)
        await self.send(Started(leases=[lease]))
        await trio.sleep(run_for)
        await self.send(TaskSucceeded(lease=lease, result="ran"), Claim(loop="default", credit=1))
        self.ran += 1


async def far_workers_share(prefetch: int | None) -> tuple[int, int]:
    """How many of 300 tasks a near and a far worker ran (16 slots each, on a loop of
    16), the far one's starts heard 50 ms after its tasks were sent, the near one's 1 ms
    after."""
    graph = TaskGraph({"timed": timed}, [WorkerLoop("default", 16)])
    for _ in range(300):
        graph.create_task_nowait("timed", ((1.0,), None))
    config = CoordinatorConfig(prefetch=prefetch, min_workers=2)
    async with open_cluster(graph, config) as cluster, trio.open_nursery() as connections:
        workers = []
        for _ in range(2):
            worker = ScriptedWorker(await connections.start(scripted_ws, cluster))
            await worker.join(credit=16)
            workers.append(worker)
        async with trio.open_nursery() as serving:
            for worker, start_after in zip(workers, (0.001, 0.050), strict=True):
                serving.start_soon(worker.serve, start_after, 0.010)
        connections.cancel_scope.cancel()
    assert not graph.scheduler.unfinished
    near, far = workers
    assert near.ran + far.ran == 300
    return near.ran, far.ran


async def scripted_ws(
    cluster: Cluster, task_status: trio.TaskStatus[trio_websocket.WebSocketConnection]
) -> None:
    """A raw WebSocket client of ``cluster``, open until cancelled."""
    async with stalled_worker(cluster) as stalled:
        task_status.started(stalled.ws)
        await trio.sleep_forever()


async def test_a_worker_slow_to_start_its_tasks_gets_a_smaller_window(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with trio.fail_after(TIME_LIMIT * 3):
        adapted = await far_workers_share(None)
        fixed = await far_workers_share(8)  # half the slots, as the window was before
    print(f"near, far: {adapted} with the default window, {fixed} with --prefetch 8")
    # A fixed window lets the far worker hold half its slots in flight all along; the
    # default one shrinks to a task or two once its turnaround is known.
    assert adapted[1] * 3 < fixed[1], (adapted, fixed)
    assert adapted[0] > 10 * adapted[1], adapted


class BatchWorker(StalledWorker):
    """A worker that answers each frame of assignments ``after`` seconds later, in one
    frame, with the credit back."""

    def __init__(self, ws: trio_websocket.WebSocketConnection) -> None:
        super().__init__(ws)
        #: How many assignments each frame it was sent carried.
        self.frames: list[int] = []

    async def serve(self, after: float) -> None:
        while True:
            messages = decode_frame(await self.ws.get_message(), allow_pickle=True)
            leases = [message.lease for message in messages if isinstance(message, Assign)]
            if leases:
                self.frames.append(len(leases))
                await trio.sleep(after)
                answers = [TaskSucceeded(lease=lease, result="ran") for lease in leases]
                # The credit first, as tgs-worker sends it.
                await self.send(Claim(loop="default", credit=len(leases)), *answers)
            if any(isinstance(message, Shutdown) for message in messages):
                return


async def test_the_slots_a_workers_answers_free_go_back_to_it_in_one_frame(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Two workers share a loop of 8, with credit and window for all of it: each holds
    # its share of 4. Handed out in turn, the 4 slots one worker's frame frees would go
    # 2 and 2 (frames of 2 for both, and the slower one would hold 6); given back to
    # the worker that freed them, they go out as one frame of 4, as they came.
    graph = sleepy_graph(10 * CONCURRENCY)
    config = CoordinatorConfig(prefetch=CONCURRENCY, min_workers=2)
    with trio.fail_after(TIME_LIMIT):
        async with open_cluster(graph, config) as cluster, trio.open_nursery() as connections:
            workers = []
            for _ in range(2):
                worker = BatchWorker(await connections.start(scripted_ws, cluster))
                await worker.join(credit=CONCURRENCY)
                workers.append(worker)
            async with trio.open_nursery() as serving:
                for worker, after in zip(workers, (0.01, 0.1), strict=True):
                    serving.start_soon(worker.serve, after)
            connections.cancel_scope.cancel()
    assert not graph.scheduler.unfinished
    fast, slow = (worker.frames for worker in workers)
    assert set(fast) == set(slow) == {CONCURRENCY // 2}, (fast, slow)
    assert sum(fast) > 5 * sum(slow)  # each kept its share, the fast one ran more
    graph.check_invariants()


async def test_a_worker_that_joins_a_busy_loop_gets_its_share(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # The first worker holds the whole loop and is given back every slot it frees; once
    # a second joins, the first's share is half the loop, what it frees beyond that goes
    # to the line, and the newcomer soon runs as much as it. (A window of the whole loop
    # for both: the share alone must hand the newcomer its part.)
    graph = sleepy_graph(500 * CONCURRENCY)
    with trio.fail_after(TIME_LIMIT):
        config = CoordinatorConfig(prefetch=CONCURRENCY)
        async with open_cluster(graph, config) as cluster, trio.open_nursery() as connections:
            async with trio.open_nursery() as serving:
                first = BatchWorker(await connections.start(scripted_ws, cluster))
                await first.join(credit=CONCURRENCY)
                serving.start_soon(first.serve, 0.01)
                await trio.sleep(1.0)  # 100 frames of 8: a fifth of the tasks
                before = sum(first.frames)
                assert set(first.frames) == {CONCURRENCY}
                second = BatchWorker(await connections.start(scripted_ws, cluster))
                await second.join(credit=CONCURRENCY)
                serving.start_soon(second.serve, 0.01)
            connections.cancel_scope.cancel()
    assert not graph.scheduler.unfinished
    after = sum(first.frames) - before
    assert sum(second.frames) > 0.4 * (after + sum(second.frames)), (first.frames, second.frames)
    graph.check_invariants()


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
