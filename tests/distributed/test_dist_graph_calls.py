"""The graph a task sees on a worker: what it asks the coordinator, what it cannot do,
and what its calls cost in frames (issue 12).

The semantics shared with in-process runs are in tests/conformance; here is what only a
worker has: the calls that raise ``NotOnWorkerError`` instead of an ``AttributeError``,
``create_task_nowait`` with a key, and the batching of concurrent calls.
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest
import trio
import trio.testing
from memcluster import TIME_LIMIT, run_cluster

from trio_graph_scheduler import NotOnWorkerError, TaskGraph, TaskNode, WorkerLoop
from trio_graph_scheduler.protocol import CreateTaskRequest, Message, Reply
from trio_graph_scheduler.shared.pump import ConnectionPump
from trio_graph_scheduler.worker.remote_graph import RemoteGraph, RemoteTaskNode

#: How many tasks the batching test's task creates.
MANY = 1000


async def noop(*_: Any, **__: Any) -> None:
    pass


async def try_in_process_only(*, graph: Any, task_node: Any, **_: Any) -> list[str]:
    """Each call only the graph's owner answers at once; what each raised."""
    said = []
    for call in (
        lambda: graph.cancel_task(task_node.uid),
        lambda: task_node.get_successors("noop"),
        lambda: graph.explain(task_node.uid),
        lambda: graph.statistics(),
        lambda: task_node.waits_on,
        lambda: graph.create_task_nowait("noop", key="k"),
    ):
        try:
            call()
        except NotOnWorkerError as exc:
            said.append(str(exc))
    try:
        graph.no_such_attribute  # noqa: B018
    except AttributeError as exc:
        said.append(f"AttributeError: {exc}")
    return said


async def test_in_process_only_calls_raise_a_clear_error_on_a_worker(
    autojump_clock: trio.testing.MockClock,
) -> None:
    graph = TaskGraph({"try": try_in_process_only, "noop": noop}, [WorkerLoop("default", 1)])
    node = graph.create_task_nowait("try")
    with trio.fail_after(TIME_LIMIT):
        await run_cluster(graph, 1)
    said = node.task_result
    assert len(said) == 7, said
    assert all("not available to a task running on a worker" in line for line in said[:6])
    assert "await graph.acancel_task(uid)" in said[0]
    assert "await task_node.aget_successors(name)" in said[1]
    assert "await graph.create_task(..., key=K)" in said[5]
    assert said[6].startswith("AttributeError: ")


def public_names(cls: type) -> set[str]:
    names = {name for name in dir(cls) if not name.startswith("_")}
    names |= {name for name in getattr(cls, "__slots__", ()) if not name.startswith("_")}
    return names


class _NoLink:
    def next_request_id(self) -> int:
        return 1


@pytest.mark.parametrize(
    ("in_process", "make_remote"),
    [
        (TaskGraph, lambda: RemoteGraph(_NoLink(), 1)),  # type: ignore[arg-type]
        (
            TaskNode,
            lambda: RemoteTaskNode(
                RemoteGraph(_NoLink(), 1),  # type: ignore[arg-type]
                "task-1",
                "noop",
                None,
                "in_progress",
            ),
        ),
    ],
    ids=["graph", "task_node"],
)
def test_everything_public_in_process_is_there_or_said_on_a_worker(
    in_process: type, make_remote: Any
) -> None:
    """No public name of the in-process graph or node is an AttributeError on a worker."""
    remote = make_remote()
    missing = []
    for name in sorted(public_names(in_process) - {"WorkerLoop"}):
        try:
            getattr(remote, name)
        except NotOnWorkerError:
            continue
        except AttributeError:
            missing.append(name)
    assert missing == []


async def test_the_awaitable_forms_have_the_same_signatures() -> None:
    pairs = [
        (TaskGraph.aget_task, RemoteGraph.aget_task),
        (TaskGraph.aget_task_by_key, RemoteGraph.aget_task_by_key),
        (TaskGraph.acancel_task, RemoteGraph.acancel_task),
        (TaskGraph.acreate_condition, RemoteGraph.acreate_condition),
        (TaskGraph.create_task, RemoteGraph.create_task),
        (TaskNode.aget_successors, RemoteTaskNode.aget_successors),
        (TaskNode.aprepend_to_successor, RemoteTaskNode.aprepend_to_successor),
    ]
    for in_process, remote in pairs:
        assert list(inspect.signature(in_process).parameters) == list(
            inspect.signature(remote).parameters
        ), in_process.__name__


# -- what calls cost --------------------------------------------------------------------


