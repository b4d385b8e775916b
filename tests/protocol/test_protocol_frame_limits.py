"""Each end says in the handshake how large a frame it accepts; the other sends no more."""

from __future__ import annotations

import msgpack
import msgspec
import pytest

from trio_graph_scheduler.protocol import (
    PROTOCOL_VERSION,
    Assign,
    FrameTooLargeError,
    Hello,
    ProtocolSession,
    RemoteProtocolError,
    Role,
    TaskSucceeded,
    Welcome,
    decode_frame,
    encode_frame,
)

LIMIT = 2**16


def hello(max_frame_bytes: int = 0) -> Hello:
    return Hello(
        version=PROTOCOL_VERSION,
        token="t",
        worker_name="w",
        loops=[],
        max_tasks=0,
        max_frame_bytes=max_frame_bytes,
    )


def welcome(max_frame_bytes: int = 0) -> Welcome:
    return Welcome(
        version=PROTOCOL_VERSION,
        worker_id="worker-1",
        loops={"default": 1},
        heartbeat_interval=1.0,
        heartbeat_timeout=10.0,
        context_inits={},
        max_frame_bytes=max_frame_bytes,
    )


def assign(nbytes: int) -> Assign:
    return Assign(
        lease=1,
        task_uid="task-1",
        handle="f",
        loop="default",
        arguments=((b"x" * nbytes,), {}),
        predecessors=[],
        function=None,
        timeout=None,
    )


def test_a_hello_of_an_older_worker_still_decodes_and_says_nothing() -> None:
    # The hello of a worker from before the field: no max_frame_bytes key at all.
    old = msgpack.packb(
        [
            {
                "type": "hello",
                "version": PROTOCOL_VERSION,
                "token": "t",
                "worker_name": "w",
                "loops": [],
                "max_tasks": 0,
            }
        ]
    )
    (decoded,) = decode_frame(old, allow_pickle=False)
    assert decoded == hello()
    # And a hello that says nothing is encoded as before: the field is left out.
    assert "max_frame_bytes" not in msgpack.unpackb(encode_frame([hello()]))[0]
    assert msgpack.unpackb(encode_frame([hello(LIMIT)]))[0]["max_frame_bytes"] == LIMIT


def test_a_welcome_of_an_older_coordinator_still_decodes() -> None:
    wire = msgpack.unpackb(encode_frame([welcome()]))[0]
    assert "max_frame_bytes" not in wire
    (decoded,) = decode_frame(msgpack.packb([wire]), allow_pickle=False)
    assert decoded == welcome()


def test_the_coordinator_sends_no_frame_larger_than_the_worker_accepts() -> None:
    coordinator = ProtocolSession(Role.COORDINATOR)
    coordinator.receive(encode_frame([hello(LIMIT)]))
    assert coordinator.max_send_bytes == LIMIT
    assert coordinator.max_frame_bytes > LIMIT  # what it accepts is its own business
    coordinator.send([welcome()])
    coordinator.send([assign(LIMIT // 2)])
    with pytest.raises(FrameTooLargeError) as caught:
        coordinator.send([assign(LIMIT)])
    assert caught.value.limit == LIMIT
    # The session is unchanged: the caller fails the task and goes on.
    coordinator.send([assign(10)])


def test_the_worker_sends_no_frame_larger_than_the_coordinator_accepts() -> None:
    worker = ProtocolSession(Role.WORKER)
    worker.send([hello()])
    worker.receive(encode_frame([welcome(LIMIT)]))
    assert worker.max_send_bytes == LIMIT
    with pytest.raises(FrameTooLargeError):
        worker.send([TaskSucceeded(lease=1, result=b"x" * LIMIT)])


def test_a_peer_that_says_nothing_or_more_changes_nothing() -> None:
    coordinator = ProtocolSession(Role.COORDINATOR, max_frame_bytes=LIMIT)
    coordinator.receive(encode_frame([hello()]))
    assert coordinator.max_send_bytes == LIMIT
    coordinator = ProtocolSession(Role.COORDINATOR, max_frame_bytes=LIMIT)
    coordinator.receive(encode_frame([hello(4 * LIMIT)]))
    assert coordinator.max_send_bytes == LIMIT


def test_a_worker_accepts_a_welcome_as_large_as_any_frame() -> None:
    # Context init functions can be large; only the coordinator, which has not checked
    # the token yet, keeps its first frame small.
    big = msgspec_replace_inits(welcome(), {"default": b"x" * (2 * LIMIT)})
    worker = ProtocolSession(Role.WORKER)
    worker.send([hello()])
    (received,) = worker.receive(encode_frame([big]))
    assert received == big
    small = ProtocolSession(Role.WORKER, max_frame_bytes=LIMIT)
    small.send([hello()])
    with pytest.raises(RemoteProtocolError, match="exceeds the limit"):
        small.receive(encode_frame([big]))


def msgspec_replace_inits(message: Welcome, inits: dict[str, bytes]) -> Welcome:
    return msgspec.structs.replace(message, context_inits=inits)
