"""Word count over a few web pages, as a task graph: the seed's example, made to run offline.

The graph, per page::

    get_page_source(url)  ->  get_word_counts  --+
                                                 +--> COMPLETE__ALL --> combine_page_word_counts
    ... one branch per page ...                --+

* ``get_page_source`` runs in the ``html_loop`` worker loop (at most 4 at once), the stand-in
  for polite downloads. Instead of the network it reads a page bundled in ``pages/``.
* ``get_word_counts`` runs in ``default`` (at most 3 at once). It waits on its page task,
  reads the page source from that task's result and counts the words of its text.
* ``combine_page_word_counts`` waits on a ``COMPLETE__ALL`` condition over every word count
  task, so it runs once all of them ended, however they ended, and merges the successful ones.

One URL in :data:`PAGE_URLS` names a page that does not exist, on purpose: its
``get_page_source`` fails, its ``get_word_counts`` ends ``precondition_failed`` without
running, and the combine task still runs over the pages that worked.

Run it from the repository root::

    python examples/word_count.py

:func:`build_graph` takes no arguments so that a coordinator can build the graph by name
(``tgs-coordinator examples.word_count:build_graph``).
"""

from __future__ import annotations

import logging
import re
import string
import sys
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlparse
from urllib.request import url2pathname

import trio

from trio_graph_scheduler import (
    GenericSchedulingCondition,
    TaskGraph,
    WorkerLoop,
    execute_graph,
)

if TYPE_CHECKING:
    from trio_graph_scheduler import TaskNode

logger = logging.getLogger(__name__)

#: Where the bundled pages live. Absolute, so a worker started from another directory finds
#: them; a module-level constant, so that a function shipped to another process by value
#: (cloudpickle) carries the path with it rather than looking for this module's file.
PAGES_DIR: Final = Path(__file__).resolve().parent / "pages"

#: The "URLs" to count: page names under :data:`PAGES_DIR` (``file://`` URLs work too).
#: ``missing.html`` does not exist: it shows how a failed branch is handled.
PAGE_URLS: Final = (
    "trio.html",
    "task_graphs.html",
    "scheduling.html",
    "structured_concurrency.html",
    "missing.html",
)

#: Where :func:`main` draws the graph, relative to the current directory.
DRAWING_PATH: Final = Path("out") / "word_count_graph.html"

#: Text between two tags, at least 3 characters long (as the seed matched it): shorter runs
#: are mostly the whitespace between tags.
TEXT_BETWEEN_TAGS: Final = re.compile(r">([^<>]{3,})<")

# Kept as one block of text: far easier to read and extend than a list of 130 strings.
_STOPWORDS_TEXT: Final = """
    a about after again all also an and any are as at be because been before being both
    but by can cannot could did do does doing done each even every few for from further
    had has have having he her here him his how however i if in into is it its itself just
    less like long many may more most much must my need needs never no nor not now of off
    on once one only or other our out over own same she should so some such than that the
    their them then there therefore these they this those through to too under until up
    us very was way we well were what when where whether which while who whom why will
    with within without would yet you your
"""
#: Words too common to say anything about a page.
STOPWORDS: Final = frozenset(_STOPWORDS_TEXT.split())

#: How many of the most frequent words to report.
TOP_N: Final = 10


# -- the pure part: counting -----------------------------------------------------------------


def count_words(html: str) -> dict[str, int]:
    """Count the words in the text content of an HTML page.

    Text is whatever stands between two tags (at least 3 characters), lowercased and split
    on whitespace; punctuation is stripped from both ends of each word and stopwords are
    skipped.
    """
    counts: Counter[str] = Counter()
    for text in TEXT_BETWEEN_TAGS.findall(html):
        for raw_word in text.lower().split():
            word = raw_word.strip(string.punctuation)
            if word and word not in STOPWORDS:
                counts[word] += 1
    return dict(counts)


def top_words(counts: dict[str, int], n: int = TOP_N) -> list[tuple[str, int]]:
    """The ``n`` most frequent words, ties broken alphabetically so the output is stable."""
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:n]


def page_path(url: str) -> trio.Path:
    """The file behind a page URL: a ``file://`` URL, or a page name under :data:`PAGES_DIR`."""
    if url.startswith("file://"):
        return trio.Path(url2pathname(urlparse(url).path))
    return trio.Path(PAGES_DIR / url)


# -- the task functions ------------------------------------------------------------------------


async def get_page_source(
    url: str, *, task_node: TaskNode, graph: TaskGraph, worker_context: Any
) -> str:
    """Fetch a page's HTML. Offline, that means reading a bundled file.

    Raises:
        FileNotFoundError: the page does not exist; the task ends ``failed``.
    """
    # Read through trio.Path so the event loop is not blocked, as a real download wouldn't be.
    return await page_path(url).read_text(encoding="utf-8")


