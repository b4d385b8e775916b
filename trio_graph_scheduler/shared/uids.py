"""Uids for graphs, tasks and conditions: a prefix and 32 hex digits, as the seed had.

The 32 digits cost no system call (``os.urandom`` per uid was 8% of the coordinator's
samples when building a large graph) and no Python code per uid: 16 random digits drawn
once per process (again in a forked child) follow 16 made from a counter ``n``. Of
those, the first 2 come from ``n % 256`` through a random permutation and the other 14
from ``n // 256`` scrambled (multiplied by an odd constant modulo 2**56, a one-to-one
map, then XORed with a random key): distinct counts give distinct uids, and the first
few digits still tell tasks apart, as people type them (``tgs-status --why``, the
dashboard's search). Two processes (a coordinator and its workers, which choose the
uids of the tasks they create) draw different random halves, so their uids do not
collide; the coordinator still refuses a uid it knows.

Each prefix has a stream of uids made of C iterators only (``map``, ``zip``,
``itertools``): a uid is one string concatenation, about a tenth of formatting a
number per uid, which a graph of a million tasks does a million times. Made of C
iterators, taking the next uid runs no Python code, so threads that take uids at once
get distinct ones (under the GIL) as they did from ``itertools.count``.
"""

from __future__ import annotations

import functools
import itertools
import operator
import os
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Iterator

#: Odd, so multiplying by it modulo 2**56 maps distinct counts to distinct numbers.
_MIX: Final = 0x9E3779B97F4A7C15
#: The counter's 14 digits (after the 2 of the head).
_TAIL_MASK: Final = 2**56 - 1
#: How many uids share a tail: one per head, the first 2 digits.
_HEADS: Final = 256

_random_half = ""
_streams: dict[str, Iterator[str]] = {}


def _draw() -> None:
    """Fresh random digits and streams: at import, and in a forked child (which would
    otherwise hand out its parent's next uids)."""
    global _random_half, _streams
    _random_half = os.urandom(8).hex()
    # Made now, not on first use, so that two threads never both make one.
    _streams = {prefix: _open_stream(prefix) for prefix in ("task", "condition")}


def _open_stream(prefix: str) -> Iterator[str]:
    """Every uid of ``prefix``, in counter order: block ``b`` is the 256 heads followed
    by the tail of ``b``. Its keys are its own: a task's and a condition's uids share
    no digits but the random half."""
    head_key = os.urandom(1)[0]
    tail_key = int.from_bytes(os.urandom(7), "big")
    # A permutation of 0..255 (times an odd number modulo 256, XOR a key), so that the
    # first two digits of consecutive uids differ.
    heads = [f"{prefix}-{(i * 167 & 0xFF) ^ head_key:02x}" for i in range(_HEADS)]
    scrambled = map(tail_key.__xor__, map(_TAIL_MASK.__and__, map(_MIX.__mul__, itertools.count())))
    tails = map("%014x%s".__mod__, zip(scrambled, itertools.repeat(_random_half)))
    blocks = map(functools.partial(map, operator.add, heads), map(itertools.repeat, tails))
    return itertools.chain.from_iterable(blocks)


_draw()
os.register_at_fork(after_in_child=_draw)


def new_uid(prefix: str) -> str:
    """``prefix`` + ``-`` + 32 hex digits, e.g. ``task-3f2a...``, unique in this run."""
    try:
        return next(_streams[prefix])
    except KeyError:
        # A prefix other than a task's or a condition's (a graph's): rare. setdefault is
        # one step, so threads that both get here share one stream.
        return next(_streams.setdefault(prefix, _open_stream(prefix)))
