"""Fuzz the graph calls an authenticated worker makes, as the frame decoder is fuzzed.

A task running on a worker asks the coordinator to create tasks (with keys too) and
conditions, to prepend tasks, to look tasks up by uid or key, to cancel tasks and to
list successors (``create_task_request``, ``create_condition_request``,
``prepend_request``, ``task_query``, ``cancel_task_request``, ``successors_request``).
The worker holds the token, but what it asks for is the task's
business: every request must either be carried out or be refused (an error reply, or
the calling task failing), never break the session with an internal error.

Each example builds a graph with a few tasks and conditions, hands one task to a session
as a worker's lease, and feeds the session's handlers a sequence of generated requests,
each first encoded and decoded as a frame would be (a request the decoder refuses is a
protocol error, tested elsewhere, and skipped here). After every request the
scheduler's invariants hold and what the session queued for the worker can be sent; at
the end, the calling task's result is accepted.
"""

from __future__ import annotations

from typing import Any
from unittest import mock

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trio_graph_scheduler import (
    CoordinatorConfig,
    GenericSchedulingCondition,
    TaskGraph,
    WorkerLoop,
)
from trio_graph_scheduler.coordinator import server
from trio_graph_scheduler.coordinator.worker_session import LoopClaim, WorkerSession
from trio_graph_scheduler.protocol import (
    Cancel,
    CancelTaskRequest,
    CreateConditionRequest,
    CreateTaskRequest,
    Message,
    PrependRequest,
    RemoteProtocolError,
    Reply,
    SuccessorsRequest,
    TaskQuery,
    TaskSucceeded,
    decode_frame,
    encode_frame,
)

#: Examples per fuzz test (a figure for the reports).
EXAMPLES = 300
#: The smallest frame limit a worker may have.
SMALLEST_FRAME = 2**16

FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,  # the same examples every run: a failure here is reproducible
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


async def leaf(*_: Any, **__: Any) -> None:
    pass


async def spawner(**_: Any) -> None:
    pass


class Harness:
    """A coordinator's graph with one task leased to a session: the caller."""

    def __init__(self) -> None:
        graph = TaskGraph(
            {"spawner": spawner, "leaf": leaf, "other": leaf},
            [WorkerLoop("default", 2, ["spawner", "leaf"]), WorkerLoop("solo", 1, ["other"])],
        )
        self.caller = graph.create_task_nowait("spawner")
        self.done = graph.create_task_nowait("leaf")
        self.waiting = graph.create_task_nowait("leaf", waits_on=[self.done.uid])
        self.condition = GenericSchedulingCondition(graph, "COMPLETE__1", [self.done.uid])
        self.graph = graph
        # Shipping the functions is not what is tested, and scanning the loaded modules
        # for it would take most of each example's time.
        with mock.patch.object(server, "pickle_for_workers", return_value={}):
            self.coordinator = server.Coordinator(graph, CoordinatorConfig())
        self.session = WorkerSession(self.coordinator, None)  # type: ignore[arg-type]
        self.session.worker_id = "worker-1"
        # The worker accepts the smallest frame there is: refusals must still fit.
        self.session._protocol.limit_sends(SMALLEST_FRAME)
        graph.scheduler.start()
        claim = LoopClaim(self.session, "default")
        self.session._claims = {"default": claim}
        self.session._add_credit(claim, 1)  # the caller, first in line, is leased
        ((self.lease, node),) = self.session.leases.items()
        assert node is self.caller
        self.uids = [self.caller.uid, self.done.uid, self.waiting.uid, self.condition.uid]

    def handle(self, request: Message) -> None:
        handler = {
            CreateTaskRequest: self.session._on_create_task,
            CreateConditionRequest: self.session._on_create_condition,
            PrependRequest: self.session._on_prepend,
            TaskQuery: self.session._on_task_query,
            CancelTaskRequest: self.session._on_cancel_task,
            SuccessorsRequest: self.session._on_successors,
        }[type(request)]
        handler(request)  # type: ignore[operator]
        self.check()

    def check(self) -> None:
        self.graph.check_invariants()
        outbox = self.session._outbox
        if outbox:
            # Refusals go to the worker: they must fit what it accepts.
            encode_frame(outbox, max_frame_bytes=self.session._protocol.max_send_bytes)
            # A cancel of the calling task itself asks its worker to stop it.
            assert all(isinstance(message, Reply | Cancel) for message in outbox), outbox


# -- what a task could ask for --------------------------------------------------------

_digits = st.integers(0, 6000).map(lambda n: "9" * n)
_counts = st.integers(-5, 10).map(str) | _digits | st.sampled_from(["ALL", "all", "", "1.5", "+1"])
_kinds = st.sampled_from(["SUCCESS", "COMPLETE", "FAILURE", "success", ""])


