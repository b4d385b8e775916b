#!/usr/bin/env python
"""Throughput with the live dashboard open vs closed, side by side (a benchmark, not a test).

Runs the distributed benchmark's shapes (scripts/bench_distributed.py: a coordinator in
this process, two ``tgs-worker`` processes, 10,000 no-op tasks per shape, timed the same
way) in two modes, alternating run by run so that both see the same machine:

- ``closed``: no dashboard (``CoordinatorConfig()`` as the benchmark has it);
- ``open``: ``CoordinatorConfig(dashboard="127.0.0.1:0")`` and one browser on it: a
  separate process that reads the live updates (``/events``) as fast as they come, as
  an open tab does; the run starts only once the dashboard counts it as a subscriber.

It prints the median tasks/s of each mode per shape and the ratio open/closed (the
target: at least 0.95), and the median CPU seconds this process (the coordinator) used
per run in each mode, a figure a busy machine disturbs less than the wall time; and
the share of the open runs' time the dashboard spent making updates (median, worst):
the coordinator's event loop does nothing else meanwhile, so that share bounds what the
dashboard takes from the run, however noisy the machine.

    .venv/bin/python scripts/bench_dashboard.py --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from functools import partial
from typing import TYPE_CHECKING

import bench_distributed as bench
import trio
from bench_shapes import shapes

from trio_graph_scheduler import Coordinator, CoordinatorConfig

if TYPE_CHECKING:
    from trio_graph_scheduler.coordinator.dashboard.server import Dashboard

#: What an open tab does with the live updates: read them all, as they come.
READER = """
import contextlib, http.client, sys, urllib.request
with urllib.request.urlopen(sys.argv[1]) as events, contextlib.suppress(http.client.HTTPException):
    while events.read1(65536):  # until the coordinator closes the stream, as it ends
        pass
"""

_readers: list[subprocess.Popen[bytes]] = []
#: The open run's dashboard, and its update_seconds when the run started.
_watched: list[tuple[Dashboard, float]] = []
_original_wait = bench.wait_for_workers


async def _wait_then_open_a_tab(coordinator: Coordinator, processes: list[trio.Process]) -> None:
    await _original_wait(coordinator, processes)
    dashboard = coordinator.dashboard
    if dashboard is None:
        return
    # Start-up only, not timed: blocking here is fine.
    reader = subprocess.Popen([sys.executable, "-c", READER, dashboard.url + "events"])  # noqa: ASYNC220
    _readers.append(reader)
    # The tab's first update (everything, before the run) is start-up, not timed.
    while not dashboard.state.version:  # noqa: ASYNC110 - start-up only, not timed
        await trio.sleep(0.005)
    _watched.append((dashboard, dashboard.update_seconds))


def run(build: object, concurrency: int, open_tab: bool) -> tuple[float, float, float]:
    """One run's seconds, the CPU seconds this process (the coordinator) used for the
    whole of it (start-up included, alike in both modes), and the seconds the dashboard
    spent on updates during the run, with the dashboard open or not."""
    config = partial(CoordinatorConfig, dashboard="127.0.0.1:0") if open_tab else CoordinatorConfig
    bench.CoordinatorConfig = config  # type: ignore[assignment]
    bench.wait_for_workers = _wait_then_open_a_tab
    cpu = time.process_time()
    try:
        run_s = bench.tgs_run(build, concurrency).run_s  # type: ignore[arg-type]
        updates = sum(d.update_seconds - before for d, before in _watched)
        return run_s, time.process_time() - cpu, updates
    finally:
        _watched.clear()
        for reader in _readers:
            reader.kill()
            reader.wait()
        _readers.clear()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--scale", type=int, default=1, help="divide the shapes' sizes by this")
    args = parser.parse_args()
    print(
        f"{'shape':<12} {'closed tasks/s':>15} {'open tasks/s':>13} {'open/closed':>12}"
        f" {'closed CPU s':>13} {'open CPU s':>11} {'open/closed':>12}"
        f" {'updates/run':>14} {'(worst)':>9}"
    )
    for shape in shapes(args.scale):
        times: dict[bool, list[float]] = {False: [], True: []}
        cpus: dict[bool, list[float]] = {False: [], True: []}
        shares: list[float] = []
        for _ in range(args.repeats):
            for open_tab in (False, True):
                run_s, cpu_s, updates_s = run(shape.build_tgs, args.concurrency, open_tab)
                times[open_tab].append(run_s)
                cpus[open_tab].append(cpu_s)
                if open_tab:
                    shares.append(updates_s / run_s)
        closed = shape.tasks / statistics.median(times[False])
        opened = shape.tasks / statistics.median(times[True])
        cpu_closed, cpu_open = statistics.median(cpus[False]), statistics.median(cpus[True])
        print(
            f"{shape.name:<12} {closed:>15,.0f} {opened:>13,.0f} {opened / closed:>12.3f}"
            f" {cpu_closed:>13.2f} {cpu_open:>11.2f} {cpu_open / cpu_closed:>12.3f}"
            f" {statistics.median(shares):>14.1%} {max(shares):>9.1%}"
        )


if __name__ == "__main__":
    main()
