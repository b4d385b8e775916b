"""The JSON report of a run: every task, condition and worker, and run-level counts.

``docs/report.md`` documents every field, its type and its meaning; :data:`REPORT_SCHEMA`
is the same contract as a JSON Schema, and the tests hold the two to each other. A report
is built in O(tasks + edges). Results are not in it (they may be huge or not serialisable
at all): each successful task gives its result's type only.

A change that adds or removes a field, or changes a field's meaning, bumps
:data:`SCHEMA_VERSION`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TextIO

from ...shared.states import ConditionStatus, EndReason, TaskStatus
from ..core.results import result_type_name

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from ..core.conditions import GenericSchedulingCondition
    from ..core.nodes import EarlierRun, TaskNode
    from ..task_graph import TaskGraph
    from ..worker_session import WorkerRecord

#: The report format's version (``schema_version`` in every report).
SCHEMA_VERSION: Final = 2

# -- the schema -------------------------------------------------------------------------
# Built from small helpers so that it reads as a list of fields; every object is closed
# (additionalProperties false) and every field required, so a report has exactly these.

_STRING: Final = {"type": "string"}
_COUNT: Final = {"type": "integer", "minimum": 0}
_NUMBER: Final = {"type": "number"}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {**schema, "type": [schema["type"], "null"]}


def _array(items: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": items}


def _object(**properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


_TIME: Final = _nullable(_NUMBER)  # seconds since the epoch, as time.time() gives them

#: A run before the last one (``TaskNode.earlier_runs``).
_EARLIER_RUN: Final = _object(
    worker=_nullable(_STRING),
    started_at=_TIME,
    ended_at=_NUMBER,
    end_reason={"type": "string", "enum": [str(r) for r in EndReason]},
    error=_nullable(_STRING),
)
#: A task key in JSON: a string key as itself, any other as its Python ``repr``
#: (``"('site', 1)"``); ``null`` for a task without a key.
_KEY: Final = _nullable(_STRING)

_TASK: Final = _object(
    uid=_STRING,
    key=_KEY,
    function=_STRING,
    loop=_STRING,
    status={"type": "string", "enum": [str(s) for s in TaskStatus]},
    worker=_nullable(_STRING),
    attempts=_COUNT,
    losses=_COUNT,
    shared_losses=_COUNT,
    queued_at=_TIME,
    started_at=_TIME,
    ended_at=_TIME,
    duration=_nullable(_NUMBER),
    error=_nullable(_STRING),
    result_type=_nullable(_STRING),
    waits_on=_array(_STRING),
    earlier_runs=_array(_EARLIER_RUN),
)

_CONDITION: Final = _object(
    uid=_STRING,
    mode=_STRING,
    status={"type": "string", "enum": [str(s) for s in ConditionStatus]},
    predecessors=_array(_STRING),
    successors=_array(_STRING),
    successes=_COUNT,
    completions=_COUNT,
)

_WORKER: Final = _object(
    id=_STRING,
    name=_STRING,
    loops=_array(_STRING),
    joined_at=_NUMBER,
    left_at=_TIME,
    left_because=_nullable(_STRING),
    tasks=_array(_STRING),
    lost_while_running=_array(_object(uid=_STRING, function=_STRING)),
)

#: The report as a JSON Schema (the subset :func:`schema_errors` checks).
REPORT_SCHEMA: Final[dict[str, Any]] = _object(
    schema_version={"type": "integer", "enum": [SCHEMA_VERSION]},
    graph_uid=_STRING,
    mode={"type": "string", "enum": ["in-process", "distributed"]},
    started_at=_NUMBER,
    ended_at=_TIME,
    duration=_nullable(_NUMBER),
    summary=_object(
        tasks=_COUNT,
        by_status=_object(**{str(status): _COUNT for status in TaskStatus}),
        succeeded={"type": "boolean"},
        runs=_COUNT,
        retries=_COUNT,
        lost=_COUNT,
        conditions=_COUNT,
        workers=_COUNT,
    ),
    counters=_nullable({"type": "object", "additionalProperties": _COUNT}),
    loops=_array(_object(name=_STRING, concurrency=_COUNT, functions=_array(_STRING))),
    tasks=_array(_TASK),
    conditions=_array(_CONDITION),
    workers=_array(_WORKER),
)


# -- building and writing ---------------------------------------------------------------


def build_report(
    graph: TaskGraph,
    *,
    workers: Iterable[WorkerRecord] | None = None,
    counters: object = None,
    started_at: float,
    ended_at: float | None,
) -> dict[str, Any]:
    """The run's report, as a JSON-ready dict (see ``docs/report.md``).

    To write one to a file, :func:`stream_report` does it a task at a time instead, never
    holding the whole report in memory.

    Args:
        graph: the graph that ran (the coordinator's, in distributed mode).
        workers: every worker of a distributed run, including those that left
            (``Coordinator.workers.values()``); ``None`` for an in-process run.
        counters: the run's counters (``Coordinator.statistics()``: a dataclass, or a mapping
            of names to counts); ``None`` when there are none (in-process).
        started_at: when the run started, as ``time.time()``.
        ended_at: when it ended, or ``None`` for a report of a run still going.

    Returns:
        A dict of plain JSON values that matches :data:`REPORT_SCHEMA`.
    """
    report = _report_parts(graph, workers, counters, started_at, ended_at)
    report["tasks"] = list(report["tasks"])
    report["conditions"] = list(report["conditions"])
    return report


def _report_parts(
    graph: TaskGraph,
    workers: Iterable[WorkerRecord] | None,
    counters: object,
    started_at: float,
    ended_at: float | None,
) -> dict[str, Any]:
    """The report with its two long lists (``tasks``, ``conditions``) as iterators, made
    as they are read."""
    by_status = dict.fromkeys(map(str, TaskStatus), 0)
    ran_on: dict[str, list[str]] = {}
    runs = retries = lost = 0
    for node in graph.nodes.values():
        by_status[node.task_status] += 1
        if node.worker is not None:
            ran_on.setdefault(node.worker, []).append(node.uid)
        runs += node.attempts
        retries += max(0, node.attempts - 1)
        lost += node.losses
    total = len(graph.nodes)
    worker_list = [_worker(record, ran_on.get(record.worker_id, [])) for record in workers or ()]
    return {
        "schema_version": SCHEMA_VERSION,
        "graph_uid": graph.uid,
        "mode": "in-process" if workers is None else "distributed",
        "started_at": started_at,
        "ended_at": ended_at,
        "duration": None if ended_at is None else max(0.0, ended_at - started_at),
        "summary": {
            "tasks": total,
            "by_status": by_status,
            "succeeded": by_status[TaskStatus.SUCCESS] == total,
            "runs": runs,
            "retries": retries,
            "lost": lost,
            "conditions": len(graph.conditions),
            "workers": len(worker_list),
        },
        "counters": _counters(counters),
        "loops": [
            {
                "name": loop.name,
                "concurrency": loop.concurrency,
                "functions": [f.name for f in graph.task_functions.values() if f.loop == loop.name],
            }
            for loop in graph.worker_loops
        ],
        "tasks": map(_task, list(graph.nodes.values())),
        "conditions": map(_condition, list(graph.conditions.values())),
        "workers": worker_list,
    }


def _condition(condition: GenericSchedulingCondition) -> dict[str, Any]:
    return {
        "uid": condition.uid,
        "mode": str(condition.mode),
        "status": str(condition.condition_status),
        "predecessors": [node.uid for node in condition.predecessors],
        "successors": [node.uid for node in condition.successors],
        "successes": condition.successes,
        "completions": condition.completions,
    }


def write_report(path: str | os.PathLike[str], report: Mapping[str, Any]) -> None:
    """Write a report as JSON (UTF-8, indented), atomically: a reader never sees half.

    The file is readable by its owner only (mode 0600, whatever the umask), as a new
    file or replacing one: a report holds the tasks' error tracebacks, which quote the
    values that failed, and the workers' host names.

    Raises:
        OSError: the file cannot be written.
        ValueError: the report holds a value JSON cannot carry (NaN, for one).
    """
    _write_atomically(path, lambda file: _dump(file, report))


def stream_report(
    path: str | os.PathLike[str],
    graph: TaskGraph,
    *,
    workers: Iterable[WorkerRecord] | None = None,
    counters: object = None,
    started_at: float,
    ended_at: float | None,
) -> None:
    """Write the run's report to ``path`` as :func:`write_report` writes
    :func:`build_report`'s (the same bytes), one task and one condition at a time: the
    memory it takes does not grow with the graph (a 200,000-task report is ~100 MB of
    text, which would otherwise be built whole, and its dict too, before a byte is
    written).

    Raises:
        OSError: the file cannot be written.
        ValueError: the report holds a value JSON cannot carry (NaN, for one).
    """
    report = _report_parts(graph, workers, counters, started_at, ended_at)
    _write_atomically(path, lambda file: _dump(file, report))


def _dump(file: TextIO, report: Mapping[str, Any]) -> None:
    """``json.dump(report, file, indent=2)`` and a newline, with any iterator among the
    report's values written as a JSON array, item by item."""
    file.write("{")
    for index, (key, value) in enumerate(report.items()):
        file.write(f"{',' if index else ''}\n  {_json(key)}: ")
        if isinstance(value, Iterator):
            _dump_array(file, value)
        else:
            file.write(_json(value).replace("\n", "\n  "))
    file.write("\n}\n")


