"""Values larger than a frame travel as streams of chunks (issue 10), without sockets.

Two protocol sessions face each other; frames go from one to the other by hand. The
receiver's checks are tried with garbage a broken or hostile peer could send.
"""

from __future__ import annotations

import tracemalloc
from typing import Any

import msgpack
import pytest

from trio_graph_scheduler.protocol import (
    PROTOCOL_VERSION,
    Assign,
    Cancel,
    Claim,
    Heartbeat,
    Hello,
    InboundValues,
    Message,
    ProtocolSession,
    RemoteProtocolError,
    Role,
    TaskSucceeded,
    UnreadableValue,
    ValueChunk,
    ValueEncodeError,
    Welcome,
    decode_frame,
    decode_value,
    encode_frame,
    encode_value,
)
from trio_graph_scheduler.protocol.chunks import CHUNK_BYTES, spill_size
from trio_graph_scheduler.protocol.values import (
    CHECKED_ABOVE,
    EXT_STREAMED,
    check_containers,
)

FRAME = 2**16  # the smallest frame either program takes: chunks of 64 KiB less a little
VALUE = 2**20  # the value limit of both ends here


def pair(
    *, frame: int = FRAME, value: int = VALUE, worker_value: int | None = None
) -> tuple[ProtocolSession, ProtocolSession]:
    """An active (worker, coordinator) pair whose ends take streams."""
    worker = ProtocolSession(
        Role.WORKER,
        max_frame_bytes=frame,
        max_value_bytes=value if worker_value is None else worker_value,
    )
    coordinator = ProtocolSession(Role.COORDINATOR, max_frame_bytes=frame, max_value_bytes=value)
    hello = Hello(
        version=PROTOCOL_VERSION,
        token="t",
        worker_name="w",
        loops=[],
        max_tasks=0,
        max_frame_bytes=frame,
        max_value_bytes=worker.max_value_bytes,
    )
    coordinator.receive(worker.send([hello]))
    welcome = Welcome(
        version=PROTOCOL_VERSION,
        worker_id="worker-1",
        loops={"default": 1},
        heartbeat_interval=1.0,
        heartbeat_timeout=10.0,
        context_inits={},
        max_frame_bytes=frame,
        max_value_bytes=value,
    )
    worker.receive(coordinator.send([welcome]))
    return worker, coordinator


def assign(lease: int, arguments: Any, handle: str = "f") -> Assign:
    return Assign(
        lease=lease,
        task_uid=f"task-{lease}",
        handle=handle,
        loop="default",
        arguments=arguments,
        predecessors=[],
        function=None,
        timeout=None,
    )


def drain(sender: ProtocolSession, receiver: ProtocolSession) -> list[Message]:
    """Send every chunk and held message, one frame at a time; what the receiver got."""
    got: list[Message] = []
    while sender.streaming:
        for frame in sender.stream_frames():
            assert len(frame) <= sender.max_send_bytes
            got += receiver.receive(frame)
    return got


def test_a_value_larger_than_a_frame_arrives_whole() -> None:
    worker, coordinator = pair()
    value = bytes(range(256)) * 4000  # about a million bytes: 16 chunks of 64 KiB
    frame = worker.send_streamed([TaskSucceeded(lease=1, result=value)])
    assert frame is None  # the result waits for its stream
    got = drain(worker, coordinator)
    assert got == [TaskSucceeded(lease=1, result=value)]
    assert coordinator._inbound.pending == 0  # taken, nothing kept
    assert coordinator._inbound.held_bytes == 0


def test_other_messages_go_between_the_chunks() -> None:
    worker, coordinator = pair()
    big = b"y" * (5 * FRAME)
    assert worker.send_streamed([TaskSucceeded(lease=1, result=big)]) is None
    # A chunk goes; then small traffic goes at once, ahead of the rest of the value.
    assert coordinator.receive(worker.stream_frames()[0]) == []
    small = worker.send_streamed([TaskSucceeded(lease=2, result=1), Claim(loop="l", credit=1)])
    assert small is not None
    assert coordinator.receive(small) == [
        TaskSucceeded(lease=2, result=1),
        Claim(loop="l", credit=1),
    ]
    assert drain(worker, coordinator) == [TaskSucceeded(lease=1, result=big)]


def test_a_message_of_the_same_lease_waits_behind_the_value() -> None:
    worker, coordinator = pair()
    big = ((b"z" * (3 * FRAME),), {})
    small = assign(2, ((1,), {}), "g")
    first = coordinator.send_streamed([assign(1, big), small, Cancel(lease=1)])
    # Lease 2 goes now; the Cancel of lease 1 never overtakes the Assign it cancels.
    assert first is not None
    assert worker.receive(first) == [small]
    assert drain(coordinator, worker) == [assign(1, big), Cancel(lease=1)]


