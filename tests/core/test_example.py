"""The word-count example (``examples/word_count.py``) runs, fails where it should, counts right."""

from __future__ import annotations

import importlib.util
import string
import subprocess
import sys
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from trio_graph_scheduler import execute_graph

if TYPE_CHECKING:
    from types import ModuleType

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = REPO_ROOT / "examples" / "word_count.py"
PAGES = REPO_ROOT / "examples" / "pages"


def load_example() -> ModuleType:
    # By path: ``examples`` is not a package and need not be on sys.path under pytest.
    spec = importlib.util.spec_from_file_location("word_count_example", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _TextCollector(HTMLParser):
    """Collects a page's text with the standard library's HTML parser, not the example's regex."""

    def __init__(self) -> None:
        super().__init__()
        self.chunks: list[str] = []

    def handle_data(self, data: str) -> None:
        self.chunks.append(data)


def independent_counts(stopwords: frozenset[str]) -> Counter[str]:
    """The word counts of every bundled page's text, found without the example's code."""
    counts: Counter[str] = Counter()
    for page in sorted(PAGES.glob("*.html")):
        parser = _TextCollector()
        parser.feed(page.read_text(encoding="utf-8"))
        for raw in " ".join(parser.chunks).lower().split():
            token = raw.strip(string.punctuation)
            if token and token not in stopwords:
                counts[token] += 1
    return counts


async def test_word_count_graph_statuses_and_counts():
    example = load_example()
    graph = await example.build_graph()
    await execute_graph(graph)
    graph.check_invariants()

    existing = {p.name for p in PAGES.glob("*.html")}
    missing = [url for url in example.PAGE_URLS if url not in existing]
    assert missing == ["missing.html"]
    assert len(existing) >= 3

    by_handle: dict[str, list] = {}
    for node in graph.nodes.values():
        by_handle.setdefault(node.task_handle, []).append(node)
    assert len(by_handle["get_page_source"]) == len(example.PAGE_URLS)
    assert len(by_handle["get_word_counts"]) == len(example.PAGE_URLS)

    for page_task in by_handle["get_page_source"]:
        url = page_task.task_arguments[0][0]
        (count_task,) = (
            c for c in by_handle["get_word_counts"] if page_task in c.get_predecessor_task_nodes()
        )
        if url in existing:
            assert page_task.task_status == "success", page_task.exception_trace
            assert count_task.task_status == "success", count_task.exception_trace
            assert count_task.task_result[0] == url
        else:
            assert page_task.task_status == "failed"
            assert "FileNotFoundError" in page_task.exception_trace
            assert count_task.task_status == "precondition_failed"
            assert count_task.task_result is None

    (combine,) = by_handle["combine_page_word_counts"]
    assert combine.task_status == "success", combine.exception_trace
    merged = combine.task_result
    expected = independent_counts(example.STOPWORDS)
    for word in ("trio", "scheduler", "concurrency", "graph", "task"):
        assert merged[word] == expected[word] > 0, word
    # The bundled pages have no short text runs, so the regex misses nothing the parser sees.
    assert merged == dict(expected)
    assert not example.STOPWORDS & merged.keys()
    # The merged counts are exactly the sum of the successful per-page counts.
    per_page = Counter()
    for count_task in by_handle["get_word_counts"]:
        if count_task.task_status == "success":
            per_page.update(count_task.task_result[1])
    assert merged == dict(per_page)


def test_count_words_reads_text_between_tags_only():
    example = load_example()
    html = '<p class="trio">Trio, trio! The <b>graph</b></p><!-- x --><i>ok</i>'
    # Attributes are not text; "the" is a stopword; "ok" is shorter than 3 characters.
    assert example.count_words(html) == {"trio": 2, "graph": 1}


@pytest.mark.slow
def test_example_runs_as_a_script():
    example = load_example()
    completed = subprocess.run(
        [sys.executable, str(EXAMPLE.relative_to(REPO_ROOT))],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "Top 10 words" in completed.stdout
    assert "precondition_failed" in completed.stdout
    # The script prints the top words an independent count finds, in order.
    expected_top = example.top_words(dict(independent_counts(example.STOPWORDS)))
    assert len(expected_top) == 10
    for rank, (word, count) in enumerate(expected_top, start=1):
        assert f"{rank:>2}. {word:<20} {count}" in completed.stdout
