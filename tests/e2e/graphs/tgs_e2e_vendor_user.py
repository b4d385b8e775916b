"""A graph module that uses a package installed outside ``sysconfig``'s paths, in a
``dist-packages`` directory on ``PYTHONPATH`` (as Debian installs them): the test gives
the coordinator and the worker each their own copy of it, which say where they are."""

from __future__ import annotations

import os
from typing import Any

import tgs_e2e_vendored
from tgs_e2e_helpers import out_dir, write_json

from trio_graph_scheduler import TaskGraph, WorkerLoop


async def where(out: str, **_: Any) -> None:
    """Writes which copy of the package it ran with: the worker's own if the package was
    treated as installed (pickled by reference), the coordinator's if shipped by value."""
    write_json(os.path.join(out, "where.json"), tgs_e2e_vendored.where())


async def build_where() -> TaskGraph:
    graph = TaskGraph({"where": where}, [WorkerLoop("default", 1)])
    await graph.create_task("where", ((out_dir(),), None))
    return graph
