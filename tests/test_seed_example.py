"""The seed's README example, as written there, must keep working.

Below, between the markers, is the README's usage code unchanged except where the README
itself says code was omitted: the page fetcher (here it reads from a dict instead of the
network), the word counting, ``combine_page_word_counts`` and the list of URLs. It also
keeps the seed's own spelling ``TaskGraph.WorkerLoop`` and ``execute_graph(graph, 3)``.
"""
# ruff: noqa: E501

from __future__ import annotations

import re
from collections import defaultdict

import trio
import trio.lowlevel

from trio_graph_scheduler.scheduling import GenericSchedulingCondition

PAGES = {
    "https://example.org/trio": "<html><p>Trio makes structured concurrency easy</p><p>trio nurseries</p></html>",
    "https://example.org/graph": "<html><p>A task graph schedules trio tasks</p></html>",
}
page_urls = list(PAGES)
RESULTS: dict[str, object] = {}


async def get_page_source(url, **kwargs):
    await trio.lowlevel.checkpoint()
    return PAGES[url]


async def combine_page_word_counts(**kwargs):
    predecessors = kwargs["task_node"].get_predecessor_task_nodes()
    combined = defaultdict(int)
    for node in predecessors:
        if node.task_status == "success":
            for word, count in node.task_result[1].items():
                combined[word] += count
    RESULTS["combined"] = dict(combined)
    return combined


# ---- the README's usage code, as written -------------------------------------------

from collections import namedtuple  # noqa: E402

from trio_graph_scheduler.execution import execute_graph  # noqa: E402
from trio_graph_scheduler.graph import TaskGraph  # noqa: E402

WorkerLoop = namedtuple("WorkerLoop", "name concurrency functions")


async def main():

    # tell the TaskGraph which functions/names to expect
    FUNCTIONS = {
        "get_page_source": get_page_source,  # omitted, see tests/example.py
        "get_word_counts": get_word_counts,
        "combine_page_word_counts": combine_page_word_counts,
    }
    # define the worker loops, their concurrency and expected functions
    WORKER_LOOPS = [WorkerLoop("default", 3, None), WorkerLoop("html_loop", 4, ["get_page_source"])]

    graph = TaskGraph(FUNCTIONS, WORKER_LOOPS)

    word_count__task_uids = []

    for url in page_urls:
        ps_task = await graph.create_task(
            # (function_name, arguments, predecessor_tasks)
            "get_page_source",
            ((url,), {}),
            None,
        )
        wc_task = await graph.create_task(
            # no arguments, get_word_counts() fetches inputs from predecessor tasks
            "get_word_counts",
            None,
            [ps_task.uid],
        )
        word_count__task_uids.append(wc_task.uid)

    # a SchedulingCondition object becomes 'satisfied' when some criteria is true
    wait_condition = GenericSchedulingCondition(graph, "COMPLETE__ALL", word_count__task_uids)

    # this task waits for 'wait_condition' to be satisfied
    await graph.create_task("combine_page_word_counts", None, [wait_condition.uid])

    # execute this graph, tasks will get execute concurrently
    # based on the active worker loops
    await execute_graph(graph)
    RESULTS["graph"] = graph


# an example task function
async def get_word_counts(**kwargs):

    # get results of predecessors
    predecessors = kwargs["task_node"].get_predecessor_task_nodes()

    url = predecessors[0].task_arguments[0][0]
    page_source = predecessors[0].task_result

    word_counts = {}
    # omitted: compute work_counts
    for content in re.findall(r">([^<>]{3,})<", page_source):
        for word in content.lower().split():
            word_counts[word] = word_counts.get(word, 0) + 1

    return url, word_counts


# ---- end of the README's code --------------------------------------------------------


def test_readme_example_runs_as_written() -> None:
    RESULTS.clear()
    trio.run(main)
    graph = RESULTS["graph"]
    assert isinstance(graph, TaskGraph)
    assert {node.task_status for node in graph.nodes.values()} == {"success"}
    assert RESULTS["combined"] == {
        "trio": 3,
        "makes": 1,
        "structured": 1,
        "concurrency": 1,
        "easy": 1,
        "nurseries": 1,
        "a": 1,
        "task": 1,
        "graph": 1,
        "schedules": 1,
        "tasks": 1,
    }


async def test_seed_spellings_keep_working() -> None:
    async def echo(x, **kwargs):
        return x

    graph = TaskGraph({"echo": echo}, [TaskGraph.WorkerLoop("default", 2, None)])
    node = await graph.create_task("echo", ((7,), {}), None)
    await execute_graph(graph, 3)  # the seed's polling delay argument is accepted
    assert node.task_result == 7
    assert graph.expected_functions == {"echo": echo}
    assert graph.edges_by_label == {"scheduled": [node.uid]}
