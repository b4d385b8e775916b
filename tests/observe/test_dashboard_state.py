"""The dashboard's state: snapshot sections, deltas, the task stream, search. No sockets.

A fake clock times the tasks, and a :class:`FakeRun` stands for the coordinator, so every
number is exact. The key invariant: a browser that applies the deltas in order (as the
page's ``apply`` does, mirrored in :func:`apply`) holds exactly what ``full()`` says.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from text_graphs import BOOM, noop

from trio_graph_scheduler import TaskGraph, WorkerLoop
from trio_graph_scheduler.coordinator.dashboard import state as dashboard_state
from trio_graph_scheduler.coordinator.dashboard.state import (
    MAX_BARS,
    STREAM_SECONDS,
    DashboardState,
    graph_layout,
    search,
    task_details,
)
from trio_graph_scheduler.coordinator.worker_session import WorkerRecord

if TYPE_CHECKING:
    import pytest

    from trio_graph_scheduler import TaskNode

SECTIONS = ("run", "loops", "workers", "failures", "functions", "outputs")


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class FakeSession:
    worker_id: str
    loops: list[str]
    leases: dict[int, TaskNode] = field(default_factory=dict)


@dataclass
class FakeRun:
    graph: TaskGraph
    sessions: list[FakeSession] = field(default_factory=list)
    workers: dict[str, WorkerRecord] = field(default_factory=dict)
    started_at: float | None = None
    ended: bool = False
    stopped: bool = False


class Driver:
    """Starts and ends tasks as a worker's session would, at the fake clock's time."""

    def __init__(self, graph: TaskGraph, clock: Clock) -> None:
        self.graph = graph
        self.clock = clock
        self.leases = 0
        graph.scheduler.on_retry = lambda node, delay: None
        graph.scheduler.start()

    def cancel(self, node: TaskNode) -> None:  # the Claimant protocol
        raise AssertionError("nothing is cancelled here")

    def start(self, loop: str = "default", worker: str = "worker-1") -> TaskNode:
        node = self.graph.scheduler.loops[loop].claim_nowait(self)
        assert node is not None
        node.worker = worker
        return node

    def succeed(self, node: TaskNode) -> None:
        self.graph.scheduler.task_succeeded(node, None)

    def fail(self, node: TaskNode, trace: str = BOOM) -> None:
        self.graph.scheduler.task_failed(node, trace)


async def make_run(tasks: int = 4) -> tuple[FakeRun, Driver, list[TaskNode]]:
    """``f`` x``tasks`` in ``default`` (3 at once), each followed by a ``g`` in ``parse``."""
    clock = Clock()
    graph = TaskGraph(
        {"f": noop, "g": noop},
        [WorkerLoop("default", 3, None), WorkerLoop("parse", 1, ["g"])],
        clock=clock,
    )
    firsts = []
    for _ in range(tasks):
        first = await graph.create_task("f")
        await graph.create_task("g", None, waits_on=[first.uid])
        firsts.append(first)
    run = FakeRun(graph, started_at=clock.now)
    run.workers["worker-1"] = WorkerRecord("worker-1", "alpha", ["default", "parse"], clock.now)
    run.sessions.append(FakeSession("worker-1", ["default", "parse"]))
    return run, Driver(graph, clock), firsts


def apply(page: dict[str, Any], delta: dict[str, Any]) -> None:
    """What the page's script does with a message (app.js ``apply``)."""
    if delta.get("full"):
        page["bars"] = {}
        page["statuses"] = ""
    for key in SECTIONS:
        if key in delta:
            page[key] = delta[key]
    for bar in delta.get("bars", []):
        page.setdefault("bars", {})[bar[0]] = list(bar)
    for uid in delta.get("drop", []):
        page["bars"].pop(uid)
    if "statuses" in delta:
        page["statuses"] = delta["statuses"]
    if "status_changes" in delta:
        letters = list(page["statuses"])
        for i, letter in delta["status_changes"]:
            letters[i] = letter
        page["statuses"] = "".join(letters)


def as_page(full: dict[str, Any]) -> dict[str, Any]:
    page: dict[str, Any] = {}
    apply(page, full)
    return page


