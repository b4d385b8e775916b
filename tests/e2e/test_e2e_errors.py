"""Errors users can read, with real ``tgs-coordinator`` and ``tgs-worker`` processes
(issue 12): a worker's traceback names the user's file and line and shows the source
line, though the worker runs where the file is not; the headline is ``Type: message``;
a builder's mistake shows where it is.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from e2e_procs import Processes

pytestmark = pytest.mark.slow

ERRORS = "tgs_e2e_errors"


def line_of(text: str, line: str) -> int:
    """The 1-based number of ``line`` in ``text``."""
    return text.splitlines().index(line) + 1


def test_a_workers_traceback_names_the_users_file_line_and_source(procs: Processes) -> None:
    procs.add_graph_module(ERRORS)
    coordinator = procs.coordinator(
        f"{ERRORS}:build_errors", "--report", "report.json", raw_spec=True
    )
    url = coordinator.wait_listening()
    # The code is loaded and pickled: from now on no process can read the file.
    source = procs.graph_dir / f"{ERRORS}.py"
    text = source.read_text()
    source.rename(procs.root / "moved-away.py")
    worker = procs.worker(url)
    assert procs.wait(coordinator) == 1, procs.logs()
    assert procs.wait(worker) == 0, procs.logs()

    report = json.loads((procs.graph_dir / "report.json").read_text())
    errors = {task["function"]: task["error"] for task in report["tasks"]}
    raise_line = "    raise HTTPStatusError("
    assert (
        f'  File "{source}", line {line_of(text, raise_line)}, in fetch\n{raise_line}\n'
        in errors["fetch"]
    ), errors["fetch"]
    assert "<dynamic-code>" not in errors["fetch"]
    assert "TypeError: no_kwargs() got an unexpected keyword argument" in errors["no_kwargs"]

    # The log says what went wrong in one line each: Type: message, not the link the
    # traceback ends with, and the TypeError of a function without **kwargs.
    failed = [line for line in coordinator.stderr_lines() if " tgs.tasks WARNING " in line]
    assert len(failed) == 2, procs.logs()
    assert any(
        line.endswith(
            "(fetch) failed: HTTPStatusError: Client error '404 Not Found' for url "
            "'https://example.org/missing'"
        )
        for line in failed
    ), procs.logs()
    assert any(
        "(no_kwargs) failed: TypeError: no_kwargs() got an unexpected keyword argument "
        "'task_node'" in line
        for line in failed
    ), procs.logs()


def test_a_builder_that_raises_shows_its_file_and_line(procs: Processes) -> None:
    procs.add_graph_module(ERRORS)
    coordinator = procs.coordinator(f"{ERRORS}:build_broken", raw_spec=True)
    assert procs.wait(coordinator) == 1, procs.logs()
    source = procs.graph_dir / f"{ERRORS}.py"
    bad = "    await graph.create_task(fetch_handle)  # type: ignore[name-defined]  # noqa: F821"
    lines = coordinator.stderr_lines()
    assert lines[0] == (
        "tgs-coordinator: error: the graph builder raised NameError: name 'fetch_handle' is "
        "not defined"
    ), procs.logs()
    assert f'  File "{source}", line {line_of(source.read_text(), bad)}, in build_broken' in (
        lines
    ), procs.logs()
    assert bad in lines, procs.logs()


VENDORED = """\
def where():
    return {where!r}
"""


def test_a_package_in_a_dist_packages_directory_is_not_shipped(procs: Processes) -> None:
    # Each side has its own copy of the package, in a dist-packages directory on its
    # PYTHONPATH, as Debian installs packages: the task must run with the worker's.
    paths = {}
    for side in ("coordinator", "worker"):
        packages = procs.root / f"{side}-usr" / "lib" / "python3" / "dist-packages"
        packages.mkdir(parents=True)
        (packages / "tgs_e2e_vendored.py").write_text(VENDORED.format(where=side))
        paths[side] = {"PYTHONPATH": str(packages)}
    procs.add_graph_module("tgs_e2e_vendor_user")
    coordinator = procs.coordinator(
        "tgs_e2e_vendor_user:build_where", raw_spec=True, env=paths["coordinator"]
    )
    worker = procs.worker(coordinator.wait_listening(), env=paths["worker"])
    assert procs.wait(coordinator) == 0, procs.logs()
    assert procs.wait(worker) == 0, procs.logs()
    assert json.loads((procs.out_dir / "where.json").read_text()) == "worker", procs.logs()


def test_worker_index_is_unique_across_real_workers_and_each_context_is_closed(
    procs: Processes,
) -> None:
    procs.add_graph_module("tgs_e2e_context")
    coordinator = procs.coordinator(
        "tgs_e2e_context:build_context", "--min-workers", "2", raw_spec=True
    )
    url = coordinator.wait_listening()
    workers = [procs.worker(url) for _ in range(2)]
    assert procs.wait(coordinator) == 0, procs.logs()
    for worker in workers:
        assert procs.wait(worker) == 0, procs.logs()

    def slots(kind: str) -> set[tuple[int, int]]:
        found = set()
        for path in procs.out_dir.glob(f"{kind}-*"):
            _, number, pid = path.name.split("-")
            found.add((int(number), int(pid)))
        return found

    opened = slots("open")
    # Two workers of two slots each: numbers 0 to 3 across the cluster, none twice, two
    # per worker process; and every context was closed when its worker stopped.
    assert sorted(number for number, _ in opened) == [0, 1, 2, 3], procs.logs()
    assert {pid for _, pid in opened} == {w.pid for w in workers}, procs.logs()
    assert slots("closed") == opened, procs.logs()
