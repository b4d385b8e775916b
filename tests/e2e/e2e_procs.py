"""Real ``tgs-coordinator`` and ``tgs-worker`` processes for the end-to-end tests.

Each process writes its stdout and stderr to files in the test's log directory (no pipes
to drain, nothing to leak). Waits poll those files, or the process, and every wait is
bounded: a wait that runs out fails the test with the processes' logs in the message.
:class:`Processes` kills whatever is still running when the test ends, pass or fail.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import trio

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from types import ModuleType

BIN: Final = Path(sys.executable).parent
COORDINATOR: Final = BIN / "tgs-coordinator"
WORKER: Final = BIN / "tgs-worker"
STATUS: Final = BIN / "tgs-status"

#: The longest any one wait may take, in seconds.
WAIT: Final = 20.0
#: How often waits look again at a file or a process.
POLL: Final = 0.02

#: The graph module the coordinator imports (copied from ``graphs/``), and the variable
#: naming the directory its tasks write to.
GRAPH_MODULE: Final = "tgs_e2e_graphs"
GRAPHS_DIR: Final = Path(__file__).parent / "graphs"
#: The user's code every coordinator gets: the graph module and the helper module it
#: imports. Other modules of ``graphs/`` are copied on demand (:meth:`Processes.add_graph_module`).
GRAPH_SOURCES: Final = (GRAPHS_DIR / f"{GRAPH_MODULE}.py", GRAPHS_DIR / "tgs_e2e_helpers.py")
DIR_ENV: Final = "TGS_E2E_DIR"

_LISTENING: Final = re.compile(r"listening on (wss?://[^\s,]+)")


class WaitTimeout(AssertionError):
    """A bounded wait ran out."""


def wait_until(
    check: Callable[[], Any], what: str, timeout: float = WAIT, logs: Callable[[], str] = str
) -> Any:
    """Poll ``check()`` until it returns something truthy; return that."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise WaitTimeout(f"timed out after {timeout:g} s waiting for {what}\n{logs()}")
        time.sleep(POLL)


