"""Values of any size with real processes and default settings (issue 10, done-when row 1).

One coordinator, two workers (one serving the producers' loop, one the checkers'), one
graph: a 200 MiB result read by a successor on the other worker, 50 predecessors of
4 MiB each read by one successor, and a 100 MiB argument given by the graph builder.
Every value is made from a seed on the side that sends it and again on the side that
checks it (``graphs/tgs_e2e_values.py``); this process only reads what the tasks found.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from e2e_procs import Processes

pytestmark = pytest.mark.slow

VALUES = "tgs_e2e_values"
#: Moving 700 MiB through the coordinator, twice copied each way, on a loaded machine.
RUN_LIMIT = 600.0


def test_large_values_cross_workers_with_default_settings(procs: Processes) -> None:
    procs.add_graph_module(VALUES)
    coordinator = procs.coordinator(f"{VALUES}:build_values", raw_spec=True)
    url = coordinator.wait_listening(timeout=120)
    producer = procs.worker(url, "--loops", "a,default", "--name", "producer")
    checker = procs.worker(url, "--loops", "b", "--name", "checker")

    assert procs.wait(coordinator, timeout=RUN_LIMIT) == 0, procs.logs()
    assert coordinator.summary() == {"success": 54}, procs.logs()
    events = procs.events()
    checked = {e["task"]: e for e in events if e["event"] == "checked"}
    assert set(checked) == {"predecessors-1", "predecessors-50", "argument"}
    assert all(e["wrong"] == [] for e in checked.values()), checked
    # Each value crossed from one worker to the other (through the coordinator).
    assert {e["pid"] for e in events if e["event"] == "produced"} == {producer.pid}
    assert {e["pid"] for e in checked.values()} == {checker.pid}
    for worker in (producer, checker):
        assert procs.wait(worker, timeout=60) == 0, procs.logs()
    assert "dropped" not in coordinator.stderr, procs.logs()
