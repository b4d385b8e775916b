"""The graphs of the conformance suite: each builder makes one graph, run in every mode.

``tgs-coordinator tgs_conformance_cases:build_<case>`` imports this module (the suite
copies it into an empty directory first); in-process and in-memory runs import it too.
It is user code: a worker gets its functions by value, so they share no module state.

A builder is an ``async def`` with no arguments returning the graph, with its first tasks
created. Tasks the check looks at get a **key** (``create_task(..., key="name")``): the
outcome (the run's report, the same in every mode) finds them by it. What a task saw is
checked inside the graph where it can be (a task raises ``AssertionError`` when it saw
the wrong thing, so its status says it), since results are not in a report.

Everything a task does here uses the calls that work the same in-process and on a
worker: ``await graph.create_task``, ``await graph.aget_task``, ``await
graph.aget_task_by_key``, ``await graph.acancel_task``, ``await
task_node.aget_successors``, ``await task_node.aprepend_to_successor``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fractions
from typing import TYPE_CHECKING, Any

import trio

from trio_graph_scheduler import (
    GenericSchedulingCondition,
    GraphDefinitionError,
    ResultReleasedError,
    TaskGraph,
    TaskPolicy,
    UnknownUidError,
    WorkerLoop,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

#: How long a task that must be cancelled or time out would sleep: far longer than any
#: run of the suite may take (a hang is caught by the suite's own limits).
FOREVER = 3600.0
#: The timeout of the ``timeout`` case's slow task (seconds).
TIMEOUT = 0.5


async def ok(value: Any = None, **_: Any) -> Any:
    return value


async def fail(message: str = "expected failure", **_: Any) -> None:
    raise ValueError(message)


async def sleep_forever(**_: Any) -> None:
    await trio.sleep(FOREVER)


def _graph(functions: dict[str, Any], **kwargs: Any) -> TaskGraph:
    functions = {"ok": ok, "fail": fail, "sleep_forever": sleep_forever, **functions}
    return TaskGraph(functions, [WorkerLoop("default", 4)], **kwargs)


# -- conditions ---------------------------------------------------------------------------


async def build_conditions() -> TaskGraph:
    """Each mode of condition over two successes and a failure, and a cascade."""
    graph = _graph({})
    a = await graph.create_task("ok", ((1,), {}), key="a")
    b = await graph.create_task("ok", ((2,), {}), key="b")
    bad = await graph.create_task("fail", key="bad")
    good, mixed = [a.uid, b.uid], [a.uid, bad.uid]
    for name, mode, uids in [
        ("success_all_ok", "SUCCESS__ALL", good),
        ("success_all_mixed", "SUCCESS__ALL", mixed),
        ("complete_all_mixed", "COMPLETE__ALL", mixed),
        ("success_1_mixed", "SUCCESS__1", mixed),
        ("success_2_mixed", "SUCCESS__2", mixed),
        ("complete_2_mixed", "COMPLETE__2", mixed),
    ]:
        condition = GenericSchedulingCondition(graph, mode, uids)
        await graph.create_task("ok", waits_on=[condition.uid], key=name)
    # An implicit SUCCESS__ALL over task uids, and its cascade two levels down.
    skipped = await graph.create_task("ok", waits_on=[bad.uid], key="implicit_mixed")
    await graph.create_task("ok", waits_on=[skipped.uid], key="cascade")
    return graph


CONDITIONS_EXPECTED = {
    "a": "success",
    "b": "success",
    "bad": "failed",
    "success_all_ok": "success",
    "success_all_mixed": "precondition_failed",
    "complete_all_mixed": "success",
    "success_1_mixed": "success",
    "success_2_mixed": "precondition_failed",
    "complete_2_mixed": "success",
    "implicit_mixed": "precondition_failed",
    "cascade": "precondition_failed",
}


# -- dynamic growth -----------------------------------------------------------------------

#: How many children the ``growth`` case's spawner creates.
CHILDREN = 5


async def spawn_children(*, graph: Any, task_node: Any, **_: Any) -> str:
    """Create children and a join over them, from inside a running task."""
    uids = []
    for index in range(CHILDREN):
        child = await graph.create_task("square", ((index,), {}), key=f"child-{index}")
        uids.append(child.uid)
    condition = GenericSchedulingCondition(graph, "SUCCESS__ALL", uids)
    await graph.create_task("total", waits_on=[condition.uid], key="total")
    # The awaited form: a refusal raises here, in both modes.
    for mode, waits_on, error in [
        ("SUCCESS__9", uids, GraphDefinitionError),  # more than it has predecessors
        ("COMPLETE__ALL", ["task-" + "0" * 32], UnknownUidError),
    ]:
        try:
            await graph.acreate_condition(mode, waits_on)
        except error:
            pass
        else:
            raise AssertionError(f"acreate_condition({mode!r}, ...) did not raise")
    some = await graph.acreate_condition("COMPLETE__2", uids)
    await graph.create_task("square", ((10,), {}), waits_on=[some.uid], key="after_two")
    return str(task_node.uid)


async def square(number: int, **_: Any) -> int:
    return number * number


async def total(*, task_node: Any, **_: Any) -> int:
    results = sorted(p.task_result for p in task_node.get_predecessor_task_nodes())
    expected = sorted(i * i for i in range(CHILDREN))
    assert results == expected, f"saw {results}, expected {expected}"
    return sum(results)


async def build_growth() -> TaskGraph:
    graph = _graph({"spawn_children": spawn_children, "square": square, "total": total})
    await graph.create_task("spawn_children", key="spawner")
    return graph


# -- prepend ------------------------------------------------------------------------------


async def postpone(*, graph: Any, task_node: Any, **_: Any) -> str:
    """Make the successor ``after`` wait for a new task too, and see a bad prepend
    raise at the call."""
    extra = await graph.create_task("ok", (("extra",), {}), key="extra")
    await task_node.aprepend_to_successor("after", extra)
    try:
        await task_node.aprepend_to_successor("no_such_function", extra)
    except GraphDefinitionError:
        pass
    else:
        raise AssertionError("a prepend to an unknown function did not raise")
    try:
        await task_node.aprepend_to_successor("after", "task-" + "0" * 32)
    except UnknownUidError:
        pass
    else:
        raise AssertionError("a prepend of an unknown uid did not raise")
    return "postponed"


async def after(*, task_node: Any, **_: Any) -> list[str]:
    seen = sorted(str(p.task_result) for p in task_node.get_predecessor_task_nodes())
    assert seen == ["extra", "postponed"], f"saw predecessors {seen}"
    return seen


async def build_prepend() -> TaskGraph:
    graph = _graph({"postpone": postpone, "after": after})
    first = await graph.create_task("postpone", key="postpone")
    await graph.create_task("after", waits_on=[first.uid], key="after")
    return graph


# -- keys ---------------------------------------------------------------------------------

#: How many tasks race to create the same key.
RACERS = 6


async def race_for_key(*, graph: Any, **_: Any) -> str:
    await trio.lowlevel.checkpoint()
    node = await graph.create_task("ok", (("shared",), {}), key="shared")
    again = await graph.aget_task_by_key("shared")
    assert again is not None
    assert again.uid == node.uid, (node, again)
    assert again.key == "shared", again.key
    return str(node.uid)


async def same_uid(*, task_node: Any, graph: Any, **_: Any) -> str:
    uids = {p.task_result for p in task_node.get_predecessor_task_nodes()}
    assert len(uids) == 1, f"racers saw {len(uids)} different tasks for one key"
    (uid,) = uids
    shared = await graph.aget_task_by_key("shared")
    assert shared is not None
    assert shared.uid == uid, shared
    assert shared.task_status == "success", shared.task_status
    assert shared.task_result == "shared", shared.task_result
    assert await graph.aget_task_by_key("no-such-key") is None
    assert (await graph.aget_task(uid)).key == "shared"
    tuple_key = await graph.create_task("ok", key=("tuple", 1, b"x"))
    assert (await graph.aget_task_by_key(("tuple", 1, b"x"))).uid == tuple_key.uid
    for call in (
        lambda: graph.create_task("ok", key=["a list"]),
        lambda: graph.aget_task_by_key(["a list"]),
    ):
        try:
            await call()
        except GraphDefinitionError:
            pass
        else:
            raise AssertionError("a list key did not raise")
    return str(uid)


async def find_itself(*, graph: Any, task_node: Any, **_: Any) -> str:
    """A task that creates its own key, or looks itself up, gets its own node back."""
    assert (await graph.create_task("ok", key="itself")) is task_node
    assert (await graph.aget_task(task_node.uid)) is task_node
    assert (await graph.aget_task_by_key("itself")) is task_node
    assert task_node.key == "itself"
    return "found"


async def build_keys() -> TaskGraph:
    graph = _graph({"race_for_key": race_for_key, "same_uid": same_uid, "find_itself": find_itself})
    await graph.create_task("find_itself", key="itself")
    racers = [(await graph.create_task("race_for_key")).uid for _ in range(RACERS)]
    await graph.create_task("same_uid", waits_on=racers, key="check")
    # A key given by the builder, then again: the same task.
    first = await graph.create_task("ok", key="built")
    assert (await graph.create_task("fail", key="built")) is first
    return graph


# -- queries ------------------------------------------------------------------------------


async def ask(target: str, *, graph: Any, task_node: Any, **_: Any) -> str:
    """Look up a task by uid, with and without its result, and the successors of one."""
    found = await graph.aget_task(target)
    assert found.task_status == "success", found.task_status
    assert found.task_result == {"big": list(range(10))}, found.task_result
    assert found.attempts == 1, found.attempts
    light = await graph.aget_task(target, with_result=False)
    assert light.task_status == "success"
    try:
        await graph.aget_task("task-" + "0" * 32)
    except UnknownUidError:
        pass
    else:
        raise AssertionError("an unknown uid did not raise")
    pairs = await found.aget_successors("ask")
    assert [node.uid for node, _ in pairs] == [task_node.uid], pairs
    (condition,) = [condition for _, condition in pairs]
    assert str(condition.mode) == "SUCCESS__ALL", condition.mode
    assert task_node.attempts == 1, task_node.attempts
    return "answered"


async def build_queries() -> TaskGraph:
    graph = _graph({"ask": ask})
    target = await graph.create_task("ok", (({"big": list(range(10))},), {}), key="target")
    await graph.create_task("ask", ((target.uid,), {}), waits_on=[target.uid], key="ask")
    return graph


# -- cancel -------------------------------------------------------------------------------


async def cancel_it(target: str, *, graph: Any, **_: Any) -> bool:
    cancelled: bool = await graph.acancel_task(target, "not needed")
    try:
        await graph.acancel_task("task-" + "0" * 32)
    except UnknownUidError:
        pass
    else:
        raise AssertionError("cancelling an unknown uid did not raise")
    return cancelled


async def cancel_myself(*, graph: Any, task_node: Any, **_: Any) -> str:
    await graph.acancel_task(task_node.uid, "myself")
    await trio.sleep(FOREVER)  # the cancel stops it here
    return "not cancelled"


async def build_cancel() -> TaskGraph:
    graph = _graph({"cancel_it": cancel_it, "cancel_myself": cancel_myself})
    await graph.create_task("cancel_myself", key="self_cancel")
    sleeper = await graph.create_task("sleep_forever", key="sleeper")
    done = await graph.create_task("ok", key="done")
    await graph.create_task("cancel_it", ((sleeper.uid,), {}), key="canceller")
    # Cancelling a task that ended already changes nothing and says so.
    await graph.create_task("cancel_it", ((done.uid,), {}), waits_on=[done.uid], key="late")
    await graph.create_task("ok", waits_on=[sleeper.uid], key="after_sleeper")
    return graph


# -- retries and timeouts -----------------------------------------------------------------

#: Runs in all of the ``retries`` case's flaky task: it fails all but the last.
RUNS = 3


async def flaky(*, task_node: Any, **_: Any) -> int:
    attempts: int = task_node.attempts
    if attempts < RUNS:
        raise RuntimeError(f"attempt {attempts} fails")
    return attempts


async def build_retries() -> TaskGraph:
    policy = TaskPolicy(attempts=RUNS, backoff=0.01, max_backoff=0.01)
    graph = _graph(
        {"flaky": flaky, "always_fails": fail},
        task_policies={
            "flaky": policy,
            "always_fails": TaskPolicy(attempts=2, backoff=0.01, max_backoff=0.01),
        },
    )
    await graph.create_task("flaky", key="flaky")
    await graph.create_task("always_fails", key="always_fails")
    return graph


async def build_timeouts() -> TaskGraph:
    graph = _graph(
        {"slow": sleep_forever},
        task_policies={"slow": TaskPolicy(timeout=TIMEOUT)},
    )
    slow = await graph.create_task("slow", key="slow")
    await graph.create_task("ok", waits_on=[slow.uid], key="after_slow")
    await graph.create_task("ok", key="quick")
    return graph


# -- values -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Point:
    """A value msgpack cannot carry natively: it travels pickled."""

    x: int
    y: int


def sample_values() -> dict[str, Any]:
    return {
        "tuple": (1, (2, 3)),
        "list": [1, [2, 3]],
        "set": {1, 2},
        "frozenset": frozenset({"a"}),
        "bytes": b"\x00\xff",
        "big": 2**100,
        "negative_big": -(2**70),
        "float": 1.5,
        "none": None,
        "nested": {"k": [(1, b"x")], 2: "int key"},
        "fraction": fractions.Fraction(1, 3),
        "point": Point(1, 2),
    }


async def produce(**_: Any) -> dict[str, Any]:
    return sample_values()


async def consume(values: dict[str, Any], *, task_node: Any, **_: Any) -> str:
    (producer,) = task_node.get_predecessor_task_nodes()
    expected = sample_values()
    for name, got in [("argument", values), ("result", producer.task_result)]:
        for key, value in expected.items():
            assert got[key] == value, f"{name} {key}: {got[key]!r} != {value!r}"
            assert type(got[key]) is type(value), f"{name} {key}: {type(got[key])}"
        assert type(got["nested"]["k"][0]) is tuple, f"{name}: a nested tuple changed"
    return "same"


async def build_values() -> TaskGraph:
    graph = _graph({"produce": produce, "consume": consume})
    producer = await graph.create_task("produce", key="produce")
    await graph.create_task(
        "consume", ((sample_values(),), {}), waits_on=[producer.uid], key="consume"
    )
    return graph


# -- a predecessor's arguments -----------------------------------------------------------

#: Larger than an assignment carries of a predecessor's arguments (64 KiB encoded).
BIG_ARGUMENTS = b"a" * 200_000


async def takes(data: bytes, **_: Any) -> int:
    return len(data)


async def reads_arguments(*, task_node: Any, **_: Any) -> str:
    nodes = {node.task_handle: node for node in task_node.get_predecessor_task_nodes()}
    small, big = nodes["takes"], nodes["takes_big"]
    # Small arguments come with the task in every mode.
    assert small.task_arguments == ((b"s",), {}), small.task_arguments
    # Large ones: the awaited form works everywhere...
    assert await big.aget_task_arguments() == ((BIG_ARGUMENTS,), {})
    # ... and, once asked, the plain one too.
    assert big.task_arguments == ((BIG_ARGUMENTS,), {})
    return "read"


async def reads_too_soon(*, task_node: Any, **_: Any) -> str:
    """``task_arguments`` of a large predecessor's, without asking: in-process it is
    there; on a worker it raises, naming the awaitable form."""
    from trio_graph_scheduler.shared.errors import NotOnWorkerError

    (big,) = task_node.get_predecessor_task_nodes()
    try:
        arguments = big.task_arguments
    except NotOnWorkerError as exc:
        if "await node.aget_task_arguments()" not in str(exc):
            raise
        return "raised"
    assert arguments == ((BIG_ARGUMENTS,), {})
    return "there"


async def build_arguments() -> TaskGraph:
    graph = _graph(
        {"takes": takes, "takes_big": takes, "reads": reads_arguments, "soon": reads_too_soon}
    )
    small = await graph.create_task("takes", ((b"s",), {}), key="small")
    big = await graph.create_task("takes_big", ((BIG_ARGUMENTS,), {}), key="big")
    await graph.create_task("reads", waits_on=[small.uid, big.uid], key="reads")
    await graph.create_task("soon", waits_on=[big.uid], key="soon")
    return graph


# -- errors -------------------------------------------------------------------------------


class HTTPError(Exception):
    """An error with an attribute and a message of several lines, as httpx's have."""

    def __init__(self, message: str, status_code: int) -> None:
        super().__init__(message, status_code)
        self.status_code = status_code

    def __str__(self) -> str:
        return f"{self.args[0]}\nFor more information check: https://example.org/404"


