"""Auth hygiene: wrong tokens are slowed down, refusals log little of what the peer sent,
short tokens are refused beyond loopback, and every program reads a token from a file."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import pytest
import trio
import trio.testing
from hostile_clients import TIME_LIMIT, assert_survived, closed, hello, send, serving, websocket

from trio_graph_scheduler import CoordinatorConfig
from trio_graph_scheduler.coordinator import cli as coordinator_cli
from trio_graph_scheduler.coordinator.throttle import FailedHandshakes
from trio_graph_scheduler.protocol import Reject, encode_frame
from trio_graph_scheduler.shared.errors import ConfigError
from trio_graph_scheduler.shared.programs import TOKEN_ENV, token_from_args
from trio_graph_scheduler.status import build_parser as status_parser
from trio_graph_scheduler.worker import cli as worker_cli

if TYPE_CHECKING:
    import argparse
    from pathlib import Path

TOKEN = "a-token-of-more-than-16-characters"
POLICY_VIOLATION = 1008


# -- the delay before a refusal ------------------------------------------------------


def test_each_failure_doubles_the_delay_up_to_a_bound() -> None:
    throttle = FailedHandshakes(first_delay=0.1, max_delay=5.0)
    delays = [throttle.failed("10.0.0.1", now=float(i)) for i in range(10)]
    assert delays == [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0, 5.0, 5.0]
    # Another address starts afresh, and so does one that got in.
    assert throttle.failed("10.0.0.2", now=10.0) == 0.1
    throttle.succeeded("10.0.0.1")
    assert throttle.failed("10.0.0.1", now=11.0) == 0.1


def test_a_huge_number_of_failures_stays_bounded() -> None:
    throttle = FailedHandshakes(first_delay=0.1, max_delay=5.0, forget_after=1e9)
    for _ in range(5000):
        delay = throttle.failed("10.0.0.1", now=0.0)
    assert delay == 5.0


def test_addresses_are_forgotten_when_old_or_too_many() -> None:
    throttle = FailedHandshakes(forget_after=60.0, max_addresses=3)
    for i in range(3):
        throttle.failed(f"10.0.0.{i}", now=float(i))
    assert len(throttle) == 3
    throttle.failed("10.0.0.9", now=3.0)  # the fourth pushes out the oldest
    assert len(throttle) == 3
    assert throttle.failed("10.0.0.0", now=4.0) == throttle.failed("fresh", now=4.0)
    # A minute after their last failure, addresses are forgotten.
    throttle.failed("late", now=1000.0)
    assert len(throttle) == 1


async def refusal_wait(run: object, token: str, name: str = "guesser") -> tuple[float, object]:
    """Say hello with ``token``; return how long the refusal took (virtual seconds)."""
    async with websocket(run.open_stream) as ws:  # type: ignore[attr-defined]
        started = trio.current_time()
        await send(ws, encode_frame([hello(token, name=name)]))
        close = await closed(ws)
        return trio.current_time() - started, close


async def test_wrong_tokens_from_one_address_wait_longer_each_time(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    config = CoordinatorConfig(token=TOKEN)
    with trio.fail_after(TIME_LIMIT * 10):
        async with serving(tmp_path, config) as run:
            waits = []
            for _ in range(8):
                waited, close = await refusal_wait(run, "wrong")
                assert close.code == POLICY_VIOLATION  # type: ignore[attr-defined]
                assert close.messages == [Reject(reason="wrong token")]  # type: ignore[attr-defined]
                waits.append(waited)
            # A right token is answered at once, and resets the address.
            worker = run.good_worker(name="late")
            started = trio.current_time()
            await run.nursery.start(worker.run)
            assert trio.current_time() - started < 0.1
            waited, _ = await refusal_wait(run, "wrong")
    expected = [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0]
    for wait, delay in zip(waits, expected, strict=True):
        assert delay - 1e-6 <= wait < delay + 0.1
    assert 0.1 - 1e-6 <= waited < 0.2
    assert_survived(run, joined=2)


async def test_a_refusal_logs_little_of_what_the_peer_sent(
    autojump_clock: trio.testing.MockClock, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    name = "n" * 60 * 1024  # the handshake frame may hold 64 KiB
    config = CoordinatorConfig(token=TOKEN)
    with trio.fail_after(TIME_LIMIT), caplog.at_level(logging.WARNING, "tgs.coordinator"):
        async with serving(tmp_path, config) as run:
            await refusal_wait(run, "wrong", name=name)
            async with websocket(run.open_stream) as ws:  # right token, unknown loops
                await send(ws, encode_frame([hello(TOKEN, name="w", loops=["x" * 60_000])]))
                close = await closed(ws)
    refusals = [r.getMessage() for r in caplog.records if r.getMessage().startswith("refused")]
    assert len(refusals) == 2, refusals
    for line in refusals:
        assert len(line) < 1000, line[:300]
        assert "more characters" in line
    assert "unknown loops" in refusals[1]
    assert close.code == POLICY_VIOLATION
    assert len(close.reason) < 1000
    assert_survived(run)


# -- tokens beyond loopback ----------------------------------------------------------


@pytest.mark.parametrize("token", [None, "", " ", " " * 40, "\t\n", "s3cret", "x" * 15])
@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "coordinator.example"])
def test_a_short_or_blank_token_is_refused_beyond_loopback(host: str, token: str | None) -> None:
    with pytest.raises(ConfigError, match=f"refusing to listen on {host}"):
        CoordinatorConfig(host=host, token=token)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1"])
def test_any_token_will_do_on_loopback(host: str) -> None:
    for token in (None, "", " ", "short"):
        CoordinatorConfig(host=host, token=token)


def test_sixteen_characters_are_enough() -> None:
    CoordinatorConfig(host="0.0.0.0", token="x" * 16)


def test_the_short_token_error_says_how_to_make_a_good_one() -> None:
    with pytest.raises(ConfigError, match=r"at least 16.*secrets\.token_urlsafe"):
        CoordinatorConfig(host="0.0.0.0", token="short")


# -- --token-file --------------------------------------------------------------------

PARSERS = {
    "tgs-coordinator": (coordinator_cli.build_parser, ["mod:build"]),
    "tgs-worker": (worker_cli.build_parser, ["--connect", "ws://127.0.0.1:1"]),
    "tgs-status": (status_parser, ["ws://127.0.0.1:1"]),
}


def parse(program: str, *extra: str) -> argparse.Namespace:
    build, required = PARSERS[program]
    return build().parse_args([*required, *extra])


@pytest.mark.parametrize("program", PARSERS)
def test_token_file_gives_the_token_without_its_trailing_newline(
    program: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TOKEN_ENV, "from-the-environment")
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")
    assert token_from_args(parse(program, "--token-file", str(path))) == TOKEN
    path.write_text(TOKEN + "\r\n")
    assert token_from_args(parse(program, "--token-file", str(path))) == TOKEN
    path.write_text(f"  {TOKEN}")  # only the newline goes: the rest is the token
    assert token_from_args(parse(program, "--token-file", str(path))) == f"  {TOKEN}"
    # Without either flag, the environment; with --token, that.
    assert token_from_args(parse(program)) == "from-the-environment"
    assert token_from_args(parse(program, "--token", "given")) == "given"


@pytest.mark.parametrize("program", PARSERS)
def test_token_and_token_file_exclude_each_other(
    program: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        parse(program, "--token", "x", "--token-file", str(tmp_path / "token"))
    assert exited.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


@pytest.mark.parametrize("program", PARSERS)
def test_an_unreadable_token_file_is_a_config_error(program: str, tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(ConfigError, match=f"cannot read the token file {missing}"):
        token_from_args(parse(program, "--token-file", str(missing)))


@pytest.mark.parametrize("program", PARSERS)
def test_help_says_the_file_stays_out_of_the_process_list(
    program: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        parse(program, "--help")
    text = " ".join(capsys.readouterr().out.split())
    assert "--token-file PATH" in text
    assert "process list" in text
