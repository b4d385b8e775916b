"""The conformance suite's harness: a case is a builder and a check, run in every mode.

A :class:`Case` names a builder of :mod:`tgs_conformance_cases` (``async def build_x()
-> TaskGraph``, importable by a real coordinator as ``MODULE:FUNC``) and a check of the
run's :class:`Outcome`. The outcome is read from the run's report (the JSON ``--report``
writes, built the same way in-process), so a check sees the same fields in every mode,
and a difference between modes fails the check in the mode that differs.

To add a case (errors, worker_context, ...): write ``build_<name>`` in
``tgs_conformance_cases.py`` (give the tasks you look at a key), add a ``Case`` to
:data:`CASES` with a check over the outcome, and mark it ``real=True`` to run it with real
processes too.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import tgs_conformance_cases as cases

from trio_graph_scheduler import CoordinatorConfig, execute_graph
from trio_graph_scheduler.coordinator.observe.report import build_report
from trio_graph_scheduler.testing import run_local_cluster

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from pathlib import Path

    from trio_graph_scheduler import TaskGraph

#: The modes, in the order they are tried.
IN_PROCESS = "in-process"
IN_MEMORY = "in-memory"
REAL = "real"

#: The module real coordinators import the builders from.
MODULE = cases.__name__


@dataclass(frozen=True)
class Outcome:
    """How a run ended, as its report says: the tasks, found by key or function."""

    report: dict[str, Any]

    @classmethod
    def from_file(cls, path: Path) -> Outcome:
        """The outcome of a real run, from its ``--report`` file."""
        report: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return cls(report)

    @property
    def tasks(self) -> list[dict[str, Any]]:
        tasks: list[dict[str, Any]] = self.report["tasks"]
        return tasks

    def keyed(self, key: str) -> dict[str, Any]:
        """The one task with ``key``."""
        found = [task for task in self.tasks if task["key"] == key]
        assert len(found) == 1, f"{len(found)} tasks have key {key!r}\n{self.describe()}"
        return found[0]

    def status(self, key: str) -> str:
        status: str = self.keyed(key)["status"]
        return status

    def of_function(self, function: str) -> list[dict[str, Any]]:
        return [task for task in self.tasks if task["function"] == function]

    def describe(self) -> str:
        """Every task in one line each, for a failing check's message."""
        return "\n".join(
            f"  {t['key']!r:24} {t['function']:14} {t['status']:20} attempts={t['attempts']} "
            f"error={(t['error'] or '').strip().splitlines()[-1:]}"
            for t in self.tasks
        )

    def expect_statuses(self, expected: dict[str, str]) -> None:
        """Each key's task ended with the status given."""
        got = {key: self.status(key) for key in expected}
        assert got == expected, f"statuses differ\n{self.describe()}"


@dataclass(frozen=True)
class Case:
    """A builder of the cases module, and what its run must come to."""

    #: ``build_<name>`` in the cases module builds its graph.
    name: str
    check: Callable[[Outcome], None]
    #: Also run with real tgs-coordinator and tgs-worker processes (slow).
    real: bool = False
    #: Workers in the distributed modes.
    workers: int = 2
    #: Run with ``release_results`` and this ``memory_limit`` (bytes; None: none), in
    #: every mode (the options of execute_graph, CoordinatorConfig and tgs-coordinator).
    release_results: bool = False
    memory_limit: int | None = None

    @property
    def options(self) -> dict[str, Any]:
        """The keyword arguments of execute_graph and CoordinatorConfig."""
        return {"release_results": self.release_results, "memory_limit": self.memory_limit}

    @property
    def cli_options(self) -> list[str]:
        """The same, as ``tgs-coordinator`` options."""
        options = ["--release-results"] if self.release_results else []
        if self.memory_limit is not None:
            options += ["--memory-limit", str(self.memory_limit)]
        return options

    @property
    def builder(self) -> Callable[[], Awaitable[TaskGraph]]:
        builder: Callable[[], Awaitable[TaskGraph]] = getattr(cases, f"build_{self.name}")
        return builder

    @property
    def spec(self) -> str:
        """``MODULE:FUNC`` for ``tgs-coordinator``."""
        return f"{MODULE}:build_{self.name}"


async def run_in_process(case: Case) -> Outcome:
    graph = await case.builder()
    await execute_graph(graph, **case.options)
    return Outcome(build_report(graph, started_at=0.0, ended_at=None))


async def run_in_memory(case: Case) -> Outcome:
    graph = await case.builder()
    config = CoordinatorConfig(**case.options)
    await run_local_cluster(graph, workers=case.workers, config=config, in_memory=True)
    return Outcome(build_report(graph, started_at=0.0, ended_at=None))


# -- the cases' checks ----------------------------------------------------------------------


def check_conditions(outcome: Outcome) -> None:
    outcome.expect_statuses(cases.CONDITIONS_EXPECTED)


def check_growth(outcome: Outcome) -> None:
    children = {f"child-{i}": "success" for i in range(cases.CHILDREN)}
    outcome.expect_statuses(
        {"spawner": "success", "total": "success", "after_two": "success", **children}
    )
    assert len(outcome.tasks) == cases.CHILDREN + 3