async def test_loops_workers_and_run_totals_are_counted() -> None:
    run, driver, _ = await make_run()
    running = [driver.start(), driver.start()]
    driver.succeed(running[0])
    driver.clock.now += 2
    state = DashboardState(run)
    delta = state.update(driver.clock.now)
    loops = {loop["name"]: loop for loop in delta["loops"]}
    assert loops["default"] == {
        "name": "default", "concurrency": 3,
        "waiting": 0, "ready": 2, "running": 1, "succeeded": 1, "failed": 0, "skipped": 0,
    }  # fmt: skip
    assert loops["parse"]["ready"] == 1
    assert loops["parse"]["waiting"] == 3
    assert delta["run"]["total"] == 8
    assert delta["run"]["done"] == 1
    assert delta["run"]["running"] == 1
    assert delta["run"]["elapsed"] == 2
    (worker,) = delta["workers"]
    assert (worker["name"], worker["done"], worker["lost"], worker["joined"]) == (
        "alpha",
        1,
        False,
        0,
    )
    assert delta["functions"] == ["f", "g"]


async def test_a_second_update_sends_only_what_changed() -> None:
    run, driver, _ = await make_run()
    state = DashboardState(run)
    state.update(driver.clock.now)
    assert state.update(driver.clock.now) == {"v": 2}
    driver.start()
    delta = state.update(driver.clock.now)
    assert set(delta) == {"v", "run", "loops", "bars", "status_changes"}
    assert delta["status_changes"] == [[0, "r"]]


async def test_stream_bars_take_the_lowest_free_row_of_their_worker() -> None:
    run, driver, _ = await make_run()
    clock = driver.clock
    state = DashboardState(run)
    first = driver.start()
    clock.now += 1
    second = driver.start()
    delta = state.update(clock.now)
    bars = {bar[0]: bar for bar in delta["bars"]}
    assert bars[first.uid] == [first.uid, "f", "worker-1", 0, 0.0, None, 0]
    assert bars[second.uid] == [second.uid, "f", "worker-1", 1, 1.0, None, 0]
    clock.now += 1
    driver.fail(first)
    third = driver.start()  # row 0 is free again
    delta = state.update(clock.now)
    bars = {bar[0]: bar for bar in delta["bars"]}
    assert set(bars) == {first.uid, third.uid}  # the unchanged running bar is not resent
    assert bars[first.uid][5:] == [2.0, 1]  # ended at 2 s, failed
    assert bars[third.uid][3] == 0


async def test_old_bars_scroll_out_and_their_number_is_capped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run, driver, _ = await make_run(tasks=6)
    clock = driver.clock
    state = DashboardState(run)
    old = driver.start()
    driver.succeed(old)
    state.update(clock.now)
    clock.now += STREAM_SECONDS + 1
    delta = state.update(clock.now)
    assert delta["drop"] == [old.uid]
    monkeypatch.setattr(dashboard_state, "MAX_BARS", 2)
    for _ in range(3):
        clock.now += 1
        driver.succeed(driver.start())
    delta = state.update(clock.now)
    assert len(state.full()["bars"]) == 2
    assert MAX_BARS > 2


async def test_failures_are_grouped_by_function_and_headline() -> None:
    run, driver, _ = await make_run()
    driver.fail(driver.start())
    driver.fail(driver.start())
    driver.fail(driver.start(), "Traceback...\nKeyError: 'x'\n")
    delta = DashboardState(run).update(driver.clock.now)
    assert [(f["function"], f["headline"], f["count"]) for f in delta["failures"]] == [
        ("f", "ValueError: boom", 2),
        ("f", "KeyError: 'x'", 1),
    ]


async def test_applying_every_delta_gives_the_full_snapshot() -> None:
    run, driver, _ = await make_run(tasks=5)
    clock = driver.clock
    state = DashboardState(run)
    page = as_page(state.full())
    steps = 0
    while run.graph.scheduler.unfinished:
        for loop in ("default", "parse"):
            queue = run.graph.scheduler.loops[loop]
            if queue.ready and queue.running < queue.concurrency:
                node = driver.start(loop)
                if steps % 4 == 3:
                    driver.fail(node)
                else:
                    driver.succeed(node)
        clock.now += 7
        steps += 1
        apply(page, state.update(clock.now))
        assert page == as_page(state.full())
    run.ended = True
    apply(page, state.update(clock.now))
    assert page == as_page(state.full())
    assert page["run"]["ended"]
    assert not page["run"]["stopped"]  # every task ended: ended, not stopped
    assert set(page["statuses"]) <= {"s", "f", "k"}


