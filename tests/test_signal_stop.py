"""SignalStop: the first signal asks for a graceful stop, the second exits at once."""

from __future__ import annotations

import os
import signal

import pytest
import trio
import trio.testing

from trio_graph_scheduler.shared.programs import SignalStop


@pytest.mark.parametrize("second", [signal.SIGINT, signal.SIGTERM])
async def test_second_signal_exits_at_once_with_its_number(second: int) -> None:
    calls: list[tuple[str, int]] = []
    stops: list[bool] = []

    def exit_now(prog: str, signum: int) -> None:
        calls.append((prog, signum))
        nursery.cancel_scope.cancel()  # instead of ending the process

    stopper = SignalStop("tgs-test", exit_now)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(stopper.watch, lambda: stops.append(True))
            await trio.testing.wait_all_tasks_blocked()
            os.kill(os.getpid(), signal.SIGTERM)
            while not stops:  # noqa: ASYNC110  # a signal has no event to wait on
                await trio.sleep(0.01)
            assert stopper.exit_code == 128 + signal.SIGTERM
            assert calls == []
            os.kill(os.getpid(), second)
            await trio.sleep_forever()
    assert stops == [True]  # the graceful stop was asked once
    assert calls == [("tgs-test", second)]
