"""The live progress view: snapshots of a graph, the rate window, the status line, the
rich view, and the loop that shows them (on trio's mock clock: no real waiting)."""

from __future__ import annotations

import dataclasses
import io
import logging
import math
import sys
from typing import Any

import pytest
import trio
from rich.console import Console
from text_graphs import Hand, make_graph

from trio_graph_scheduler import GenericSchedulingCondition, TaskGraph, WorkerLoop, execute_graph
from trio_graph_scheduler.coordinator.observe.progress import (
    LoopProgress,
    ProgressSnapshot,
    RateWindow,
    render_progress,
    run_progress,
    snapshot_of,
    status_line,
)
from trio_graph_scheduler.coordinator.observe.summary import format_summary
from trio_graph_scheduler.coordinator.observe.wording import STATUS_WORDS

#: The brief's example: 4512 of 10000 tasks done, 367 a second.
BUSY = ProgressSnapshot(
    elapsed=12.3,
    loops=(
        LoopProgress("default", 3, waiting=5000, ready=120, running=3, succeeded=4000, failed=1),
        LoopProgress("html_loop", 4, waiting=363, ready=0, running=2, succeeded=511),
    ),
    workers=2,
    rate=367.0,
)


def test_snapshot_counts_each_loop_by_where_its_tasks_are() -> None:
    graph = make_graph({"html": 2})
    a, b, c = (graph.create_task_nowait("f") for _ in range(3))
    condition = GenericSchedulingCondition(graph, "SUCCESS__ALL", [b.uid])
    graph.create_task_nowait("g", None, [condition.uid])  # skipped once b fails
    graph.create_task_nowait("g", None, [c.uid])  # waiting
    html = [graph.create_task_nowait("html") for _ in range(3)]
    hand = Hand(graph)
    hand.run(a)
    hand.run(b, ok=False)
    hand.start(html[0])
    snapshot = snapshot_of(graph, workers=["w1", "w2"], started_at=100.0, now=112.5)
    assert snapshot == ProgressSnapshot(
        elapsed=12.5,
        loops=(
            LoopProgress(
                "default", 10, waiting=1, ready=1, running=0, succeeded=1, failed=1, skipped=1
            ),
            LoopProgress("html", 2, waiting=0, ready=2, running=1, succeeded=0, failed=0),
        ),
        workers=2,
    )
    assert (snapshot.ended, snapshot.total, snapshot.failed, snapshot.skipped) == (3, 8, 1, 1)
    assert snapshot_of(graph, workers=None, started_at=0.0, now=1.0).workers is None


def test_the_rate_is_measured_over_a_recent_window() -> None:
    window = RateWindow(seconds=10.0)
    assert window.add(0.0, 0) is None
    assert window.add(5.0, 50) == 10.0
    assert window.add(10.0, 100) == 10.0
    assert window.add(15.0, 100) == 5.0  # from t=5 on: 50 tasks in 10 s
    assert window.add(25.0, 100) == 0.0  # stalled for the whole window
    assert window.add(26.0, 130) == 30.0 / 11.0


def test_a_task_skipped_behind_a_failed_condition_reads_skipped_as_in_the_summary() -> None:
    # Issue 16: the line said "2 failed" where the summary said "1 failed, 1 skipped".
    graph = make_graph({})
    a, b = (graph.create_task_nowait("f") for _ in range(2))
    condition = GenericSchedulingCondition(graph, "SUCCESS__ALL", [b.uid])
    graph.create_task_nowait("g", None, [condition.uid])
    hand = Hand(graph)
    hand.run(a)
    hand.run(b, ok=False)
    snapshot = snapshot_of(graph, workers=None, started_at=0.0, now=2.0)
    assert status_line(snapshot) == (
        "[2.0s] 3/3 done | default 0/10 running, 0 ready | 1 failed, 1 skipped"
    )
    assert "3 tasks: 1 succeeded, 1 failed, 1 skipped" in format_summary(graph)
    assert render(snapshot)[0] == "2.00 s elapsed | 3 of 3 tasks done | 1 failed, 1 skipped"
    only_skipped = ProgressSnapshot(1.0, (LoopProgress("default", 1, skipped=2),))
    assert status_line(only_skipped).endswith(" | 2 skipped")


