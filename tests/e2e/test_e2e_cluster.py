"""A real coordinator and real workers running graphs to their end, over loopback TCP.

The coordinator runs in a directory holding only the graph module; the workers run in an
empty one, so they can run the tasks only because the coordinator ships the code.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest
from e2e_procs import Proc, Processes, free_port, max_overlap

from trio_graph_scheduler.coordinator.observe.report import schema_errors

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.slow

# What tgs_e2e_graphs.build_main creates (kept in step with that module by hand).
DEFAULT_LIMIT = 3
SOLO_LIMIT = 1
WORK_TASKS = 12
SOLO_TASKS = 4
SPAWNED = (100, 101, 102)
#: gate, work x12, solo_step x4, where_am_i, use_helpers, spawner, summarise; then
#: created on a worker: work x3 and their summarise.
MAIN_TASKS = 1 + WORK_TASKS + SOLO_TASKS + 1 + 1 + 1 + 1 + len(SPAWNED) + 1


@dataclass
class MainRun:
    """The finished run of ``build_main`` on two workers."""

    procs: Processes
    coordinator_rc: int
    coordinator_summary: dict[str, int]
    workers: list[Proc]
    worker_rcs: list[int]
    events: list[dict[str, Any]]

    @property
    def worker_pids(self) -> set[int]:
        return {worker.pid for worker in self.workers}

    def results(self, label: str) -> dict[str, list[dict[str, Any]]]:
        """The summary ``label`` as ``{handle: [predecessor, ...]}``."""
        by_handle: dict[str, list[dict[str, Any]]] = {}
        for predecessor in self.procs.summary(label)["predecessors"]:
            by_handle.setdefault(predecessor["handle"], []).append(predecessor)
        return by_handle


@pytest.fixture(scope="module")
def main_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MainRun]:
    """Run ``build_main`` once on two workers; the tests below check what it did.

    Every task waits on a gate task that opens once both workers have joined, so the
    work starts with both in line for it.
    """
    procs = Processes(tmp_path_factory.mktemp("main"))
    try:
        coordinator = procs.coordinator("build_main", "--heartbeat-timeout", "5")
        url = coordinator.wait_listening()
        workers = [procs.worker(url, "--name", f"w{n}") for n in (1, 2)]
        coordinator.wait_joined(2)
        procs.release("go")
        coordinator_rc = procs.wait(coordinator)
        worker_rcs = [procs.wait(worker) for worker in workers]
        yield MainRun(
            procs,
            coordinator_rc,
            coordinator.summary(),
            workers,
            worker_rcs,
            procs.events(),
        )
    finally:
        procs.close()


def test_all_success_exits_0_and_dismisses_workers_with_0(main_run: MainRun) -> None:
    logs = main_run.procs.logs()
    assert main_run.coordinator_rc == 0, logs
    assert main_run.coordinator_summary == {"success": MAIN_TASKS}, logs
    assert main_run.worker_rcs == [0, 0], logs
    for worker in main_run.workers:
        assert "dismissed by the coordinator: the graph has ended" in worker.stderr, logs


def test_results_are_right(main_run: MainRun) -> None:
    results = main_run.results("main")
    assert {p["status"] for ps in results.values() for p in ps} == {"success"}
    assert sorted(results) == [
        "gate",
        "solo_step",
        "spawner",
        "use_helpers",
        "where_am_i",
        "work",
    ]
    assert results["gate"][0]["result"] == "open"
    work = sorted((p["result"]["i"], p["result"]["square"]) for p in results["work"])
    assert work == [(i, i * i) for i in range(WORK_TASKS)]
    assert sorted(p["result"] for p in results["solo_step"]) == sorted(
        -i for i in range(SOLO_TASKS)
    )


def test_task_created_on_a_worker_runs(main_run: MainRun) -> None:
    (spawner,) = main_run.results("main")["spawner"]
    spawned = main_run.results("spawned")
    assert sorted(spawned) == ["work"]
    # The summary waited on exactly the tasks the spawner created, by the uids it got.
    assert sorted(p["uid"] for p in spawned["work"]) == sorted(spawner["result"])
    assert {p["status"] for p in spawned["work"]} == {"success"}
    squares = sorted((p["result"]["i"], p["result"]["square"]) for p in spawned["work"])
    assert squares == [(i, i * i) for i in SPAWNED]
    assert {p["result"]["pid"] for p in spawned["work"]} <= main_run.worker_pids
    # The spawned summary ran too, on a worker.
    assert main_run.procs.summary("spawned")["pid"] in main_run.worker_pids


def test_cluster_wide_concurrency_limits_held(main_run: MainRun) -> None:
    # Each worker runs up to DEFAULT_LIMIT tasks of a loop itself, so only the
    # coordinator's cluster-wide accounting keeps the two of them at the limit.
    events = main_run.events
    assert len([e for e in events if e["task"].startswith("work-")]) == 2 * (
        WORK_TASKS + len(SPAWNED)
    )
    work = max_overlap(events, "work-")
    assert work <= DEFAULT_LIMIT, f"{work} work tasks ran at once; the limit is {DEFAULT_LIMIT}"
    assert work >= 2, "the work tasks never ran in parallel: the test proves nothing"
    solo = max_overlap(events, "solo-")
    assert solo == SOLO_LIMIT, f"{solo} solo tasks ran at once; the limit is {SOLO_LIMIT}"


def test_work_spread_over_both_workers(main_run: MainRun) -> None:
    work_pids = {e["pid"] for e in main_run.events if e["task"].startswith("work-")}
    assert work_pids == main_run.worker_pids


def test_code_shipped_to_workers_run_elsewhere(main_run: MainRun) -> None:
    procs = main_run.procs
    assert list(procs.worker_dir.iterdir()) == []
    assert sorted(p.name for p in procs.graph_dir.iterdir() if p.suffix == ".py") == [
        "tgs_e2e_graphs.py",
        "tgs_e2e_helpers.py",
    ]
    results = main_run.results("main")
    (where,) = results["where_am_i"]
    assert where["result"] == {
        "pid": where["result"]["pid"],
        "cwd": str(procs.worker_dir),
        "module_importable": False,
    }
    assert where["result"]["pid"] in main_run.worker_pids
    # A second module of the user's, imported by the graph module, travelled too.
    (helpers,) = results["use_helpers"]
    assert helpers["result"] == {
        "tripled": 21,
        "point": {"x": 7, "y": -7},
        "helper_importable": False,
    }


def test_empty_graph_ends_at_once_with_0(procs: Processes) -> None:
    coordinator = procs.coordinator("build_empty")
    assert procs.wait(coordinator) == 0, procs.logs()
    assert coordinator.stdout.splitlines()[-1] == "tgs-coordinator: graph ended: no tasks"


def test_failing_task_exits_1_and_workers_still_exit_0(procs: Processes) -> None:
    coordinator = procs.coordinator("build_failing")
    worker = procs.worker(coordinator.wait_listening())
    assert procs.wait(coordinator) == 1, procs.logs()
    assert coordinator.summary() == {"success": 1, "failed": 1, "precondition_failed": 1}
    assert procs.wait(worker) == 0, procs.logs()
    # The task that waited on the failed one never ran.
    assert {e["task"] for e in procs.events()} == {"work-1"}


def test_run_summary_status_lines_report_and_pictures(procs: Processes) -> None:
    out = procs.out_dir
    coordinator = procs.coordinator(
        "build_failing",
        "--status-interval", "0.05",
        "--report", str(out / "run.json"),
        "--graph-html", str(out / "graph.html"),
        "--timeline-html", str(out / "timeline.html"),
    )  # fmt: skip
    worker = procs.worker(coordinator.wait_listening())
    assert procs.wait(coordinator) == 1, procs.logs()
    assert procs.wait(worker) == 0, procs.logs()
    # Not a terminal: status lines, never a redraw; the last one shows the end.
    status_lines = [line for line in coordinator.stderr_lines() if line.startswith("[")]
    assert status_lines, coordinator.describe()
    assert "\x1b" not in coordinator.stderr
    assert "3/3 done" in status_lines[-1]
    # The summary per function, then what was written, then the final line.
    stdout = coordinator.stdout.splitlines()
    assert stdout[0] == "3 tasks: 1 succeeded, 1 failed, 1 skipped"
    assert any(line.startswith("  1x boom: ValueError: boom on purpose") for line in stdout)
    assert f"report written to {out / 'run.json'}" in stdout
    assert f"picture written to {out / 'timeline.html'}" in stdout
    report = json.loads((out / "run.json").read_text())
    assert schema_errors(report) == []
    assert report["mode"] == "distributed"
    assert {task["status"] for task in report["tasks"]} == {
        "success", "failed", "precondition_failed"
    }  # fmt: skip
    assert [worker["left_because"] for worker in report["workers"]] == ["dismissed"]
    for picture in ("graph.html", "timeline.html"):
        page = (out / picture).read_text()
        assert page.startswith("<!DOCTYPE html>")
        assert "https://" not in page.split("<body")[0]  # no script from the network
    # The timeline of a real worker: a bar per task that ran, on that worker's rows; the
    # failure marked, its error headline in the hover's table.
    page = (out / "timeline.html").read_text()
    table = re.search(r'<script type="application/json" id="data">(.*?)</script>', page)
    assert table, page[:2000]
    data = json.loads(table[1])
    assert len(data["runs"]) == 2  # the skipped task never ran
    assert all(re.fullmatch(r"worker-1 #\d", row) for row in data["rows"]), data["rows"]
    assert "ValueError: boom on purpose" in data["texts"]
    bars = re.findall(r'<rect class="b f\d+( [a-z]+)?"', page)
    assert sorted(bars) == ["", " failed"]  # the final failure has the red outline


def test_worker_started_before_the_coordinator_connects_once_it_is_up(
    procs: Processes,
) -> None:
    port = free_port()
    worker = procs.worker(f"ws://127.0.0.1:{port}", "--connect-timeout", "20")
    # A refused connection attempt leaves no trace to wait for: give the worker time to
    # start and be refused a few times (its retries back off up to 2 s apart).
    time.sleep(1.0)
    assert worker.running(), procs.logs()
    coordinator = procs.coordinator("build_quick", listen=f"127.0.0.1:{port}")
    assert coordinator.wait_listening() == f"ws://127.0.0.1:{port}"
    assert procs.wait(coordinator) == 0, procs.logs()
    assert procs.wait(worker) == 0, procs.logs()
    assert coordinator.summary() == {"success": 4}
    assert sorted(p["result"]["square"] for p in procs.summary("quick")["predecessors"]) == [
        0,
        1,
        4,
    ]


def test_wrong_token_refused_and_coordinator_serves_the_right_one(procs: Processes) -> None:
    # Tokens from the environment on both sides, and from --token on a worker.
    coordinator = procs.coordinator(
        "build_quick", "--heartbeat-timeout", "5", env={"TGS_TOKEN": "right-token"}
    )
    url = coordinator.wait_listening()
    wrong = procs.worker(url, "--token", "wrong-token")
    assert procs.wait(wrong) == 1, procs.logs()
    assert wrong.stderr_lines()[-1].startswith("tgs-worker: error: "), procs.logs()
    assert "wrong token" in wrong.stderr_lines()[-1]
    assert "wrong-token" not in coordinator.stderr + wrong.stderr  # never logged
    coordinator.wait_for_stderr(r"refused worker .*: wrong token")
    assert coordinator.running(), procs.logs()

    no_token = procs.worker(url)
    assert procs.wait(no_token) == 1, procs.logs()
    assert "wrong token" in no_token.stderr_lines()[-1]

    unknown_loop = procs.worker(url, "--token", "right-token", "--loops", "default,nope")
    assert procs.wait(unknown_loop) == 1, procs.logs()
    assert unknown_loop.stderr_lines()[-1].startswith("tgs-worker: error: "), procs.logs()
    assert "unknown loops ['nope']" in unknown_loop.stderr_lines()[-1], procs.logs()

    right = procs.worker(url, env={"TGS_TOKEN": "right-token"})
    assert procs.wait(coordinator) == 0, procs.logs()
    assert procs.wait(right) == 0, procs.logs()
    assert coordinator.summary() == {"success": 4}