class Proc:
    """One started program, its output in ``<logdir>/<name>.out`` and ``.err``."""

    def __init__(
        self, name: str, argv: Sequence[str], cwd: Path, env: Mapping[str, str], logdir: Path
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.out_path = logdir / f"{name}.out"
        self.err_path = logdir / f"{name}.err"
        with self.out_path.open("wb") as out, self.err_path.open("wb") as err:
            # The child has its own copies of the descriptors; ours close at once.
            self.popen = subprocess.Popen(
                self.argv, cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL, stdout=out, stderr=err
            )
        self.pid = self.popen.pid

    def __repr__(self) -> str:
        return f"<Proc {self.name} pid={self.pid} rc={self.popen.returncode}>"

    @property
    def stdout(self) -> str:
        return self.out_path.read_text(errors="replace")

    @property
    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace")

    def stderr_lines(self) -> list[str]:
        return self.stderr.splitlines()

    def describe(self) -> str:
        state = "running" if self.popen.poll() is None else f"exit {self.popen.returncode}"
        return (
            f"--- {self.name} (pid {self.pid}, {state}): {' '.join(self.argv)}\n"
            f"stdout:\n{self.stdout}stderr:\n{self.stderr}"
        )

    def running(self) -> bool:
        return self.popen.poll() is None

    def wait(self, timeout: float = WAIT, logs: Callable[[], str] | None = None) -> int:
        """Wait for the process to exit; return its exit status (negative: killed by)."""
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            raise WaitTimeout(
                f"{self.name} still running after {timeout:g} s\n{(logs or self.describe)()}"
            ) from None

    def wait_for_stderr(
        self, pattern: str, count: int = 1, timeout: float = WAIT
    ) -> list[re.Match[str]]:
        """Wait until ``pattern`` matches ``count`` times on stderr; return the matches.

        Fails at once if the process exits first.
        """
        regex = re.compile(pattern)

        def check() -> list[re.Match[str]] | None:
            exited = self.popen.poll() is not None  # before reading: no output after exit
            matches = list(regex.finditer(self.stderr))
            if len(matches) >= count:
                return matches
            if exited:
                raise AssertionError(
                    f"{self.name} exited before logging {pattern!r}\n{self.describe()}"
                )
            return None

        result: list[re.Match[str]] = wait_until(
            check, f"{pattern!r} x{count} on {self.name}'s stderr", timeout, self.describe
        )
        return result

    def signal(self, signum: int) -> None:
        self.popen.send_signal(signum)

    def kill(self) -> None:
        """SIGKILL if still running, and reap."""
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait(WAIT)


class Coordinator(Proc):
    """A ``tgs-coordinator``; :attr:`url` once it listens."""

    url = ""

    def wait_listening(self, timeout: float = WAIT) -> str:
        """Wait for ``listening on ws://...`` (or ``wss://``) and return that URL."""
        (match,) = self.wait_for_stderr(_LISTENING.pattern, timeout=timeout)[:1]
        self.url = match.group(1)
        return self.url

    def wait_joined(self, count: int, timeout: float = WAIT) -> None:
        """Wait until ``count`` workers have joined in all."""
        self.wait_for_stderr(r"worker worker-\d+ \(.*\) joined", count, timeout)

    def summary(self) -> dict[str, int]:
        """The final ``graph ended: 3 success, 1 failed`` line as ``{status: count}``."""
        match = re.search(r"^tgs-coordinator: (?:graph ended|stopped): (.*)$", self.stdout, re.M)
        assert match, f"no summary line on stdout\n{self.describe()}"
        counts = {}
        for part in match.group(1).split(", "):
            number, status = part.split(" ", 1)
            counts[status] = int(number)
        return counts


class Processes:
    """Starts the programs of one test; :meth:`close` kills what is left.

    Attributes:
        root: the test's temporary directory.
        graph_dir: holds only the user's code (``graphs/*.py``); the coordinator runs here.
        worker_dir: an empty directory; workers run here.
        out_dir: where tasks write (``TGS_E2E_DIR``).
        log_dir: the programs' stdout and stderr.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.graph_dir = root / "coordinator-cwd"
        self.worker_dir = root / "worker-cwd"
        self.out_dir = root / "out"
        self.log_dir = root / "logs"
        for path in (self.graph_dir, self.worker_dir, self.out_dir, self.log_dir):
            path.mkdir()
        for source in GRAPH_SOURCES:
            (self.graph_dir / source.name).write_bytes(source.read_bytes())
        self.procs: list[Proc] = []

    def add_graph_module(self, name: str) -> None:
        """Copy ``graphs/<name>.py`` into :attr:`graph_dir` too, for builders of its own
        (start the coordinator with ``raw_spec=True`` and ``"<name>:build_..."``)."""
        (self.graph_dir / f"{name}.py").write_bytes((GRAPHS_DIR / f"{name}.py").read_bytes())

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "TGS_TOKEN"}
        env.update(PYTHONUNBUFFERED="1", **{DIR_ENV: str(self.out_dir)}, **(extra or {}))
        return env

    def _name(self, kind: str) -> str:
        return f"{kind}{sum(p.name.startswith(kind) for p in self.procs) + 1}"

    def coordinator(
        self,
        builder: str | None,
        *args: str,
        listen: str | None = "127.0.0.1:0",
        raw_spec: bool = False,
        env: Mapping[str, str] | None = None,
    ) -> Coordinator:
        """Start ``tgs-coordinator`` in :attr:`graph_dir`.

        ``builder`` names a function of the graph module, or with ``raw_spec`` it is the
        ``MODULE:FUNC`` argument as given; ``None`` passes none.
        """
        argv = [str(COORDINATOR)]
        if builder is not None:
            argv.append(builder if raw_spec else f"{GRAPH_MODULE}:{builder}")
        if listen is not None:
            argv += ["--listen", listen]
        argv += args
        proc = Coordinator(
            self._name("coordinator"), argv, self.graph_dir, self.env(env), self.log_dir
        )
        self.procs.append(proc)
        return proc

    def worker(self, url: str | None, *args: str, env: Mapping[str, str] | None = None) -> Proc:
        """Start ``tgs-worker --connect url`` in the empty :attr:`worker_dir`."""
        argv = [str(WORKER)]
        if url is not None:
            argv += ["--connect", url]
        argv += args
        proc = Proc(self._name("worker"), argv, self.worker_dir, self.env(env), self.log_dir)
        self.procs.append(proc)
        return proc

    def logs(self) -> str:
        """Every process's command line and output, for failure messages."""
        return "\n".join(proc.describe() for proc in self.procs)

    def wait(self, proc: Proc, timeout: float = WAIT) -> int:
        """``proc.wait`` with every process's logs in the message if it times out."""
        return proc.wait(timeout, self.logs)

    def close(self) -> None:
        for proc in self.procs:
            proc.kill()

    # -- what the tasks wrote ----------------------------------------------------------

    def release(self, name: str) -> None:
        """Create the file tasks poll for (``go``, ``release``)."""
        (self.out_dir / name).touch()

    def events(self) -> list[dict[str, Any]]:
        """Every event the tasks wrote, in order; a line still being written is left for
        the next look (a read can catch an append half done: once in CI, a line was read
        up to its `"pid":`)."""
        path = self.out_dir / "events.jsonl"
        if not path.exists():
            return []
        *lines, _partial = path.read_text().split("\n")
        return [json.loads(line) for line in lines]

    def wait_events(
        self, check: Callable[[list[dict[str, Any]]], bool], what: str, timeout: float = WAIT
    ) -> list[dict[str, Any]]:
        """Wait until ``check(events)`` holds; return the events."""

        def ready() -> list[dict[str, Any]] | None:
            events = self.events()
            return events if check(events) else None

        result: list[dict[str, Any]] = wait_until(ready, what, timeout, self.logs)
        return result

    def summary(self, label: str) -> dict[str, Any]:
        result: dict[str, Any] = json.loads((self.out_dir / f"summary-{label}.json").read_text())
        return result


async def await_until(
    check: Callable[[], Any],
    what: str,
    timeout: float = WAIT,  # noqa: ASYNC109 - the same call as wait_until's
    logs: Callable[[], str] = str,
) -> Any:
    """:func:`wait_until` for a trio test: sleeps between looks instead of blocking."""
    with trio.move_on_after(timeout):
        # Other processes change what check() looks at: there is no trio.Event to wait on.
        while not (value := check()):  # noqa: ASYNC110
            await trio.sleep(POLL)
        return value
    raise WaitTimeout(f"timed out after {timeout:g} s waiting for {what}\n{logs()}")


def import_graph_module(name: str) -> ModuleType:
    """Import ``graphs/<name>.py`` into this process (a test that runs the coordinator
    itself builds its graph with it). A module of the user's own code: the coordinator
    ships its functions to workers by value."""
    if name in sys.modules:
        return sys.modules[name]
    if str(GRAPHS_DIR) not in sys.path:
        sys.path.append(str(GRAPHS_DIR))  # for the helper module the graph modules import
    spec = importlib.util.spec_from_file_location(name, GRAPHS_DIR / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def max_overlap(events: Sequence[dict[str, Any]], prefix: str) -> int:
    """The most tasks named ``prefix...`` that were running at one instant.

    Intervals come from the tasks' own start/end records, which lie inside the time the
    coordinator counted them as running, so this never overstates what it allowed.
    """
    edges = []
    for event in events:
        if event["task"].startswith(prefix):
            # At one instant, an end sorts before a start: touching is not overlapping.
            edges.append((event["t"], 0 if event["event"] == "end" else 1))
    running = most = 0
    for _, kind in sorted(edges):
        running += 1 if kind else -1
        most = max(most, running)
    return most


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listened on a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def status(*args: str) -> subprocess.CompletedProcess[str]:
    """Run ``tgs-status`` with ``args``; its output, whatever its exit status."""
    return subprocess.run(
        [str(STATUS), *args], capture_output=True, text=True, timeout=WAIT, check=False
    )


def start_status_run(procs: Processes, token: str) -> tuple[Coordinator, str, dict[str, str]]:
    """A coordinator running ``build_status`` with ``token`` and its one worker, held with
    ``hold-0`` running; return the coordinator, its URL and its tasks' uids by name."""
    coordinator = procs.coordinator("build_status", "--token", token)
    url = coordinator.wait_listening()
    procs.worker(url, "--token", token, "--loops", "default", "--name", "solo")
    procs.wait_events(
        lambda events: any(e["event"] == "start" and e["task"] == "hold-0" for e in events),
        "hold-0 started",
    )
    uids: dict[str, str] = json.loads((procs.out_dir / "uids.json").read_text())
    return coordinator, url, uids