def test_the_views_count_in_the_words_of_the_summary() -> None:
    # One vocabulary: every word a task's status reads as is a count of a loop.
    fields = {field.name for field in dataclasses.fields(LoopProgress)}
    assert set(STATUS_WORDS.values()) <= fields


def test_status_line() -> None:
    assert status_line(BUSY) == (
        "[12.3s] 4512/10000 done (367/s, ~15s left) | default 3/3 running, 120 ready | "
        "html_loop 2/4 running, 0 ready | 2 workers | 1 failed"
    )


def test_status_line_before_a_rate_in_process_and_in_a_long_run() -> None:
    start = ProgressSnapshot(0.0, (LoopProgress("default", 10, ready=1),))
    assert status_line(start) == "[0.0s] 0/1 done | default 0/10 running, 1 ready"
    slow = ProgressSnapshot(3725.0, (LoopProgress("default", 1, ready=49, succeeded=1),), rate=0.2)
    assert (
        status_line(slow)
        == "[1h02m] 1/50 done (0.2/s, ~4m05s left) | default 0/1 running, 49 ready"
    )
    stalled = ProgressSnapshot(5.0, (LoopProgress("default", 1, waiting=1),), workers=0, rate=0.0)
    assert (
        status_line(stalled) == "[5.0s] 0/1 done (0.0/s) | default 0/1 running, 0 ready | 0 workers"
    )
    finished = ProgressSnapshot(9.0, (LoopProgress("default", 1, succeeded=3),), rate=0.5)
    assert status_line(finished) == "[9.0s] 3/3 done (0.5/s) | default 0/1 running, 0 ready"


def render(snapshot: ProgressSnapshot, width: int | None = None) -> list[str]:
    console = Console(file=io.StringIO(), width=width or 100)
    console.print(render_progress(snapshot, width))
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert isinstance(text, str)
    return text.splitlines()


def test_the_rich_view_renders_the_numbers() -> None:
    lines = render(BUSY)
    assert lines[0] == (
        "12.30 s elapsed | 4512 of 10000 tasks done | 367 tasks/s | about 15s left | "
        "2 workers | 1 failed"
    )
    assert lines[1].split() == [
        "loop", "progress", "done", "running", "ready", "waiting", "failed", "skipped"
    ]  # fmt: skip
    default_row, html_row = (line.split() for line in lines[2:4])
    assert default_row[0] == "default"
    assert default_row[-6:] == ["4001/9124", "3/3", "120", "5000", "1", "0"]
    assert html_row[0] == "html_loop"
    assert html_row[-6:] == ["511/876", "2/4", "0", "363", "0", "0"]
    assert all(len(line) <= 100 for line in lines)


def test_the_rich_view_without_a_rate_or_workers() -> None:
    lines = render(ProgressSnapshot(0.5, (LoopProgress("default", 2, ready=3),)))
    assert lines[0] == "500.0 ms elapsed | 0 of 3 tasks done"
    assert lines[2].split()[-6:] == ["0/3", "0/2", "3", "0", "0", "0"]
    unknown = ProgressSnapshot(2.0, (LoopProgress("default", 2, waiting=1),), rate=0.0)
    assert (
        render(unknown)[0] == "2.00 s elapsed | 0 of 1 tasks done | 0.0 tasks/s | time left unknown"
    )


# -- within the terminal's width (issue 16: the live view wrapped at 80 columns) ----------

WIDE = dataclasses.replace(
    BUSY,
    loops=(
        *BUSY.loops,
        LoopProgress("a_loop_with_a_long_name_indeed", 8, ready=3, succeeded=9, skipped=2),
    ),
)