def _dump_array(file: TextIO, items: Iterator[Any]) -> None:
    empty = True
    for item in items:
        file.write("[\n    " if empty else ",\n    ")
        file.write(_json(item).replace("\n", "\n    "))
        empty = False
    file.write("[]" if empty else "\n  ]")


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, allow_nan=False)


def _write_atomically(path: str | os.PathLike[str], write: Callable[[TextIO], None]) -> None:
    target = Path(path)
    # mkstemp creates the file 0600, and os.replace keeps the mode: see write_report.
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            write(file)
        os.replace(temporary, target)
    except BaseException:
        os.unlink(temporary)
        raise


def _task(node: TaskNode) -> dict[str, Any]:
    started, ended = node.started_at, node.ended_at
    succeeded = node.task_status is TaskStatus.SUCCESS
    return {
        "uid": node.uid,
        "key": key_json(node.key),
        "function": node.task_handle,
        "loop": node._loop.name,
        "status": str(node.task_status),
        "worker": node.worker,
        "attempts": node.attempts,
        "losses": node.losses,
        "shared_losses": node.shared_losses,
        "queued_at": node.queued_at,
        "started_at": started,
        "ended_at": ended,
        "duration": None if started is None or ended is None else max(0.0, ended - started),
        "error": node.exception_trace,
        "result_type": result_type_name(node) if succeeded else None,
        "waits_on": [condition.uid for condition in node.waits_on],
        "earlier_runs": [_earlier_run(run) for run in node.earlier_runs or ()],
    }


