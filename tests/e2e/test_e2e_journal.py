"""A coordinator killed with SIGKILL resumes from its journal, with real processes.

The graphs are in ``graphs/tgs_e2e_journal.py``: 500 ``append`` tasks (made by the builder,
or by tasks on the workers), each adding a ``run`` line with its number when it runs, and
a ``total`` of their results. The test reads the journal itself (read-only) to know what
had ended, committed, at each kill.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

import pytest
from e2e_procs import free_port, import_graph_module, wait_until

from trio_graph_scheduler.coordinator.journal import recorded_events

if TYPE_CHECKING:
    from pathlib import Path

    from e2e_procs import Coordinator, Processes

pytestmark = pytest.mark.slow

MODULE = "tgs_e2e_journal"
graphs = import_graph_module(MODULE)


def succeeded_appends(journal: Path) -> set[int]:
    """The numbers of the append tasks whose success the journal holds (committed)."""
    number_of: dict[str, int] = {}
    done: set[int] = set()
    for event in recorded_events(journal):
        if event[0] == "task" and event[2] == "append":
            number_of[event[1]] = event[3][0][0]
        elif event[0] == "end" and event[2] == "success" and event[1] in number_of:
            done.add(number_of[event[1]])
    return done


class Cluster:
    """A coordinator on a fixed port with a journal, and two workers that outlive it."""

    def __init__(self, procs: Processes, builder: str) -> None:
        self.procs = procs
        self.builder = builder
        self.listen = f"127.0.0.1:{free_port()}"
        self.journal = procs.root / "run.journal"
        procs.add_graph_module(MODULE)
        self.coordinator = self.start_coordinator()
        url = self.coordinator.wait_listening()
        # Long enough to ride through a restart of the coordinator.
        self.workers = [procs.worker(url, "--connect-timeout", "60") for _ in range(2)]

    def start_coordinator(self, *extra: str) -> Coordinator:
        return self.procs.coordinator(
            f"{MODULE}:{self.builder}",
            "--journal",
            str(self.journal),
            "--no-progress",
            *extra,
            listen=self.listen,
            raw_spec=True,
        )

    def kill_after(self, succeeded: int) -> tuple[float, set[int]]:
        """SIGKILL the coordinator once the journal holds ``succeeded`` appends' success;
        return when, and what the journal held then."""
        wait_until(
            lambda: len(succeeded_appends(self.journal)) >= succeeded,
            f"{succeeded} appends recorded in the journal",
            timeout=60,  # a restarted coordinator and reconnecting workers, under load
            logs=self.procs.logs,
        )
        self.coordinator.kill()
        killed_at = time.time()
        return killed_at, succeeded_appends(self.journal)


def runs(procs: Processes) -> list[dict[str, Any]]:
    return [e for e in procs.events() if e["event"] == "run"]


@pytest.mark.parametrize(
    ("builder", "kills"),
    [
        pytest.param("build_static", 1, id="builder-made-killed-once"),
        pytest.param("build_dynamic", 1, id="task-made-killed-once"),
        pytest.param("build_static", 2, id="builder-made-killed-twice"),
        pytest.param("build_dynamic", 2, id="task-made-killed-twice"),
    ],
)
def test_a_killed_coordinator_resumes_and_nothing_that_ended_runs_again(
    procs: Processes, builder: str, kills: int
) -> None:
    cluster = Cluster(procs, builder)
    tasks = graphs.TASKS
    crashes = []
    for k in range(1, kills + 1):
        killed_at, held = cluster.kill_after(k * tasks // (kills + 2))
        assert len(held) < tasks, "the run ended before the kill"
        # Until the next coordinator starts, whatever a worker starts was handed out by
        # the killed one (a worker may start a task it had just been sent a moment
        # after the kill, before it notices the connection is gone).
        restarted_at = time.time()
        crashes.append((killed_at, held, restarted_at))
        cluster.coordinator = cluster.start_coordinator()
        cluster.coordinator.wait_for_stderr(r"resumed from the journal .*: \d+ task\(s\)")
    assert procs.wait(cluster.coordinator, timeout=60) == 0, procs.logs()
    for worker in cluster.workers:
        assert procs.wait(worker) == 0, procs.logs()

    events = runs(procs)
    count = Counter(e["n"] for e in events)
    assert set(count) == set(range(tasks)), "some task never ran"
    for killed_at, held, _ in crashes:
        # What had ended (committed) at a kill never runs again.
        again = sorted({e["n"] for e in events if e["n"] in held and e["t"] > killed_at})
        assert not again, f"tasks that had succeeded ran again after the kill: {again}"
    # A task that ran twice was running (or not yet committed) at a kill.
    first_run = {}
    for e in events:
        first_run.setdefault(e["n"], e["t"])
    for n, times in count.items():
        if times > 1:
            assert any(
                first_run[n] < restarted and n not in held for _, held, restarted in crashes
            ), f"task {n} ran {times} times but was not in flight at any kill"
    twice = sum(1 for times in count.values() if times > 1)
    assert twice <= kills * (graphs.CONCURRENCY + 2 * graphs.CONCURRENCY), count
    (total,) = [e["value"] for e in procs.events() if e["event"] == "total"]
    assert total == 3 * sum(range(tasks))


def test_report_only_writes_the_report_of_a_crashed_run(procs: Processes) -> None:
    cluster = Cluster(procs, "build_static")
    _, held = cluster.kill_after(graphs.TASKS // 3)
    for worker in cluster.workers:
        worker.kill()
    report_path = procs.root / "crashed.json"
    reporter = cluster.start_coordinator("--report", str(report_path), "--report-only")
    assert procs.wait(reporter) == 0, procs.logs()
    assert "listening" not in reporter.stderr, "--report-only served the graph"
    report = json.loads(report_path.read_text())
    succeeded = [
        t for t in report["tasks"] if t["function"] == "append" and t["status"] == "success"
    ]
    assert len(succeeded) == len(held)


def test_a_journal_of_another_graph_is_refused(procs: Processes) -> None:
    cluster = Cluster(procs, "build_static")
    assert procs.wait(cluster.coordinator, timeout=60) == 0, procs.logs()
    other = procs.coordinator(
        "tgs_e2e_graphs:build_quick",
        "--journal",
        str(cluster.journal),
        raw_spec=True,
    )
    assert procs.wait(other) == 1, procs.logs()
    assert "records another graph" in other.stderr
    assert "Traceback" not in other.stderr


def test_a_worker_that_finds_the_run_ended_exits_0(procs: Processes) -> None:
    cluster = Cluster(procs, "build_static")
    assert procs.wait(cluster.coordinator, timeout=60) == 0, procs.logs()
    ran = len(runs(procs))
    # A worker retrying while the coordinator comes back on a finished run.
    late = procs.worker(cluster.coordinator.url, "--connect-timeout", "60")
    late.wait_for_stderr("waiting for the coordinator")
    again = cluster.start_coordinator()
    assert procs.wait(again) == 0, procs.logs()
    assert procs.wait(late) == 0, procs.logs()
    assert "dismissed by the coordinator: the run has ended" in late.stderr
    assert len(runs(procs)) == ran, "a finished run ran tasks again"
