"""Per-function retry and timeout policies.

A function's tasks are retried when they raise (a timeout counts), up to ``attempts``
runs in all, with exponential backoff and full jitter between runs. A task whose worker
was lost is a separate matter (``CoordinatorConfig.max_lost_attempts``): its run did not
fail, it vanished.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from ...shared.errors import GraphDefinitionError


@dataclass(frozen=True, slots=True)
class TaskPolicy:
    """How the tasks of one function are retried and timed out.

    Args:
        attempts: runs in all when the function keeps raising; 1 (the default) means
            no retry.
        backoff: seconds before the first retry; each retry waits twice as long as the
            one before, up to ``max_backoff``, and a random part of that (full jitter).
        max_backoff: the longest wait between two runs, in seconds.
        timeout: seconds a run may take before it is cancelled and counts as failed with
            ``TimeoutError``; ``None`` for no limit. A plain (sync) function runs in a
            thread, which cannot be interrupted: its timeout is only noticed when it
            returns.

    Raises:
        GraphDefinitionError: a value out of range.
    """

    attempts: int = 1
    backoff: float = 1.0
    max_backoff: float = 60.0
    timeout: float | None = None

    def __post_init__(self) -> None:
        if isinstance(self.attempts, bool) or not isinstance(self.attempts, int):
            raise GraphDefinitionError(f"attempts must be an int, got {self.attempts!r}")
        if self.attempts < 1:
            raise GraphDefinitionError(f"attempts must be at least 1, got {self.attempts}")
        if not (0 <= self.backoff <= self.max_backoff < math.inf):
            raise GraphDefinitionError(
                "backoff and max_backoff must be finite with 0 <= backoff <= max_backoff, "
                f"got {self.backoff} and {self.max_backoff}"
            )
        if self.timeout is not None and not (0 < self.timeout < math.inf):
            raise GraphDefinitionError(f"timeout must be positive or None, got {self.timeout}")

    def retry_delay(self, failures: int) -> float:
        """Seconds to wait before the run after the ``failures``-th failed one."""
        ceiling = min(self.max_backoff, self.backoff * 2 ** (failures - 1))
        return random.uniform(0, ceiling)


#: The policy of functions that have none of their own: one run, no time limit.
DEFAULT_POLICY = TaskPolicy()
