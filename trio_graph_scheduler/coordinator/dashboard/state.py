"""What the dashboard shows, as plain JSON-ready data, and the deltas a browser is sent.

:class:`DashboardState` keeps the page's state: a few *sections* (the run's totals, the
loops, the workers, the distinct failures, ...) that are sent whole when they change, the
*bars* of the live task stream (one per task run in the last :data:`STREAM_SECONDS`, at
most :data:`MAX_BARS`), and, for graphs of up to :data:`GRAPH_LIMIT` tasks, one status
letter per task for the graph view. :meth:`DashboardState.update` scans the graph once
(O(tasks), a few times a second, and only while a browser watches) and returns the
delta since the previous update: the sections that changed, the bars that are new or
changed, the bars dropped, and the tasks whose status changed. :meth:`DashboardState.full`
is everything, for a browser that just connected or fell behind.

Pure: it reads the graph and the coordinator's records, changes nothing, does no I/O and
takes the time as an argument.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final, Protocol

from ...shared.errors import UnknownUidError
from ...shared.states import TaskStatus
from ..observe.progress import RateWindow
from ..observe.wording import STATUS_WORDS, error_headline

if TYPE_CHECKING:
    from collections.abc import Collection, Iterable, Mapping, Sequence

    from ..core.nodes import TaskNode
    from ..task_graph import TaskGraph
    from ..worker_session import WorkerRecord

#: Seconds of history the task stream shows.
STREAM_SECONDS: Final = 60.0
#: The most bars the task stream holds; the oldest finished ones go first.
MAX_BARS: Final = 1500
#: The largest graph the graph view draws (tasks).
GRAPH_LIMIT: Final = 5000
#: The most edges the graph view draws; a graph with more is drawn without them.
EDGE_LIMIT: Final = 20000
#: Tasks per row of the graph view's layout before a layer wraps onto another row.
LAYOUT_ROW: Final = 60
#: The most distinct failures listed.
MAX_FAILURES: Final = 20
#: The most tasks a search lists.
MAX_FOUND: Final = 50
#: The most characters of a traceback shown with a task.
MAX_TRACE: Final = 6000
#: What each task runs now, shown per worker: at most this many.
RUNNING_SHOWN: Final = 4

#: One letter per status word, for the graph view's colours.
STATUS_LETTERS: Final = {
    "waiting": "w",
    "ready": "q",
    "running": "r",
    "succeeded": "s",
    "failed": "f",
    "skipped": "k",
}
_LETTER: Final = {status: STATUS_LETTERS[word] for status, word in STATUS_WORDS.items()}
_FAILURE_FIELDS: Final = ("function", "headline", "count", "example")
_COUNTS: Final = ("waiting", "ready", "running", "succeeded", "failed", "skipped")
#: Why a worker left, when it was not lost.
_LEFT_CLEANLY: Final = (None, "dismissed", "stopped")


class SessionView(Protocol):
    """What the dashboard reads of a connected worker (a ``WorkerSession``)."""

    @property
    def worker_id(self) -> str: ...

    @property
    def loops(self) -> Sequence[str]: ...

    @property
    def leases(self) -> Mapping[int, TaskNode]: ...


class RunView(Protocol):
    """What the dashboard reads of a run (a :class:`~..server.Coordinator`)."""

    @property
    def graph(self) -> TaskGraph: ...

    @property
    def sessions(self) -> Collection[SessionView]: ...

    @property
    def workers(self) -> Mapping[str, WorkerRecord]: ...

    @property
    def started_at(self) -> float | None: ...

    @property
    def ended(self) -> bool: ...

    @property
    def stopped(self) -> bool: ...


class _Lanes:
    """A worker's rows in the task stream: each run takes the lowest row free when it
    starts, so that a row reads like one of the worker's slots."""

    __slots__ = ("ends",)

    def __init__(self) -> None:
        #: When each row is free again (``inf`` while its run goes on).
        self.ends: list[float] = []

    def take(self, start: float) -> int:
        for lane, end in enumerate(self.ends):
            if end <= start:
                self.ends[lane] = float("inf")
                return lane
        self.ends.append(float("inf"))
        return len(self.ends) - 1


