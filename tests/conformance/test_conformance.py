"""The graph semantics, written once (``conformance.CASES``), run three ways.

In-process (``execute_graph``) and over in-memory streams (``run_local_cluster(...,
in_memory=True)``) every case runs; with real ``tgs-coordinator`` and ``tgs-worker``
processes on 127.0.0.1, the cases marked ``real`` (slow). A case's check reads the run's
report, the same in every mode: a difference between modes fails the mode that differs.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import trio
import trio.testing

sys.path.insert(0, str(Path(__file__).parents[1] / "e2e"))  # e2e_procs, the process helpers

import conformance
from conformance import CASES, Case, Outcome
from e2e_procs import Processes

#: The bound of one in-process or in-memory run, in seconds (virtual under the autojump
#: clock the suite runs with, so the cases' sleeps and backoffs cost no wall time).
RUN_LIMIT = 600
#: The bound of one real run, in seconds of wall time: generous, for a loaded machine.
REAL_LIMIT = 120.0

IDS = [case.name for case in CASES]


@pytest.mark.parametrize("case", CASES, ids=IDS)
async def test_in_process(case: Case, autojump_clock: trio.testing.MockClock) -> None:
    with trio.fail_after(RUN_LIMIT):
        outcome = await conformance.run_in_process(case)
    case.check(outcome)


@pytest.mark.parametrize("case", CASES, ids=IDS)
async def test_in_memory_cluster(case: Case, autojump_clock: trio.testing.MockClock) -> None:
    with trio.fail_after(RUN_LIMIT):
        outcome = await conformance.run_in_memory(case)
    case.check(outcome)


REAL_CASES = [case for case in CASES if case.real]


@pytest.mark.slow
@pytest.mark.parametrize("case", REAL_CASES, ids=[case.name for case in REAL_CASES])
def test_real_processes(case: Case, tmp_path: Path) -> None:
    processes = Processes(tmp_path)
    try:
        source = Path(conformance.__file__).with_name(f"{conformance.MODULE}.py")
        (processes.graph_dir / source.name).write_bytes(source.read_bytes())
        report = processes.out_dir / "report.json"
        coordinator = processes.coordinator(
            case.spec, "--report", str(report), "--no-progress", *case.cli_options, raw_spec=True
        )
        url = coordinator.wait_listening(timeout=REAL_LIMIT)
        for _ in range(case.workers):
            processes.worker(url)
        processes.wait(coordinator, timeout=REAL_LIMIT)
        outcome = Outcome.from_file(report)
    finally:
        processes.close()
    try:
        case.check(outcome)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{processes.logs()}") from None