async def http_error(**_: Any) -> None:
    raise HTTPError("Client error '404 Not Found'", 404)


async def no_kwargs(value: Any) -> Any:
    """A function that forgot ``**_``: calling it with the reserved kwargs fails."""
    return value


async def build_errors() -> TaskGraph:
    graph = _graph({"http_error": http_error, "no_kwargs": no_kwargs})
    await graph.create_task("http_error", key="http")
    await graph.create_task("no_kwargs", ((1,), {}), key="no_kwargs")
    return graph


# -- worker contexts ----------------------------------------------------------------------


@contextlib.asynccontextmanager
async def indexed_context(worker_index: int) -> AsyncIterator[dict[str, int]]:
    """An init that is an async context manager: tasks get what it yields."""
    yield {"index": worker_index}


def broken_init(worker_index: int) -> None:
    raise RuntimeError("no database today")


async def uses_context(*, worker_context: Any, **_: Any) -> int:
    assert isinstance(worker_context, dict), f"worker_context is {worker_context!r}"
    assert worker_context["index"] >= 0, worker_context
    return int(worker_context["index"])


async def build_contexts() -> TaskGraph:
    graph = TaskGraph(
        {"ok": ok, "uses_context": uses_context, "uses_db": ok},
        [
            WorkerLoop("default", 2),
            WorkerLoop("indexed", 2, ["uses_context"]),
            WorkerLoop("db", 1, ["uses_db"]),
        ],
        {"indexed": indexed_context, "db": broken_init},
    )
    for index in range(4):
        await graph.create_task("uses_context", key=f"context-{index}")
    await graph.create_task("uses_db", key="db_task")
    await graph.create_task("ok", key="plain")
    return graph


