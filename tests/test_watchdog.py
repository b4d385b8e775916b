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

    async def blocker(**_: Any) -> str:
        # Blocks the loop (no await) until the watchdog warned twice.
        recorder.block_until("is still blocked")
        return "done"

    graph = TaskGraph({"blocker": blocker}, [WorkerLoop("default", 1)])
    node = await graph.create_task("blocker")
    watchdog = LoopWatchdog(
        0.2, name_task=name_node, logger=logger, repeat=0.2, on_blocked=reports.append
    )
    watchdog.start()
    try:
        await execute_graph(graph)
        recorder.block_until("runs again after")
    finally:
        watchdog.stop()
    assert node.task_result == "done"
    first, again = recorder.messages[:2]
    assert "the event loop has been blocked for" in first
    assert f"by task {node.uid} (blocker), at {__file__}:" in first
    assert "is still blocked, for " in again
    assert f"task {node.uid} (blocker)" in again
    assert recorder.count("runs again after ") == 1
    (report,) = reports  # told once, when first seen blocked
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


async def test_a_stopped_watchdog_says_nothing() -> None:
    logger, recorder = watchdog_logger("stopped")
    watchdog = LoopWatchdog(0.05, name_task=name_node, logger=logger)
    watchdog.start()
    watchdog.stop()
    with trio.fail_after(WALL_LIMIT):
        while watchdog.running:  # noqa: ASYNC110 - a thread, with nothing to await
            await trio.sleep(0.01)
    time.sleep(0.2)  # noqa: ASYNC251 - blocked on purpose, but nobody watches any more
    assert recorder.messages == []


def test_a_local_cluster_watches_its_one_loop_once() -> None:
    # run_local_cluster's workers share one event loop: only the first one watches it.
    from trio_graph_scheduler.testing import _worker_settings
    from trio_graph_scheduler.worker.config import DEFAULT_BLOCKED_LOOP_WARNING

    settings = [_worker_settings(None, "ws://in-memory:0", index) for index in range(3)]
    assert [s.blocked_loop_warning for s in settings] == [DEFAULT_BLOCKED_LOOP_WARNING, 0, 0]
    assert [s.name for s in settings] == ["worker-1", "worker-2", "worker-3"]
