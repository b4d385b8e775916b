"""The live dashboard of a real ``tgs-coordinator``, read by a headless Chromium.

Real processes (a coordinator with ``--dashboard``, two ``tgs-worker``) run
``graphs/tgs_e2e_dashboard.py:build_watched``: 20 fetch -> parse pairs (one parse
raises), a task that raises and the task it skips, and two ``hold`` tasks that run until
the test creates ``release``, so that the run is still going while the page is read.
The browser (Debian's ``chromium``, driven over the DevTools protocol: see tests/browser.py)
loads the page; every check reads the page as rendered, waiting with generous limits.
"""

from __future__ import annotations

import json
import signal
import socket
import urllib.error
import urllib.request
from functools import partial
from typing import TYPE_CHECKING

import pytest
import trio
from browser import CHROMIUM, chromium
from e2e_procs import BIN, WAIT, free_port

if TYPE_CHECKING:
    from pathlib import Path

    from e2e_procs import Processes

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None, reason="needs Chromium for the browser test: apt-get install -y chromium"
    ),
]

TOKEN = "dashboard-token-0123456789"
GRAPH = "tgs_e2e_dashboard"
DASHBOARD = r"dashboard on (https?://\S+)"
#: The page's own limits are short; a loaded machine may still be slow to start things.
PAGE_WAIT = 60.0


def cell(loop: str, count: str) -> str:
    """JavaScript: the number a loop's row shows in one column."""
    return (
        f'+(document.querySelector(\'#loops tr[data-loop="{loop}"] '
        f'td[data-count="{count}"]\') || {{textContent: NaN}}).textContent'
    )


def start_watched(procs: Processes, *args: str, env: dict[str, str] | None = None) -> str:
    """Start the coordinator on the watched graph; return the dashboard's URL."""
    procs.add_graph_module(GRAPH)
    coordinator = procs.coordinator(
        f"{GRAPH}:build_watched", "--no-progress", *args, raw_spec=True, env=env
    )
    coordinator.wait_listening()
    (match,) = coordinator.wait_for_stderr(DASHBOARD)
    return match[1]


async def test_the_page_shows_the_run_as_it_goes(procs: Processes, tmp_path: Path) -> None:
    report = procs.out_dir / "report.json"
    dashboard = start_watched(
        procs, "--dashboard", "127.0.0.1:0", "--report", str(report), "--dashboard-linger", "120"
    )
    coordinator = procs.procs[0]
    url = coordinator.url  # type: ignore[attr-defined]
    procs.worker(url, "--name", "alpha")
    procs.worker(url, "--name", "beta")
    async with chromium(tmp_path / "profile") as page:
        await page.goto(dashboard)
        # The workers, by the names they gave.
        names = await page.wait_for(
            "(() => { const t = document.querySelector('#workers tbody').innerText;"
            " return t.includes('alpha') && t.includes('beta') ? t : null; })()",
            "both workers' names",
            PAGE_WAIT,
        )
        assert "worker-1" in names
        # The loops' counts, once everything but the held tasks has ended.
        expected = {
            ("default", "succeeded"): 20, ("default", "failed"): 1, ("default", "skipped"): 1,
            ("parsing", "succeeded"): 19, ("parsing", "failed"): 1, ("held", "running"): 2,
            ("held", "ready"): 0, ("default", "waiting"): 0,
        }  # fmt: skip
        checks = " && ".join(
            f"{cell(loop, count)} === {n}" for (loop, count), n in expected.items()
        )
        await page.wait_for(checks, f"the loops' counts {expected}", PAGE_WAIT)
        slots = await page.evaluate(
            'document.querySelector(\'#loops tr[data-loop="held"] [data-count="slots"]\')'
            ".textContent"
        )
        assert slots == "2 / 2"
        # Bars in the task stream: one per task run (43 ran or run), a failed one marked.
        bars = await page.wait_for(
            "document.querySelectorAll('#stream rect.bar-run').length >= 43 &&"
            " document.querySelectorAll('#stream rect.bar-run').length",
            "43 bars in the task stream",
            PAGE_WAIT,
        )
        assert bars == 43
        failed_bars = await page.evaluate(
            "[...document.querySelectorAll('#stream rect.failed')].map((r) => r.dataset.function)"
        )
        assert sorted(failed_bars) == ["broken", "parse"]
        hover = await page.evaluate(
            "document.querySelector('#stream rect[data-function=\"broken\"] title').textContent"
        )
        assert hover.startswith("broken task-")
        assert hover.endswith("FAILED")
        # The distinct failures, with their headlines.
        failures = await page.wait_for(
            "document.getElementById('failures').innerText.includes('KeyError') &&"
            " document.getElementById('failures').innerText",
            "the failures",
            PAGE_WAIT,
        )
        assert "1\u00d7 broken KeyError: 'no such column: price'" in failures  # 1x
        assert "1\u00d7 parse ValueError: bad row in record 1" in failures
        # A search, as a URL names it, shows the task and the --why text.
        await page.evaluate("location.hash = 'search=broken'")
        why = await page.wait_for(
            "(document.querySelector('#task pre.why') || {}).textContent", "the search", PAGE_WAIT
        )
        uid = await page.evaluate("document.querySelector('#task [data-field=uid]').textContent")
        with trio.fail_after(WAIT):
            status = await trio.run_process(
                [str(BIN / "tgs-status"), url, "--why", uid], capture_stdout=True, check=False
            )
        assert status.returncode == 0
        assert why == status.stdout.decode().split("\n\n")[-1].strip()
        assert why.startswith(f"{uid} (broken) has run and failed")
        # Clicking a bar shows its task.
        await page.evaluate(
            "document.querySelector('#stream rect[data-function=\"hold\"]')"
            ".dispatchEvent(new MouseEvent('click', {bubbles: true}))"
        )
        running = await page.wait_for(
            "document.querySelector('#task pre.why').textContent.includes('(hold) is running')"
            " && document.querySelector('#task pre.why').textContent",
            "a held task's details",
            PAGE_WAIT,
        )
        assert "is running (on worker-" in running
        # The end: the final state, and a link to the report, while the coordinator lingers.
        procs.release("release")
        await page.wait_for(
            "document.getElementById('state').textContent.startsWith('ended')", "the end", PAGE_WAIT
        )
        link = await page.wait_for(
            "(document.querySelector('#outputs a') || {}).href", "the report's link", PAGE_WAIT
        )
        fetched = await page.evaluate(f"fetch({json.dumps(link)}).then((r) => r.json())")
        assert fetched == json.loads(report.read_text())
        assert await page.evaluate(cell("held", "succeeded")) == 2
        assert page.errors() == []
    assert coordinator.running()  # still serving the dashboard
    coordinator.signal(signal.SIGINT)
    assert procs.wait(coordinator) == 1  # the run's status (a task failed), not the signal's