class DashboardState:
    """The page's state, updated from a run (see the module's docstring).

    Args:
        run: the run to show (the coordinator).
    """

    def __init__(self, run: RunView) -> None:
        self.run = run
        #: Counts every update; a browser says which version it holds.
        self.version = 0
        self._sections: dict[str, Any] = {}
        #: uid -> [uid, function, worker, lane, start, end or None, failed (0/1)].
        self._bars: dict[str, list[Any]] = {}
        self._open: dict[str, TaskNode] = {}  # bars whose run has not ended yet
        self._lanes: dict[str, _Lanes] = {}
        self._lane_of: dict[str, tuple[str, int]] = {}
        self._scanned_to = float("-inf")
        self._statuses = ""
        self._headlines: dict[str, tuple[int, str]] = {}
        self._rate = RateWindow()
        self._outputs: list[dict[str, str]] = []
        self._ended_at: float | None = None  # when the update first saw the run ended

    def set_outputs(self, outputs: Iterable[tuple[str, str]]) -> None:
        """Links to what the run wrote (``(label, href)``), shown once it ended."""
        self._outputs = [{"label": label, "href": href} for label, href in outputs]

    def full(self) -> dict[str, Any]:
        """Everything the page shows, as of the last update."""
        return {
            "v": self.version,
            "full": True,
            **self._sections,
            "bars": list(self._bars.values()),
            "statuses": self._statuses,
        }

    def update(self, now: float) -> dict[str, Any]:
        """Scan the run as it is at ``now`` (``time.time()``); return what changed."""
        run = self.run
        graph = run.graph
        t0 = run.started_at if run.started_at is not None else now
        counts = {name: dict.fromkeys(_COUNTS, 0) for name in graph.scheduler.loops}
        done: dict[str, int] = {}
        groups: dict[tuple[str, str], list[Any]] = {}
        new_bars: list[TaskNode] = []
        letters: list[str] | None = [] if len(graph.nodes) <= GRAPH_LIMIT else None
        scanned_to = self._scanned_to
        for node in graph.nodes.values():
            status = node.task_status
            counts[node._loop.name][STATUS_WORDS[status]] += 1
            if letters is not None:
                letters.append(_LETTER[status])
            if node.ended_at is not None and node.worker is not None:
                done[node.worker] = done.get(node.worker, 0) + 1
            if status is TaskStatus.FAILED:
                self._count_failure(node, groups)
            started = node.started_at
            # >=: a clock may give two readings alike; _stream skips a run it already has.
            if started is not None and started >= scanned_to and node.worker is not None:
                new_bars.append(node)
        self._scanned_to = now
        changed: dict[str, Any] = {}
        ended = sum(c["succeeded"] + c["failed"] + c["skipped"] for c in counts.values())
        total = sum(sum(c.values()) for c in counts.values())
        self._set(changed, "run", self._run_section(now, t0, total, ended, counts))
        self._set(
            changed,
            "loops",
            [
                {"name": name, "concurrency": queue.concurrency, **counts[name]}
                for name, queue in graph.scheduler.loops.items()
            ],
        )
        self._set(changed, "workers", self._workers(t0, done))
        failures = sorted(groups.values(), key=lambda group: -group[2])[:MAX_FAILURES]
        self._set(
            changed,
            "failures",
            [dict(zip(_FAILURE_FIELDS, group, strict=True)) for group in failures],
        )
        self._set(changed, "functions", list(graph.task_functions))
        self._set(changed, "outputs", self._outputs)
        bars, dropped = self._stream(new_bars, now, t0)
        self.version += 1
        delta: dict[str, Any] = {"v": self.version, **changed}
        if bars:
            delta["bars"] = bars
        if dropped:
            delta["drop"] = dropped
        statuses = "".join(letters) if letters is not None else ""
        if statuses != self._statuses:
            old = self._statuses
            if len(statuses) == len(old):
                delta["status_changes"] = [
                    [i, letter]
                    for i, (letter, was) in enumerate(zip(statuses, old, strict=True))
                    if letter != was
                ]
            else:
                delta["statuses"] = statuses
            self._statuses = statuses
        return delta

    def _set(self, changed: dict[str, Any], name: str, value: Any) -> None:
        if self._sections.get(name) != value:
            self._sections[name] = changed[name] = value

    def _run_section(
        self, now: float, t0: float, total: int, ended: int, counts: dict[str, dict[str, int]]
    ) -> dict[str, Any]:
        run = self.run
        if run.ended and self._ended_at is None:
            self._ended_at = now
        elapsed = max(0.0, (self._ended_at or now) - t0)
        rate = self._rate.add(elapsed, ended) if run.started_at is not None else None
        if run.ended and elapsed > 0:
            rate = ended / elapsed  # once it ended: the pace of the whole run
        left = None
        if rate:
            left = (total - ended) / rate
        return {
            "started": run.started_at is not None,
            "ended": run.ended,
            # Ended by a signal or Coordinator.stop(), not because every task ended.
            "stopped": run.stopped,
            "elapsed": round(elapsed, 2),
            "total": total,
            "done": ended,
            "failed": sum(c["failed"] for c in counts.values()),
            "skipped": sum(c["skipped"] for c in counts.values()),
            "running": sum(c["running"] for c in counts.values()),
            "rate": None if rate is None else round(rate, 1),
            "left": None if left is None or run.ended else round(left, 1),
            "workers": len(run.sessions),
        }

    def _workers(self, t0: float, done: dict[str, int]) -> list[dict[str, Any]]:
        leases = {session.worker_id: list(session.leases.values()) for session in self.run.sessions}
        workers = []
        for record in self.run.workers.values():
            running = leases.get(record.worker_id, [])
            workers.append(
                {
                    "id": record.worker_id,
                    "name": record.name,
                    "loops": list(record.loops),
                    "joined": round(record.joined_at - t0, 1),
                    "left": None if record.left_at is None else round(record.left_at - t0, 1),
                    "because": record.left_because,
                    "lost": record.left_because not in _LEFT_CLEANLY,
                    "running": len(running),
                    "now": [[node.uid, node.task_handle] for node in running[:RUNNING_SHOWN]],
                    "done": done.get(record.worker_id, 0),
                }
            )
        return workers

    def _count_failure(self, node: TaskNode, groups: dict[tuple[str, str], list[Any]]) -> None:
        # Each failure's headline is worked out once per run of the task, not per scan.
        cached = self._headlines.get(node.uid)
        if cached is None or cached[0] != node.attempts:
            line = error_headline(node.exception_trace) or "failed, with no error"
            cached = self._headlines[node.uid] = (node.attempts, line)
        key = (node.task_handle, cached[1])
        group = groups.get(key)
        if group is None:
            groups[key] = [node.task_handle, cached[1], 1, node.uid]
        else:
            group[2] += 1

    def _stream(
        self, new: list[TaskNode], now: float, t0: float
    ) -> tuple[list[list[Any]], list[str]]:
        """Add the runs started since the last scan, end the bars whose run ended, and
        drop the bars that scrolled out; return the bars new or changed, and the dropped."""
        changed: dict[str, list[Any]] = {}
        for uid, node in list(self._open.items()):
            bar = self._bars.get(uid)
            if bar is None:
                del self._open[uid]
                continue
            if node.ended_at is not None or node.task_status is not TaskStatus.IN_PROGRESS:
                end = node.ended_at if node.ended_at is not None else now
                self._end_bar(uid, bar, end, t0, node)
                changed[uid] = bar
        new.sort(key=lambda node: node.started_at or 0.0)
        if len(new) > MAX_BARS:
            # More runs started since the last update than the stream holds: only the
            # latest show (the others would be dropped at once).
            new = new[-MAX_BARS:]
        for node in new:
            start = node.started_at or now
            known = self._bars.get(node.uid)
            if known is not None and known[4] == round(start - t0, 3):
                continue  # seen by the previous scan already, at the same time
            worker = node.worker or "?"
            lanes = self._lanes.setdefault(worker, _Lanes())
            lane = lanes.take(start)
            self._lane_of[node.uid] = (worker, lane)
            bar = [node.uid, node.task_handle, worker, lane, round(start - t0, 3), None, 0]
            self._bars.pop(node.uid, None)  # a rerun goes to the end, as the newest
            self._bars[node.uid] = bar
            self._open[node.uid] = node
            if node.ended_at is not None or node.task_status is not TaskStatus.IN_PROGRESS:
                self._end_bar(node.uid, bar, node.ended_at or now, t0, node)
            changed[node.uid] = bar
        dropped = self._drop_old(now - t0)
        for uid in dropped:
            changed.pop(uid, None)
        return list(changed.values()), dropped

    def _end_bar(self, uid: str, bar: list[Any], end: float, t0: float, node: TaskNode) -> None:
        bar[5] = round(max(end - t0, bar[4]), 3)
        bar[6] = int(node.task_status is TaskStatus.FAILED)
        self._open.pop(uid, None)
        worker, lane = self._lane_of.pop(uid, (None, 0))
        if worker is not None:
            self._lanes[worker].ends[lane] = end

    def _drop_old(self, elapsed: float) -> list[str]:
        bars = self._bars
        since = elapsed - STREAM_SECONDS
        dropped = [uid for uid, bar in bars.items() if bar[5] is not None and bar[5] < since]
        for uid in dropped:
            del bars[uid]
        if len(bars) > MAX_BARS:
            # Insertion order is start order: the oldest finished bars go first.
            extra = len(bars) - MAX_BARS
            oldest = [uid for uid, bar in bars.items() if bar[5] is not None][:extra]
            for uid in oldest:
                del bars[uid]
            dropped.extend(oldest)
        return dropped