# -- results (run with release_results and a memory limit of RESULTS_LIMIT) ---------------

#: The case's memory limit: smaller than one blob, so every blob goes to disk at once and
#: each read comes back from there.
RESULTS_LIMIT = 4096


def blob(n: int) -> bytes:
    return bytes([n]) * 8192


async def make_blob(n: int, **_: Any) -> bytes:
    return blob(n)


async def read_blobs(*numbers: int, task_node: Any, **_: Any) -> int:
    """Each predecessor's result is the blob of the number given in the same place."""
    results = [p.task_result for p in task_node.get_predecessor_task_nodes()]
    if results != [blob(n) for n in numbers]:
        raise AssertionError(f"read {[r[:1] for r in results]}, not the blobs of {numbers}")
    return len(results)


async def _released(graph: Any, uid: str) -> bool:
    try:
        node = await graph.aget_task(uid)  # a worker is told here...
        node.task_result  # noqa: B018 - ... the graph's owner here
    except ResultReleasedError:
        return True
    return False


async def probe_results(released: str, kept: str, *, graph: Any, **_: Any) -> str:
    """A released result raises when read or waited on; a kept one reads back."""
    if not await _released(graph, released):
        raise AssertionError("a released result was read")
    if (await graph.aget_task(kept)).task_result != blob(2):
        raise AssertionError("the kept result did not read back")
    try:
        await graph.create_task("ok", waits_on=[released])
    except ResultReleasedError:
        pass
    else:
        raise AssertionError("a task was made to wait on a released result")
    # keep_result from a task (on a worker, the request carries it).
    spawned = await graph.create_task("make_blob", ((3,), {}), key="spawned", keep_result=True)
    dropped = await graph.create_task("make_blob", ((4,), {}), key="dropped")
    reader = await graph.create_task(
        "read_blobs", ((3, 4), {}), [spawned.uid, dropped.uid], key="spawned_reader"
    )
    await graph.create_task(
        "check_spawned", ((spawned.uid, dropped.uid), {}), [reader.uid], key="check_spawned"
    )
    return "probed"


