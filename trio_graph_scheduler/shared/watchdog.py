"""A watchdog for a trio event loop: names what blocks it, from a thread of its own.

A task that blocks the loop (``time.sleep`` inside an ``async def``, a long computation
with no checkpoint) stops everything else on it, heartbeats included. The watchdog thread
asks the loop to run a no-op (``TrioToken.run_sync_soon``) and waits for it. When the loop
has not run it within ``threshold`` seconds, the thread reads the loop thread's stack
(``sys._current_frames``), finds the slot running a task there, and logs a warning that
names the task and how long the loop has been blocked; again every ``repeat`` seconds
while it lasts, and once more when the loop runs again.

It costs nothing per task: one no-op on the loop every ``threshold / 2`` seconds, and a
thread that sleeps in between.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import trio

from .slots import task_on_stack

if TYPE_CHECKING:
    import logging
    from collections.abc import Callable
    from types import FrameType

#: How often the warning is repeated while the loop stays blocked, in seconds.
DEFAULT_REPEAT: Final = 10.0


@dataclass(frozen=True, slots=True)
class BlockedLoop:
    """What blocked the loop, and since when."""

    #: ``time.monotonic()`` when the loop was last asked to run something (it has not
    #: run anything since, as far as the watchdog knew).
    since: float
    #: The task's uid and function, or ``None`` when no task was running (or unknown).
    task_uid: str | None
    handle: str | None
    #: The innermost frame of the loop's thread when it was caught: ``file:line in f``.
    where: str
    #: How long it lasted, once known (set by whoever reports it, after it ended).
    seconds: float | None = None

    def describe(self) -> str:
        """``task T (function f), at file:line in g``, or ``no task, at ...``."""
        who = f"task {self.task_uid} ({self.handle})" if self.task_uid else "no task"
        return f"{who}, at {self.where}"


class LoopWatchdog:
    """Watches the trio loop it is started in; see the module's doc.

    Args:
        threshold: seconds without the loop running before it warns.
        name_task: ``(uid, function)`` of a task as the slots hold it.
        logger: where the warnings go.
        repeat: seconds between warnings while the loop stays blocked.
        on_blocked: called in the watchdog's thread when it first warns of a block,
            so it must be thread-safe (appending to a list is); whatever the loop's
            thread then finds there describes a block that is over.
    """

    def __init__(
        self,
        threshold: float,
        *,
        name_task: Callable[[Any], tuple[str, str]],
        logger: logging.Logger,
        repeat: float = DEFAULT_REPEAT,
        on_blocked: Callable[[BlockedLoop], None] | None = None,
    ) -> None:
        self.threshold = threshold
        self.repeat = repeat
        self._name_task = name_task
        self._logger = logger
        self._on_blocked = on_blocked
        self._stopped = threading.Event()
        self._answered = threading.Event()
        self._thread: threading.Thread | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._loop_thread = 0

    def start(self) -> None:
        """Start watching the current trio loop (call from inside it)."""
        self._token = trio.lowlevel.current_trio_token()
        self._loop_thread = threading.get_ident()
        self._thread = threading.Thread(target=self._watch, name="tgs-loop-watchdog", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop watching; the thread ends at once (it is not waited for)."""
        self._stopped.set()
        self._answered.set()  # wakes the thread if it waits for an answer

    @property
    def running(self) -> bool:
        """Whether the watchdog's thread is still alive."""
        return self._thread is not None and self._thread.is_alive()

    def _watch(self) -> None:
        token = self._token
        assert token is not None
        while not self._stopped.is_set():
            answered = self._answered = threading.Event()
            if self._stopped.is_set():  # stop() may have set the previous event
                return
            asked = time.monotonic()
            try:
                token.run_sync_soon(answered.set)
            except trio.RunFinishedError:
                return
            if answered.wait(self.threshold):
                self._stopped.wait(self.threshold / 2)
                continue
            if self._stopped.is_set():
                return
            blocked = self._blocked(asked)
            self._logger.warning(
                "the event loop has been blocked for %.1f s by %s; nothing else runs "
                "meanwhile (no heartbeats): never block an async task, run blocking "
                "code in a sync task function",
                time.monotonic() - asked,
                blocked.describe(),
            )
            if self._on_blocked is not None:
                self._on_blocked(blocked)
            while not answered.wait(self.repeat):
                if self._stopped.is_set():
                    return
                self._logger.warning(
                    "the event loop is still blocked, for %.1f s now, by %s",
                    time.monotonic() - asked,
                    self._blocked(asked).describe(),
                )
            if self._stopped.is_set():
                return
            self._logger.warning(
                "the event loop runs again after %.1f s blocked by %s",
                time.monotonic() - asked,
                blocked.describe(),
            )

    def _blocked(self, asked: float) -> BlockedLoop:
        frame = sys._current_frames().get(self._loop_thread)
        where = _where(frame)
        found = task_on_stack(frame)
        uid = handle = None
        if found is not None and found[0] is not None:
            try:
                uid, handle = self._name_task(found[0])
            except Exception:  # a half-built task: say where, not who
                uid = handle = None
        return BlockedLoop(asked, uid, handle, where)


def _where(frame: FrameType | None) -> str:
    if frame is None:
        return "an unknown place"
    code = frame.f_code
    return f"{code.co_filename}:{frame.f_lineno} in {code.co_name}"
