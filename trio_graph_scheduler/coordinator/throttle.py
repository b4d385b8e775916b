"""Slowing down peers that keep presenting a wrong token.

Each failed handshake from an address makes the next refusal to that address wait twice
as long, up to a bound: a peer trying tokens one connection after the other gets a few
answers a second at first, then one every :data:`MAX_DELAY` seconds. The connection cap
bounds how many such waits run at once. Guessing stays hopeless only with a long token,
which is why a token on a non-loopback address needs 16 characters or more.

Pure bookkeeping: no trio, the time passed in. Memory is bounded: an address is
forgotten :data:`FORGET_AFTER` seconds after its last failure, and beyond
:data:`MAX_ADDRESSES` addresses the one that failed longest ago is forgotten first.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Final

#: The wait before the first refusal to an address, in seconds; each failure doubles it.
FIRST_DELAY: Final = 0.1
#: The longest wait before a refusal, in seconds.
MAX_DELAY: Final = 5.0
#: Seconds after its last failure when an address starts afresh.
FORGET_AFTER: Final = 600.0
#: How many addresses are remembered at most.
MAX_ADDRESSES: Final = 4096


class FailedHandshakes:
    """Failed handshakes by peer address, and how long to wait before refusing the next.

    Args:
        first_delay: the wait after an address's first failure.
        max_delay: the longest wait.
        forget_after: seconds without a failure after which an address is forgotten.
        max_addresses: how many addresses are remembered at most.
    """

    def __init__(
        self,
        *,
        first_delay: float = FIRST_DELAY,
        max_delay: float = MAX_DELAY,
        forget_after: float = FORGET_AFTER,
        max_addresses: int = MAX_ADDRESSES,
    ) -> None:
        self._first_delay = first_delay
        self._max_delay = max_delay
        self._forget_after = forget_after
        self._max_addresses = max_addresses
        # Address -> (failures, time of the last one); the oldest failure first.
        self._failures: OrderedDict[str, tuple[int, float]] = OrderedDict()

    def __len__(self) -> int:
        """How many addresses are remembered."""
        return len(self._failures)

    def failed(self, address: str, now: float) -> float:
        """Count a failed handshake from ``address``; return how many seconds to wait
        before refusing it."""
        self._forget_old(now)
        failures, _ = self._failures.pop(address, (0, now))
        failures += 1
        self._failures[address] = (failures, now)  # now the most recent
        while len(self._failures) > self._max_addresses:
            self._failures.popitem(last=False)
        # min() first: 2 ** a large count would be a huge float for nothing.
        doublings: int = min(failures - 1, 64)
        return min(self._max_delay, self._first_delay * float(2**doublings))

    def succeeded(self, address: str) -> None:
        """A handshake from ``address`` succeeded: it starts afresh."""
        self._failures.pop(address, None)

    def _forget_old(self, now: float) -> None:
        failures = self._failures
        while failures:
            address, (_, last) = next(iter(failures.items()))
            if now - last < self._forget_after:
                return
            del failures[address]