async def test_the_run_section_says_pace_and_time_left() -> None:
    run, driver, _ = await make_run(tasks=5)
    clock = driver.clock
    state = DashboardState(run)
    state.update(clock.now)
    for _ in range(2):
        driver.succeed(driver.start())
    clock.now += 1
    section = state.update(clock.now)["run"]
    assert section["rate"] == 2.0
    assert section["left"] == 4.0  # 8 tasks left at 2 a second
    run.ended = run.stopped = True  # stopped: the pace is the whole run's, no time left
    clock.now += 1
    section = state.update(clock.now)["run"]
    assert (section["rate"], section["left"], section["elapsed"]) == (1.0, None, 2.0)
    assert section["stopped"]
    clock.now += 5
    assert "run" not in state.update(clock.now)  # the clock stopped with the run


async def test_search_finds_by_uid_prefix_function_and_gives_the_why() -> None:
    run, driver, _ = await make_run()
    failed = driver.start()
    driver.fail(failed)
    answer = search(run, failed.uid)
    assert answer["found"][0]["uid"] == failed.uid
    assert answer["task"]["why"] == run.graph.explain(failed.uid, workers=run.sessions)
    assert answer["task"]["error"] == "ValueError: boom"
    assert answer["task"]["worker_name"] == "alpha"
    assert [row["uid"] for row in search(run, failed.uid[:12])["found"]] == [failed.uid]
    by_function = search(run, "g")
    assert len(by_function["found"]) == 4
    assert "task" not in by_function
    assert search(run, "nothing-like-it")["found"] == []
    assert task_details(run, "task-0") is None


async def test_the_layout_puts_a_task_below_its_predecessors() -> None:
    run, _, firsts = await make_run(tasks=2)
    layout = graph_layout(run.graph)
    assert layout is not None
    assert layout["n"] == 4
    uids = layout["uids"]
    f0, g0 = uids.index(firsts[0].uid), uids.index(firsts[0].uid) + 1
    assert layout["xy"][g0][1] > layout["xy"][f0][1]
    assert [f0, g0] in layout["edges"]


async def test_no_layout_past_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    run, driver, _ = await make_run(tasks=2)
    monkeypatch.setattr(dashboard_state, "GRAPH_LIMIT", 3)
    assert graph_layout(run.graph) is None
    delta = DashboardState(run).update(driver.clock.now)
    assert "statuses" not in delta


async def test_workers_say_what_they_run_and_when_they_left_or_were_lost() -> None:
    run, driver, _ = await make_run()
    clock = driver.clock
    node = driver.start()
    run.sessions[0].leases[1] = node
    run.workers["worker-2"] = WorkerRecord(
        "worker-2", "beta", ["default"], clock.now + 1, left_at=clock.now + 3,
        left_because="silent for 10 s", lost_while_running=[("task-x", "f")],
    )  # fmt: skip
    run.workers["worker-3"] = WorkerRecord(
        "worker-3", "gamma", ["default"], clock.now, left_at=clock.now + 4, left_because="stopped"
    )
    workers = {w["id"]: w for w in DashboardState(run).update(clock.now + 5)["workers"]}
    assert workers["worker-1"]["running"] == 1
    assert workers["worker-1"]["now"] == [[node.uid, "f"]]
    lost = workers["worker-2"]
    assert (lost["lost"], lost["because"]) == (True, "silent for 10 s")
    assert (workers["worker-2"]["joined"], workers["worker-2"]["left"]) == (1, 3)
    assert workers["worker-3"]["lost"] is False


async def test_search_finds_a_task_by_its_key_where_tasks_have_one() -> None:
    run, _, _ = await make_run(tasks=2)
    keyed = run.graph.create_task_nowait("f", None, key=("fetch", "2026-11-29/eu"))
    answer = search(run, "2026-11-29/eu")
    assert [row["uid"] for row in answer["found"]] == [keyed.uid]
    assert answer["found"][0]["key"] == "('fetch', '2026-11-29/eu')"
    assert answer["task"]["why"].startswith(f"{keyed.uid} (f, key ('fetch', '2026-11-29/eu'))")
