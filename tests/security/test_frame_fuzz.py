"""Fuzz the frame decoder and the protocol session with what a hostile peer could send.

Whatever the bytes, ``decode_frame`` and ``ProtocolSession.receive`` either return
messages or raise ``RemoteProtocolError``: never another exception, which would escape
the session's handling and take more than one connection down.

Two generators, each with a fixed number of examples:

- bytes: random bytes, and valid frames cut short, with a byte changed or bytes inserted;
- structure: valid message maps generated from the message classes' own field types
  (so every message type is covered, present and future), then mutated: a field
  dropped, added, renamed or given a value of another type, the tag changed, ext values
  (tuples, sets, big ints, pickles, unknown codes) put where they do not belong, and the
  frame's shape broken.

Each frame goes through ``decode_frame`` and through sessions of both roles in every state
a peer can talk to. Pickles are only generated where they must be refused unread (before
the session is active): random bytes are never unpickled.
"""

from __future__ import annotations

import enum
import math
from typing import Any

import msgpack
import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trio_graph_scheduler.protocol import (
    EXT_BIG_INT,
    EXT_FROZENSET,
    EXT_PICKLE,
    EXT_SET,
    EXT_TUPLE,
    MESSAGE_TYPES,
    PROTOCOL_VERSION,
    Hello,
    Message,
    ProtocolSession,
    RemoteProtocolError,
    Role,
    SessionState,
    Welcome,
    decode_frame,
    encode_frame,
)

#: Examples per fuzz test (a figure for the reports: keep it in step with them).
BYTES_EXAMPLES = 400
STRUCTURE_EXAMPLES = 600

FUZZ_SETTINGS = settings(
    deadline=None,
    derandomize=True,  # the same examples every run: a failure here is reproducible
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

HELLO = Hello(version=PROTOCOL_VERSION, token="", worker_name="w", loops=[], max_tasks=0)
WELCOME = Welcome(
    version=PROTOCOL_VERSION,
    worker_id="worker-1",
    loops={"default": 1},
    heartbeat_interval=1.0,
    heartbeat_timeout=10.0,
    context_inits={},
)


# -- wire values -----------------------------------------------------------------------

#: Every int msgpack can carry.
_ints = st.integers(-(2**63), 2**64 - 1)
_scalars = (
    st.none()
    | st.booleans()
    | _ints
    | st.floats()  # NaN and infinities included
    | st.text(max_size=8)
    | st.binary(max_size=8)
)
#: Anything msgpack can carry, maps with keys of any kind included.
plain_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            _scalars.filter(lambda key: not isinstance(key, float)), inner, max_size=3
        )
    ),
    max_leaves=8,
)


def _ext_codes(allow_pickle_code: bool) -> st.SearchStrategy[int]:
    codes = st.sampled_from([EXT_TUPLE, EXT_SET, EXT_FROZENSET, EXT_BIG_INT]) | st.integers(0, 127)
    if allow_pickle_code:
        return codes | st.just(EXT_PICKLE)
    return codes.filter(lambda code: code != EXT_PICKLE)


def ext_values(allow_pickle_code: bool) -> st.SearchStrategy[msgpack.ExtType]:
    """Extension values, well formed or not: a packed value or random bytes inside."""
    payload = plain_values.map(msgpack.packb) | st.binary(max_size=12)
    timestamps = st.builds(msgpack.Timestamp, st.integers(0, 2**34 - 1), st.integers(0, 10**9 - 1))
    return st.builds(msgpack.ExtType, _ext_codes(allow_pickle_code), payload) | timestamps


def wire_values(allow_pickle_code: bool) -> st.SearchStrategy[Any]:
    """Any value a peer could put in a field, ext values anywhere inside."""
    return st.recursive(
        _scalars | ext_values(allow_pickle_code),
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(st.text(max_size=4) | _ints, inner, max_size=3)
        ),
        max_leaves=8,
    )


def _float_bound(bound: float | None, *, up: bool) -> float | None:
    """``bound`` as a float inside the range (an int bound may not be one exactly)."""
    if bound is None:
        return None
    as_float = float(bound)
    if as_float == bound:
        return as_float
    return math.nextafter(as_float, math.inf if up else -math.inf)


