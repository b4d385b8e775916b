"""Uids: their shape, that they never repeat, and that the first digits tell them apart."""

from __future__ import annotations

import os
import re
import threading

import pytest

from trio_graph_scheduler.shared import uids
from trio_graph_scheduler.shared.uids import new_uid

UID = re.compile(r"^(task|condition|graph)-[0-9a-f]{32}$")


def test_shape_and_no_repeats_across_many_blocks() -> None:
    made = [new_uid("task") for _ in range(5_000)]  # about twenty blocks of 256
    assert all(UID.match(uid) for uid in made)
    assert len(set(made)) == len(made)
    # The random half is the process's: the same in every uid.
    assert len({uid[-16:] for uid in made}) == 1


def test_consecutive_uids_differ_in_their_first_digits() -> None:
    made = [new_uid("task")[len("task-") :] for _ in range(1_024)]
    # People type the first few digits: within a block of 256 the first two all differ,
    # and four digits tell a thousand tasks apart but for a handful.
    assert len({uid[:2] for uid in made[:256]}) == 256
    assert len({uid[:4] for uid in made}) > 1_000


def test_prefixes_have_their_own_digits() -> None:
    task, condition = new_uid("task"), new_uid("condition")
    graph = new_uid("graph")
    assert task.startswith("task-")
    assert condition.startswith("condition-")
    assert graph.startswith("graph-")
    counters = {uid.split("-")[1][:16] for uid in (task, condition, graph)}
    assert len(counters) == 3


def test_threads_get_distinct_uids() -> None:
    made: list[list[str]] = [[] for _ in range(4)]

    def take(into: list[str]) -> None:
        for _ in range(5_000):
            into.append(new_uid("condition"))

    threads = [threading.Thread(target=take, args=(into,)) for into in made]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [uid for into in made for uid in into]
    assert len(set(every)) == len(every)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_draws_other_uids() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next uids, to the parent
        os.close(read)
        os.write(write, " ".join(new_uid("task") for _ in range(300)).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child = set(pipe.read().split())
    os.waitpid(pid, 0)
    parent = {new_uid("task") for _ in range(300)}
    assert len(child) == 300
    assert not child & parent
    assert {uid[-16:] for uid in child} != {uid[-16:] for uid in parent}
    assert uids._random_half == next(iter(parent))[-16:]
