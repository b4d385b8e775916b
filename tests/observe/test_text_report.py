"""The JSON run report: its contents after a real run, its schema, and its documentation."""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import trio
import trio.testing
from text_graphs import Hand, make_graph, timed

from trio_graph_scheduler import TaskGraph, TaskPolicy, WorkerLoop, execute_graph
from trio_graph_scheduler.coordinator.observe.report import (
    REPORT_SCHEMA,
    SCHEMA_VERSION,
    build_report,
    schema_errors,
    stream_report,
    write_report,
)
from trio_graph_scheduler.coordinator.server import CoordinatorStatistics
from trio_graph_scheduler.coordinator.worker_session import WorkerRecord

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

DOCS = Path(__file__).parents[2] / "docs" / "report.md"


async def run_mixed_graph() -> tuple[TaskGraph, dict[str, str]]:
    """A real in-process run: a success, a flaky task retried once, a failure, a task
    skipped after it, and a running task cancelled by another."""
    flaky_runs: list[int] = []

    async def double(x: int, **_: Any) -> int:
        return 2 * x

    async def flaky(**_: Any) -> dict[str, bool]:
        flaky_runs.append(1)
        if len(flaky_runs) == 1:
            raise RuntimeError("flaky once")
        return {"ok": True}

    async def broken(**_: Any) -> None:
        raise ValueError("bad row")

    async def slow(**_: Any) -> None:
        await trio.sleep_forever()

    async def stopper(uid: str, *, graph: TaskGraph, **_: Any) -> None:
        await trio.testing.wait_all_tasks_blocked()  # slow is running by now
        graph.cancel_task(uid, "not needed")

    functions: dict[str, Callable[..., Any]] = {"double": double, "flaky": flaky}
    functions |= {"broken": broken, "slow": slow, "stopper": stopper}
    graph = TaskGraph(
        functions,
        [WorkerLoop("default", 4, None), WorkerLoop("slow", 1, ["slow"])],
        task_policies={"flaky": TaskPolicy(attempts=2, backoff=0.0, max_backoff=0.0)},
    )
    ok = await graph.create_task("double", ((21,), {}))
    retried = await graph.create_task("flaky")
    failed = await graph.create_task("broken")
    skipped = await graph.create_task("double", ((1,), {}), [ok.uid, failed.uid])
    cancelled = await graph.create_task("slow")
    await graph.create_task("stopper", ((cancelled.uid,), {}))
    with trio.fail_after(10):
        await execute_graph(graph)
    uids = {"ok": ok.uid, "retried": retried.uid, "failed": failed.uid}
    return graph, uids | {"skipped": skipped.uid, "cancelled": cancelled.uid}


async def test_report_of_a_real_run(tmp_path: Path) -> None:
    graph, uids = await run_mixed_graph()
    report = build_report(graph, started_at=1000.0, ended_at=1002.5)
    assert schema_errors(report) == []
    assert report["schema_version"] == SCHEMA_VERSION
    assert (report["mode"], report["duration"], report["counters"]) == ("in-process", 2.5, None)
    assert report["workers"] == []
    assert report["summary"] == {
        "tasks": 6,
        "by_status": {
            "created": 0,
            "waiting_for_predecessors": 0,
            "ready_for_execution": 0,
            "in_progress": 0,
            "success": 3,
            "failed": 2,
            "precondition_failed": 1,
        },
        "succeeded": False,
        "runs": 6,
        "retries": 1,
        "lost": 0,
        "conditions": 1,
        "workers": 0,
    }
    assert report["loops"] == [
        {
            "name": "default",
            "concurrency": 4,
            "functions": ["double", "flaky", "broken", "stopper"],
        },
        {"name": "slow", "concurrency": 1, "functions": ["slow"]},
    ]
    tasks = {task["uid"]: task for task in report["tasks"]}
    ok, retried = tasks[uids["ok"]], tasks[uids["retried"]]
    assert (ok["status"], ok["result_type"], ok["error"], ok["worker"]) == (
        "success",
        "int",
        None,
        "local",
    )
    assert ok["duration"] == ok["ended_at"] - ok["started_at"] >= 0
    assert ok["queued_at"] <= ok["started_at"]
    # Issue 12 changed this on purpose: a retry that succeeded clears the error of the
    # attempt before (the report used to show an error on a success).
    assert (retried["status"], retried["attempts"], retried["result_type"]) == (
        "success",
        2,
        "dict",
    )
    assert retried["error"] is None  # a success shows no error; its first run keeps it
    # Its first run is kept, with how it ended; a task that ran once has no earlier runs.
    (first_run,) = retried["earlier_runs"]
    assert first_run["worker"] == "local"
    assert first_run["end_reason"] == "raised"
    assert first_run["error"].endswith("RuntimeError: flaky once\n")
    assert first_run["started_at"] <= first_run["ended_at"] <= retried["started_at"]
    assert ok["earlier_runs"] == []
    failed = tasks[uids["failed"]]
    assert failed["error"].startswith("Traceback (most recent call last):")
    assert failed["error"].endswith("ValueError: bad row\n")
    assert (failed["status"], failed["result_type"]) == ("failed", None)
    skipped = tasks[uids["skipped"]]
    (condition,) = report["conditions"]
    assert skipped == {
        "uid": uids["skipped"],
        "key": None,
        "function": "double",
        "loop": "default",
        "status": "precondition_failed",
        "worker": None,
        "attempts": 0,
        "losses": 0,
        "shared_losses": 0,
        "queued_at": None,
        "started_at": None,
        "ended_at": skipped["ended_at"],
        "duration": None,
        "error": None,
        "result_type": None,
        "waits_on": [condition["uid"]],
        "earlier_runs": [],
    }
    assert condition == {
        "uid": condition["uid"],
        "mode": "SUCCESS__ALL",
        "status": "failed",
        "predecessors": [uids["ok"], uids["failed"]],
        "successors": [uids["skipped"]],
        "successes": 1,
        "completions": 2,
    }
    cancelled = tasks[uids["cancelled"]]
    assert (cancelled["status"], cancelled["error"], cancelled["loop"]) == (
        "failed",
        "cancelled: not needed\n",
        "slow",
    )

    check_written(tmp_path, report)


