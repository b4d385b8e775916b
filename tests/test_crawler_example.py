"""The crawler example (``examples/crawler.py``): a link graph with cycles, each URL
fetched exactly once, in one process, on an in-memory cluster and with real processes.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import trio

from trio_graph_scheduler import execute_graph
from trio_graph_scheduler.testing import run_local_cluster

if TYPE_CHECKING:
    from types import ModuleType

REPO_ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = REPO_ROOT / "examples" / "crawler.py"
#: Workers of the distributed runs, as the issue asks.
WORKERS = 3
#: Bound of one crawl, in seconds of wall time (the site is real HTTP on 127.0.0.1).
LIMIT = 120


def load_example() -> ModuleType:
    # By path, under a name a worker cannot import: its functions travel by value.
    if "tgs_crawler_example" in sys.modules:
        return sys.modules["tgs_crawler_example"]
    spec = importlib.util.spec_from_file_location("tgs_crawler_example", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["tgs_crawler_example"] = module
    spec.loader.exec_module(module)
    return module


def expect_each_page_fetched_once(crawler: ModuleType, site: object, graph: object) -> None:
    pages = crawler.PAGES
    hits = dict(site.hits)  # type: ignore[attr-defined]
    assert hits == {f"/page-{n}.html": 1 for n in range(pages)}
    nodes = graph.nodes.values()  # type: ignore[attr-defined]
    assert sorted(node.key for node in nodes) == sorted(
        f"{site.start_url.rsplit('/', 1)[0]}/page-{n}.html"  # type: ignore[attr-defined]
        for n in range(pages)
    )
    assert all(node.task_status == "success" for node in nodes)


def test_the_site_has_cycles() -> None:
    crawler = load_example()
    assert 0 in crawler.links_of(5)  # every page links back to the first
    assert 1 in crawler.links_of(0)
    assert 3 in crawler.links_of(3)  # and to itself


async def test_in_process_each_url_is_fetched_once() -> None:
    crawler = load_example()
    with crawler.Site() as site:
        graph = crawler.make_graph(site.start_url)
        with trio.fail_after(LIMIT):
            await execute_graph(graph)
    expect_each_page_fetched_once(crawler, site, graph)


async def test_on_three_workers_each_url_is_fetched_once() -> None:
    crawler = load_example()
    with crawler.Site() as site:
        graph = crawler.make_graph(site.start_url)
        with trio.fail_after(LIMIT):
            await run_local_cluster(graph, workers=WORKERS, in_memory=True)
    expect_each_page_fetched_once(crawler, site, graph)


@pytest.mark.slow
def test_the_example_runs_as_a_script() -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLE)], capture_output=True, text=True, timeout=LIMIT, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "crawled 40 pages of 40: 40 URLs fetched, 40 fetches, 0 failed" in done.stdout


@pytest.mark.slow
def test_real_processes_fetch_each_url_once(tmp_path: Path) -> None:
    sys.path.insert(0, str(REPO_ROOT / "tests" / "e2e"))
    try:
        from e2e_procs import Processes
    finally:
        sys.path.remove(str(REPO_ROOT / "tests" / "e2e"))
    crawler = load_example()
    processes = Processes(tmp_path)
    try:
        (processes.graph_dir / "crawler.py").write_bytes(EXAMPLE.read_bytes())
        report = processes.out_dir / "report.json"
        with crawler.Site() as site:
            coordinator = processes.coordinator(
                "crawler:build_graph",
                "--report",
                str(report),
                "--no-progress",
                "--min-workers",
                str(WORKERS),
                raw_spec=True,
                env={crawler.START_ENV: site.start_url},
            )
            url = coordinator.wait_listening(timeout=LIMIT)
            for _ in range(WORKERS):
                processes.worker(url)
            assert processes.wait(coordinator, timeout=LIMIT) == 0, processes.logs()
        hits = dict(site.hits)
        assert hits == {f"/page-{n}.html": 1 for n in range(crawler.PAGES)}, processes.logs()
        tasks = json.loads(report.read_text())["tasks"]
        assert len(tasks) == crawler.PAGES
        assert {task["status"] for task in tasks} == {"success"}
        # The crawl really was spread over the workers.
        assert len({task["worker"] for task in tasks}) > 1
    finally:
        processes.close()
