"""Every code block of the README runs as written, and does what the README says.

Each fenced block is one test, found by its place in README.md. A block is run, or
checked without running where running it would not test the README (its reason is
below, in :data:`NOT_RUN_REASONS`); a block that fits no rule fails, so a new block
needs a way to run or a stated reason. A README edit that breaks a block fails its test.

How blocks run:

- ``python`` blocks whose first line is ``# NAME.py`` are files: they are written to the
  work directory (an empty temporary one) for the blocks that use them. The one that
  starts a cluster runs as a script in that directory, in a process of their own (a
  ``# {...}`` comment on its ``print`` line is the output expected); the others are
  executed in the test's process.
- ``sh`` blocks run line by line in bash, with the environment's ``bin`` first on PATH
  (as the README asks). ``tgs-coordinator`` and ``tgs-worker`` lines start real processes
  on 127.0.0.1: the README's addresses (``0.0.0.0:8765``, ``coordinator-host:8765``) are
  replaced by a free port on loopback (the coordinator's chosen by the OS), and
  ``TASK_UID`` by a uid of the run; nothing else is changed. A ``# prints: X`` comment
  is the output expected.
- Install lines are parsed, not run: a full install needs a network or a wheel cache
  and minutes; the requirement each names must be this project.
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

import pytest
from packaging.requirements import Requirement

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

ROOT: Final = Path(__file__).parent.parent
README: Final = ROOT / "README.md"
BIN: Final = Path(sys.executable).parent
#: The longest any one program or wait may take, in seconds: generous, for a loaded machine.
WAIT: Final = 60.0
PROJECT: Final = "trio-graph-scheduler"

#: Why a block is not run as written.
NOT_RUN_REASONS: Final = {
    "quick-start": "scripts/test runs this very suite, and scripts/demo first reinstalls "
    "into the .venv the suite runs from; the demo's run (scripts/demo_cluster.py, what "
    "scripts/demo runs after installing) is run instead",
    "install": "a full install needs a network or a wheel cache and minutes: each "
    "requirement is parsed and must name this project; the --help lines are run",
}


@dataclass(frozen=True)
class Block:
    lang: str
    code: str
    #: The line of README.md the block's fence is on.
    line: int

    @property
    def id(self) -> str:
        return f"README.md:{self.line}-{self.lang}"

    @property
    def file_name(self) -> str | None:
        """``NAME.py`` for a block that is a file (its first line says so), else None."""
        match = re.fullmatch(r"# (\w+\.py)", self.code.splitlines()[0])
        return match.group(1) if self.lang == "python" and match else None


def readme_blocks() -> list[Block]:
    text = README.read_text()
    blocks = []
    for match in re.finditer(r"^```(\w*)\n(.*?)^```$", text, flags=re.S | re.M):
        line = text.count("\n", 0, match.start()) + 1
        blocks.append(Block(match.group(1), match.group(2), line))
    return blocks


BLOCKS: Final = readme_blocks()


def kind_of(block: Block) -> str:
    """Which rule runs (or checks) the block."""
    code = block.code
    if block.lang == "python":
        if block.file_name:
            return "file"
        if "serve_coordinator" in code:
            return "python-cluster"
        return "python"
    if block.lang != "sh":
        return "unknown"
    if "scripts/demo" in code:
        return "quick-start"
    if "pip install" in code:
        return "install"
    if "activate" in code:
        return "activate"
    if "tgs-status" in code:
        return "status"
    if "--dashboard" in code:
        return "dashboard"
    if "tgs-coordinator" in code and "tgs-worker" in code:
        return "cluster"
    if re.search(r"^python \w+\.py", code, flags=re.M):
        return "run-file"
    return "unknown"


def test_every_block_has_a_rule() -> None:
    kinds = {block.id: kind_of(block) for block in BLOCKS}
    assert "unknown" not in kinds.values(), kinds
    # The README's promises: an in-process example, a file of one's own run in-process
    # and on a cluster, the status queries, a cluster from Python, install lines.
    for needed in (
        "python",
        "file",
        "run-file",
        "cluster",
        "status",
        "dashboard",
        "python-cluster",
    ):
        assert needed in kinds.values(), (needed, kinds)
    assert "install" in kinds.values()


# -- helpers ---------------------------------------------------------------------------


def env() -> dict[str, str]:
    """The environment of a reader who did what the README says: its bin on PATH."""
    base = {k: v for k, v in os.environ.items() if k not in ("TGS_TOKEN", "PYTHONPATH")}
    return base | {"PATH": f"{BIN}{os.pathsep}{base.get('PATH', '')}", "PYTHONUNBUFFERED": "1"}


def commands(code: str) -> list[str]:
    """The block's command lines, without comment lines."""
    return [line for line in code.splitlines() if line.strip() and not line.startswith("#")]