def test_an_assignment_waits_behind_one_of_its_function_that_streams() -> None:
    # The first assignment of a function carries it: a later one must not overtake it.
    worker, coordinator = pair()
    big = ((b"z" * (2 * FRAME),), {})
    first = coordinator.send_streamed([assign(1, big), assign(2, None), assign(3, None, "g")])
    assert first is not None
    assert worker.receive(first) == [assign(3, None, "g")]
    assert drain(coordinator, worker) == [assign(1, big), assign(2, None)]


def test_many_mid_sized_values_in_one_message_still_go() -> None:
    # 40 values of 20 KiB, each under the spill size, together over the frame.
    worker, coordinator = pair()
    values = [bytes([n]) * 20_000 for n in range(40)]
    assert spill_size(FRAME) * 8 > 20_000
    message = TaskSucceeded(lease=1, result=values)
    frame = worker.send_streamed([message])
    got = ([] if frame is None else coordinator.receive(frame)) + drain(worker, coordinator)
    assert got == [message]


def test_a_value_over_the_peers_limit_is_refused_by_the_sender() -> None:
    worker, _ = pair(value=VALUE)
    with pytest.raises(ValueEncodeError) as info:
        worker.send_streamed([TaskSucceeded(lease=1, result=b"x" * (VALUE + 1))])
    assert info.value.too_large
    assert "more than the peer takes in (1,048,576 bytes, --max-value-bytes)" in str(info.value)
    assert not worker.streaming  # nothing was queued


def chunk_frame(stream: int, offset: int, total: int, data: bytes) -> bytes:
    return encode_frame([ValueChunk(stream=stream, offset=offset, total=total, data=data)])


def reference(stream: int) -> bytes:
    """A TaskSucceeded whose result is a reference to ``stream``, as a frame."""
    ref = msgpack.ExtType(EXT_STREAMED, stream.to_bytes(8, "big"))
    return msgpack.packb([{"type": "task_succeeded", "lease": 1, "result": ref}])


def test_a_value_over_this_sides_limit_is_refused_before_it_is_stored() -> None:
    # A peer ignoring our limit: the first chunk announces 2 GiB; nothing is kept, and
    # the result reads as an UnreadableValue saying why (which fails that task only).
    _, coordinator = pair()
    huge = 2 * 2**30
    coordinator.receive(chunk_frame(1, 0, huge, b"a" * 1000))
    assert coordinator._inbound.held_bytes == 0
    coordinator.receive(chunk_frame(1, 1000, huge, b"a" * 1000))
    # Its later chunks are counted and dropped; the stream must still end as announced.
    inbound = coordinator._inbound
    inbound._partial[1].received = huge - 10  # as if the rest had come
    coordinator.receive(chunk_frame(1, huge - 10, huge, b"a" * 10))
    [message] = coordinator.receive(reference(1))
    assert isinstance(message, TaskSucceeded)
    assert isinstance(message.result, UnreadableValue)
    assert "2,147,483,648 bytes, more than this side takes in" in message.result.error
    assert "--max-value-bytes" in message.result.error


def test_values_waiting_may_add_up_to_twice_the_limit() -> None:
    inbound = InboundValues(max_value_bytes=100)
    inbound.receive(ValueChunk(stream=1, offset=0, total=100, data=b"a" * 100))
    inbound.receive(ValueChunk(stream=2, offset=0, total=100, data=b"b" * 100))
    inbound.receive(ValueChunk(stream=3, offset=0, total=1, data=b"c"))  # one too many
    assert inbound.held_bytes == 200
    assert inbound.take(1) == [b"a" * 100]
    assert not isinstance(inbound.take(3), list)  # refused
    assert inbound.held_bytes == 100


@pytest.mark.parametrize(
    ("chunks", "error"),
    [
        ([(1, 5, 10, b"x")], "stream 1 starts at 5, not 0"),
        ([(1, 0, 10, b"x"), (1, 2, 10, b"x")], "jumps from byte 1 to 2"),
        ([(1, 0, 10, b"x"), (1, 1, 12, b"x")], "announced 10 bytes, now 12"),
        ([(2, 0, 1, b"x"), (1, 0, 1, b"x")], "stream 1 is finished or unknown"),
        ([(1, 0, 1, b"x"), (1, 0, 1, b"x")], "stream 1 is finished or unknown"),
    ],
    ids=["unknown", "out-of-order", "total-changes", "id-goes-back", "finished"],
)
def test_garbage_chunks_close_the_connection(
    chunks: list[tuple[int, int, int, bytes]], error: str
) -> None:
    _, coordinator = pair()
    *before, last = chunks
    for stream, offset, total, data in before:
        coordinator.receive(chunk_frame(stream, offset, total, data))
    with pytest.raises(RemoteProtocolError, match=error):
        coordinator.receive(chunk_frame(*last))