def mostly(
    valid: st.SearchStrategy[Any], invalid: st.SearchStrategy[Any]
) -> st.SearchStrategy[Any]:
    """Valid three times in four: refusals alone would leave the paths that change the
    graph untried."""
    return st.one_of(valid, valid, valid, invalid)


modes = mostly(
    st.sampled_from(["SUCCESS__ALL", "COMPLETE__ALL", "SUCCESS__1", "COMPLETE__2", "SUCCESS__3"]),
    st.builds(lambda kind, count: f"{kind}__{count}", _kinds, _counts)
    | st.text(min_size=1, max_size=12)
    | st.sampled_from(["SUCCESS__", "__1", "SUCCESS__1__2"]),
)
handles = mostly(
    st.sampled_from(["spawner", "leaf", "other"]),
    st.sampled_from(["nope", "", "x" * 5000]) | st.text(max_size=8),
)
_plain = st.none() | st.booleans() | st.integers() | st.text(max_size=4) | st.binary(max_size=4)
_values = st.recursive(
    _plain, lambda inner: st.lists(inner, max_size=3).map(tuple) | st.lists(inner, max_size=3)
)
arguments = mostly(
    st.none()
    | st.tuples(st.lists(_values, max_size=3).map(tuple), st.dictionaries(st.text(), _values))
    | st.tuples(st.lists(_values, max_size=3).map(tuple), st.none()),
    st.tuples(st.lists(_values, max_size=3).map(tuple), st.dictionaries(st.integers(), _values))
    | _values,
)


_keys = mostly(
    st.text(min_size=1, max_size=6) | st.integers() | st.tuples(st.text(max_size=3), st.integers()),
    _values | st.lists(_values, max_size=2),
)


def new_uids(prefix: str) -> st.SearchStrategy[str]:
    """Uids never used: what a worker following the protocol makes."""
    return mostly(
        st.uuids().map(lambda u: f"{prefix}-{u.hex}"),
        st.sampled_from(["task-", "condition-", "task-x", "x" * 3000, "", "task-" + "0" * 32])
        | st.text(max_size=10)
        | st.uuids().map(lambda u: f"{'condition' if prefix == 'task' else 'task'}-{u.hex}"),
    )


def known_uids(harness_uids: list[str]) -> st.SearchStrategy[str]:
    """Uids of the graph's tasks and conditions, mostly."""
    return mostly(st.sampled_from(harness_uids), new_uids("task") | new_uids("condition"))


def requests(harness_uids: list[str], lease: int) -> st.SearchStrategy[Message]:
    """Requests that should be carried out, and requests with anything in any field."""
    return well_formed_requests(harness_uids, lease) | any_requests(harness_uids, lease)


def well_formed_requests(harness_uids: list[str], lease: int) -> st.SearchStrategy[Message]:
    ids = st.integers(0, 2**63 - 1)
    waits_on = st.lists(st.sampled_from(harness_uids), max_size=3)
    return (
        st.builds(
            CreateTaskRequest,
            request_id=ids,
            lease=st.just(lease),
            uid=st.uuids().map(lambda u: f"task-{u.hex}"),
            awaited=st.booleans(),
            handle=st.sampled_from(["spawner", "leaf", "other"]),
            arguments=st.sampled_from([None, ((), {}), ((1, "two"), {"x": (3,)}), ((), None)]),
            waits_on=waits_on,
        )
        | st.builds(
            CreateConditionRequest,
            request_id=ids,
            lease=st.just(lease),
            uid=st.uuids().map(lambda u: f"condition-{u.hex}"),
            mode=st.sampled_from(["SUCCESS__ALL", "COMPLETE__ALL", "SUCCESS__1", "COMPLETE__1"]),
            waits_on=st.lists(st.sampled_from(harness_uids), min_size=1, max_size=3),
            awaited=st.booleans(),
        )
        | st.builds(
            PrependRequest,
            request_id=ids,
            lease=st.just(lease),
            successor_handle=st.sampled_from(["spawner", "leaf", "other"]),
            new_task_uid=st.sampled_from(harness_uids),
            awaited=st.booleans(),
        )
        | st.builds(
            CreateTaskRequest,
            request_id=ids,
            lease=st.just(lease),
            uid=st.uuids().map(lambda u: f"task-{u.hex}"),
            awaited=st.just(True),
            handle=st.sampled_from(["spawner", "leaf", "other"]),
            arguments=st.none(),
            waits_on=waits_on,
            key=st.sampled_from(["a", "b", ("a", 1), 7]),
        )
        | st.builds(
            TaskQuery, request_id=ids, lease=st.just(lease), uid=st.sampled_from(harness_uids)
        )
        | st.builds(
            TaskQuery,
            request_id=ids,
            lease=st.just(lease),
            key=st.sampled_from(["a", "b", ("a", 1), 7]),
            with_result=st.booleans(),
        )
        | st.builds(
            CancelTaskRequest,
            request_id=ids,
            lease=st.just(lease),
            uid=st.sampled_from(harness_uids),
            reason=st.text(max_size=5),
        )
        | st.builds(
            SuccessorsRequest,
            request_id=ids,
            lease=st.just(lease),
            uid=st.sampled_from(harness_uids),
            handle=st.sampled_from(["spawner", "leaf", "other"]),
        )
    )


