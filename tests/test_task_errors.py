"""Errors users can read and act on, the same in-process and on workers (issue 12).

Each test runs one graph twice: with ``execute_graph`` and with
``run_local_cluster(in_memory=True)`` (a coordinator and a worker in this trio program,
every value serialised as over the network). Task functions here are user code, shipped
to the worker by value.
"""

from __future__ import annotations

import logging
import pathlib
import threading
from typing import Any

import pytest
import trio
import trio.testing

from trio_graph_scheduler import (
    FailedTask,
    RemoteTaskError,
    RunSummary,
    TaskGraph,
    TaskPolicy,
    TasksFailedError,
    TGSError,
    WorkerLoop,
    execute_graph,
)
from trio_graph_scheduler.coordinator.core.nodes import TaskNode
from trio_graph_scheduler.shared.errors import TaskTimeoutError, exception_headline
from trio_graph_scheduler.shared.states import EndReason
from trio_graph_scheduler.testing import run_local_cluster

MODES = ["in-process", "cluster"]


async def run(graph: TaskGraph, mode: str) -> RunSummary:
    """Run ``graph`` in ``mode``; return its summary."""
    if mode == "in-process":
        return await execute_graph(graph)
    with trio.fail_after(60):
        return await run_local_cluster(graph, workers=1, in_memory=True)


class HTTPStatusError(Exception):
    """Like httpx's: a message of two lines, the second a link, and a status code."""

    def __init__(self, message: str, *, status_code: int) -> None:
        super().__init__(message)
        self.status_code = status_code

    def __reduce__(self) -> tuple[Any, ...]:
        return _rebuild_http_error, (str(self), self.status_code)


def _rebuild_http_error(message: str, status_code: int) -> HTTPStatusError:
    return HTTPStatusError(message, status_code=status_code)


async def fetch(url: str, **_: Any) -> None:
    raise HTTPStatusError(
        f"Client error '404 Not Found' for url '{url}'\n"
        "For more information check: https://developer.mozilla.org/en-US/docs/Web/HTTP/404",
        status_code=404,
    )


@pytest.mark.parametrize("mode", MODES)
async def test_the_exception_and_its_attributes_survive(mode: str) -> None:
    graph = TaskGraph({"fetch": fetch}, [WorkerLoop("default", 1)])
    node = await graph.create_task("fetch", (("https://example.org/x",), None))
    summary = await run(graph, mode)
    assert node.task_status == "failed"
    error = node.task_exception
    assert type(error).__name__ == "HTTPStatusError"
    assert isinstance(error, Exception)
    assert getattr(error, "status_code", None) == 404
    # It keeps no frames alive; the text is exception_trace.
    assert error.__traceback__ is None
    assert node.exception_trace is not None
    assert node.exception_trace.rstrip().endswith("/404")
    headline = "HTTPStatusError: Client error '404 Not Found' for url 'https://example.org/x'"
    assert [(t.uid, t.function, t.headline) for t in summary.failed_tasks] == [
        (node.uid, "fetch", headline)
    ]
    assert summary.tasks_by_status == {"failed": 1}


class FetchError(Exception):
    """A plain exception class: attributes set on an instance travel with it."""


async def plain_attributes(**_: Any) -> None:
    error = FetchError("gone")
    error.status_code = 410  # type: ignore[attr-defined]
    raise error


@pytest.mark.parametrize("mode", MODES)
async def test_attributes_of_a_plain_exception_survive(mode: str) -> None:
    graph = TaskGraph({"f": plain_attributes}, [WorkerLoop("default", 1)])
    node = await graph.create_task("f")
    await run(graph, mode)
    # The same class as here: cloudpickle maps a class it shipped by value back to it.
    assert isinstance(node.task_exception, FetchError)
    assert getattr(node.task_exception, "status_code", None) == 410
    assert str(node.task_exception) == "gone"


async def noted(**_: Any) -> None:
    error = ValueError("bad row 7\nrow: 1;2;;")
    error.add_note("while reading data.csv")
    raise error


@pytest.mark.parametrize("mode", MODES)
async def test_headline_is_type_and_first_line_not_the_last_line_of_the_trace(
    mode: str,
) -> None:
    graph = TaskGraph({"noted": noted}, [WorkerLoop("default", 1)])
    node = await graph.create_task("noted")
    summary = await run(graph, mode)
    assert node.exception_trace is not None
    assert node.exception_trace.rstrip().endswith("while reading data.csv")
    assert summary.failed_tasks[0].headline == "ValueError: bad row 7"
    assert str(node.task_exception) == "bad row 7\nrow: 1;2;;"