def test_a_peer_sending_more_than_it_announced_closes_the_connection() -> None:
    _, coordinator = pair()
    overlong = msgpack.packb(
        [{"type": "value_chunk", "stream": 1, "offset": 0, "total": 3, "data": b"abcd"}]
    )
    with pytest.raises(RemoteProtocolError, match="4 bytes at 0 of a 3-byte value"):
        coordinator.receive(overlong)


@pytest.mark.parametrize("finished", [False, True], ids=["unfinished", "never-sent"])
def test_a_reference_to_a_stream_not_finished_closes_the_connection(finished: bool) -> None:
    _, coordinator = pair()
    coordinator.receive(chunk_frame(1, 0, 10, b"abc"))
    with pytest.raises(RemoteProtocolError, match="not finished"):
        coordinator.receive(reference(2 if finished else 1))


def test_a_reference_inside_a_value_closes_the_connection() -> None:
    _, coordinator = pair()
    coordinator.receive(chunk_frame(1, 0, 1, encode_value(None)))
    ref = msgpack.ExtType(EXT_STREAMED, (1).to_bytes(8, "big"))
    nested = msgpack.ExtType(1, msgpack.packb([ref]))  # a tuple holding the reference
    frame = msgpack.packb([{"type": "task_succeeded", "lease": 1, "result": nested}])
    with pytest.raises(RemoteProtocolError, match="a streamed value where none may be"):
        coordinator.receive(frame)


def test_a_stream_never_finished_is_released_with_the_connection() -> None:
    _, coordinator = pair()
    coordinator.receive(chunk_frame(1, 0, 1000, b"a" * 500))
    assert coordinator._inbound.held_bytes == 1000
    coordinator.release_streams()
    assert coordinator._inbound.held_bytes == 0
    assert coordinator._inbound.pending == 0


def test_chunks_to_an_end_taking_no_streams_break_the_protocol() -> None:
    worker, coordinator = pair(worker_value=0)
    assert coordinator.peer_max_value_bytes == 0  # so it sends none
    with pytest.raises(RemoteProtocolError, match="takes no streamed values"):
        worker.receive(chunk_frame(1, 0, 1, b"a"))


def test_a_peer_taking_no_streams_gets_frames_as_before() -> None:
    worker, coordinator = pair(worker_value=0)
    message = assign(1, ((b"x" * 30_000,), {}))
    frame = coordinator.send_streamed([message])
    assert frame is not None
    assert not coordinator.streaming
    assert worker.receive(frame) == [message]


def test_the_chunk_size() -> None:
    worker, _ = pair(frame=16 * 2**20, value=2**26)
    assert worker.send_streamed([TaskSucceeded(lease=1, result=b"q" * (3 * CHUNK_BYTES))]) is None
    frames = worker.stream_frames()
    assert len(frames) == 1
    assert CHUNK_BYTES < len(frames[0]) < CHUNK_BYTES + 200


# -- decoding stays within a small multiple of the data's size -------------------------