def _valid(info: Any, allow_pickle_code: bool) -> st.SearchStrategy[Any]:
    """Wire values that satisfy ``info``, a field type as ``msgspec.inspect`` describes it."""
    mi = msgspec.inspect
    if isinstance(info, mi.Metadata):
        return _valid(info.type, allow_pickle_code)
    if isinstance(info, mi.IntType):
        low = info.ge if info.ge is not None else (info.gt + 1 if info.gt is not None else -(2**63))
        high = info.le if info.le is not None else (info.lt - 1 if info.lt is not None else 2**63)
        return st.integers(low, high)
    if isinstance(info, mi.FloatType):
        low = _float_bound(info.ge if info.ge is not None else info.gt, up=True)
        high = _float_bound(info.le if info.le is not None else info.lt, up=False)
        return st.floats(
            low, high, exclude_min=info.gt is not None, allow_nan=False, allow_infinity=False
        )
    if isinstance(info, mi.StrType):
        return st.text(min_size=info.min_length or 0, max_size=8)
    if isinstance(info, mi.BytesType):
        return st.binary(max_size=8)
    if isinstance(info, mi.BoolType):
        return st.booleans()
    if isinstance(info, mi.NoneType):
        return st.none()
    if isinstance(info, mi.AnyType):
        return wire_values(allow_pickle_code)
    if isinstance(info, mi.EnumType):
        return st.sampled_from([member.value for member in info.cls])
    if isinstance(info, mi.LiteralType):
        return st.sampled_from(info.values)
    if isinstance(info, mi.UnionType):
        return st.one_of([_valid(member, allow_pickle_code) for member in info.types])
    if isinstance(info, mi.ListType):
        return st.lists(_valid(info.item_type, allow_pickle_code), max_size=3)
    if isinstance(info, mi.DictType):
        return st.dictionaries(
            _valid(info.key_type, allow_pickle_code),
            _valid(info.value_type, allow_pickle_code),
            max_size=3,
        )
    if isinstance(info, mi.StructType):
        fields = {field.encode_name: _valid(field.type, allow_pickle_code) for field in info.fields}
        if info.tag_field is not None:
            fields[info.tag_field] = st.just(info.tag)
        return st.fixed_dictionaries(fields)
    raise AssertionError(f"no strategy for the field type {info!r}: teach _valid about it")


def _message_maps(allow_pickle_code: bool) -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(
        [
            _valid(msgspec.inspect.type_info(cls), allow_pickle_code)
            for cls in MESSAGE_TYPES.values()
        ]
    )


# Built once: building them inside each draw is what would make the fuzz slow.
_MESSAGE_MAPS: dict[bool, st.SearchStrategy[dict[str, Any]]] = {
    allow: _message_maps(allow) for allow in (False, True)
}
_WIRE_VALUES: dict[bool, st.SearchStrategy[Any]] = {
    allow: wire_values(allow) for allow in (False, True)
}


def message_maps(allow_pickle_code: bool) -> st.SearchStrategy[dict[str, Any]]:
    """Valid wire maps of every message type (field values within their rules)."""
    return _MESSAGE_MAPS[allow_pickle_code]


class Mutation(enum.Enum):
    NONE = "none"
    DROP = "drop a field"
    ADD = "add a field"
    RENAME = "rename a field"
    RETYPE = "give a field another value"
    RETAG = "change the tag"


@st.composite
def mutated_maps(draw: st.DrawFn, allow_pickle_code: bool) -> Any:
    message = dict(draw(message_maps(allow_pickle_code)))
    values = _WIRE_VALUES[allow_pickle_code]
    for mutation in draw(st.lists(st.sampled_from(Mutation), min_size=1, max_size=3)):
        keys = sorted(message, key=str)
        if mutation is Mutation.DROP and keys:
            del message[draw(st.sampled_from(keys))]
        elif mutation is Mutation.ADD:
            message[draw(st.text(max_size=6) | _ints)] = draw(values)
        elif mutation is Mutation.RENAME and keys:
            key = draw(st.sampled_from(keys))
            message[draw(st.text(max_size=6))] = message.pop(key)
        elif mutation is Mutation.RETYPE and keys:
            message[draw(st.sampled_from(keys))] = draw(values)
        elif mutation is Mutation.RETAG:
            message["type"] = draw(st.sampled_from(sorted(MESSAGE_TYPES)) | values)
    return message


@st.composite
def structured_frames(draw: st.DrawFn, allow_pickle_code: bool) -> bytes:
    """A frame of mostly valid, partly mutated message maps, or of a broken shape."""
    maps = message_maps(allow_pickle_code) | mutated_maps(allow_pickle_code)
    shape = draw(st.sampled_from(["array"] * 6 + ["map", "scalar", "nested"]))
    if shape == "array":
        frame: Any = draw(st.lists(maps, max_size=3))
    elif shape == "map":
        frame = draw(maps)
    elif shape == "scalar":
        frame = draw(_WIRE_VALUES[allow_pickle_code])
    else:
        frame = [draw(st.lists(maps, max_size=2))]
    return msgpack.packb(frame, use_bin_type=True)