@pytest.mark.parametrize("width", [200, 80, 60, 40])
def test_the_views_stay_within_the_width(width: int) -> None:
    line = status_line(WIDE, width)
    assert len(line) <= width
    # What matters most stays: how far the run is, and what went wrong.
    assert line.startswith("[12.3s] 4523/10014 done")
    lines = render(WIDE, width)
    assert all(len(each) <= width for each in lines), "\n".join(lines)
    assert lines[0].startswith("4523 of 10014 tasks done") or lines[0].startswith("12.30 s")
    assert lines[1].split()[:1] == ["loop"]
    assert [row.split()[0][:6] for row in lines[2:5]] == ["defaul", "html_l", "a_loop"]
    assert len(lines) == 5  # nothing wrapped


def test_a_wide_terminal_shows_everything() -> None:
    assert status_line(WIDE, 200) == status_line(WIDE)  # 176 characters: all of it
    assert status_line(WIDE, 200).endswith(" | 2 workers | 1 failed, 2 skipped")
    lines = render(WIDE, 200)
    assert lines[0] == (
        "12.30 s elapsed | 4523 of 10014 tasks done | 367 tasks/s | about 15s left | "
        "2 workers | 1 failed, 2 skipped"
    )
    assert "━" in lines[2]  # the bars
    assert lines[1].split()[-6:] == ["done", "running", "ready", "waiting", "failed", "skipped"]


def test_80_columns_drop_the_loop_details_first() -> None:
    assert status_line(WIDE, 80) == (
        "[12.3s] 4523/10014 done (367/s, ~15s left) | 2 workers | 1 failed, 2 skipped"
    )
    lines = render(WIDE, 80)
    assert lines[0] == "4523 of 10014 tasks done | about 15s left | 1 failed, 2 skipped"
    # A loop name of 20 characters (cut) leaves no room for a bar, but every column stays.
    assert lines[1].split() == [
        "loop", "done", "running", "ready", "waiting", "failed", "skipped"
    ]  # fmt: skip
    assert lines[4].split()[0] == "a_loop_with_a_long_…"
    # Short loop names leave room for the bar.
    lines = render(BUSY, 80)
    assert lines[0] == "12.30 s elapsed | 4512 of 10000 tasks done | about 15s left | 1 failed"
    assert "━" in lines[2]


def test_60_columns_keep_the_counts_and_the_failures() -> None:
    assert status_line(WIDE, 60) == "[12.3s] 4523/10014 done | 1 failed, 2 skipped"
    lines = render(WIDE, 60)
    assert lines[0] == "4523 of 10014 tasks done | 1 failed, 2 skipped"
    # No room for a bar; the columns of waiting and ready tasks go first.
    assert "━" not in "".join(lines)
    assert lines[1].split() == ["loop", "done", "running", "failed", "skipped"]
    assert lines[2].split() == ["default", "4001/9124", "3/3", "1", "0"]


def test_a_line_still_too_long_is_cut() -> None:
    assert status_line(WIDE, 20) == "[12.3s] 4523/10014…"


def ten_a_second() -> Any:
    """A snapshot function for a fake run where 10 of 100 tasks end each second."""
    started = trio.current_time()

    def snapshot() -> ProgressSnapshot:
        elapsed = trio.current_time() - started
        done = int(10 * elapsed)
        return ProgressSnapshot(
            elapsed, (LoopProgress("default", 2, ready=100 - done, succeeded=done),)
        )

    return snapshot