def any_requests(harness_uids: list[str], lease: int) -> st.SearchStrategy[Message]:
    waits_on = st.lists(known_uids(harness_uids), max_size=4)
    ids = st.integers(0, 2**63 - 1)
    return (
        st.builds(
            CreateTaskRequest,
            request_id=ids,
            lease=st.just(lease),
            uid=mostly(new_uids("task"), st.sampled_from(harness_uids)),
            awaited=st.booleans(),
            handle=handles,
            arguments=arguments,
            waits_on=waits_on,
        )
        | st.builds(
            CreateConditionRequest,
            request_id=ids,
            lease=st.just(lease),
            uid=mostly(new_uids("condition"), st.sampled_from(harness_uids)),
            mode=modes,
            waits_on=waits_on,
            awaited=st.booleans(),
        )
        | st.builds(
            PrependRequest,
            request_id=ids,
            lease=st.just(lease),
            successor_handle=handles,
            new_task_uid=known_uids(harness_uids),
            awaited=st.booleans(),
        )
        | st.builds(
            CreateTaskRequest,
            request_id=ids,
            lease=st.just(lease),
            uid=mostly(new_uids("task"), st.sampled_from(harness_uids)),
            awaited=st.just(True),
            handle=handles,
            arguments=arguments,
            waits_on=waits_on,
            key=_keys,
        )
        | st.builds(
            TaskQuery,
            request_id=ids,
            lease=st.just(lease),
            uid=known_uids(harness_uids),
            with_result=st.booleans(),
        )
        | st.builds(
            TaskQuery,
            request_id=ids,
            lease=st.just(lease),
            key=_keys.filter(lambda key: key is not None),  # None with no uid: not a query
            with_result=st.booleans(),
        )
        | st.builds(
            CancelTaskRequest,
            request_id=ids,
            lease=st.just(lease),
            uid=known_uids(harness_uids),
            reason=st.text(max_size=50),
        )
        | st.builds(
            SuccessorsRequest,
            request_id=ids,
            lease=st.just(lease),
            uid=known_uids(harness_uids),
            handle=handles,
        )
    )


def as_received(request: Message) -> Message | None:
    """The request as the coordinator would decode it, or None if it would refuse the
    frame (a protocol error: its own tests cover it)."""
    try:
        frame = encode_frame([request])
        (decoded,) = decode_frame(frame, allow_pickle=True)
    except RemoteProtocolError:
        return None
    return decoded


@FUZZ_SETTINGS
@given(data=st.data())
def test_graph_calls_are_carried_out_or_refused(data: st.DataObject) -> None:
    async def main() -> None:
        harness = Harness()
        made = data.draw(st.lists(requests(harness.uids, harness.lease), min_size=1, max_size=6))
        for request in made:
            if harness.lease not in harness.session.leases:
                break  # the caller cancelled itself (see below): it makes no more calls
            received = as_received(request)
            if received is None:
                continue
            harness.handle(received)
            # Tasks and conditions made so far may be named by the next requests too.
            uid = getattr(received, "uid", None)
            if isinstance(received, CreateConditionRequest | CreateTaskRequest) and (
                uid is not None and uid not in harness.uids
            ):
                harness.uids.append(uid)
        # The caller's result is accepted, or turned into the failure of a refused call;
        # unless it cancelled itself before its assignment went (only a harness that
        # never sends can see that), which ended it there.
        if harness.lease in harness.session.leases:
            harness.session._on_task_succeeded(TaskSucceeded(lease=harness.lease, result=None))
        else:
            assert harness.caller.task_status == "failed"
        harness.check()

    trio.run(main)


@pytest.mark.parametrize(
    "mode",
    ["SUCCESS__" + "9" * 5000, "COMPLETE__" + "1" * 4301, "SUCCESS__-1", "COMPLETE__1.5"],
)
def test_a_condition_mode_with_a_bad_count_fails_the_calling_task(mode: str) -> None:
    async def main() -> None:
        harness = Harness()
        request = CreateConditionRequest(
            request_id=1,
            lease=harness.lease,
            uid="condition-" + "0" * 32,
            mode=mode,
            waits_on=[harness.done.uid],
        )
        harness.handle(as_received(request) or request)
        harness.session._on_task_succeeded(TaskSucceeded(lease=harness.lease, result=None))
        harness.check()
        assert harness.caller.task_status == "failed"
        assert harness.caller.exception_trace is not None
        assert "GraphDefinitionError" in harness.caller.exception_trace
        assert len(harness.caller.exception_trace) < 2000

    trio.run(main)
