"""Graph builders and task functions for the fault tests (``tests/e2e/test_e2e_faults.py``).

Like ``tgs_e2e_graphs``, this module lives only in the coordinator's directory (the tests
copy it there with :meth:`Processes.add_graph_module`), or in the test process when the
test runs the coordinator itself; workers get its functions shipped by value. It imports
only the helper module, which the tests always copy beside it.

Every builder reads the directory tasks write to from ``TGS_E2E_DIR`` on the coordinator
and passes it to the tasks as an argument. Tasks append one JSON line per event to
``events.jsonl`` there: every *execution* of a task records a ``start`` with a ``run`` id
unique to that execution, and an ``end`` if it ran to its end, so a test can tell runs
from recorded results. ``report`` tasks write their predecessors' statuses, results and
traces to ``report-<label>.json``.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from typing import Any

import trio
from tgs_e2e_helpers import POLL_LIMIT, out_dir, record, wait_for_file_blocking, write_json

from trio_graph_scheduler import GenericSchedulingCondition, TaskGraph, TaskPolicy, WorkerLoop

#: How many ``step`` tasks ``build_kill`` has, and its loop's limit.
KILL_STEPS = 8
KILL_LIMIT = 4
#: How many ``held`` tasks ``build_freeze`` has.
FREEZE_TASKS = 4
#: How many ``plain`` tasks ``build_lost`` has besides the one that kills its worker.
LOST_PLAIN = 3
#: The policies of ``build_policies``.
SLOW_TIMEOUT = 0.5
FLAKY_ATTEMPTS = 3
#: How long a cancelled ``victim`` spends in its ``finally:`` before it records that.
VICTIM_CLEANUP = 0.5


def new_run() -> str:
    """An id for one execution of a task, unique across processes and reruns."""
    return f"{os.getpid()}-{uuid.uuid4().hex[:12]}"


def count_run(path: str) -> int:
    """Append a line for this run to ``path``; return how many runs it now counts."""
    with open(path, "a") as file:
        file.write(f"{os.getpid()}\n")
    with open(path) as file:
        return len(file.read().splitlines())


def any_exists(paths: list[str]) -> bool:
    return any(os.path.exists(path) for path in paths)


async def wait_for_any(*paths: str) -> None:
    """Poll until one of ``paths`` exists; raise after :data:`POLL_LIMIT` seconds."""
    with trio.move_on_after(POLL_LIMIT):
        # Another process creates the file: there is no trio.Event to wait on.
        while not any_exists(list(paths)):  # noqa: ASYNC110
            await trio.sleep(0.02)
        return
    raise TimeoutError(f"none of {paths} appeared")


# -- task functions ------------------------------------------------------------------


async def step(out: str, i: int, **_: Any) -> dict[str, Any]:
    """Run until the test creates ``release-<i>`` or ``release``; return this run's id."""
    run = new_run()
    record(out, "start", f"step-{i}", run=run)
    await wait_for_any(os.path.join(out, f"release-{i}"), os.path.join(out, "release"))
    record(out, "end", f"step-{i}", run=run)
    return {"task": i, "run": run, "pid": os.getpid()}


def held(out: str, i: int, **_: Any) -> dict[str, Any]:
    """A sync task (it runs in a thread, which nothing can cancel): run until ``release``.

    Frozen with its worker and thawed later, it still runs to its end and returns, so
    its worker has a late result to deliver.
    """
    run = new_run()
    record(out, "start", f"held-{i}", run=run)
    wait_for_file_blocking(os.path.join(out, "release"))
    record(out, "end", f"held-{i}", run=run)
    return {"task": i, "run": run, "pid": os.getpid()}


async def tail(out: str, **_: Any) -> str:
    """Keep the graph open until the test creates ``finish``."""
    record(out, "start", "tail")
    await wait_for_any(os.path.join(out, "finish"))
    return "finished"


async def plain(out: str, i: int, **_: Any) -> int:
    record(out, "start", f"plain-{i}", run=new_run())
    return 10 * i


async def kill_my_worker(out: str, **_: Any) -> None:
    """SIGKILL the process this runs in: the worker, every time."""
    record(out, "start", "kill_my_worker", run=new_run())
    os.kill(os.getpid(), signal.SIGKILL)


async def slow(out: str, **_: Any) -> str:
    """Far slower than its policy's timeout; records when it was stopped."""
    record(out, "start", "slow", run=new_run())
    try:
        await trio.sleep(POLL_LIMIT)
    finally:
        record(out, "stopped", "slow")
    return "too late"


