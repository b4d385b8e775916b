"""A web crawler as a task graph: each page is a task that creates a task per link it finds.

Pages link to each other in cycles, so a crawler must remember what it has seen. The task
**key** does: ``await graph.create_task("crawl", ((url,), {}), key=url)`` creates a task
for ``url`` only if no task has that key yet, and returns the existing one otherwise. The
check and the creation are one step where the graph lives (the coordinator, or this
process), so two pages that link to the same URL at the same moment, on two workers,
still make one task: each URL is fetched once, with no depth limit and no shared set.

(Looking in ``graph.nodes`` first would not do: on a worker ``graph.nodes`` holds only
the task's own neighbourhood, and even in one process the check and the creation are
two steps with an ``await`` between them.)

No internet is needed: :func:`serve_site` serves a generated site of :data:`PAGES` pages
on 127.0.0.1, each linking to a few others (and back to the first), and counts how often
each page was fetched.

Run it in one process, from the repository root::

    python examples/crawler.py

or on a cluster (the coordinator serves the site and imports this module; the workers
need nothing but the package: the coordinator ships ``crawl`` to them)::

    tgs-coordinator examples.crawler:build_graph --listen 127.0.0.1:8765
    tgs-worker --connect ws://127.0.0.1:8765     # three times, in other terminals

``TGS_CRAWLER_START`` (an URL) makes :func:`build_graph` crawl that site instead of
serving its own.
"""

from __future__ import annotations

import collections
import http.server
import os
import re
import sys
import threading
import urllib.request
from typing import Any, Final
from urllib.parse import urldefrag, urljoin, urlparse

import trio

from trio_graph_scheduler import TaskGraph, WorkerLoop, execute_graph

#: How many pages the generated site has.
PAGES: Final = 40
#: How many pages are fetched at once, cluster-wide.
CONCURRENCY: Final = 8
#: The environment variable naming a start URL to crawl instead of the generated site.
START_ENV: Final = "TGS_CRAWLER_START"

_HREF: Final = re.compile(r"""href=["']([^"'#]+)""")


def links_of(page: int, pages: int = PAGES) -> list[int]:
    """The pages that page ``page`` links to: a few others, itself, and the first."""
    return sorted({(page + 1) % pages, (page * 2) % pages, (page * 7 + 3) % pages, page, 0})


def page_html(page: int, pages: int = PAGES) -> str:
    """The generated page ``page``: a title and its links (relative and absolute)."""
    anchors = "\n".join(
        f'<a href="/page-{target}.html">page {target}</a>'
        if target % 2
        else f'<a href="page-{target}.html#top">page {target}</a>'
        for target in links_of(page, pages)
    )
    return f"<!DOCTYPE html>\n<html><body><h1>Page {page}</h1>\n{anchors}\n</body></html>\n"


class Site:
    """The generated site, served on 127.0.0.1 from a thread; counts fetches per path."""

    def __init__(self, pages: int = PAGES) -> None:
        self.pages = pages
        self.hits: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()
        site = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with site._lock:
                    site.hits[self.path] += 1
                match = re.fullmatch(r"/page-(\d+)\.html", self.path)
                if match is None or int(match.group(1)) >= site.pages:
                    self.send_error(404)
                    return
                body = page_html(int(match.group(1)), site.pages).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet: the crawl's own output says what happened

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def start_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/page-0.html"

    def __enter__(self) -> Site:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop serving (idempotent)."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()


def fetch(url: str) -> str:
    """The page at ``url`` (blocking: run it in a thread)."""
    with urllib.request.urlopen(url, timeout=30) as response:
        text: str = response.read().decode("utf-8")
        return text


def page_links(base: str, html: str) -> list[str]:
    """The absolute URLs a page links to on its own site, without fragments, in order."""
    site = urlparse(base).netloc
    found = (urldefrag(urljoin(base, href)).url for href in _HREF.findall(html))
    return list(dict.fromkeys(url for url in found if urlparse(url).netloc == site))


async def crawl(url: str, *, graph: Any, **_: Any) -> list[str]:
    """Fetch ``url`` and make sure every page it links to has a task: one per URL.

    The children are created from a nursery, so that their requests travel together
    (on a worker: one round trip to the coordinator for the page, not one per link).
    """
    html = await trio.to_thread.run_sync(fetch, url)
    links = page_links(url, html)
    async with trio.open_nursery() as nursery:
        for link in links:
            nursery.start_soon(
                lambda link=link: graph.create_task("crawl", ((link,), {}), key=link)
            )
    return links


def make_graph(start_url: str) -> TaskGraph:
    """The crawl of the site at ``start_url``: one task, which creates the rest."""
    graph = TaskGraph({"crawl": crawl}, [WorkerLoop("default", CONCURRENCY)])
    graph.create_task_nowait("crawl", ((start_url,), {}), key=start_url)
    return graph


#: The site :func:`build_graph` serves, kept so that it lives as long as the coordinator.
_served: list[Site] = []


async def build_graph() -> TaskGraph:
    """For ``tgs-coordinator examples.crawler:build_graph``: the crawl of the generated
    site, served by this process (or of the site ``TGS_CRAWLER_START`` names)."""
    start = os.environ.get(START_ENV)
    if start is None:
        site = Site().__enter__()
        _served.append(site)
        start = site.start_url
    return make_graph(start)


async def main() -> int:
    with Site() as site:
        graph = make_graph(site.start_url)
        await execute_graph(graph)
    failed = [node for node in graph.nodes.values() if node.task_status != "success"]
    fetched_twice = sorted(path for path, count in site.hits.items() if count > 1)
    print(
        f"crawled {len(graph.nodes)} pages of {site.pages}: {len(site.hits)} URLs fetched, "
        f"{sum(site.hits.values())} fetches, {len(failed)} failed"
    )
    if fetched_twice:
        print(f"fetched more than once: {', '.join(fetched_twice)}")
    return 1 if failed or fetched_twice else 0


if __name__ == "__main__":
    sys.exit(trio.run(main))
