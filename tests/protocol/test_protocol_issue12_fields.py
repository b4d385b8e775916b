"""The optional fields issue 12 added: a failed task's pickled exception, and the
worker_index numbers of a worker's slots. Both are left out on the wire when empty, so
an older peer's messages still decode."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from trio_graph_scheduler.protocol import (
    InvalidFieldError,
    RemoteProtocolError,
    TaskFailed,
    Welcome,
    decode_frame,
    encode_frame,
)


def welcome(**changes: Any) -> Welcome:
    fields: dict[str, Any] = {
        "version": 1,
        "worker_id": "worker-1",
        "loops": {"default": 2, "io": 1},
        "heartbeat_interval": 5.0,
        "heartbeat_timeout": 15.0,
        "context_inits": {},
    }
    return Welcome(**(fields | changes))


def failed(**changes: Any) -> TaskFailed:
    fields: dict[str, Any] = {"lease": 1, "error_type": "E", "message": "m", "traceback": ""}
    return TaskFailed(**(fields | changes))


def wire(message: Any) -> dict[str, Any]:
    """The message as the msgpack map it travels as."""
    (raw,) = msgspec.msgpack.decode(encode_frame([message]))
    assert isinstance(raw, dict)
    return raw


def test_slot_indexes_travel_and_are_left_out_when_empty() -> None:
    message = welcome(slot_indexes={"default": [4, 5], "io": [0]})
    (decoded,) = decode_frame(encode_frame([message]), allow_pickle=False)
    assert decoded == message
    assert "slot_indexes" not in wire(welcome())
    (older,) = decode_frame(encode_frame([welcome()]), allow_pickle=False)
    assert older.slot_indexes == {}


@pytest.mark.parametrize(
    ("slot_indexes", "detail"),
    [
        ({"other": [0]}, "names loop 'other', not served"),
        ({"default": [1, 1]}, "slot_indexes of 'default' repeat a number"),
    ],
)
def test_slot_indexes_that_break_a_rule_are_refused(
    slot_indexes: dict[str, list[int]], detail: str
) -> None:
    with pytest.raises(InvalidFieldError, match=detail):
        welcome(slot_indexes=slot_indexes)
    # Decoding checks the same rule: a peer's bad welcome is a protocol error.
    raw = wire(welcome()) | {"slot_indexes": slot_indexes}
    with pytest.raises(RemoteProtocolError, match=r"repeat|not served"):
        decode_frame(msgspec.msgpack.encode([raw]), allow_pickle=False)


def test_a_negative_slot_index_is_a_protocol_error() -> None:
    raw = wire(welcome()) | {"slot_indexes": {"default": [-1, 0]}}
    with pytest.raises(RemoteProtocolError):
        decode_frame(msgspec.msgpack.encode([raw]), allow_pickle=False)


def test_a_pickled_exception_travels_as_bytes_and_is_left_out_when_none() -> None:
    message = failed(exception=b"\x80\x05pickled")
    (decoded,) = decode_frame(encode_frame([message]), allow_pickle=False)
    assert decoded.exception == b"\x80\x05pickled"
    assert "exception" not in wire(failed())


class _ScriptedSocket:
    """Answers the worker's hello with one prepared frame."""

    def __init__(self, answer: bytes) -> None:
        self.answer = answer

    async def send_message(self, data: bytes) -> None:
        pass

    async def get_message(self) -> bytes:
        return self.answer


@pytest.mark.parametrize(("max_tasks", "accepted"), [(None, False), (1, True)])
async def test_a_worker_refuses_slot_indexes_that_do_not_match_its_slots(
    max_tasks: int | None, accepted: bool
) -> None:
    from trio_graph_scheduler import WorkerConfig
    from trio_graph_scheduler.worker.link import CoordinatorLink, WorkerCounts

    # The loop allows 2 at once: a worker without a cap runs 2 slots, one capped at 1 runs 1.
    answer = encode_frame([welcome(loops={"default": 2}, slot_indexes={"default": [3]})])
    config = WorkerConfig(url="ws://127.0.0.1:1", max_tasks=max_tasks)
    link = CoordinatorLink(config, _ScriptedSocket(answer), WorkerCounts())  # type: ignore[arg-type]
    if accepted:
        assert (await link.handshake()).slot_indexes == {"default": [3]}
    else:
        with pytest.raises(RemoteProtocolError, match="1 slot indexes for loop 'default'"):
            await link.handshake()
