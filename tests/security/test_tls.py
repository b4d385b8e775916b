"""TLS between coordinator and workers: wss:// with a certificate made in the test.

Coordinator and workers run in this trio program over real loopback TCP (TLS needs a
real socket listener); the end-to-end tests start real processes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
import trio

from trio_graph_scheduler import (
    ConfigError,
    Coordinator,
    CoordinatorConfig,
    LinkError,
    TaskGraph,
    Worker,
    WorkerConfig,
    WorkerLoop,
)

if TYPE_CHECKING:
    from pathlib import Path


async def double(x: int, **_: Any) -> int:
    return 2 * x


def graph_of(n: int) -> TaskGraph:
    graph = TaskGraph({"double": double}, [WorkerLoop("default", 2)])
    for i in range(n):
        graph.create_task_nowait("double", ((i,), {}))
    return graph


async def test_workers_run_a_graph_over_tls(certificates: dict[str, str]) -> None:
    graph = graph_of(20)
    config = CoordinatorConfig(tls_cert=certificates["cert"], tls_key=certificates["key"])
    coordinator = Coordinator(graph, config)
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            await nursery.start(coordinator.serve)
            assert coordinator.url.startswith("wss://127.0.0.1:")
            for _ in range(2):
                worker = Worker(WorkerConfig(url=coordinator.url, tls_ca=certificates["ca"]))
                nursery.start_soon(worker.run)
    assert coordinator.summary is not None
    assert coordinator.summary.succeeded
    assert sorted(n.task_result for n in graph.nodes.values()) == [2 * i for i in range(20)]


async def test_a_worker_trusting_another_ca_is_refused_at_once(
    certificates: dict[str, str],
) -> None:
    config = CoordinatorConfig(tls_cert=certificates["cert"], tls_key=certificates["key"])
    coordinator = Coordinator(graph_of(1), config)
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            await nursery.start(coordinator.serve)
            # A long connect timeout: a certificate that fails to verify is not retried.
            worker = Worker(
                WorkerConfig(
                    url=coordinator.url, tls_ca=certificates["other_ca"], connect_timeout=300
                )
            )
            with pytest.raises(LinkError, match="certificate verify failed"):
                await worker.run()
            nursery.start_soon(
                Worker(WorkerConfig(url=coordinator.url, tls_ca=certificates["ca"])).run
            )
    assert coordinator.summary is not None
    assert coordinator.summary.succeeded


async def test_a_plain_worker_cannot_talk_to_a_tls_coordinator(
    certificates: dict[str, str],
) -> None:
    config = CoordinatorConfig(tls_cert=certificates["cert"], tls_key=certificates["key"])
    coordinator = Coordinator(graph_of(1), config)
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            await nursery.start(coordinator.serve)
            plain_url = coordinator.url.replace("wss://", "ws://")
            # A long connect timeout: the mismatch is found at the first attempt.
            worker = Worker(WorkerConfig(url=plain_url, connect_timeout=300))
            with pytest.raises(LinkError, match=r"speaks TLS: connect with wss://127\.0\.0\.1:"):
                await worker.run()
            coordinator.stop()


async def test_a_tls_worker_cannot_talk_to_a_plain_coordinator() -> None:
    coordinator = Coordinator(graph_of(1), CoordinatorConfig())
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            await nursery.start(coordinator.serve)
            tls_url = coordinator.url.replace("ws://", "wss://")
            worker = Worker(WorkerConfig(url=tls_url, connect_timeout=300))
            with pytest.raises(LinkError, match=r"does not speak TLS: connect with ws://"):
                await worker.run()
            coordinator.stop()


def test_bad_tls_settings_are_config_errors(certificates: dict[str, str], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="needs its certificate"):
        CoordinatorConfig(tls_key=certificates["key"])
    with pytest.raises(ConfigError, match="only makes sense for a wss://"):
        Worker(WorkerConfig(url="ws://127.0.0.1:1", tls_ca=certificates["ca"]))
    with pytest.raises(ConfigError, match="cannot load the CA file"):
        Worker(WorkerConfig(url="wss://127.0.0.1:1", tls_ca=str(tmp_path / "missing.pem")))