def test_a_frame_of_millions_of_empty_lists_is_refused_before_it_is_built() -> None:
    # The frame: 8 MB holding 8 million empty lists once cost 570 MB. A quarter
    # of it here (tracemalloc is slow), the same ratio.
    count = 2 * 10**6
    result = msgpack.packb([[]] * 1000)[3:] * (count // 1000)  # the items, no header
    header = b"\xdd" + count.to_bytes(4, "big")
    frame = b"\x91\x83\xa4type\xaetask_succeeded\xa5lease\x01\xa6result" + header + result
    assert len(frame) < 2.1 * 10**6
    tracemalloc.start()
    try:
        with pytest.raises(RemoteProtocolError, match="holds more than"):
            decode_frame(frame, allow_pickle=True, max_frame_bytes=16 * 2**20)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # At most about 16 times the frame (a list costs 56 bytes, its msgpack one).
    assert peak < 20 * len(frame), peak


def test_a_streamed_value_of_empty_lists_is_refused_too() -> None:
    data = b"\xdd" + (10**6).to_bytes(4, "big") + b"\x90" * 10**6
    with pytest.raises(RemoteProtocolError, match="holds more than"):
        decode_value(data, allow_pickle=True)


@pytest.mark.parametrize(
    "value",
    [
        list(range(300_000)),  # large, no containers
        [[n, n + 1, n + 2] for n in range(100_000)],  # a container per 4 bytes
        [(n, str(n)) for n in range(50_000)],  # tuples: an extension each
        [{"k": n} for n in range(50_000)],
        [b"\x90" * 100] * 2000,  # bytes that look like containers, and are not
    ],
    ids=["ints", "triples", "tuples", "dicts", "lookalike-bytes"],
)
def test_legitimate_large_values_pass(value: Any) -> None:
    data = encode_value(value)
    assert len(data) > CHECKED_ABOVE
    check_containers(data)
    assert decode_value(data, allow_pickle=False) == value


def test_a_deep_value_passes() -> None:
    value: Any = "leaf"
    for _ in range(60):
        value = (value,)
    deep: Any = [1]
    for _ in range(500):
        deep = [deep]
    assert decode_value(encode_value([value, deep]), allow_pickle=False) == [value, deep]


def test_a_message_with_a_big_value_round_trips_through_streams() -> None:
    # Through both decoders: the frame's and the value's.
    worker, coordinator = pair(frame=2**20, value=2**26)
    value = {"rows": [(n, f"row {n}", [n] * 3) for n in range(40_000)]}
    assert coordinator.send_streamed([assign(7, ((value,), {}))]) is None
    [got] = drain(coordinator, worker)
    assert isinstance(got, Assign)
    assert got.arguments == ((value,), {})


def test_heartbeats_cross_a_stream() -> None:
    worker, coordinator = pair()
    worker.send_streamed([TaskSucceeded(lease=1, result=b"h" * (2 * FRAME))])
    coordinator.receive(worker.stream_frames()[0])
    beat = worker.send_streamed([Heartbeat()])
    assert beat is not None
    assert coordinator.receive(beat) == [Heartbeat()]


def test_both_programs_default_to_the_protocols_value_limit() -> None:
    from trio_graph_scheduler.protocol import MAX_VALUE_BYTES
    from trio_graph_scheduler.shared.programs import DEFAULT_MAX_VALUE_BYTES

    assert DEFAULT_MAX_VALUE_BYTES == MAX_VALUE_BYTES == 2**30


def test_a_frame_posing_as_a_chunk_is_not_counted_and_builds_nothing() -> None:
    # A frame of one value chunk skips the count of containers (a MiB of a value is
    # checked for nothing); one whose fields hold containers fails validation first.
    count = 2 * 10**6
    fields = b"\xa6stream\x01\xa6offset\x00\xa5total\x01\xa4data"
    frame = b"\x91\x85\xa4type\xabvalue_chunk" + fields + b"\xdd" + count.to_bytes(4, "big")
    frame += b"\x90" * count
    tracemalloc.start()
    try:
        with pytest.raises(RemoteProtocolError, match="Expected `bytes`, got `array`"):
            decode_frame(frame, allow_pickle=False)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < len(frame), peak


def test_a_streamed_bytes_value_is_joined_without_its_header() -> None:
    from trio_graph_scheduler.protocol.values import _one_bin

    # The header may span pieces (chunks of a few bytes, from a peer with tiny frames).
    assert _one_bin([b"\xc6", b"\x00\x00", b"\x00\x03ab", b"c"]) == b"abc"
    assert _one_bin([b"\xc4\x02ab"]) == b"ab"
    assert _one_bin([b"\xc4\x03ab"]) is None  # not exactly one bin
    assert _one_bin([encode_value([1, 2])]) is None  # not a bin at all


def test_a_predecessors_large_arguments_stay_behind_for_a_new_peer_only() -> None:
    from trio_graph_scheduler.protocol import PredecessorRecord
    from trio_graph_scheduler.protocol.values import NOT_SENT

    def with_predecessor(arguments: Any) -> Assign:
        record = PredecessorRecord(
            task_uid="task-0",
            handle="f",
            status="success",  # type: ignore[arg-type]
            arguments=arguments,
            result=1,
            exception_trace=None,
        )
        return Assign(
            lease=1,
            task_uid="task-1",
            handle="f",
            loop="default",
            arguments=None,
            predecessors=[record],
            function=None,
            timeout=None,
        )

    big, small = ((b"a" * 70_000,), {}), ((b"a" * 60_000,), {})
    worker, coordinator = pair()
    for arguments, expected in [(big, NOT_SENT), (small, small)]:
        frame = coordinator.send_streamed([with_predecessor(arguments)])
        got = ([] if frame is None else worker.receive(frame)) + drain(coordinator, worker)
        [assign] = got
        assert isinstance(assign, Assign)
        assert assign.predecessors[0].arguments == expected
    # A peer that takes no streams (an older one) gets them whole, as before.
    [old] = decode_frame(encode_frame([with_predecessor(big)]), allow_pickle=False)
    assert isinstance(old, Assign)
    assert old.predecessors[0].arguments == big
