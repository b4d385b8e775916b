#!/usr/bin/env python
"""How fast values move between two tasks on different workers (issue 10; a benchmark, not a
test), against Dask distributed and Ray moving the same values, side by side in one run.

For each size (``--sizes``, default 1 KiB, 1 MiB, 64 MiB) it runs ``--pairs`` independent
pairs of tasks: a *producer* returns ``size`` bytes, a *consumer* on another worker process
receives them as its predecessor's result (its argument, for the peers) and returns their
length. It reports MiB/s (the bytes the consumers received, divided by the wall time from
releasing the graph to its end) and tgs/peer ratios (above 1: tgs is faster).

- tgs: one coordinator served in this process (``Coordinator(...).serve``) and two
  ``tgs-worker`` processes on loopback with default settings; producers run in loop ``a``
  (worker 1) and consumers in loop ``b`` (worker 2), so every value goes worker 1 ->
  coordinator -> worker 2. A gate task holds the graph until both workers joined; the
  clock runs from the gate's release to the graph's end, as in ``bench_distributed.py``.
- Dask distributed: ``LocalCluster(n_workers=2, threads_per_worker=1, processes=True)``,
  producers submitted to the first worker and consumers to the second (``workers=``), so
  every value goes worker to worker directly. Timed from the first submit to the gather.
- Ray: ``ray.init(num_cpus=2)``, a producer and a consumer remote function, the
  producer's ``ObjectRef`` as the consumer's argument. On one machine Ray moves a value
  through its shared-memory object store, not over a socket. Timed from the first submit
  to the last ``ray.get``.

The producers make their bytes (``os.urandom`` once per process, then a slice), the same
for every system. Dask and Ray are benchmark peers only, not dependencies:
``pip install dask distributed ray`` into the venv to compare; a peer not installed is
left out. Start-up (cluster, workers, the first call) is never timed. On a loaded
machine the figures are noisy: compare the ratios of one run, not runs with each other.

Usage (from the repository root)::

    python scripts/bench_values.py
    python scripts/bench_values.py --sizes 64MiB --pairs 8 --repeats 3
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import subprocess
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

import trio

from trio_graph_scheduler import Coordinator, CoordinatorConfig, TaskGraph, WorkerLoop

HOST = "127.0.0.1"
WORKERS = 2
MIB = 2**20
RUN_TIMEOUT_S = 600.0
#: How many pairs each size runs by default: about the same seconds per size.
DEFAULT_PAIRS = {2**10: 2000, MIB: 200, 64 * MIB: 6}


# -- the task functions (shipped to tgs workers by value: this is __main__) -------------


_POOL: list[bytes] = []


def make_value(size: int) -> bytes:
    """``size`` bytes: a slice of random bytes made once per process (so the producer's
    cost is a copy, in every system)."""
    if not _POOL or len(_POOL[0]) < size:
        _POOL[:] = [os.urandom(max(size, MIB))]
    return _POOL[0][:size]


def produce(size: int, **_: Any) -> bytes:
    return make_value(size)


def consume(*, task_node: Any, **_: Any) -> int:
    (producer,) = task_node.get_predecessor_task_nodes()
    return len(producer.task_result)


async def gate(host: str, port: int, **_: Any) -> None:
    stream = await trio.open_tcp_stream(host, port)
    async with stream:
        await stream.receive_some(1)


def peer_produce(size: int) -> bytes:
    return make_value(size)


def peer_consume(value: bytes) -> int:
    return len(value)


# -- tgs ---------------------------------------------------------------------------------


def worker_command(url: str, loops: str) -> list[str]:
    return [
        str(Path(sys.executable).parent / "tgs-worker"),
        "--connect",
        url,
        "--loops",
        loops,
        "--log-level",
        "warning",
    ]


async def tgs_run_async(size: int, pairs: int) -> float:
    graph = TaskGraph(
        {"produce": produce, "consume": consume, "gate": gate},
        [
            WorkerLoop("default", 1, None),
            WorkerLoop("gate", 1, ["gate"]),
            WorkerLoop("a", 2, ["produce"]),
            WorkerLoop("b", 2, ["consume"]),
        ],
    )
    listener = (await trio.open_tcp_listeners(0, host=HOST))[0]
    port = listener.socket.getsockname()[1]
    graph.create_task_nowait("gate", ((HOST, port), {}))
    coordinator = Coordinator(graph, CoordinatorConfig(host=HOST))
    consumers = []
    with trio.fail_after(RUN_TIMEOUT_S):
        async with trio.open_nursery() as nursery, listener:
            await nursery.start(coordinator.serve)
            for loops in ("gate,a,default", "b"):
                run = partial(
                    trio.run_process,
                    worker_command(coordinator.url, loops),
                    check=True,
                    stdout=subprocess.DEVNULL,
                )
                await nursery.start(run)
            stream = await listener.accept()  # the gate runs: worker 1 joined
            while len(coordinator.sessions) < WORKERS:  # noqa: ASYNC110 - no join event
                await trio.sleep(0.005)  # start-up only, not timed
            async with stream:
                for _ in range(pairs):
                    producer = graph.create_task_nowait("produce", ((size,), {}))
                    consumers.append(graph.create_task_nowait("consume", None, [producer.uid]))
                started = time.perf_counter()
                await stream.send_all(b"go")
                await coordinator.wait_ended()
                elapsed = time.perf_counter() - started
    if not all(node.task_result == size for node in consumers):
        raise SystemExit(f"tgs: a consumer got the wrong size: {consumers[0].task_result}")
    return elapsed


def tgs_run(size: int, pairs: int) -> float:
    gc.collect()
    return trio.run(tgs_run_async, size, pairs)


# -- peers -------------------------------------------------------------------------------


class DaskPeer:
    name = "dask"

    def __init__(self) -> None:
        from dask.distributed import Client, LocalCluster

        self.cluster = LocalCluster(
            n_workers=WORKERS, threads_per_worker=1, processes=True, dashboard_address=None
        )
        self.client = Client(self.cluster)
        self.client.wait_for_workers(WORKERS)
        self.workers = sorted(self.client.scheduler_info()["workers"])
        self.run(1024, 10)  # warm-up

    def run(self, size: int, pairs: int) -> float:
        gc.collect()
        first, second = self.workers[:2]
        started = time.perf_counter()
        futures = []
        for _ in range(pairs):
            value = self.client.submit(peer_produce, size, pure=False, workers=[first])
            futures.append(self.client.submit(peer_consume, value, pure=False, workers=[second]))
        results = self.client.gather(futures)
        elapsed = time.perf_counter() - started
        if results != [size] * pairs:
            raise SystemExit("dask: a consumer got the wrong size")
        return elapsed

    def close(self) -> None:
        self.client.close()
        self.cluster.close()


class RayPeer:
    name = "ray"

    def __init__(self) -> None:
        import ray

        self.ray = ray
        ray.init(
            num_cpus=WORKERS,
            include_dashboard=False,
            log_to_driver=False,
            logging_level="warning",
            configure_logging=True,
        )
        self.produce = ray.remote(peer_produce)
        self.consume = ray.remote(peer_consume)
        self.run(1024, 10)  # warm-up: worker processes start lazily

    def run(self, size: int, pairs: int) -> float:
        gc.collect()
        started = time.perf_counter()
        refs = [self.consume.remote(self.produce.remote(size)) for _ in range(pairs)]
        results = self.ray.get(refs)
        elapsed = time.perf_counter() - started
        if results != [size] * pairs:
            raise SystemExit("ray: a consumer got the wrong size")
        return elapsed

    def close(self) -> None:
        self.ray.shutdown()


PEERS: dict[str, Any] = {"dask": ("dask.distributed", DaskPeer), "ray": ("ray", RayPeer)}


# -- the report --------------------------------------------------------------------------


def parse_size(text: str) -> int:
    units = {"KiB": 2**10, "MiB": 2**20, "GiB": 2**30}
    for unit, factor in units.items():
        if text.endswith(unit):
            return int(float(text[: -len(unit)]) * factor)
    return int(text)


def size_name(size: int) -> str:
    for unit, factor in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if size >= factor and size % factor == 0:
            return f"{size // factor} {unit}"
    return f"{size} B"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1KiB,1MiB,64MiB", help="value sizes, comma-separated")
    parser.add_argument("--pairs", type=int, default=0, help="pairs per size (0: by size)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per size and system")
    parser.add_argument("--peers", default="dask,ray", help="peers to compare ('' for none)")
    args = parser.parse_args(argv)
    sizes = [parse_size(part) for part in args.sizes.split(",")]

    peers = []
    for name in filter(None, args.peers.split(",")):
        module, cls = PEERS[name]
        try:
            __import__(module)
        except ImportError:
            print(f"{name} not installed: pip install it to compare", file=sys.stderr)
            continue
        peers.append(cls())
    try:
        print(f"values moved between two tasks on different workers ({WORKERS} worker processes)")
        header = ["size", "pairs", "tgs MiB/s"]
        for peer in peers:
            header += [f"{peer.name} MiB/s", f"tgs/{peer.name}"]
        print(" | ".join(header))
        for size in sizes:
            pairs = args.pairs or DEFAULT_PAIRS.get(size, max(1, 256 * MIB // size))
            moved = size * pairs / MIB
            # Side by side: each repeat runs tgs and then every peer.
            times: dict[str, list[float]] = {"tgs": []}
            for _ in range(args.repeats):
                times["tgs"].append(tgs_run(size, pairs))
                for peer in peers:
                    times.setdefault(peer.name, []).append(peer.run(size, pairs))
            rate = {name: moved / statistics.median(runs) for name, runs in times.items()}
            row = [size_name(size), str(pairs), f"{rate['tgs']:,.1f}"]
            for peer in peers:
                row += [f"{rate[peer.name]:,.1f}", f"{rate['tgs'] / rate[peer.name]:.2f}x"]
            print(" | ".join(row), flush=True)
    finally:
        for peer in peers:
            peer.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