def check_written(folder: Path, report: dict[str, Any]) -> None:
    """The report written and read back is the same, and no temporary file is left."""
    path = folder / "report.json"
    write_report(path, report)
    assert json.loads(path.read_text(encoding="utf-8")) == report
    assert [p.name for p in folder.iterdir()] == ["report.json"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@contextlib.contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


async def test_the_report_is_private_and_the_pictures_follow_the_umask(tmp_path: Path) -> None:
    # As docs/report.md and docs/operations.md say (issue 16: undocumented).
    graph, _ = await run_mixed_graph()
    report = build_report(graph, started_at=1000.0, ended_at=1002.5)
    path = tmp_path / "report.json"
    path.write_text("{}")
    path.chmod(0o644)
    with umask(0o022):
        write_report(path, report)  # replacing a readable file: the new one is private
        graph.draw(tmp_path / "graph.html")
        graph.draw_timeline(tmp_path / "timeline.html")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for name in ("graph.html", "timeline.html"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644, name
    with umask(0o077):  # how to keep the pictures private too
        graph.draw(tmp_path / "private.html")
    assert stat.S_IMODE((tmp_path / "private.html").stat().st_mode) == 0o600


def test_report_of_a_distributed_run_lists_workers_and_their_tasks() -> None:
    graph = make_graph({"html": 1})
    a, b, c = (graph.create_task_nowait(name) for name in ("f", "f", "html"))
    hand = Hand(graph)
    hand.run(a, worker="worker-1")
    hand.start(b, worker="worker-1")
    graph.scheduler.task_lost(b, "connection lost")  # worker-1 vanished
    hand.run(b, worker="worker-2")
    hand.run(c, worker="worker-2")
    timed(b, 5.0, 6.0)
    workers = [
        WorkerRecord("worker-1", "a:1", ["default"], 1.0, 3.0, "connection lost", [(b.uid, "f")]),
        WorkerRecord("worker-2", "b:2", ["default", "html"], 2.0),
    ]
    counters = CoordinatorStatistics(workers_joined=2, workers_lost=1, tasks_lost=1)
    report = build_report(graph, workers=workers, counters=counters, started_at=0.0, ended_at=None)
    assert schema_errors(report) == []
    assert (report["mode"], report["ended_at"], report["duration"]) == ("distributed", None, None)
    assert report["counters"] == {
        "workers_joined": 2,
        "workers_lost": 1,
        "tasks_lost": 1,
        "results_dropped": 0,
        "tasks_taken_back": 0,
    }
    assert report["workers"] == [
        {
            "id": "worker-1",
            "name": "a:1",
            "loops": ["default"],
            "joined_at": 1.0,
            "left_at": 3.0,
            "left_because": "connection lost",
            "tasks": [a.uid],
            "lost_while_running": [{"uid": b.uid, "function": "f"}],
        },
        {
            "id": "worker-2",
            "name": "b:2",
            "loops": ["default", "html"],
            "joined_at": 2.0,
            "left_at": None,
            "left_because": None,
            "tasks": [b.uid, c.uid],
            "lost_while_running": [],
        },
    ]

    (task_b,) = (task for task in report["tasks"] if task["uid"] == b.uid)
    assert (task_b["attempts"], task_b["losses"], task_b["duration"]) == (2, 1, 1.0)
    assert report["summary"]["lost"] == 1
    assert report["summary"]["workers"] == 2
    # Counters given as a mapping work the same.
    mapped = build_report(graph, workers=workers, counters={"x": 1}, started_at=0, ended_at=1)
    assert mapped["counters"] == {"x": 1}


def test_an_empty_graph_has_an_empty_report() -> None:
    report = build_report(make_graph(), started_at=5.0, ended_at=5.0)
    assert schema_errors(report) == []
    assert (report["tasks"], report["conditions"], report["summary"]["succeeded"]) == ([], [], True)


# -- the schema ---------------------------------------------------------------------------


def test_schema_errors_finds_what_is_wrong() -> None:
    report = build_report(make_graph(), started_at=5.0, ended_at=None)
    assert schema_errors({**report, "extra": 1}) == ["$: unexpected 'extra'"]
    without = {key: value for key, value in report.items() if key != "mode"}
    assert schema_errors(without) == ["$: missing 'mode'"]
    assert schema_errors({**report, "started_at": "now"}) == [
        "$.started_at: expected number, got str"
    ]
    assert schema_errors({**report, "started_at": True}) == [
        "$.started_at: expected number, got bool"
    ]
    assert schema_errors({**report, "mode": "local"}) == [
        "$.mode: 'local' is not one of ['in-process', 'distributed']"
    ]
    summary = {**report["summary"], "runs": -1}
    assert schema_errors({**report, "summary": summary}) == ["$.summary.runs: -1 is below 0"]
    loops = [{"name": "default", "concurrency": 1, "functions": [3]}]
    assert schema_errors({**report, "loops": loops}) == [
        "$.loops[0].functions[0]: expected string, got int"
    ]


def test_the_schema_is_standard_json_schema() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.Draft202012Validator.check_schema(REPORT_SCHEMA)
    graph = make_graph()
    Hand(graph).run(graph.create_task_nowait("f"))
    jsonschema.validate(build_report(graph, started_at=0.0, ended_at=1.0), REPORT_SCHEMA)


# -- the documentation --------------------------------------------------------------------


def schema_fields(schema: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Every field's dotted path (``tasks[].uid``) and its type as docs/report.md writes it."""
    fields: dict[str, str] = {}
    for name, sub in schema.get("properties", {}).items():
        path = f"{prefix}{name}"
        fields[path] = type_words(sub)
        fields |= schema_fields(sub, path + ".")
        if "items" in sub:
            fields |= schema_fields(sub["items"], path + "[].")
    return fields


def type_words(schema: Mapping[str, Any]) -> str:
    types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
    words = []
    for kind in types:
        if kind == "array":
            kind = f"array of {schema['items']['type']}"
        elif kind == "object" and isinstance(schema.get("additionalProperties"), dict):
            kind = f"map of {schema['additionalProperties']['type']}"
        words.append(kind)
    return " or ".join(words)


def documented_fields() -> dict[str, str]:
    rows = re.findall(r"^\| `([^`]+)` \| ([^|]+?) \|", DOCS.read_text(encoding="utf-8"), re.M)
    assert len(rows) == len(dict(rows)), "a field is documented twice"
    return dict(rows)


def test_docs_list_exactly_the_schema_fields_with_their_types() -> None:
    assert documented_fields() == schema_fields(REPORT_SCHEMA)


def test_the_example_in_the_docs_fits_the_schema() -> None:
    (example,) = re.findall(r"```json\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.S)
    assert schema_errors(json.loads(example)) == []


def test_a_streamed_report_is_the_same_file_as_one_built_whole(tmp_path: Path) -> None:
    # stream_report writes a task at a time what write_report(build_report(...)) writes.
    graph = make_graph({"html": 1})
    a, b = graph.create_task_nowait("f"), graph.create_task_nowait("html", key="ünïcode")
    graph.create_task_nowait("f", None, [a.uid, b.uid])
    hand = Hand(graph)
    hand.run(a, worker="worker-1")
    hand.run(b, worker="worker-1")
    workers = [WorkerRecord("worker-1", "a:1", ["default", "html"], 1.0)]
    counters = CoordinatorStatistics(workers_joined=1)
    arguments: dict[str, Any] = {"workers": workers, "counters": counters}
    for name, extra in (("run", arguments), ("empty", {})):
        whole, streamed = tmp_path / f"{name}-whole.json", tmp_path / f"{name}-streamed.json"
        report = build_report(graph, **extra, started_at=0.0, ended_at=2.0)
        write_report(whole, report)
        stream_report(streamed, graph, **extra, started_at=0.0, ended_at=2.0)
        assert streamed.read_bytes() == whole.read_bytes()
        assert stat.S_IMODE(streamed.stat().st_mode) == 0o600
        graph = make_graph()  # then a graph with no tasks: empty arrays
