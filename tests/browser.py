"""A headless Chromium tab driven over the DevTools protocol, for the browser tests.

The pictures' test (tests/observe/test_pictures_browser.py) and the dashboard's
(tests/e2e/test_e2e_dashboard.py, scripts/dashboard_screens.py) read what a real browser
drew: where it laid things out (``Runtime.evaluate``), its pixels (screenshots), what a
hover shows. ``chromium --dump-dom --virtual-time-budget`` cannot serve the dashboard,
whose server-sent-events stream keeps the network from ever settling.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import shutil
import subprocess
from contextlib import asynccontextmanager
from functools import partial
from typing import TYPE_CHECKING, Any, Final

import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, open_websocket_url

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

CHROMIUM: Final = shutil.which("chromium") or shutil.which("chromium-browser")
#: Headless, and quiet: without the networking flags Chromium keeps trying to reach
#: Google's services, connections that fail on a closed network such as CI's.
FLAGS: Final = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--remote-debugging-port=0", "about:blank",
)  # fmt: skip
_DEVTOOLS_URL: Final = re.compile(rb"DevTools listening on (ws://\S+)")


class Page:
    """One tab, over a flat DevTools session."""

    def __init__(self, ws: WebSocketConnection) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self._replies: dict[int, trio.MemorySendChannel[dict[str, Any]]] = {}
        self._session: str | None = None
        self._height = 0
        #: Every event the page sent, in order.
        self.events: list[dict[str, Any]] = []
        self._new_event = trio.Event()

    async def read(self) -> None:
        """Route replies to their callers and keep events; runs until the socket closes."""
        while True:
            try:
                message = json.loads(await self._ws.get_message())
            except ConnectionClosed:
                return
            if "id" in message:
                self._replies.pop(message["id"]).send_nowait(message)
            else:
                self.events.append(message)
                self._new_event.set()
                self._new_event = trio.Event()

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one command and return its result."""
        message_id = next(self._ids)
        send, receive = trio.open_memory_channel[dict[str, Any]](1)
        self._replies[message_id] = send
        message: dict[str, Any] = {"id": message_id, "method": method, "params": params}
        if self._session is not None:
            message["sessionId"] = self._session
        await self._ws.send_message(json.dumps(message))
        reply = await receive.receive()
        assert "error" not in reply, f"{method}: {reply['error']}"
        result: dict[str, Any] = reply["result"]
        return result

    async def attach(self, width: int, height: int) -> None:
        """Open a tab and talk to it from now on, its viewport ``width`` x ``height`` at 1x."""
        target = await self.call("Target.createTarget", url="about:blank")
        attached = await self.call(
            "Target.attachToTarget", targetId=target["targetId"], flatten=True
        )
        self._session = attached["sessionId"]
        await self.call("Page.enable")
        await self.call("Runtime.enable")
        await self.resize(width, height)

    async def resize(self, width: int, height: int | None = None) -> None:
        """Change the viewport, as a narrower or wider browser window would (the height
        stays as it was unless given)."""
        height = self._height = height or self._height
        await self.call(
            "Emulation.setDeviceMetricsOverride",
            width=width, height=height, deviceScaleFactor=1, mobile=False,
        )  # fmt: skip

    async def goto(self, url: str) -> None:
        """Start loading ``url`` (a page that never stops loading is fine)."""
        await self.call("Page.navigate", url=url)

    async def open(self, path: Path) -> None:
        """Load a file and wait for its load event."""
        seen = len(self.events)
        await self.call("Page.navigate", url=path.as_uri())
        await self.wait_for_event("Page.loadEventFired", seen)

    async def wait_for_event(self, method: str, seen: int) -> dict[str, Any]:
        """The first event ``method`` after the first ``seen`` events."""
        while True:
            new_event = self._new_event  # before looking, so no event slips past
            for event in self.events[seen:]:
                if event["method"] == method:
                    return event
            await new_event.wait()

    async def hover(self, x: float, y: float) -> None:
        """Move the mouse to ``x``, ``y`` (viewport pixels)."""
        await self.call("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)

    async def evaluate(self, expression: str) -> Any:
        """Run JavaScript (awaiting a promise it returns) and return its JSON value."""
        reply = await self.call(
            "Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True
        )
        assert "exceptionDetails" not in reply, reply["exceptionDetails"]
        return reply["result"].get("value")

    async def wait_for(self, expression: str, what: str, timeout: float = 30.0) -> Any:  # noqa: ASYNC109
        """Evaluate ``expression`` until it is truthy (an exception counts as falsy);
        return its value (``True`` for an element, which does not travel as JSON)."""
        # A page still loading has no such element yet: an error counts as not yet.
        check = (
            f"(() => {{ try {{ const v = ({expression}); return v instanceof Node ? true : v; }}"
            " catch (error) { return null; } })()"
        )
        with trio.move_on_after(timeout):
            # The page changes by itself: there is no event of ours to wait on.
            while not (value := await self.evaluate(check)):  # noqa: ASYNC110
                await trio.sleep(0.1)
            return value
        body = await self.evaluate("document.body ? document.body.innerText : ''")
        raise AssertionError(f"timed out after {timeout:g} s waiting for {what}; page:\n{body}")

    async def screenshot(self, path: Path, *, full_page: bool = False) -> bytes:
        """Save the viewport (or the whole page) as PNG; return the PNG's bytes."""
        shot = await self.call(
            "Page.captureScreenshot", format="png", captureBeyondViewport=full_page
        )
        data = base64.b64decode(shot["data"])
        await trio.Path(path).write_bytes(data)
        return data

    def errors(self) -> list[str]:
        """Script exceptions and console errors so far."""
        found = []
        for event in self.events:
            if event["method"] == "Runtime.exceptionThrown":
                found.append(json.dumps(event["params"]["exceptionDetails"])[:500])
            elif event["method"] == "Runtime.consoleAPICalled" and event["params"]["type"] in (
                "error",
                "assert",
            ):
                found.append(json.dumps(event["params"]["args"])[:500])
        return found


@asynccontextmanager
async def chromium(profile: Path, width: int = 1400, height: int = 1000) -> AsyncIterator[Page]:
    """A headless Chromium with a fresh profile, and a tab in it; killed on the way out."""
    assert CHROMIUM is not None
    command = [CHROMIUM, *FLAGS, f"--user-data-dir={profile}"]
    async with trio.open_nursery() as nursery:
        # run_process kills Chromium when the nursery is cancelled at the end.
        run = partial(trio.run_process, command, stderr=subprocess.PIPE, check=False)
        process: trio.Process = await nursery.start(run)
        assert process.stderr is not None
        seen = b""
        while (found := _DEVTOOLS_URL.search(seen)) is None:
            chunk = await process.stderr.receive_some()
            assert chunk, f"Chromium exited without a DevTools address:\n{seen.decode()}"
            seen += chunk
        nursery.start_soon(_drain, process.stderr)  # a full pipe would block Chromium
        async with (
            open_websocket_url(found[1].decode(), max_message_size=64 * 2**20) as ws,
            trio.open_nursery() as reading,  # ends before the socket closes
        ):
            page = Page(ws)
            reading.start_soon(page.read)
            await page.attach(width, height)
            yield page
            reading.cancel_scope.cancel()
        nursery.cancel_scope.cancel()


async def _drain(stream: trio.abc.ReceiveStream) -> None:
    while await stream.receive_some():
        pass
