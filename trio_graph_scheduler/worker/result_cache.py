"""The large results a worker holds, so that the coordinator need not send them again.

A result counts as large when ``protocol.chunks.result_size`` says it is at least
``CACHED_FROM`` bytes (256 KiB); smaller ones cost little to send again and are not kept. A
worker keeps, within a byte budget (``--result-cache-bytes``), the large results of the
tasks it ran and those the coordinator sent it as predecessors' results, least recently
used first out. The coordinator keeps the same account of each worker (it applies the
same ``result_size`` to the same results), marks a predecessor's result that the
worker holds as ``cached`` in the assignment instead of sending it, and forgets a
result when the worker says it dropped it (``results_dropped``).

The two accounts can differ for a moment: the coordinator may mark a result cached that
the worker dropped while the word of it was on its way. The worker then asks the
coordinator for it (``aget_task``) before the task runs: a value is never missing, and
never another task's.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Final, final

#: The budget of the cache by default (``--result-cache-bytes``).
DEFAULT_RESULT_CACHE_BYTES: Final = 256 * 2**20


#: What :meth:`ResultCache.get` returns for a result the cache does not hold.
MISSING: Final = object()


@final
class ResultCache:
    """Large results by task uid, within ``budget`` bytes; least recently used out first.

    Attributes:
        budget: the most bytes of results kept.
        held_bytes: the bytes of results kept now.
    """

    __slots__ = ("_results", "budget", "held_bytes")

    def __init__(self, budget: int = DEFAULT_RESULT_CACHE_BYTES) -> None:
        self.budget = budget
        self.held_bytes = 0
        self._results: OrderedDict[str, tuple[Any, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._results)

    def __contains__(self, uid: str) -> bool:
        return uid in self._results

    def put(self, uid: str, value: Any, size: int) -> list[str]:
        """Keep ``value`` (``size`` bytes) as the result of ``uid``.

        Returns:
            The uids dropped to make room, and ``uid`` itself if it was not kept (larger
            than the whole budget): what the coordinator must hear.
        """
        if uid in self._results:
            self._results.move_to_end(uid)
            return []
        if size > self.budget:
            return [uid]
        self._results[uid] = (value, size)
        self.held_bytes += size
        dropped = []
        while self.held_bytes > self.budget:
            old, (_, old_size) = self._results.popitem(last=False)
            self.held_bytes -= old_size
            dropped.append(old)
        return dropped

    def get(self, uid: str) -> Any:
        """The result of ``uid`` (now the most recently used), or :data:`MISSING`."""
        entry = self._results.get(uid)
        if entry is None:
            return MISSING
        self._results.move_to_end(uid)
        return entry[0]

    def clear(self) -> None:
        """Forget every result."""
        self._results.clear()
        self.held_bytes = 0