def check_prepend(outcome: Outcome) -> None:
    outcome.expect_statuses({"postpone": "success", "extra": "success", "after": "success"})
    after = outcome.keyed("after")
    assert len(after["waits_on"]) == 1  # one condition, which gained a predecessor


def check_keys(outcome: Outcome) -> None:
    outcome.expect_statuses(
        {"shared": "success", "check": "success", "built": "success", "itself": "success"}
    )
    assert outcome.keyed("built")["function"] == "ok"
    assert [t["status"] for t in outcome.of_function("race_for_key")] == ["success"] * (
        cases.RACERS
    )
    assert outcome.status(repr(("tuple", 1, b"x"))) == "success"
    assert len(outcome.tasks) == cases.RACERS + 5


def check_queries(outcome: Outcome) -> None:
    outcome.expect_statuses({"target": "success", "ask": "success"})


def check_cancel(outcome: Outcome) -> None:
    outcome.expect_statuses(
        {
            "sleeper": "failed",
            "done": "success",
            "canceller": "success",
            "late": "success",
            "after_sleeper": "precondition_failed",
            "self_cancel": "failed",
        }
    )
    assert outcome.keyed("sleeper")["error"] == "cancelled: not needed\n"
    assert outcome.keyed("self_cancel")["error"] == "cancelled: myself\n"


def check_retries(outcome: Outcome) -> None:
    outcome.expect_statuses({"flaky": "success", "always_fails": "failed"})
    flaky = outcome.keyed("flaky")
    assert flaky["attempts"] == cases.RUNS
    assert flaky["error"] is None  # a success shows no error, though it failed first
    assert outcome.keyed("always_fails")["attempts"] == 2
    assert "ValueError: expected failure" in outcome.keyed("always_fails")["error"]


def check_timeouts(outcome: Outcome) -> None:
    outcome.expect_statuses(
        {"slow": "failed", "after_slow": "precondition_failed", "quick": "success"}
    )
    assert "timeout" in outcome.keyed("slow")["error"]


def check_values(outcome: Outcome) -> None:
    outcome.expect_statuses({"produce": "success", "consume": "success"})
    assert outcome.keyed("produce")["result_type"] == "dict"


def check_arguments(outcome: Outcome) -> None:
    outcome.expect_statuses(
        {"small": "success", "big": "success", "reads": "success", "soon": "success"}
    )


def check_errors(outcome: Outcome) -> None:
    outcome.expect_statuses({"http": "failed", "no_kwargs": "failed"})
    http = outcome.keyed("http")["error"]
    # The traceback names the user's file and line and shows the source line, in every
    # mode (a worker has no such file: the source travelled with the code).
    assert re.search(
        r'tgs_conformance_cases\.py", line \d+, in http_error\n\s+raise HTTPError', http
    ), http
    assert "HTTPError: Client error '404 Not Found'" in http, http
    assert "unexpected keyword argument" in outcome.keyed("no_kwargs")["error"]


def check_contexts(outcome: Outcome) -> None:
    outcome.expect_statuses(
        {**{f"context-{i}": "success" for i in range(4)}, "plain": "success", "db_task": "failed"}
    )
    failed = outcome.keyed("db_task")["error"]
    assert "worker context init of loop 'db'" in failed, failed
    assert "no database today" in failed, failed


def check_results(outcome: Outcome) -> None:
    keys = ["released", "kept", "reader", "probe", "spawned", "dropped", "spawned_reader"]
    outcome.expect_statuses(dict.fromkeys([*keys, "check_spawned"], "success"))
    # Released or on disk, a result's type is still known (the marker keeps it).
    assert outcome.keyed("released")["result_type"] == "bytes"


def check_timestamps(outcome: Outcome) -> None:
    keys = ["early-0", "early-1", "early-2", "first", "second", "spawner", "late"]
    outcome.expect_statuses(dict.fromkeys(keys, "success"))
    tasks = {key: outcome.keyed(key) for key in keys}
    for key, task in tasks.items():
        assert task["queued_at"] <= task["started_at"] <= task["ended_at"], (key, task)
    # The tasks built before the run became ready for execution when it started: one
    # reading of the clock for all of them.
    built = {tasks[key]["queued_at"] for key in ["early-0", "early-1", "early-2", "first"]}
    assert built == {tasks["spawner"]["queued_at"]}, built
    # A task readied or created during the run is queued then.
    assert tasks["second"]["queued_at"] >= tasks["first"]["ended_at"]
    assert tasks["late"]["queued_at"] >= tasks["spawner"]["started_at"]


#: Every case of the suite.
CASES: list[Case] = [
    Case("conditions", check_conditions, real=True),
    Case("growth", check_growth, real=True),
    Case("prepend", check_prepend, real=True),
    Case("keys", check_keys, real=True, workers=3),
    Case("queries", check_queries, real=True),
    Case("cancel", check_cancel, real=True),
    Case("retries", check_retries, real=True),
    Case("timeouts", check_timeouts, real=True),
    Case("values", check_values, real=True),
    Case("arguments", check_arguments, real=True),
    Case("errors", check_errors, real=True),
    Case("contexts", check_contexts, real=True),
    Case("timestamps", check_timestamps, real=True),
    Case(
        "results",
        check_results,
        real=True,
        release_results=True,
        memory_limit=cases.RESULTS_LIMIT,
    ),
]
