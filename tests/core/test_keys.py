"""Task keys in the core: one task per key, atomically; lookups; where keys show."""

from __future__ import annotations

from typing import Any

import pytest

from trio_graph_scheduler import (
    GraphDefinitionError,
    TaskGraph,
    UnknownUidError,
    WorkerLoop,
    execute_graph,
)
from trio_graph_scheduler.coordinator.observe.report import build_report, schema_errors


async def noop(**_: Any) -> None:
    pass


def make_graph() -> TaskGraph:
    return TaskGraph({"noop": noop, "other": noop}, [WorkerLoop("default", 2)])


async def test_a_key_creates_one_task_and_returns_it_again() -> None:
    graph = make_graph()
    first = await graph.create_task("noop", ((1,), {}), key="https://a/")
    again = await graph.create_task("other", ((2,), {}), key="https://a/")
    assert again is first
    assert first.key == "https://a/"
    assert len(graph.nodes) == 1
    assert graph.get_task_by_key("https://a/") is first
    assert await graph.aget_task_by_key("https://a/") is first
    graph.check_invariants()


async def test_a_task_without_a_key_has_none_and_costs_no_index() -> None:
    graph = make_graph()
    node = await graph.create_task("noop")
    assert node.key is None
    assert graph._keys is None
    assert graph.get_task_by_key("anything") is None
    assert graph.get_task_by_key(None) is None
    with pytest.raises(GraphDefinitionError, match="key"):
        graph.get_task_by_key(["no key is a list"])


@pytest.mark.parametrize("key", ["u", b"b", 3, 2.5, True, ("a", 1, (b"x", 2.0))])
async def test_keys_of_every_allowed_type(key: object) -> None:
    graph = make_graph()
    node = graph.create_task_nowait("noop", key=key)
    assert graph.create_task_nowait("noop", key=key) is node


@pytest.mark.parametrize("key", [["a"], {"a": 1}, object(), ("a", ["b"]), float("nan")])
async def test_other_keys_are_refused_at_the_call(key: object) -> None:
    graph = make_graph()
    with pytest.raises(GraphDefinitionError, match="key"):
        await graph.create_task("noop", key=key)
    assert not graph.nodes


async def test_a_bad_call_with_an_existing_key_still_raises() -> None:
    graph = make_graph()
    await graph.create_task("noop", key="k")
    with pytest.raises(GraphDefinitionError):
        await graph.create_task("nope", key="k")
    with pytest.raises(UnknownUidError):
        await graph.create_task("noop", waits_on=["task-nope"], key="k")


async def test_a_key_dedupes_tasks_created_by_running_tasks() -> None:
    """Check-then-create raced once tasks awaited between the two; a key cannot."""
    import trio.lowlevel

    async def spawn(url: str, *, graph: TaskGraph, **_: Any) -> str:
        await trio.lowlevel.checkpoint()  # let the other spawners interleave
        node = await graph.create_task("noop", ((url,), {}), key=url)
        return node.uid

    graph = TaskGraph({"spawn": spawn, "noop": noop}, [WorkerLoop("default", 4)])
    for _ in range(4):
        graph.create_task_nowait("spawn", (("u",), {}))
    await execute_graph(graph)
    spawned = [n.task_result for n in graph.nodes.values() if n.task_handle == "spawn"]
    assert len(set(spawned)) == 1
    assert sum(1 for n in graph.nodes.values() if n.task_handle == "noop") == 1


async def test_keys_show_in_the_report_and_explain() -> None:
    graph = make_graph()
    keyed = await graph.create_task("noop", key=("site", b"\x00", 1))
    plain = await graph.create_task("noop")
    report = build_report(graph, started_at=0.0, ended_at=None)
    assert schema_errors(report) == []
    by_uid = {task["uid"]: task for task in report["tasks"]}
    assert by_uid[keyed.uid]["key"] == "('site', b'\\x00', 1)"
    assert by_uid[plain.uid]["key"] is None
    text = graph.explain(keyed.uid)
    assert "key ('site', b'\\x00', 1)" in text
    graph2 = make_graph()
    node = await graph2.create_task("noop", key="https://example.org/")
    assert graph2.explain("https://example.org/") == graph2.explain(node.uid)
    with pytest.raises(UnknownUidError):
        graph2.explain("https://nowhere/")


async def test_the_awaitable_twins_answer_as_the_sync_calls() -> None:
    graph = make_graph()
    node = await graph.create_task("noop")
    assert await graph.aget_task(node.uid) is node
    with pytest.raises(UnknownUidError):
        await graph.aget_task("task-nope")
    assert await node.aget_successors("noop") == []
    assert await graph.acancel_task(node.uid) is True
    assert await graph.acancel_task(node.uid) is False


async def test_tgs_status_why_accepts_a_key() -> None:
    from unittest import mock

    from trio_graph_scheduler import CoordinatorConfig
    from trio_graph_scheduler.coordinator import server
    from trio_graph_scheduler.coordinator.observe.status_reply import build_status_reply

    graph = make_graph()
    node = await graph.create_task("noop", key="https://example.org/a")
    with mock.patch.object(server, "pickle_for_workers", return_value={}):
        coordinator = server.Coordinator(graph, CoordinatorConfig())
    by_key = build_status_reply(coordinator, why="https://example.org/a")
    by_uid = build_status_reply(coordinator, why=node.uid)
    assert not by_key.why_unknown
    assert by_key.explanation == by_uid.explanation
    assert by_key.explanation is not None
    assert "key 'https://example.org/a'" in by_key.explanation
    unknown = build_status_reply(coordinator, why="https://example.org/nope")
    assert unknown.why_unknown