def flaky(marker: str, **_: Any) -> str:
    """Fails the first time (it leaves a marker file), succeeds after: in both modes,
    as a worker's copy of this module shares no state with the test's."""
    path = pathlib.Path(marker)
    if not path.exists():
        path.touch()
        raise RuntimeError("flaky once")
    return "ok"


@pytest.mark.parametrize("mode", MODES)
async def test_a_retried_success_clears_its_earlier_error(
    mode: str, tmp_path: pathlib.Path
) -> None:
    graph = TaskGraph(
        {"flaky": flaky},
        [WorkerLoop("default", 1)],
        task_policies={"flaky": TaskPolicy(attempts=2, backoff=0.01)},
    )
    node = await graph.create_task("flaky", ((str(tmp_path / "failed-once"),), None))
    summary = await run(graph, mode)
    assert (node.task_status, node.task_result, node.attempts) == ("success", "ok", 2)
    assert node.exception_trace is None
    assert node.task_exception is None
    assert summary.failed_tasks == ()
    assert summary.succeeded


class HoldsALock(Exception):
    """Cannot be pickled: it holds a lock."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.lock = threading.Lock()


async def unpicklable(**_: Any) -> None:
    raise HoldsALock("cannot travel\nsecond line")


class NeedsTwoArguments(Exception):
    """Its __init__ wants what args does not hold: plain pickle could not load it."""

    def __init__(self, message: str, *, code: int) -> None:
        super().__init__(f"{message} (code {code})")
        self.code = code


async def two_arguments(**_: Any) -> None:
    raise NeedsTwoArguments("no luck", code=7)


@pytest.mark.parametrize("mode", MODES)
async def test_an_exception_whose_init_takes_other_arguments_travels(mode: str) -> None:
    graph = TaskGraph({"f": two_arguments}, [WorkerLoop("default", 1)])
    node = await graph.create_task("f")
    await run(graph, mode)
    error = node.task_exception
    assert isinstance(error, NeedsTwoArguments)
    assert (error.args, error.code) == (("no luck (code 7)",), 7)


def _refuse_to_load(message: str) -> Exception:
    raise RuntimeError("cannot be rebuilt here")


class RefusesToLoad(Exception):
    """Pickles, but its own __reduce__ makes it fail to load."""

    def __reduce__(self) -> tuple[Any, ...]:
        return _refuse_to_load, (str(self),)


async def unloadable(**_: Any) -> None:
    raise RefusesToLoad("no luck")


@pytest.mark.parametrize("function", [unpicklable, unloadable])
async def test_an_exception_that_cannot_travel_comes_as_a_stand_in(function: Any) -> None:
    graph = TaskGraph({"f": function}, [WorkerLoop("default", 1)])
    node = await graph.create_task("f")
    summary = await run(graph, "cluster")
    error = node.task_exception
    assert isinstance(error, RemoteTaskError)
    assert isinstance(error, TGSError)
    assert error.type_name == type_name(function)
    assert error.why
    expected = {"unpicklable": "cannot travel", "unloadable": "no luck"}
    assert summary.failed_tasks[0].headline == (
        f"{type_name(function)}: {expected[function.__name__]}"
    )
    # In-process the exception is the object itself.
    graph = TaskGraph({"f": function}, [WorkerLoop("default", 1)])
    node = await graph.create_task("f")
    await run(graph, "in-process")
    assert type(node.task_exception).__name__ == type_name(function)


def type_name(function: Any) -> str:
    return {"unpicklable": "HoldsALock", "unloadable": "RefusesToLoad"}[function.__name__]


async def slow(**_: Any) -> None:
    await trio.sleep(100)


@pytest.mark.parametrize("mode", MODES)
async def test_a_timeout_keeps_its_error_object(
    mode: str, autojump_clock: trio.testing.MockClock
) -> None:
    graph = TaskGraph(
        {"slow": slow},
        [WorkerLoop("default", 1)],
        task_policies={"slow": TaskPolicy(timeout=5)},
    )
    node = await graph.create_task("slow")
    await run(graph, mode)
    assert node.end_reason is EndReason.TIMED_OUT
    assert isinstance(node.task_exception, TaskTimeoutError)
    assert node.task_exception.seconds == 5


def no_kwargs(x: int) -> int:  # forgot **kwargs: the call fails with a TypeError
    return x


async def test_execute_graph_logs_each_failed_task_with_its_headline(
    caplog: pytest.LogCaptureFixture,
) -> None:
    graph = TaskGraph({"no_kwargs": no_kwargs, "fetch": fetch}, [WorkerLoop("default", 2)])
    forgot = await graph.create_task("no_kwargs", ((1,), None))
    missing = await graph.create_task("fetch", (("https://example.org/y",), None))
    with caplog.at_level(logging.INFO, logger="tgs"):
        summary = await execute_graph(graph)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert {r.name for r in warnings} == {"tgs.tasks"}
    messages = sorted(r.getMessage() for r in warnings)
    assert messages == sorted(
        [
            f"task {forgot.uid} (no_kwargs) failed: TypeError: no_kwargs() got an unexpected "
            "keyword argument 'task_node'",
            f"task {missing.uid} (fetch) failed: HTTPStatusError: Client error '404 Not Found' "
            "for url 'https://example.org/y'",
        ]
    )
    assert {t.uid for t in summary.failed_tasks} == {forgot.uid, missing.uid}
    assert not summary.succeeded


async def test_a_retry_is_logged_at_info_and_the_success_not_at_all(
    caplog: pytest.LogCaptureFixture, tmp_path: pathlib.Path
) -> None:
    graph = TaskGraph(
        {"flaky": flaky},
        [WorkerLoop("default", 1)],
        task_policies={"flaky": TaskPolicy(attempts=2, backoff=0.01)},
    )
    node = await graph.create_task("flaky", ((str(tmp_path / "failed-once"),), None))
    with caplog.at_level(logging.INFO, logger="tgs"):
        await execute_graph(graph)
    assert [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "tgs.tasks"] == [
        (
            logging.INFO,
            f"task {node.uid} (flaky) failed (attempt 1) and runs again: RuntimeError: flaky once",
        )
    ]


async def test_raise_on_failure_raises_one_error_listing_the_failed_tasks() -> None:
    graph = TaskGraph({"fetch": fetch, "ok": lambda **_: 1}, [WorkerLoop("default", 1)])
    failing = await graph.create_task("fetch", (("https://example.org/z",), None))
    await graph.create_task("ok")
    with pytest.raises(TasksFailedError) as caught:
        await execute_graph(graph, raise_on_failure=True)
    error = caught.value
    assert isinstance(error, TGSError)
    assert [t.uid for t in error.summary.failed_tasks] == [failing.uid]
    assert str(error) == (
        "1 task(s) failed:\n"
        f"  {failing.uid} (fetch): HTTPStatusError: Client error '404 Not Found' for url "
        "'https://example.org/z'"
    )


async def test_raise_on_failure_returns_the_summary_when_nothing_failed() -> None:
    graph = TaskGraph({"ok": lambda **_: 1}, [WorkerLoop("default", 1)])
    await graph.create_task("ok")
    summary = await execute_graph(graph, raise_on_failure=True)
    assert summary.tasks_by_status == {"success": 1}
    assert summary.succeeded


def test_headline_of_a_stand_in_reads_as_the_original() -> None:
    assert exception_headline(RemoteTaskError("KeyError", "'x'\nmore")) == "KeyError: 'x'"
    assert exception_headline(ValueError()) == "ValueError"
    assert exception_headline(ValueError("x" * 500)).endswith("...")
    assert len(exception_headline(ValueError("x" * 500))) == 160


def test_task_node_keeps_the_exception_in_a_slot() -> None:
    assert "task_exception" in TaskNode.__slots__


def test_a_summarys_repr_shows_the_first_failed_tasks() -> None:
    failed = tuple(FailedTask(f"task-{i}", "f", "ValueError: x", "raised") for i in range(7))
    summary = RunSummary({"failed": 7}, False, failed)
    text = repr(summary)
    assert text.startswith("RunSummary(tasks_by_status={'failed': 7}, interrupted=False, ")
    assert "task-4" in text
    assert "task-5" not in text
    assert text.endswith(", ... and 2 more))")
    assert repr(RunSummary({"success": 1})) == (
        "RunSummary(tasks_by_status={'success': 1}, interrupted=False, failed_tasks=())"
    )
