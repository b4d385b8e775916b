"""``TaskGraph``: the public graph, the core's graph state plus its views.

The views (pictures, ``explain``) live in :mod:`..observe` and are imported when called,
so that building and running a graph never loads them; the core stays free of them.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from .core.graph import TaskGraphCore

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence
    from pathlib import Path

    from .core.graph import ContextInit
    from .core.policy import TaskPolicy
    from .observe.explain import ConnectedWorker, LostWorker


class TaskGraph(TaskGraphCore):
    """A graph of tasks and the scheduling conditions between them.

    Args:
        functions: maps a name to a callable, async or not (plain functions run in a
            worker thread). Each receives its task's args and kwargs plus ``task_node``,
            ``graph`` and ``worker_context`` keyword arguments.
        worker_loops: :class:`WorkerLoop` objects (any objects with ``name``,
            ``concurrency`` and ``functions`` work); one must be named ``default``.
        worker_context_init_functions: maps a loop name to ``init(worker_index)``, async or
            not, whose return value every task run by that worker slot receives as
            ``worker_context`` (``{}`` for loops without one). A value that is an async
            context manager is entered, and exited when the slot stops (its teardown).
            ``worker_index`` is unique across the slots of the loop, cluster-wide in
            distributed mode. An init that raises fails the tasks its slot takes.
        task_policies: maps a function name to its :class:`TaskPolicy` (retries with
            backoff, a timeout); functions not named run once, with no time limit.
        clock: what timestamps tasks (``queued_at``, ``started_at``, ``ended_at``);
            wall time (``time.time``) unless a test passes a fake.

    Raises:
        GraphDefinitionError: a function that is not callable, bad loops (see
            :func:`~.loops.assign_functions_to_loops`), or an init function for a loop
            that does not exist.
    """

    def __init__(
        self,
        functions: Mapping[str, Callable[..., Any]],
        worker_loops: Iterable[Any],
        worker_context_init_functions: Mapping[str, ContextInit] | None = None,
        *,
        task_policies: Mapping[str, TaskPolicy] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(
            functions,
            worker_loops,
            worker_context_init_functions,
            task_policies=task_policies,
            clock=clock,
        )

    def to_dot(self) -> str:
        """The graph in Graphviz DOT, coloured by status like :meth:`draw`."""
        from .observe.drawing import graph_to_dot

        return graph_to_dot(self)

    def draw(self, path: str | Path = "graph.html") -> None:
        """Draw the graph: the graph as a yellow circle, tasks as boxes labelled with their
        key or function and a summary of their arguments, conditions as dots, laid out
        left to right; one colour per task status, edges styled by kind and coloured by
        the outcome they carry, all explained by a legend.

        A path ending in ``.dot`` or ``.gv`` gets Graphviz DOT; any other gets one
        self-contained HTML page of SVG (a few kilobytes for a small graph) that opens
        with no network, fits the window's width, and shows details when hovering. Needs
        no extra.
        """
        from .observe.drawing import draw_graph

        draw_graph(self, path)

    def draw_timeline(self, path: str | Path = "timeline.html") -> None:
        """Draw the run as a timeline (a "task stream") into one self-contained HTML file.

        One row per worker slot (``local #0``, ``worker-2 #1``, ...), one bar per run of
        a task, from its start to its end, coloured by function: a task that was retried
        (or run again after its worker was lost) has a bar for every attempt. A task's
        final failure has a solid red outline, its earlier attempts red hatching,
        unfinished runs a dashed white outline and white hatching. Hovering shows a run's
        task uid, key, function, attempt (``1 of 2``), worker, start, duration, status
        and error; the title counts the tasks that never ran. The time axis zooms and
        pans (mouse wheel, drag, or a from/to range). Hand-written SVG: opens with no
        network and needs nothing installed.
        """
        from .observe.timeline import draw_timeline

        draw_timeline(self, path)

    def explain(
        self,
        uid: str,
        *,
        workers: Sequence[ConnectedWorker] | None = None,
        lost_workers: Iterable[LostWorker] = (),
    ) -> str:
        """Why a task has not run (yet), or how it ended, in one short paragraph.

        For example ``task-… (render) is ready and waits for a free slot: loop html is
        full: 4 of 4 running, 12 ready ahead of it.`` A query: O(its conditions'
        predecessors + its place in its loop's queue); it changes nothing.

        Args:
            uid: a task's uid (a condition's uid says what the condition still needs).
            workers: the connected workers (each with ``worker_id`` and ``loops``) in
                distributed mode; ``None`` in-process, where every loop has its slots.
            lost_workers: the workers that left (``Coordinator.workers.values()``): the
                answer names each one lost while running the task.

        Raises:
            UnknownUidError: no task or condition has this uid.
        """
        from .observe.explain import explain_task

        return explain_task(self, uid, workers=workers, lost_workers=lost_workers)