async def test_run_progress_prints_a_line_per_interval(autojump_clock: trio.abc.Clock) -> None:
    out = io.StringIO()
    with trio.move_on_after(3.5):
        await run_progress(ten_a_second(), file=out, interval=1.0, live=False)
    assert out.getvalue().splitlines() == [
        "[0.0s] 0/100 done | default 0/2 running, 100 ready",
        "[1.0s] 10/100 done (10/s, ~9s left) | default 0/2 running, 90 ready",
        "[2.0s] 20/100 done (10/s, ~8s left) | default 0/2 running, 80 ready",
        "[3.0s] 30/100 done (10/s, ~7s left) | default 0/2 running, 70 ready",
        # Cancelled: the final state, once more.
        "[3.5s] 35/100 done (10/s, ~7s left) | default 0/2 running, 65 ready",
    ]


async def test_run_progress_live_leaves_the_final_view(autojump_clock: trio.abc.Clock) -> None:
    out = io.StringIO()
    with trio.move_on_after(3.5):
        await run_progress(ten_a_second(), file=out, interval=1.0, live=True)
    # Not a terminal: rich draws the last frame only, with no cursor movement.
    text = out.getvalue()
    assert "\x1b" not in text
    assert text.splitlines()[0] == (
        "3.50 s elapsed | 35 of 100 tasks done | 10 tasks/s | about 7s left"
    )
    assert "35/100" in text


async def test_a_snapshot_taken_during_a_real_run() -> None:
    async def look(*, graph: TaskGraph, **_: Any) -> ProgressSnapshot:
        return snapshot_of(graph, workers=None, started_at=0.0, now=1.0)

    graph = TaskGraph({"look": look}, [WorkerLoop("default", 2, None)])
    first = await graph.create_task("look")
    await graph.create_task("look", None, [first.uid])
    await execute_graph(graph)
    seen = first.task_result
    assert isinstance(seen, ProgressSnapshot)
    assert seen.loops == (LoopProgress("default", 2, waiting=1, running=1),)


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


async def test_log_lines_print_above_the_live_view(
    autojump_clock: trio.abc.Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Seen in a terminal: a log line written by a handler that holds the real stderr
    # landed in the middle of the view's lines.
    terminal = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    handler = logging.StreamHandler(terminal)
    root = logging.getLogger()
    root.addHandler(handler)
    seen: list[object] = []

    async def log_once() -> None:
        await trio.sleep(1.5)
        seen.append(handler.stream)
        logging.getLogger("tgs.test").warning("a log line")

    try:
        with trio.move_on_after(2.5):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(log_once)
                await run_progress(ten_a_second(), file=terminal, interval=1.0, live=True)
    finally:
        root.removeHandler(handler)
    assert seen[0] is not terminal  # rich's proxy, which prints above the view
    assert handler.stream is terminal  # given back when the view ended
    assert sys.stderr is terminal
    # The view is erased (cursor up, erase line), the line printed, the view drawn again.
    text = terminal.getvalue()
    assert "\x1b[2Ka log line\n1.00 s elapsed | " in text


async def test_the_last_line_of_an_ended_run_says_the_runs_pace_and_time(
    autojump_clock: trio.abc.Clock,
) -> None:
    # 90 tasks end in the first second, then 1 a second for 20 s: at the end the recent
    # window (10 s) sees 1/s, but the run did 110 tasks in 21 s. The last line says the
    # run's pace, and its time stops at the run's end while workers are dismissed.
    started = trio.current_time()

    def snapshot() -> ProgressSnapshot:
        elapsed = min(trio.current_time() - started, 21.0)
        done = 90 * min(elapsed, 1.0) + math.floor(max(elapsed - 1.0, 0.0) + 1e-9)
        loops = (LoopProgress("default", 2, ready=110 - int(done), succeeded=int(done)),)
        return ProgressSnapshot(elapsed, loops, finished=int(done) == 110)

    out = io.StringIO()
    with trio.move_on_after(25.5):
        await run_progress(snapshot, file=out, interval=1.0, live=False)
    lines = out.getvalue().splitlines()
    assert lines[20] == "[20.0s] 109/110 done (1.0/s, ~1s left) | default 0/2 running, 1 ready"
    assert lines[-1] == "[21.0s] 110/110 done (5.2/s) | default 0/2 running, 0 ready"
