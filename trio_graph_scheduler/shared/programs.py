"""What the two command-line programs share: logging, signals, exit codes, errors."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import signal
import sys
from typing import TYPE_CHECKING, Final, NoReturn, TypeVar

import trio

from .concurrency import run_beside
from .errors import ConfigError

if TYPE_CHECKING:
    import argparse
    from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

_T = TypeVar("_T")

#: Exit codes common to both programs.
EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
#: Stopped by a signal: 128 + its number, as shells report it (130 for Ctrl-C).
STOP_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM)

LOG_LEVELS: Final = ("debug", "info", "warning", "error")
TOKEN_ENV: Final = "TGS_TOKEN"


def add_token_options(parser: argparse.ArgumentParser) -> None:
    """``--token`` and ``--token-file``, spelled the same in the three programs; read the
    token with :func:`token_from_args`."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--token",
        help=f"shared secret between coordinator and workers (default: ${TOKEN_ENV}); "
        "other users of this machine can read it in the process list, --token-file not",
    )
    group.add_argument(
        "--token-file",
        metavar="PATH",
        help="read the token from this file (its trailing newline is not part of it)",
    )


def token_from_args(args: argparse.Namespace) -> str:
    """The token of ``--token``, ``--token-file`` or ``$TGS_TOKEN``, in that order.

    Raises:
        ConfigError: the token file cannot be read.
    """
    if args.token_file is not None:
        try:
            with open(args.token_file, encoding="utf-8") as file:
                return file.read().rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read the token file {args.token_file}: {exc}") from None
    if args.token is not None:
        return str(args.token)
    return os.environ.get(TOKEN_ENV, "")


def add_common_options(parser: argparse.ArgumentParser) -> None:
    """``--token``, ``--token-file`` and ``--log-level``, spelled the same in both
    programs."""
    add_token_options(parser)
    parser.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        default="info",
        help="how much to log on stderr (default: info)",
    )


#: ``--max-value-bytes`` by default (the protocol's ``chunks.MAX_VALUE_BYTES``; ``shared``
#: sits below ``protocol``, and a test checks that the two agree).
DEFAULT_MAX_VALUE_BYTES = 2**30


def add_frame_option(parser: argparse.ArgumentParser, default: int) -> None:
    """``--max-frame-bytes``, spelled the same in both programs (``default``: the
    protocol's limit, passed in because ``shared`` sits below ``protocol``)."""
    parser.add_argument(
        "--max-frame-bytes",
        type=int,
        metavar="N",
        default=default,
        help="the largest frame accepted. Each side tells the other, which sends no "
        "larger frame; a larger value goes as a stream of frames "
        f"(default: {default}, {default // 2**20} MiB)",
    )
    parser.add_argument(
        "--max-value-bytes",
        type=int,
        metavar="N",
        default=DEFAULT_MAX_VALUE_BYTES,
        help="the largest value (a task's result, its arguments) taken in from the other "
        "side; a larger one fails its task, refused before it is stored. Values being "
        "received may add up to twice this "
        f"(default: {DEFAULT_MAX_VALUE_BYTES}, {DEFAULT_MAX_VALUE_BYTES // 2**30} GiB)",
    )


def configure_logging(level: str) -> None:
    """One line per record on stderr: time, component, level, message."""
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )


def fail(prog: str, message: str, code: int = EXIT_FAILED) -> NoReturn:
    """Print one clear line on stderr and exit with ``code``."""
    print(f"{prog}: error: {message}", file=sys.stderr)
    raise SystemExit(code)


def print_out(text: str) -> bool:
    """Print ``text`` on stdout and flush; False if the reader has gone (a closed pipe,
    as in ``tgs-status ... | head -1``).

    The reader stopping early is its choice, not an error of ours: no traceback. Stdout
    then points at /dev/null, so that the flush at exit does not fail again.
    """
    try:
        print(text, flush=True)
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return False
    return True


def exit_at_once(prog: str, signum: int) -> NoReturn:
    """Leave the process now, with status ``128 + signum`` and one line on stderr.

    ``os._exit``, not an exception: a second signal means "now", and unwinding could
    wait on what the graceful stop was waiting for (a thread running a task, a peer that
    does not answer). The logs and stdout are flushed first.
    """
    name = signal.Signals(signum).name
    logging.shutdown()
    with contextlib.suppress(Exception):  # a closed or broken stream must not stop us
        sys.stdout.flush()
    with contextlib.suppress(Exception):
        print(f"{prog}: stopped at once by a second {name}", file=sys.stderr, flush=True)
    os._exit(128 + signum)


class SignalStop:
    """Turns the first SIGINT or SIGTERM into a graceful stop; a second one is abrupt.

    Args:
        prog: the program's name, for the line said on a second signal.
        exit_now: what a second signal calls (tests pass one that records it instead).
    """

    def __init__(self, prog: str, exit_now: Callable[[str, int], None] = exit_at_once) -> None:
        self._prog = prog
        self._exit_now = exit_now
        #: The signal that asked for the stop, if one did.
        self.signal: int | None = None
        self._signals: AsyncIterator[int] | None = None

    @property
    def exit_code(self) -> int | None:
        """128 + the signal's number once a signal asked for the stop, else ``None``."""
        return None if self.signal is None else 128 + self.signal

    @contextlib.contextmanager
    def receiving(self) -> Iterator[None]:
        """Catch SIGINT and SIGTERM from now on, for :meth:`watch` calls inside.

        A watcher started in a nursery runs only at the next checkpoint; signals that
        come before that are queued here instead of killing the process with Python's
        default handling (a KeyboardInterrupt traceback, or no word at all for SIGTERM).
        """
        with trio.open_signal_receiver(*STOP_SIGNALS) as signals:
            self._signals = signals
            try:
                yield
            finally:
                self._signals = None

    async def watch(self, stop: Callable[[], None]) -> None:
        """Call ``stop`` on the first signal; exit the process at once on the second
        (with status 128 + its number and one line on stderr, no traceback)."""
        if self._signals is None:
            with self.receiving():
                await self.watch(stop)
            return
        async for signum in self._signals:
            if self.signal is not None:
                self._exit_now(self._prog, signum)
                continue
            self.signal = signum
            logging.getLogger("tgs").warning(
                "%s: stopping (send it again to stop at once)", signal.Signals(signum).name
            )
            stop()

    async def run(self, main: Callable[[], Awaitable[_T]], stop: Callable[[], None]) -> _T:
        """Run ``main()`` while watching for signals, which call ``stop``.

        ``main``'s own exceptions come out as themselves, not in an ExceptionGroup.
        """
        with self.receiving():
            return await run_beside(main, functools.partial(self.watch, stop))