async def get_word_counts(
    *, task_node: TaskNode, graph: TaskGraph, worker_context: Any
) -> tuple[str, dict[str, int]]:
    """Count the words of the page fetched by this task's one predecessor.

    Returns:
        ``(url, {word: count})``: the URL travels with the counts so the combine step can
        tell the pages apart.
    """
    # The page task is this task's only predecessor: its result is the HTML and its first
    # positional argument the URL, so neither has to be passed to this task explicitly.
    (page_task,) = task_node.get_predecessor_task_nodes()
    url: str = page_task.task_arguments[0][0]  # type: ignore[index]
    return url, count_words(page_task.task_result)


async def combine_page_word_counts(
    *, task_node: TaskNode, graph: TaskGraph, worker_context: Any
) -> dict[str, int]:
    """Merge the word counts of every page that was counted successfully.

    It waits on a ``COMPLETE__ALL`` condition, so it also runs when some pages failed; it
    skips the predecessors that did not succeed instead of failing itself.

    Returns:
        The merged counts, most frequent first.
    """
    merged: Counter[str] = Counter()
    pages = 0
    for predecessor in task_node.get_predecessor_task_nodes():
        if predecessor.task_status != "success":
            continue
        _url, counts = predecessor.task_result
        merged.update(counts)
        pages += 1
    top = ", ".join(f"{word} ({count})" for word, count in top_words(dict(merged)))
    logger.info("top %d words over %d pages: %s", TOP_N, pages, top)
    return dict(top_words(dict(merged), len(merged)))


# -- building and running ---------------------------------------------------------------------


async def build_graph() -> TaskGraph:
    """Build the word-count graph for :data:`PAGE_URLS`, with every task created.

    Takes no arguments so a coordinator can call it by name.
    """
    graph = TaskGraph(
        {
            "get_page_source": get_page_source,
            "get_word_counts": get_word_counts,
            "combine_page_word_counts": combine_page_word_counts,
        },
        [
            # Everything not named elsewhere runs here: counting and combining are cheap.
            WorkerLoop("default", 3, None),
            # Fetching gets its own limit, as downloads from real servers should.
            WorkerLoop("html_loop", 4, ["get_page_source"]),
        ],
    )
    count_task_uids: list[str] = []
    for url in PAGE_URLS:
        page_task = await graph.create_task("get_page_source", ((url,), {}))
        # A plain task uid in waits_on means "after it succeeded" (an implicit SUCCESS__ALL),
        # so a page that cannot be fetched is never counted.
        count_task = await graph.create_task("get_word_counts", None, waits_on=[page_task.uid])
        count_task_uids.append(count_task.uid)
    # COMPLETE__ALL rather than SUCCESS__ALL: one missing page must not sink the whole result.
    all_counted = GenericSchedulingCondition(graph, "COMPLETE__ALL", count_task_uids)
    await graph.create_task("combine_page_word_counts", None, waits_on=[all_counted.uid])
    return graph


def describe_task(node: TaskNode) -> str:
    """One line about a task for the summary: its function, status and page."""
    if node.task_handle == "get_page_source":
        url = node.task_arguments[0][0]  # type: ignore[index]
    elif node.task_handle == "get_word_counts":
        url = node.get_predecessor_task_nodes()[0].task_arguments[0][0]  # type: ignore[index]
    else:
        url = ""
    line = f"  {node.task_handle:<26} {node.task_status:<20} {url}"
    if node.exception_trace:
        # The last line of the traceback names the exception; the rest is noise here.
        line += f"\n      -> {node.exception_trace.strip().splitlines()[-1]}"
    return line.rstrip()


def draw(graph: TaskGraph, path: Path) -> str:
    """Draw the graph to ``path`` (hand-written SVG: it needs nothing installed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    graph.draw(path)
    return f"graph drawn to {path}"


async def main() -> int:
    """Build and run the graph, print a summary, draw the graph.

    Returns:
        The exit code: 0 when the combine task succeeded (the missing page's failure is
        expected), 1 otherwise.
    """
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    graph = await build_graph()
    started = time.perf_counter()
    await execute_graph(graph)
    elapsed = time.perf_counter() - started

    print(f"\nRan {len(graph.nodes)} tasks in {elapsed * 1000:.1f} ms:")
    for node in graph.nodes.values():
        print(describe_task(node))

    (combine,) = (n for n in graph.nodes.values() if n.task_handle == "combine_page_word_counts")
    if combine.task_status != "success":
        print(f"\ncombine_page_word_counts did not succeed: {combine.task_status}")
        return 1
    print(f"\nTop {TOP_N} words:")
    for rank, (word, count) in enumerate(top_words(combine.task_result), start=1):
        print(f"  {rank:>2}. {word:<20} {count}")

    print(f"\n{draw(graph, DRAWING_PATH)}")
    return 0


if __name__ == "__main__":
    sys.exit(trio.run(main))