def expected_output(line: str) -> str | None:
    """What ``# prints: X`` at the end of a line says it prints."""
    match = re.search(r"#\s*prints:\s*(.*)$", line)
    return match.group(1).strip() if match else None


def on_loopback(line: str, port: int) -> str:
    """The README's addresses, made ``port`` on loopback (0 for a coordinator: the OS
    picks a free one, read back from its log, so no other program can take it first)."""
    for address in ("0.0.0.0:8765", "coordinator-host:8765", "127.0.0.1:8765"):
        line = line.replace(address, f"127.0.0.1:{port}")
    return line


LISTENING: Final = r"listening on ws://127\.0\.0\.1:(\d+)"


def run(line: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        ["bash", "-c", line],
        cwd=cwd,
        env=env(),
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=False,
    )
    assert done.returncode == 0, f"{line!r} exited {done.returncode}\n{done.stderr}"
    return done


class Program:
    """A long-running line (``tgs-coordinator``, ``tgs-worker``), its output in files."""

    def __init__(self, name: str, line: str, cwd: Path, logs: Path) -> None:
        self.name = name
        self.line = line
        self.out = logs / f"{name}.out"
        self.err = logs / f"{name}.err"
        with self.out.open("wb") as out, self.err.open("wb") as err:
            # exec: the program is the process, so that a kill reaches it.
            self.popen = subprocess.Popen(
                ["bash", "-c", f"exec {line}"],
                cwd=cwd,
                env=env(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
            )

    def describe(self) -> str:
        return (
            f"--- {self.name}: {self.line}\nstdout:\n{self.out.read_text()}"
            f"stderr:\n{self.err.read_text()}"
        )

    def wait_for_stderr(self, pattern: str) -> re.Match[str]:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            exited = self.popen.poll() is not None
            if match := re.search(pattern, self.err.read_text()):
                return match
            assert not exited, f"exited before {pattern!r}\n{self.describe()}"
            time.sleep(0.05)
        raise AssertionError(f"no {pattern!r} in {WAIT:g} s\n{self.describe()}")

    def wait(self) -> int:
        try:
            return self.popen.wait(WAIT)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still running after {WAIT:g} s\n{self.describe()}") from None


@pytest.fixture
def programs(tmp_path: Path) -> Iterator[Callable[[str, str, Path], Program]]:
    """Starts long-running lines; kills what is left when the test ends."""
    logs = tmp_path / "logs"
    logs.mkdir()
    started: list[Program] = []

    def start(name: str, line: str, cwd: Path) -> Program:
        program = Program(name, line, cwd, logs)
        started.append(program)
        return program

    yield start
    for program in started:
        if program.popen.poll() is None:
            program.popen.kill()
        program.popen.wait(WAIT)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """An empty directory holding the README's files (``# pipeline.py`` blocks)."""
    work = tmp_path / "work"
    work.mkdir()
    for block in BLOCKS:
        if block.file_name:
            (work / block.file_name).write_text(block.code)
    return work


def blocks_of(*kinds: str) -> list[pytest.ParameterSet]:
    return [pytest.param(block, id=block.id) for block in BLOCKS if kind_of(block) in kinds]


# -- python blocks ---------------------------------------------------------------------


@pytest.mark.parametrize("block", blocks_of("python"))
def test_python_block_runs(block: Block, capsys: pytest.CaptureFixture[str]) -> None:
    exec(compile(block.code, str(README), "exec"), {"__name__": "readme"})
    # The in-process example: the total of three pages' sizes.
    assert capsys.readouterr().out.split() == ["success", str(3 * len("<p>page at a</p>"))]


@pytest.mark.slow
@pytest.mark.parametrize("block", blocks_of("python-cluster"))
def test_python_cluster_block_runs(block: Block, workdir: Path) -> None:
    # A process of its own, in the directory of pipeline.py, as a reader would run it.
    script = workdir / "cluster.py"
    script.write_text(block.code)
    done = run(f"python {script.name}", workdir)
    (printed,) = [line for line in block.code.splitlines() if "print(" in line]
    expected = printed.split("#", 1)[1].strip()
    assert done.stdout.strip() == expected, done


@pytest.mark.parametrize("block", blocks_of("file"))
def test_file_block_is_used_by_a_later_block(block: Block) -> None:
    later = [b.code for b in BLOCKS if b.line > block.line]
    stem = Path(block.file_name or "").stem
    assert any(re.search(rf"\b{stem}\b", code) for code in later)


# -- shell blocks ----------------------------------------------------------------------


@pytest.mark.parametrize("block", blocks_of("run-file"))
def test_run_file_block_prints_what_it_says(block: Block, workdir: Path) -> None:
    for line in commands(block.code):
        done = run(line, workdir)
        expected = expected_output(line)
        if expected is not None:
            assert done.stdout.strip() == expected, done


@pytest.mark.parametrize("block", blocks_of("activate"))
def test_activate_block_puts_the_programs_on_path(block: Block, tmp_path: Path) -> None:
    # In a directory whose .venv is the environment the suite runs in.
    (tmp_path / ".venv").symlink_to(BIN.parent)
    lines = commands(block.code)
    assert lines[0].split("#")[0].strip() in (". .venv/bin/activate", "source .venv/bin/activate")
    script = "\n".join([*lines, "command -v tgs-coordinator tgs-worker tgs-status"])
    plain = {k: v for k, v in env().items() if k != "PATH"} | {"PATH": os.defpath}
    done = subprocess.run(
        ["bash", "-c", script],
        cwd=tmp_path,
        env=plain,  # nothing of ours on PATH before the block
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=False,
    )
    assert done.returncode == 0, done
    found = done.stdout.splitlines()[-3:]
    assert [Path(path).name for path in found] == ["tgs-coordinator", "tgs-worker", "tgs-status"]
    # The alternative in the comment works too.
    alternative = lines[0].split("# or:", 1)[1].strip()
    done = subprocess.run(
        ["bash", "-c", f"{alternative}\ncommand -v tgs-status"],
        cwd=tmp_path,
        env=plain,
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=False,
    )
    assert done.returncode == 0, done


@pytest.mark.parametrize("block", blocks_of("install"))
def test_install_block_names_this_project(block: Block) -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    extras = set(re.findall(r"^(\w+) = \[", pyproject, flags=re.M))
    installs = 0
    for line in commands(block.code):
        for part in line.split("#")[0].split("&&"):
            argv = shlex.split(part)
            if not argv:
                continue
            if argv[-1] == "--help":  # a program of this project, installed: run it
                done = run(f"{BIN / Path(argv[0]).name} --help", ROOT)
                assert "usage:" in done.stdout
                continue
            if argv[1:3] == ["-m", "venv"]:
                continue
            assert argv[1:4] == ["-m", "pip", "install"], part
            (spec,) = argv[4:]
            installs += 1
            if spec.startswith("/"):  # a clone's path, with extras perhaps
                path, _, extra = spec.partition("[")
                assert path.endswith(f"/{PROJECT}"), spec
                assert not extra or extra.rstrip("]") in extras, spec
            else:
                requirement = Requirement(spec)
                assert requirement.name == PROJECT, spec
                assert requirement.url is not None
                assert requirement.url.startswith("git+https://"), spec
    assert installs


@pytest.mark.slow
@pytest.mark.parametrize("block", blocks_of("quick-start"))
def test_quick_start_demo_runs(block: Block) -> None:
    assert commands(block.code)[0].startswith("scripts/demo ")
    assert "demo_cluster.py" in (ROOT / "scripts" / "demo").read_text()
    done = run(f"python {ROOT / 'scripts' / 'demo_cluster.py'}", ROOT)
    # One page is missing on purpose: one task fails, the one after it never runs.
    assert "1 failed, 1 skipped" in done.stdout, done


@pytest.mark.slow
@pytest.mark.parametrize("block", blocks_of("cluster"))
def test_cluster_block_runs_a_coordinator_and_workers(
    block: Block,
    workdir: Path,
    tmp_path: Path,
    programs: Callable[[str, str, Path], Program],
) -> None:
    port = 0
    coordinator: Program | None = None
    workers: list[Program] = []
    for line in commands(block.code):
        line = on_loopback(line, port)
        if line.startswith("tgs-coordinator "):
            coordinator = programs("coordinator", line, workdir)
            port = int(coordinator.wait_for_stderr(LISTENING).group(1))
        elif line.startswith("tgs-worker "):
            # As many as the coordinator waits for, each in a directory of its own that
            # holds nothing but the token, as on another machine.
            assert coordinator is not None
            wanted = int(re.search(r"--min-workers (\d+)", coordinator.line).group(1))  # type: ignore[union-attr]
            for i in range(wanted):
                machine = tmp_path / f"worker-{i + 1}"
                machine.mkdir()
                shutil.copy(workdir / "token.txt", machine / "token.txt")
                workers.append(programs(f"worker{i + 1}", line, machine))
        else:
            run(line, workdir)
    assert coordinator is not None
    assert len(workers) == 2
    assert coordinator.wait() == 0, coordinator.describe()
    for worker in workers:
        assert worker.wait() == 0, worker.describe()
    out = coordinator.out.read_text()
    assert "11 tasks: 11 succeeded, 0 failed, 0 skipped" in out, coordinator.describe()
    assert "graph ended: 11 success" in out
    err = coordinator.err.read_text()
    assert len(set(re.findall(r"worker (worker-\d+) \(.*\) joined", err))) == 2


@pytest.mark.slow
@pytest.mark.parametrize("block", blocks_of("status"))
def test_status_block_asks_a_live_coordinator(
    block: Block, workdir: Path, programs: Callable[[str, str, Path], Program]
) -> None:
    # A run that waits for a worker, so that it is there to ask about.
    run("python -c 'print(\"a-token-of-sixteen-chars-or-more\")' > token.txt", workdir)
    coordinator = programs(
        "coordinator",
        "tgs-coordinator pipeline:build_graph --listen 127.0.0.1:0 "
        "--token-file token.txt --min-workers 1",
        workdir,
    )
    port = int(coordinator.wait_for_stderr(LISTENING).group(1))
    lines = [on_loopback(line, port) for line in commands(block.code)]
    uid = None
    outputs = []
    for line in lines:
        if "TASK_UID" in line:
            assert uid is not None, "TASK_UID needs a listing before it"
            line = line.replace("TASK_UID", uid)
        done = run(line, workdir)
        outputs.append(done.stdout)
        if "--tasks" in line:
            rows = done.stdout.splitlines()
            assert rows[0].split()[:3] == ["uid", "function", "status"]
            uid = rows[1].split()[0]
            if "--limit 3" in line:
                assert len(rows) == 5
                assert rows[4] == "... and 8 more tasks matched (--limit 11 shows them)"
    assert outputs[0].startswith(
        "waiting for 1 more worker (--min-workers 1): 10 created, 1 waiting_for_predecessors"
    )
    assert uid is not None
    assert f"{uid} (square) is ready" in outputs[-1], outputs[-1]  # --why
    assert "it waits for --min-workers to join" in outputs[-1], outputs[-1]
    as_json = json.loads(run(f"{lines[0].split('#')[0]} --json", workdir).stdout)
    assert as_json["tasks_by_status"] == {"created": 10, "waiting_for_predecessors": 1}
    programs(
        "worker", f"tgs-worker --connect ws://127.0.0.1:{port} --token-file token.txt", workdir
    )
    assert coordinator.wait() == 0, coordinator.describe()


@pytest.mark.slow
@pytest.mark.parametrize("block", blocks_of("dashboard"))
def test_dashboard_block_serves_its_page(
    block: Block, workdir: Path, programs: Callable[[str, str, Path], Program]
) -> None:
    token = "a-token-of-sixteen-chars-or-more"
    run(f"python -c 'print(\"{token}\")' > token.txt", workdir)
    (line,) = commands(block.code)
    # The README's dashboard port, made one the OS picks; a worker to wait for, so that
    # the page is there to load.
    line = on_loopback(line, 0).replace("127.0.0.1:8787", "127.0.0.1:0")
    coordinator = programs("coordinator", f"{line} --min-workers 1", workdir)
    port = int(coordinator.wait_for_stderr(LISTENING).group(1))
    url = coordinator.wait_for_stderr(r"dashboard on (http://127\.0\.0\.1:\d+/)").group(1)
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    with pytest.raises(urllib.error.HTTPError) as refused:  # without the token: 401
        opener.open(url, timeout=20)
    assert refused.value.code == 401
    assert "<title>tgs dashboard: log in</title>" in refused.value.read().decode()
    with opener.open(f"{url}?token={token}", timeout=20) as page:  # sets the cookie
        assert page.url == url, "the token stayed in the address"
        assert "<title>tgs dashboard</title>" in page.read().decode()
    programs(
        "worker", f"tgs-worker --connect ws://127.0.0.1:{port} --token-file token.txt", workdir
    )
    assert coordinator.wait() == 0, coordinator.describe()