# -- on demand: the graph's layout, a search, one task -----------------------------------


def graph_layout(graph: TaskGraph) -> dict[str, Any] | None:
    """Where the graph view draws each task, and its edges; ``None`` past :data:`GRAPH_LIMIT`.

    Layered: a task sits one layer below its lowest predecessor created before it (a
    predecessor added later with ``prepend_to_successor`` does not move it), and a wide
    layer wraps onto rows of :data:`LAYOUT_ROW`. O(tasks + edges).
    """
    nodes = list(graph.nodes.values())
    if len(nodes) > GRAPH_LIMIT:
        return None
    index = {node.uid: i for i, node in enumerate(nodes)}
    layers = [0] * len(nodes)
    edges: list[list[int]] = []
    for i, node in enumerate(nodes):
        for predecessor in node.get_predecessor_task_nodes():
            j = index.get(predecessor.uid)
            if j is None:
                continue
            if j < i:
                layers[i] = max(layers[i], layers[j] + 1)
            edges.append([j, i])
    by_layer: dict[int, list[int]] = {}
    for i, layer in enumerate(layers):
        by_layer.setdefault(layer, []).append(i)
    xy: list[list[float]] = [[0.0, 0.0]] * len(nodes)
    row = 0
    for layer in sorted(by_layer):
        members = by_layer[layer]
        width = min(len(members), LAYOUT_ROW)
        for k, i in enumerate(members):
            column = k % LAYOUT_ROW
            # Centre each row, so that a narrow layer sits under a wide one's middle.
            xy[i] = [column - (width - 1) / 2, row + k // LAYOUT_ROW]
        row += (len(members) - 1) // LAYOUT_ROW + 2
    return {
        "n": len(nodes),
        "uids": [node.uid for node in nodes],
        "functions": [node.task_handle for node in nodes],
        "xy": xy,
        "edges": edges if len(edges) <= EDGE_LIMIT else [],
        "edges_left_out": len(edges) if len(edges) > EDGE_LIMIT else 0,
    }


def search(run: RunView, query: str) -> dict[str, Any]:
    """Tasks whose uid, key or function matches ``query``; the only one in detail.

    A uid matches exactly or by its beginning (at least 6 characters), a key (issue 12's
    ``TaskNode.key``, where there is one) exactly or as part of it, a function exactly.
    A condition's uid answers with what the condition needs.
    """
    graph = run.graph
    query = query.strip()
    if not query:
        return {"query": query, "found": [], "more": False}
    node = graph.nodes.get(query)
    if node is not None:
        return {"query": query, "found": [_row(run, node)], "task": task_details(run, node.uid)}
    if query in graph.conditions:
        return {"query": query, "found": [], "why": _explain(run, query)}
    found: list[dict[str, Any]] = []
    more = False
    by_uid = len(query) >= 6
    for node in graph.nodes.values():
        key = node.key
        if (
            node.task_handle == query
            or (by_uid and node.uid.startswith(query))
            or (key is not None and query in str(key))
        ):
            if len(found) == MAX_FOUND:
                more = True
                break
            found.append(_row(run, node))
    answer: dict[str, Any] = {"query": query, "found": found, "more": more}
    if len(found) == 1:
        answer["task"] = task_details(run, found[0]["uid"])
    return answer


def task_details(run: RunView, uid: str) -> dict[str, Any] | None:
    """One task in full: its row, its error, and why it has not run yet or how it ended
    (the ``--why`` text); ``None`` for a uid no task has."""
    node = run.graph.nodes.get(uid)
    if node is None:
        return None
    trace = node.exception_trace
    if trace is not None and len(trace) > MAX_TRACE:
        trace = "..." + trace[-MAX_TRACE:]
    return {**_row(run, node), "trace": trace, "why": _explain(run, uid)}


def _row(run: RunView, node: TaskNode) -> dict[str, Any]:
    t0 = run.started_at or 0.0
    key = node.key
    record = run.workers.get(node.worker or "")

    def since(moment: float | None) -> float | None:
        return None if moment is None else round(moment - t0, 3)

    return {
        "uid": node.uid,
        "function": node.task_handle,
        "key": None if key is None else str(key),
        "status": STATUS_WORDS[node.task_status],
        "attempts": node.attempts,
        "worker": node.worker,
        "worker_name": None if record is None else record.name,
        "queued": since(node.queued_at),
        "started": since(node.started_at),
        "ended": since(node.ended_at),
        "end_reason": None if node.end_reason is None else str(node.end_reason),
        "error": error_headline(node.exception_trace),
    }


def _explain(run: RunView, uid: str) -> str:
    try:
        return run.graph.explain(uid, workers=list(run.sessions), lost_workers=run.workers.values())
    except UnknownUidError as exc:
        return str(exc)
