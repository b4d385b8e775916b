#!/usr/bin/env python
"""The distributed demo: a coordinator and two workers on localhost, each its own process.

Runs ``tgs-coordinator examples.word_count:build_graph`` on a free port, starts two
``tgs-worker`` processes in an empty temporary directory (so they cannot import the
example: the coordinator ships its code), and shows every process's output, each line
prefixed with who said it. The example counts words over bundled pages, one of them
missing on purpose, so the coordinator reports one failed task and one that never ran.

Usage, from the repository root (``scripts/demo`` installs first, then runs this)::

    python scripts/demo_cluster.py [--workers N]

Exit status: 0 when the graph ran to its end and every worker left cleanly.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
LISTENING = re.compile(r"listening on (ws://\S+),")
COLOURS = ["\033[1;35m", "\033[1;36m", "\033[1;33m", "\033[1;32m", "\033[1;34m"]
RESET = "\033[0m"


def relay(label: str, colour: str, stream: IO[str], seen: list[str] | None = None) -> None:
    """Print each line of ``stream`` behind ``label``; keep them in ``seen`` if given."""
    tty = sys.stdout.isatty()
    prefix = f"{colour}{label:>12}{RESET} | " if tty else f"{label:>12} | "
    for line in stream:
        if seen is not None:
            seen.append(line)
        print(prefix + line.rstrip("\n"), flush=True)


def start(
    argv: list[str], cwd: Path, label: str, colour: str
) -> tuple[subprocess.Popen[str], threading.Thread, list[str]]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        argv, cwd=cwd, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    seen: list[str] = []
    assert process.stdout is not None
    thread = threading.Thread(target=relay, args=(label, colour, process.stdout, seen))
    thread.start()
    return process, thread, seen


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2, help="how many workers (default: 2)")
    args = parser.parse_args()

    coordinator, coordinator_output, seen = start(
        [
            str(BIN / "tgs-coordinator"),
            "examples.word_count:build_graph",
            "--listen",
            "127.0.0.1:0",
            "--min-workers",  # the example is so small that the first would take it all
            str(args.workers),
        ],
        ROOT,
        "coordinator",
        COLOURS[0],
    )
    url = None
    while url is None and coordinator.poll() is None:
        url = next((m.group(1) for line in list(seen) if (m := LISTENING.search(line))), None)
        if url is None:
            threading.Event().wait(0.05)
    if url is None:
        coordinator_output.join()
        print("demo: the coordinator did not start", file=sys.stderr)
        return 1

    with tempfile.TemporaryDirectory(prefix="tgs-worker-") as empty_dir:
        workers = [
            start(
                [str(BIN / "tgs-worker"), "--connect", url, "--name", f"worker-{index}"],
                Path(empty_dir),
                f"worker-{index}",
                COLOURS[index % len(COLOURS)],
            )
            for index in range(1, args.workers + 1)
        ]
        worker_codes = [process.wait() for process, _, _ in workers]
        for _, thread, _ in workers:
            thread.join()
    coordinator_code = coordinator.wait()
    coordinator_output.join()

    # The coordinator exits 1 because the missing page failed, as the example intends.
    ok = coordinator_code in (0, 1) and all(code == 0 for code in worker_codes)
    print(
        f"\ndemo: coordinator exited {coordinator_code}, workers exited {worker_codes}"
        f" -> {'ok' if ok else 'something went wrong'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
