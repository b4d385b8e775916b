"""The three graph shapes both benchmarks measure, for tgs and for the peers it is compared with.

10,000 independent tasks; 2,000 chains of 5; 5,000 leaves joined by one task. Each shape
builds itself as a tgs graph (tasks running the graph's ``noop`` function), as a Dask
graph dict, and as Ray submissions. The peers' no-op function is passed in rather than
defined here: defined in the running script, it is pickled by value, so the peers' worker
processes need not import this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    from trio_graph_scheduler import TaskGraph

#: A Dask graph dict and the keys to compute.
DaskGraph = tuple[dict[str, Any], list[str]]


@dataclass(frozen=True)
class Shape:
    """A graph shape, buildable as a tgs graph, a Dask graph dict, and Ray submissions."""

    name: str
    description: str
    tasks: int
    #: Creates the shape's tasks in a graph with a ``noop`` function.
    build_tgs: Callable[[TaskGraph], None]
    #: The Dask graph of ``noop`` (the peer's function); keys start with ``prefix``.
    build_dask: Callable[[Callable[..., Any], str], DaskGraph]
    #: Submits the shape to Ray (given the remote function); returns every ref.
    submit_ray: Callable[[Any], list[Any]]


def independent_shape(n: int) -> Shape:
    def build_tgs(graph: TaskGraph) -> None:
        create = graph.create_task_nowait
        for _ in range(n):
            create("noop")

    def build_dask(noop: Callable[..., Any], prefix: str) -> DaskGraph:
        dsk: dict[str, Any] = {f"{prefix}t-{i}": (noop,) for i in range(n)}
        return dsk, list(dsk)

    def submit_ray(remote: Any) -> list[Any]:
        return [remote.remote() for _ in range(n)]

    return Shape("independent", f"{n:,} independent", n, build_tgs, build_dask, submit_ray)


def chains_shape(chains: int, length: int) -> Shape:
    def build_tgs(graph: TaskGraph) -> None:
        create = graph.create_task_nowait
        for _ in range(chains):
            uid = create("noop").uid
            for _ in range(length - 1):
                uid = create("noop", None, [uid]).uid

    def build_dask(noop: Callable[..., Any], prefix: str) -> DaskGraph:
        dsk: dict[str, Any] = {}
        for c in range(chains):
            dsk[f"{prefix}c-{c}-0"] = (noop,)
            for i in range(1, length):
                dsk[f"{prefix}c-{c}-{i}"] = (noop, f"{prefix}c-{c}-{i - 1}")
        return dsk, list(dsk)

    def submit_ray(remote: Any) -> list[Any]:
        refs = []
        for _ in range(chains):
            ref = remote.remote()
            refs.append(ref)
            for _ in range(length - 1):
                ref = remote.remote(ref)
                refs.append(ref)
        return refs

    description = f"{chains:,} chains of {length}"
    return Shape("chains", description, chains * length, build_tgs, build_dask, submit_ray)


def fan_in_shape(leaves: int) -> Shape:
    def build_tgs(graph: TaskGraph) -> None:
        create = graph.create_task_nowait
        uids = [create("noop").uid for _ in range(leaves)]
        create("noop", None, uids)

    def build_dask(noop: Callable[..., Any], prefix: str) -> DaskGraph:
        dsk: dict[str, Any] = {f"{prefix}leaf-{i}": (noop,) for i in range(leaves)}
        # A list of keys inside a task is replaced by the list of their results.
        dsk[f"{prefix}join"] = (noop, list(dsk))
        return dsk, list(dsk)

    def submit_ray(remote: Any) -> list[Any]:
        refs = [remote.remote() for _ in range(leaves)]
        refs.append(remote.remote(*refs))
        return refs

    return Shape("fan-in", f"{leaves:,} leaves -> 1", leaves + 1, build_tgs, build_dask, submit_ray)


def fan_out_shape(n: int) -> Shape:
    """Issue 14's fan-out/fan-in: one start task, ``n`` no-ops waiting on it, one join."""

    def build_tgs(graph: TaskGraph) -> None:
        create = graph.create_task_nowait
        first = create("noop").uid
        uids = [create("noop", None, [first]).uid for _ in range(n)]
        create("noop", None, [first, *uids])

    def build_dask(noop: Callable[..., Any], prefix: str) -> DaskGraph:
        dsk: dict[str, Any] = {f"{prefix}start": (noop,)}
        for i in range(n):
            dsk[f"{prefix}leaf-{i}"] = (noop, f"{prefix}start")
        dsk[f"{prefix}join"] = (noop, [f"{prefix}leaf-{i}" for i in range(n)])
        return dsk, list(dsk)

    def submit_ray(remote: Any) -> list[Any]:
        first = remote.remote()
        refs = [remote.remote(first) for _ in range(n)]
        return [first, *refs, remote.remote(*refs)]

    return Shape("fan-out", f"1 -> {n:,} -> 1", n + 2, build_tgs, build_dask, submit_ray)


def shapes(scale: int) -> list[Shape]:
    """The three shapes, at 1/``scale`` of the full sizes."""
    return [
        independent_shape(10_000 // scale),
        chains_shape(2_000 // scale, 5),
        fan_in_shape(5_000 // scale),
    ]