async def create_many_concurrently(*, graph: Any, **_: Any) -> int:
    async with trio.open_nursery() as nursery:
        for index in range(MANY):
            nursery.start_soon(lambda i=index: graph.create_task("noop", ((i,), {}), key=i))
    return MANY


async def create_many_in_turn(*, graph: Any, **_: Any) -> int:
    for index in range(MANY):
        await graph.create_task("noop", ((index,), {}), key=index)
    return MANY


async def create_many_nowait(*, graph: Any, **_: Any) -> int:
    for index in range(MANY):
        graph.create_task_nowait("noop", ((index,), {}))
    return MANY


class FrameLog:
    """Counts the frames each side sends that carry messages of a type."""

    def __init__(self) -> None:
        self.frames: dict[type[Message], int] = {}

    def wrap(self, send: Any) -> Any:
        log = self

        async def send_and_count(pump: ConnectionPump[Any], messages: list[Any]) -> None:
            frames = list(pump._encode(messages))
            for kind in {type(message) for message in messages}:
                log.frames[kind] = log.frames.get(kind, 0) + len(frames)
            for frame in frames:
                await pump._ws.send_message(frame)

        return send_and_count


@pytest.mark.parametrize(
    ("function", "most_frames"),
    [
        # A nursery of awaited calls: everything queued before the link's sender runs
        # goes in one frame, and so do the replies.
        (create_many_concurrently, 10),
        (create_many_nowait, 10),
        # One awaited call after another: a round trip each, by construction.
        (create_many_in_turn, MANY),
    ],
    ids=["nursery", "nowait", "in-turn"],
)
async def test_frames_per_thousand_created_tasks(
    function: Any,
    most_frames: int,
    monkeypatch: pytest.MonkeyPatch,
    autojump_clock: trio.testing.MockClock,
    capsys: pytest.CaptureFixture[str],
) -> None:
    log = FrameLog()
    monkeypatch.setattr(ConnectionPump, "send", log.wrap(ConnectionPump.send))
    graph = TaskGraph({"spawn": function, "noop": noop}, [WorkerLoop("default", 2)])
    spawner = graph.create_task_nowait("spawn")
    with trio.fail_after(TIME_LIMIT * 10):
        await run_cluster(graph, 1)
    assert spawner.task_status == "success", spawner.exception_trace
    assert len(graph.nodes) == MANY + 1
    requests, replies = log.frames.get(CreateTaskRequest, 0), log.frames.get(Reply, 0)
    with capsys.disabled():
        print(f"\n{function.__name__}: {MANY} creates in {requests} frames, {replies} replies")
    assert requests <= most_frames
    assert replies <= most_frames


# -- an answer too large to send --------------------------------------------------------

#: The smallest frame limit a worker may set (it sends no larger frame either), and a
#: size of which one value fits in it and two do not.
SMALL_FRAME = 2**16
HALF = 40_000
#: A value limit smaller than ``HALF``.
SMALL_VALUE = 30_000


async def big(size: int, **_: Any) -> bytes:
    return b"x" * size


async def ask_for_big(target: str, *, graph: Any, **_: Any) -> str:
    from trio_graph_scheduler.shared.errors import ValueTooLargeError

    # Another task's end is no event this task can wait on: it asks again.
    while (await graph.aget_task(target, with_result=False)).task_status != "success":  # noqa: ASYNC110
        await trio.sleep(0.1)
    try:
        await graph.aget_task(target)  # with its result: more than this worker accepts
    except ValueTooLargeError as exc:
        return str(exc)
    return "no error"


async def test_an_answer_too_large_for_the_worker_raises_in_the_task(
    autojump_clock: trio.testing.MockClock,
) -> None:
    graph = TaskGraph({"big": big, "ask": ask_for_big}, [WorkerLoop("default", 2)])
    target = graph.create_task_nowait("big", ((HALF,), {}))
    asker = graph.create_task_nowait("ask", ((target.uid,), {}))
    # Issue 10: values larger than a frame go as streams; what the worker refuses is a
    # value over its --max-value-bytes (it used to be an answer over its frame limit).
    with trio.fail_after(TIME_LIMIT):
        await run_cluster(graph, 1, max_frame_bytes=SMALL_FRAME, max_value_bytes=SMALL_VALUE)
    assert asker.task_status == "success", asker.exception_trace
    assert asker.task_result.startswith(
        "the answer to this graph call cannot be sent to the worker: "
    )
    assert "(30,000 bytes, --max-value-bytes)" in asker.task_result