async def flaky(out: str, **_: Any) -> int:
    """Fail on the first two runs, succeed on the third; return which run it was."""
    record(out, "start", "flaky", run=new_run())
    runs = count_run(os.path.join(out, "flaky-runs"))
    if runs < FLAKY_ATTEMPTS:
        raise RuntimeError(f"flaky on purpose, run {runs}")
    return runs


async def victim(out: str, **_: Any) -> str:
    """Signal it started (``victim-started``), then run until cancelled.

    Its ``finally:`` creates ``victim-cleanup``, then takes :data:`VICTIM_CLEANUP` seconds
    (shielded) before it records ``finally``: the loop's slot must stay taken until then.
    """
    record(out, "start", "victim", run=new_run())
    write_json(os.path.join(out, "victim-started"), {"pid": os.getpid()})
    try:
        await trio.sleep(POLL_LIMIT)
    finally:
        write_json(os.path.join(out, "victim-cleanup"), {"pid": os.getpid()})
        with trio.CancelScope(shield=True):
            await trio.sleep(VICTIM_CLEANUP)
        record(out, "finally", "victim")
    record(out, "end", "victim")
    return "never cancelled"


async def next_in_line(out: str, **_: Any) -> str:
    record(out, "start", "next_in_line", run=new_run())
    return "ran"


async def after_victim(out: str, **_: Any) -> str:
    record(out, "start", "after_victim", run=new_run())
    return "ran"


async def innocent(out: str, i: int, **_: Any) -> int:
    """A short task that harms nobody."""
    run = new_run()
    record(out, "start", f"innocent-{i}", run=run)
    await trio.sleep(0.5)
    record(out, "end", f"innocent-{i}", run=run)
    return i


async def exits(out: str, **_: Any) -> None:
    """Ends the process it runs in at once, as ``os._exit(1)`` does."""
    record(out, "start", "poison", run=new_run())
    os._exit(1)


async def segfaults(out: str, **_: Any) -> None:
    """Reads address 0 through ctypes: SIGSEGV, the process dies."""
    import ctypes  # only the worker that runs it needs it

    record(out, "start", "poison", run=new_run())
    ctypes.string_at(0)


#: How long ``blocks`` holds its worker's event loop: several heartbeat timeouts of the
#: poison test (2 s), so that its worker is dropped as silent each time.
BLOCK_SECONDS = 5.0


async def blocks(out: str, **_: Any) -> None:
    """Sleeps synchronously inside ``async def``: its worker's event loop stops, so the
    worker neither heartbeats nor answers until the sleep is over."""
    record(out, "start", "poison", run=new_run())
    time.sleep(BLOCK_SECONDS)  # noqa: ASYNC251 - the fault under test


def _only_on_workers() -> None:
    raise ImportError("No module named 'only_on_workers'")


class OnlyOnWorkers:
    """Pickles on the worker; loading it raises, as a class only workers have would."""

    def __reduce__(self) -> tuple[Any, tuple[()]]:
        return (_only_on_workers, ())


async def unreadable(out: str, **_: Any) -> OnlyOnWorkers:
    """Returns a value the coordinator cannot unpickle."""
    record(out, "start", "poison", run=new_run())
    return OnlyOnWorkers()


async def report(out: str, label: str, *, task_node: Any, **_: Any) -> int:
    """Write every predecessor's status, result and trace to ``report-<label>.json``."""
    predecessors = [
        {
            "uid": p.uid,
            "handle": p.task_handle,
            "arguments": p.task_arguments,
            "status": str(p.task_status),
            "result": p.task_result,
            "trace": p.exception_trace,
        }
        for p in task_node.get_predecessor_task_nodes()
    ]
    write_json(os.path.join(out, f"report-{label}.json"), predecessors)
    return len(predecessors)


FUNCTIONS = {
    "step": step,
    "held": held,
    "tail": tail,
    "plain": plain,
    "kill_my_worker": kill_my_worker,
    "slow": slow,
    "flaky": flaky,
    "victim": victim,
    "next_in_line": next_in_line,
    "after_victim": after_victim,
    "report": report,
    "innocent": innocent,
    "blocks": blocks,
    "exits": exits,
    "segfaults": segfaults,
    "unreadable": unreadable,
}

#: How many ``innocent`` tasks ``build_poison`` has beside its poison, and the loop's limit.
POISON_INNOCENTS = 6
POISON_LIMIT = 4


async def _report_on(graph: TaskGraph, out: str, label: str, uids: list[str]) -> None:
    """A ``report`` that runs once every task of ``uids`` has ended, however."""
    everything = GenericSchedulingCondition(graph, "COMPLETE__ALL", uids)
    await graph.create_task("report", ((out, label), {}), waits_on=[everything.uid])


