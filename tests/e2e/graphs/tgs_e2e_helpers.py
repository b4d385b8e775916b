"""A second module of the user's code, imported by the graph modules.

Like them, it exists only in the coordinator's directory: the coordinator must ship it
to workers along with the functions that use it. It also holds what their tasks share:
where they write, and how.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from typing import Any

#: The environment variable naming the directory tasks write to.
DIR_ENV = "TGS_E2E_DIR"
#: The longest a task waits for a file the test creates, so nothing hangs forever.
POLL_LIMIT = 25.0


def out_dir() -> str:
    """The directory tasks write to, read on the coordinator when a graph is built."""
    out = os.environ.get(DIR_ENV)
    if not out:
        raise RuntimeError(f"set {DIR_ENV} to the directory tasks write to")
    return out


def record(out: str, event: str, task: str, **fields: Any) -> None:
    """Append one JSON line to ``events.jsonl``: a single O_APPEND write, whole or not at all."""
    line = {"event": event, "task": task, "pid": os.getpid(), "t": time.time(), **fields}
    data = (json.dumps(line) + "\n").encode()
    fd = os.open(os.path.join(out, "events.jsonl"), os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def wait_for_file_blocking(path: str) -> None:
    """Block the calling thread (``time.sleep``, for a sync task) until ``path`` exists;
    raise after :data:`POLL_LIMIT` seconds."""
    deadline = time.monotonic() + POLL_LIMIT
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.02)


def write_json(path: str, data: Any) -> None:
    """Write ``data`` to ``path`` as JSON, atomically: a reader never sees half of it."""
    with open(path + ".tmp", "w") as file:
        json.dump(data, file)
    os.replace(path + ".tmp", path)


#: A module-level value the shipped code reads.
FACTOR = 3


def triple(i: int) -> int:
    return FACTOR * i


@dataclass(frozen=True)
class Point:
    x: int
    y: int