async def check_spawned(kept: str, dropped: str, *, graph: Any, **_: Any) -> None:
    if (await graph.aget_task(kept)).task_result != blob(3):
        raise AssertionError("keep_result from a task did not keep it")
    if not await _released(graph, dropped):
        raise AssertionError("a result nobody waits for any more was not released")


async def build_results() -> TaskGraph:
    graph = _graph(
        {
            "make_blob": make_blob,
            "read_blobs": read_blobs,
            "probe_results": probe_results,
            "check_spawned": check_spawned,
        }
    )
    released = await graph.create_task("make_blob", ((1,), {}), key="released")
    kept = await graph.create_task("make_blob", ((2,), {}), key="kept", keep_result=True)
    reader = await graph.create_task(
        "read_blobs", ((1, 2), {}), [released.uid, kept.uid], key="reader"
    )
    await graph.create_task(
        "probe_results", ((released.uid, kept.uid), {}), [reader.uid], key="probe"
    )
    return graph


# -- timestamps ---------------------------------------------------------------------------


async def spawn_late(*, graph: Any, **_: Any) -> None:
    """Create a task while the run goes on: it is queued when it is created."""
    await graph.create_task("ok", (("late",), {}), key="late")


async def build_timestamps() -> TaskGraph:
    graph = _graph({"spawn_late": spawn_late})
    for i in range(3):
        await graph.create_task("ok", ((i,), {}), key=f"early-{i}")
    first = await graph.create_task("ok", (("first",), {}), key="first")
    await graph.create_task("ok", (("second",), {}), [first.uid], key="second")
    await graph.create_task("spawn_late", key="spawner")
    return graph