async def test_without_the_token_a_public_dashboard_serves_only_its_login(
    procs: Processes, tmp_path: Path
) -> None:
    port = free_port()
    env = {"TGS_TOKEN": TOKEN}
    dashboard = start_watched(procs, "--dashboard", f"0.0.0.0:{port}", env=env)
    assert dashboard == f"http://0.0.0.0:{port}/"
    local = f"http://127.0.0.1:{port}"
    for path in ("/", "/app.js", "/app.css", "/events", "/api/search?q=hold", "/api/graph"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            await trio.to_thread.run_sync(
                partial(urllib.request.urlopen, local + path, timeout=WAIT)
            )
        assert refused.value.code == 401
        body = refused.value.read().decode()
        assert body == "log in first\n" or '<form method="post" action="/login"' in body
        assert "task-" not in body
        assert "EventSource" not in body
        refused.value.close()
    async with chromium(tmp_path / "profile") as page:
        await page.goto(local + "/")
        await page.wait_for("document.querySelector('form#login')", "the login form", PAGE_WAIT)
        assert await page.evaluate("document.querySelector('#loops')") is None
        # The token once in the URL: a cookie, and an address without the token.
        await page.goto(f"{local}/?token={TOKEN}")
        await page.wait_for("document.querySelector('#loops tbody tr')", "the dashboard", PAGE_WAIT)
        assert TOKEN not in await page.evaluate("location.href")
        assert await page.evaluate("document.cookie") == ""  # HttpOnly: no script reads it
    procs.release("release")


def test_a_public_dashboard_without_a_token_does_not_start(procs: Processes) -> None:
    procs.add_graph_module(GRAPH)
    coordinator = procs.coordinator(
        f"{GRAPH}:build_watched", "--dashboard", "0.0.0.0:0", raw_spec=True
    )
    assert procs.wait(coordinator) == 2
    assert "refusing to serve the dashboard on 0.0.0.0 without a token" in coordinator.stderr


def test_a_dashboard_port_in_use_is_an_error_said_in_one_line(procs: Processes) -> None:
    procs.add_graph_module(GRAPH)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        coordinator = procs.coordinator(
            f"{GRAPH}:build_watched", "--dashboard", f"127.0.0.1:{port}", raw_spec=True
        )
        assert procs.wait(coordinator) == 1
    assert f"tgs-coordinator: error: cannot serve the dashboard on 127.0.0.1:{port}" in (
        coordinator.stderr
    )
    assert "Traceback" not in coordinator.stderr
