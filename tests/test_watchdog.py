"""The loop watchdog names the task that blocks a trio loop, with a real blocked loop.

The blocking task sleeps (``time.sleep``, inside an ``async def``) in small steps until
the watchdog has said what the test waits for, so the test never depends on how fast
this machine is: a slow machine only makes the block longer. Every such wait is bounded.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import trio

from trio_graph_scheduler import TaskGraph, WorkerLoop, execute_graph
from trio_graph_scheduler.shared.watchdog import BlockedLoop, LoopWatchdog

#: The longest a test blocks its loop, in wall seconds, should the watchdog stay silent.
WALL_LIMIT = 30.0


class Recorder(logging.Handler):
    """Keeps the watchdog's messages; :meth:`wait_for` blocks until enough came."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []
        self.changed = threading.Condition()

    def emit(self, record: logging.LogRecord) -> None:
        with self.changed:
            self.messages.append(record.getMessage())
            self.changed.notify_all()

    def count(self, fragment: str) -> int:
        with self.changed:
            return sum(fragment in message for message in self.messages)

    async def wait_for(self, fragment: str) -> None:
        """Wait, letting the loop run, until ``fragment`` was logged."""
        with trio.fail_after(WALL_LIMIT):
            while not self.count(fragment):  # noqa: ASYNC110 - logged by another thread
                await trio.sleep(0.01)

    def block_until(self, fragment: str, times: int = 1) -> None:
        """Block the calling thread (the trio loop, on purpose) until ``fragment`` was
        logged ``times`` times."""
        deadline = time.monotonic() + WALL_LIMIT
        while self.count(fragment) < times:
            assert time.monotonic() < deadline, self.messages
            time.sleep(0.01)


def watchdog_logger(name: str) -> tuple[logging.Logger, Recorder]:
    logger = logging.getLogger(f"tgs.test.{name}")
    logger.propagate = False
    recorder = Recorder()
    logger.handlers[:] = [recorder]
    logger.setLevel(logging.WARNING)
    return logger, recorder


def name_node(node: Any) -> tuple[str, str]:
    return node.uid, node.task_handle


async def test_a_task_that_blocks_the_loop_is_named_while_it_lasts_and_after() -> None:
    logger, recorder = watchdog_logger("task")
    reports: list[BlockedLoop] = []

    async def blocker(*, task_node: Any, **_: Any) -> str:
        # Blocks the loop (no await) until the watchdog named it twice: blocked, and
        # still blocked. (A loop slowed down by a busy machine may be reported too.)
        recorder.block_until(f"by task {task_node.uid} (blocker)", times=2)
        return "done"

    graph = TaskGraph({"blocker": blocker}, [WorkerLoop("default", 1)])
    node = await graph.create_task("blocker")
    watchdog = LoopWatchdog(
        0.2, name_task=name_node, logger=logger, repeat=0.2, on_blocked=reports.append
    )
    watchdog.start()
    try:
        await execute_graph(graph)
        await recorder.wait_for(f"blocked by task {node.uid} (blocker)")
    finally:
        watchdog.stop()
    assert node.task_result == "done"
    named = [message for message in recorder.messages if f"task {node.uid} (blocker)" in message]
    first, *again, over = named
    assert "the event loop has been blocked for" in first
    assert f"by task {node.uid} (blocker), at {__file__}:" in first
    assert again  # every repeat while it lasted
    assert all("is still blocked, for " in message for message in again)
    assert "the event loop runs again after " in over
    (report,) = [r for r in reports if r.task_uid is not None]  # told once, when first seen
    assert (report.task_uid, report.handle) == (node.uid, "blocker")
    assert report.where.startswith(f"{__file__}:")  # where it was caught: the innermost frame
    with trio.fail_after(WALL_LIMIT):
        while watchdog.running:  # noqa: ASYNC110 - a thread, with nothing to await
            await trio.sleep(0.01)


async def test_a_loop_blocked_outside_any_task_says_so() -> None:
    logger, recorder = watchdog_logger("outside")
    watchdog = LoopWatchdog(0.2, name_task=name_node, logger=logger)
    watchdog.start()
    try:
        recorder.block_until("has been blocked")
    finally:
        watchdog.stop()
    assert "by no task, at " in recorder.messages[0]


async def test_a_stopped_watchdog_says_nothing_more() -> None:
    logger, recorder = watchdog_logger("stopped")
    watchdog = LoopWatchdog(0.05, name_task=name_node, logger=logger, repeat=0.05)
    watchdog.start()
    recorder.block_until("has been blocked")  # it watches
    watchdog.stop()
    with trio.fail_after(WALL_LIMIT):
        while watchdog.running:  # noqa: ASYNC110 - a thread, with nothing to await
            await trio.sleep(0.01)
    said = list(recorder.messages)
    time.sleep(0.3)  # noqa: ASYNC251 - blocked on purpose, but nobody watches any more
    assert recorder.messages == said


def test_a_local_cluster_watches_its_one_loop_once() -> None:
    # run_local_cluster's workers share one event loop: only the first one watches it.
    from trio_graph_scheduler.testing import _worker_settings
    from trio_graph_scheduler.worker.config import DEFAULT_BLOCKED_LOOP_WARNING

    settings = [_worker_settings(None, "ws://in-memory:0", index) for index in range(3)]
    assert [s.blocked_loop_warning for s in settings] == [DEFAULT_BLOCKED_LOOP_WARNING, 0, 0]
    assert [s.name for s in settings] == ["worker-1", "worker-2", "worker-3"]