@st.composite
def damaged_frames(draw: st.DrawFn) -> bytes:
    """A valid frame of real messages, cut short, with a byte changed or bytes inserted."""
    frame = msgpack.packb(draw(st.lists(message_maps(False), min_size=1, max_size=3)))
    assert frame
    at = draw(st.integers(0, len(frame) - 1))
    damage = draw(st.sampled_from(["truncate", "flip", "insert"]))
    if damage == "truncate":
        return frame[:at]
    if damage == "flip":
        return frame[:at] + bytes([draw(st.integers(0, 255))]) + frame[at + 1 :]
    return frame[:at] + draw(st.binary(min_size=1, max_size=4)) + frame[at:]


# -- the sessions a peer can talk to ---------------------------------------------------


def _coordinator(state: SessionState) -> ProtocolSession:
    session = ProtocolSession(Role.COORDINATOR)
    if state is SessionState.ACTIVE:
        session.receive(encode_frame([HELLO]))
        session.send([WELCOME])
    assert session.state is state
    return session


def _worker(state: SessionState) -> ProtocolSession:
    session = ProtocolSession(Role.WORKER)
    session.send([HELLO])
    if state is SessionState.ACTIVE:
        session.receive(encode_frame([WELCOME]))
    assert session.state is state
    return session


def sessions(*, active: bool) -> list[ProtocolSession]:
    """Fresh sessions in each state a peer can send to: before the handshake, or active."""
    if active:
        return [_coordinator(SessionState.ACTIVE), _worker(SessionState.ACTIVE)]
    return [
        _coordinator(SessionState.AWAITING_HELLO),
        _worker(SessionState.AWAITING_WELCOME),
    ]


def check_only_remote_protocol_errors(frame: bytes, *, active_too: bool) -> None:
    """Decode ``frame`` every way a peer's frame is decoded; only RemoteProtocolError."""
    decoders: list[Any] = [
        lambda data: decode_frame(data, allow_pickle=False),
        *(session.receive for session in sessions(active=False)),
    ]
    if active_too:  # the frame holds no pickle: active sessions may decode it
        decoders += [
            lambda data: decode_frame(data, allow_pickle=True),
            *(session.receive for session in sessions(active=True)),
        ]
    for decode in decoders:
        try:
            messages = decode(frame)
        except RemoteProtocolError:
            continue
        assert all(isinstance(message, Message) for message in messages)


# -- the tests -------------------------------------------------------------------------


@settings(FUZZ_SETTINGS, max_examples=BYTES_EXAMPLES)
@given(st.binary(max_size=64) | damaged_frames())
def test_fuzz_bytes_only_raise_remote_protocol_error(frame: bytes) -> None:
    check_only_remote_protocol_errors(frame, active_too=True)


@settings(FUZZ_SETTINGS, max_examples=STRUCTURE_EXAMPLES)
@given(
    st.tuples(structured_frames(allow_pickle_code=False), st.just(True))
    | st.tuples(structured_frames(allow_pickle_code=True), st.just(False))
)
def test_fuzz_structured_frames_only_raise_remote_protocol_error(
    case: tuple[bytes, bool],
) -> None:
    frame, pickle_free = case
    check_only_remote_protocol_errors(frame, active_too=pickle_free)


def test_generated_message_maps_are_valid_frames() -> None:
    # The mutations start from valid messages: check that the unmutated maps decode,
    # so that the fuzz explores near valid frames and not only at their surface.
    @settings(FUZZ_SETTINGS, max_examples=100)
    @given(st.lists(message_maps(False), min_size=1, max_size=3))
    def decodes(maps: list[dict[str, Any]]) -> None:
        frame = msgpack.packb(maps, use_bin_type=True)
        try:
            messages = decode_frame(frame, allow_pickle=False)
        except RemoteProtocolError as exc:
            refusal = str(exc)
        else:
            assert [message.TAG for message in messages] == [m["type"] for m in maps]
            return
        # Rules that span fields (a hello's loops listed twice, a reply with both a uid
        # and an error) or an ext value with garbage inside may refuse a valid-typed map.
        assert any(mark in refusal for mark in ("- at `$[", "extension", "msgpack")), refusal

    decodes()
