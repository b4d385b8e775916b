"""A second module of the user's code, imported by ``tgs_e2e_graphs``.

Like the graph module, it exists only in the coordinator's directory: the coordinator
must ship it to workers along with the functions that use it.
"""

from __future__ import annotations

from dataclasses import dataclass

#: A module-level value the shipped code reads.
FACTOR = 3


def triple(i: int) -> int:
    return FACTOR * i


@dataclass(frozen=True)
class Point:
    x: int
    y: int
