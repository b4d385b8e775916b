#!/usr/bin/env python
"""Screenshots of the live dashboard at the start, middle and end of a run (not a test).

Starts a real ``tgs-coordinator`` with ``--dashboard`` on the graph
``tests/e2e/graphs/tgs_e2e_dashboard.py:build_many`` (``--tasks`` tasks: chains of fetch ->
parse, a report per 100 chains, some failing), three ``tgs-worker`` processes, and a
headless Chromium (Debian's ``chromium``) on the dashboard; it saves
``dashboard-start.png``, ``dashboard-middle.png`` and ``dashboard-end.png`` (plus one of a
search) into ``--out``.

    .venv/bin/python scripts/dashboard_screens.py --out /work/notes/screens
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import trio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from browser import chromium  # noqa: E402

BIN = Path(sys.executable).parent
GRAPHS = ROOT / "tests" / "e2e" / "graphs"


def wait_for(path: Path, pattern: str, timeout: float = 60.0) -> re.Match[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if match := re.search(pattern, path.read_text()):
            return match
        time.sleep(0.05)
    raise SystemExit(f"no {pattern!r} in {path}:\n{path.read_text()}")


async def main(args: argparse.Namespace) -> None:
    # Blocking calls below are fine: this script runs nothing else in its event loop.
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240
    work = Path(tempfile.mkdtemp(prefix="tgs-screens-"))
    for name in ("tgs_e2e_dashboard.py", "tgs_e2e_helpers.py"):
        shutil.copy(GRAPHS / name, work / name)
    env = {
        **os.environ,
        "TGS_E2E_DIR": str(work),
        "TGS_E2E_TASKS": str(args.tasks),
        "TGS_E2E_SECONDS": str(args.seconds),
    }
    argv = [
        str(BIN / "tgs-coordinator"), "tgs_e2e_dashboard:build_many",
        "--listen", "127.0.0.1:0", "--dashboard", "127.0.0.1:0", "--min-workers", "3",
        "--no-progress", "--report", str(work / "report.json"), "--dashboard-linger", "30",
    ]  # fmt: skip
    err = (work / "coordinator.err").open("wb")
    coordinator = subprocess.Popen(argv, cwd=work, env=env, stderr=err)  # noqa: ASYNC220
    workers = []
    try:
        url = wait_for(work / "coordinator.err", r"listening on (ws://\S+?),")[1]
        dashboard = wait_for(work / "coordinator.err", r"dashboard on (http://\S+)")[1]
        async with chromium(work / "profile", 1400, 1000) as page:
            await page.goto(dashboard)
            await page.wait_for("document.querySelector('#loops tbody tr')", "the loops")
            for i in range(3):
                argv = [str(BIN / "tgs-worker"), "--connect", url, "--name", f"node-{i + 1}"]
                log = (work / f"worker{i}.err").open("wb")
                workers.append(subprocess.Popen(argv, env=env, stderr=log))  # noqa: ASYNC220
            done = (
                "(() => { const r = document.getElementById('progress').textContent;"
                " const m = r.match(/(\\d+) \\/ (\\d+) done/);"
                " return m ? [+m[1], +m[2]] : null; })()"
            )
            await page.wait_for(f"(({done}) || [0])[0] > 30", "a start")
            await page.screenshot(out / "dashboard-start.png", full_page=True)
            await page.wait_for(f"(({done}) || [0, 1])[0] > ({done})[1] / 2", "the middle", 300)
            await page.screenshot(out / "dashboard-middle.png", full_page=True)
            await page.wait_for(
                "document.getElementById('state').textContent.startsWith('ended')", "the end", 600
            )
            await page.wait_for("document.querySelector('#outputs a')", "the report's link")
            await page.screenshot(out / "dashboard-end.png", full_page=True)
            await page.evaluate("location.hash = 'search=broken'")
            await page.wait_for("document.querySelector('#task pre.why')", "the search")
            await page.screenshot(out / "dashboard-search.png", full_page=True)
            if errors := page.errors():
                print("page errors:", *errors, sep="\n")
        print(f"screenshots in {out}")
    finally:
        for proc in [coordinator, *workers]:
            proc.terminate()
        for proc in [coordinator, *workers]:
            proc.wait(30)
        err.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="screens")
    parser.add_argument("--tasks", type=int, default=3000)
    parser.add_argument("--seconds", type=float, default=0.3, help="mean seconds per task")
    trio.run(main, parser.parse_args())