def _earlier_run(run: EarlierRun) -> dict[str, Any]:
    return {
        "worker": run.worker,
        "started_at": run.started_at,
        "ended_at": run.ended_at,
        "end_reason": str(run.end_reason),
        "error": run.error,
    }


def key_json(key: object) -> str | None:
    """A task key as the report holds it (see ``_KEY``)."""
    if key is None or isinstance(key, str):
        return key
    return repr(key)


def _worker(record: WorkerRecord, tasks: list[str]) -> dict[str, Any]:
    return {
        "id": record.worker_id,
        "name": record.name,
        "loops": list(record.loops),
        "joined_at": record.joined_at,
        "left_at": record.left_at,
        "left_because": record.left_because,
        "tasks": tasks,
        "lost_while_running": [
            {"uid": uid, "function": function} for uid, function in record.lost_while_running
        ],
    }


def _counters(counters: object) -> dict[str, int] | None:
    if counters is None:
        return None
    if dataclasses.is_dataclass(counters) and not isinstance(counters, type):
        counters = dataclasses.asdict(counters)
    if not isinstance(counters, Mapping):
        raise TypeError(f"counters must be a dataclass or a mapping, not {counters!r:.60}")
    return {str(key): int(value) for key, value in counters.items()}


# -- checking ---------------------------------------------------------------------------

_JSON_TYPES: Final[dict[str, tuple[type, ...]]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
}


def schema_errors(
    value: Any, schema: Mapping[str, Any] = REPORT_SCHEMA, at: str = "$"
) -> list[str]:
    """Where ``value`` breaks ``schema``, one message per problem; ``[]`` when it fits.

    Checks the JSON Schema keywords the report schema uses: ``type``, ``enum``,
    ``minimum``, ``properties``, ``required``, ``additionalProperties`` and ``items``.
    """
    types = schema.get("type")
    if types is not None:
        allowed = [types] if isinstance(types, str) else list(types)
        # A bool is an int to Python, never a number to JSON.
        if not any(
            isinstance(value, _JSON_TYPES[t]) and (t == "boolean" or not isinstance(value, bool))
            for t in allowed
        ):
            return [f"{at}: expected {' or '.join(allowed)}, got {type(value).__name__}"]
    if "enum" in schema and value not in schema["enum"]:
        return [f"{at}: {value!r} is not one of {schema['enum']}"]
    if "minimum" in schema and isinstance(value, int | float) and value < schema["minimum"]:
        return [f"{at}: {value} is below {schema['minimum']}"]
    errors: list[str] = []
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        errors += [
            f"{at}: missing {key!r}" for key in schema.get("required", ()) if key not in value
        ]
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            if key in properties:
                errors += schema_errors(item, properties[key], f"{at}.{key}")
            elif extra is False:
                errors.append(f"{at}: unexpected {key!r}")
            elif isinstance(extra, dict):
                errors += schema_errors(item, extra, f"{at}.{key}")
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            errors += schema_errors(item, schema["items"], f"{at}[{index}]")
    return errors
