"""Uids for graphs, tasks and conditions: a prefix and 32 hex digits, as the seed had.

The 32 digits cost no system call (``os.urandom`` per uid was 8% of the coordinator's
samples when building a large graph): 16 random ones drawn once per process (again in a
forked child), after 16 made from a counter. The counter is scrambled (multiplied by an
odd constant modulo 2**64, a one-to-one map, then XORed with a random key), so that the
first few digits still tell tasks apart, as people type them (``tgs-status --why``, the
dashboard's search). Two processes (a coordinator and its workers, which choose the uids
of the tasks they create) draw different random halves, so their uids do not collide;
the coordinator still refuses a uid it knows.
"""

from __future__ import annotations

import itertools
import os
from typing import Final

#: Odd, so multiplying by it modulo 2**64 maps distinct counts to distinct numbers.
_MIX: Final = 0x9E3779B97F4A7C15
_MASK: Final = 2**64 - 1

_random_half = ""
_key = 0
_counter = itertools.count()


def _draw() -> None:
    """A fresh random half, key and counter: at import, and in a forked child (which
    would otherwise hand out its parent's next uids)."""
    global _random_half, _key, _counter
    _random_half = os.urandom(8).hex()
    _key = int.from_bytes(os.urandom(8), "big")
    _counter = itertools.count()


_draw()
os.register_at_fork(after_in_child=_draw)


def new_uid(prefix: str) -> str:
    """``prefix`` + ``-`` + 32 hex digits, e.g. ``task-3f2a...``, unique in this run."""
    # next() on itertools.count is atomic under the GIL: threads get distinct numbers.
    return f"{prefix}-{(next(_counter) * _MIX & _MASK) ^ _key:016x}{_random_half}"