# -- graph builders ------------------------------------------------------------------


async def build_kill() -> TaskGraph:
    """:data:`KILL_STEPS` ``step`` tasks in a loop of :data:`KILL_LIMIT`, and a report."""
    out = out_dir()
    graph = TaskGraph(FUNCTIONS, [WorkerLoop("default", KILL_LIMIT, None)])
    uids = [(await graph.create_task("step", ((out, i), {}))).uid for i in range(KILL_STEPS)]
    await _report_on(graph, out, "kill", uids)
    return graph


async def build_freeze() -> TaskGraph:
    """:data:`FREEZE_TASKS` sync ``held`` tasks, a ``tail`` in a loop of its own that
    keeps the graph open until ``finish``, and a report on all of them."""
    out = out_dir()
    graph = TaskGraph(
        FUNCTIONS,
        [WorkerLoop("default", FREEZE_TASKS, None), WorkerLoop("tail", 1, ["tail"])],
    )
    uids = [(await graph.create_task("held", ((out, i), {}))).uid for i in range(FREEZE_TASKS)]
    uids.append((await graph.create_task("tail", ((out,), {}))).uid)
    await _report_on(graph, out, "freeze", uids)
    return graph


async def build_lost() -> TaskGraph:
    """A task that kills its worker, in loop ``deadly``; :data:`LOST_PLAIN` plain tasks
    and the report in ``default``."""
    out = out_dir()
    graph = TaskGraph(
        FUNCTIONS,
        [WorkerLoop("default", 2, None), WorkerLoop("deadly", 1, ["kill_my_worker"])],
    )
    uids = [(await graph.create_task("kill_my_worker", ((out,), {}))).uid]
    uids += [(await graph.create_task("plain", ((out, i), {}))).uid for i in range(LOST_PLAIN)]
    await _report_on(graph, out, "lost", uids)
    return graph


async def build_policies() -> TaskGraph:
    """``slow`` with a timeout, ``flaky`` with three attempts, and a report."""
    out = out_dir()
    graph = TaskGraph(
        FUNCTIONS,
        [WorkerLoop("default", 3, None)],
        task_policies={
            "slow": TaskPolicy(timeout=SLOW_TIMEOUT),
            "flaky": TaskPolicy(attempts=FLAKY_ATTEMPTS, backoff=0.05, max_backoff=0.1),
        },
    )
    uids = [
        (await graph.create_task("slow", ((out,), {}))).uid,
        (await graph.create_task("flaky", ((out,), {}))).uid,
    ]
    await _report_on(graph, out, "policies", uids)
    return graph


def cancel_graph(out: str) -> tuple[TaskGraph, dict[str, str]]:
    """For a coordinator in the test process: ``victim`` and ``next_in_line`` share loop
    ``solo`` (limit 1); ``after_victim`` waits on ``victim``. Returns the graph and the
    tasks' uids by handle."""
    graph = TaskGraph(
        FUNCTIONS,
        [WorkerLoop("default", 1, None), WorkerLoop("solo", 1, ["victim", "next_in_line"])],
    )
    first = graph.create_task_nowait("victim", ((out,), {}))
    second = graph.create_task_nowait("next_in_line", ((out,), {}))
    after = graph.create_task_nowait("after_victim", ((out,), {}), [first.uid])
    return graph, {"victim": first.uid, "next_in_line": second.uid, "after_victim": after.uid}


def cancel_race_graph(out: str) -> TaskGraph:
    """For a coordinator in the test process: only a ``tail`` (loop ``tail``) that keeps
    the graph open until ``finish``; the test adds a ``victim`` while it runs."""
    graph = TaskGraph(FUNCTIONS, [WorkerLoop("default", 1, None), WorkerLoop("tail", 1, ["tail"])])
    graph.create_task_nowait("tail", ((out,), {}))
    return graph


async def build_poison() -> TaskGraph:
    """One poison task (the function named by ``TGS_E2E_POISON``: exits, segfaults or
    unreadable), then :data:`POISON_INNOCENTS` innocent ones, in one loop of
    :data:`POISON_LIMIT`, and a report on all of them."""
    out = out_dir()
    graph = TaskGraph(FUNCTIONS, [WorkerLoop("default", POISON_LIMIT, None)])
    uids = [(await graph.create_task(os.environ["TGS_E2E_POISON"], ((out,), {}))).uid]
    uids += [
        (await graph.create_task("innocent", ((out, i), {}))).uid for i in range(POISON_INNOCENTS)
    ]
    await _report_on(graph, out, "poison", uids)
    return graph
