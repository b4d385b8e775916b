"""The value codec: exact round trips, the extension types, the pickle switch, the errors."""

from __future__ import annotations

import collections
import datetime
import enum
import fractions
import math
import pickle
import threading
from typing import TYPE_CHECKING, Any, NamedTuple

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_graph_scheduler.protocol import (
    EXT_BIG_INT,
    EXT_FROZENSET,
    EXT_PICKLE,
    EXT_SET,
    EXT_TUPLE,
    RemoteProtocolError,
    ValueEncodeError,
    decode_value,
    encode_value,
)
from trio_graph_scheduler.protocol.values import (
    MAX_EXT_DEPTH,
    UnreadableValue,
    find_unreadable,
    unreadable_values_decoded,
)

if TYPE_CHECKING:
    from collections.abc import Iterator


class Point(NamedTuple):
    x: int
    y: int


class Colour(enum.StrEnum):
    RED = "red"


class Size(enum.IntEnum):
    BIG = 3


class Box:
    def __init__(self, content: Any) -> None:
        self.content = content

    def __eq__(self, other: object) -> bool:
        return type(other) is Box and other.content == self.content

    __hash__ = None  # type: ignore[assignment]


def assert_identical(got: Any, expected: Any) -> None:
    """Equal, and of exactly the same types all the way down (1 != True != 1.0 here)."""
    assert type(got) is type(expected), (got, expected)
    if isinstance(expected, list | tuple):
        assert len(got) == len(expected)
        for got_item, expected_item in zip(got, expected, strict=True):
            assert_identical(got_item, expected_item)
    elif isinstance(expected, dict):
        assert len(got) == len(expected)
        for (got_key, got_item), (key, item) in zip(got.items(), expected.items(), strict=True):
            assert_identical(got_key, key)
            assert_identical(got_item, item)
    elif isinstance(expected, float) and math.isnan(expected):
        assert math.isnan(got)
    else:
        assert got == expected


def round_trip(value: Any, *, allow_pickle: bool = True) -> Any:
    return decode_value(encode_value(value), allow_pickle=allow_pickle)


def tup(*items: Any) -> msgpack.ExtType:
    """The wire form of a tuple."""
    return msgpack.ExtType(EXT_TUPLE, msgpack.packb(list(items)))


# Values msgpack carries as they are: the encoding is plain msgpack, no extension.
NATIVE_VALUES = [
    None,
    True,
    False,
    0,
    -1,
    2**63 - 1,
    2**64 - 1,
    -(2**63),
    1.5,
    -0.0,
    math.inf,
    "",
    "héllo ✓",
    b"\x00\xff",
    [],
    [1, [2, [3]]],
    {},
    {"a": 1, "b": [None, {"c": b"d"}]},
    {1: "int keys", 2: "too"},
]


@pytest.mark.parametrize("value", NATIVE_VALUES, ids=repr)
def test_native_values_are_plain_msgpack(value: Any) -> None:
    assert encode_value(value) == msgpack.packb(value)
    assert_identical(round_trip(value, allow_pickle=False), value)


# Values that need an extension type but no pickle: (value, the wire form).
SAFE_EXTENSION_VALUES = [
    ((), msgpack.ExtType(EXT_TUPLE, msgpack.packb([]))),
    ((1, "a"), tup(1, "a")),
    (((1,), [2, (3,)]), tup(tup(1), [2, tup(3)])),
    ({"k": (1, 2)}, {"k": tup(1, 2)}),
    ({(1, 2): "tuple key"}, {tup(1, 2): "tuple key"}),
    ({7}, msgpack.ExtType(EXT_SET, msgpack.packb([7]))),
    (frozenset({"x"}), msgpack.ExtType(EXT_FROZENSET, msgpack.packb(["x"]))),
    (2**64, msgpack.ExtType(EXT_BIG_INT, b"\x01" + b"\x00" * 8)),
    (-(2**63) - 1, msgpack.ExtType(EXT_BIG_INT, b"\xff\x7f" + b"\xff" * 7)),
    (2**200, msgpack.ExtType(EXT_BIG_INT, (2**200).to_bytes(26, "big", signed=True))),
]


@pytest.mark.parametrize(("value", "wire"), SAFE_EXTENSION_VALUES, ids=repr)
def test_tuples_sets_and_big_ints_need_no_pickle(value: Any, wire: Any) -> None:
    assert encode_value(value) == msgpack.packb(wire)
    assert_identical(round_trip(value, allow_pickle=False), value)


def test_set_round_trips_with_nested_hashables() -> None:
    value = {(1, "a"), frozenset({2, 3}), 2**70, None}
    assert round_trip(value, allow_pickle=False) == value


def _a_function(x: int) -> int:
    return x + 1


# Values only pickle carries exactly.
PICKLED_VALUES: list[Any] = [
    Point(1, 2),
    Colour.RED,
    Size.BIG,
    collections.defaultdict(list, {"a": [1]}),
    collections.OrderedDict([("b", 1), ("a", 2)]),
    datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.UTC),
    fractions.Fraction(1, 3),
    Box([1, (2, 3)]),
]


@pytest.mark.parametrize("value", PICKLED_VALUES, ids=repr)
def test_subclasses_and_objects_round_trip_exactly(value: Any) -> None:
    got = round_trip(value)
    assert type(got) is type(value)
    assert got == value


@pytest.mark.parametrize("value", PICKLED_VALUES, ids=repr)
def test_pickled_values_are_refused_without_allow_pickle(value: Any) -> None:
    data = encode_value(value)
    assert msgpack.unpackb(data).code == EXT_PICKLE
    with pytest.raises(RemoteProtocolError, match="pickled value"):
        decode_value(data, allow_pickle=False)


def test_a_pickle_inside_plain_data_is_refused_too() -> None:
    data = encode_value({"deep": [1, (2, Point(3, 4))]})
    with pytest.raises(RemoteProtocolError, match="pickled value"):
        decode_value(data, allow_pickle=False)


def test_functions_travel_by_value() -> None:
    assert round_trip(_a_function)(1) == 2
    assert round_trip(lambda x: x * 3)(2) == 6


def test_bytearray_arrives_as_bytes() -> None:
    # The one documented loss: msgpack packs bytearray natively, before any hook sees it.
    assert_identical(round_trip(bytearray(b"ab")), b"ab")


def test_deep_tuples_are_pickled_beyond_the_depth_limit() -> None:
    shallow: Any = ()  # one tuple
    for _ in range(MAX_EXT_DEPTH - 1):
        shallow = (shallow,)
    assert_identical(round_trip(shallow, allow_pickle=False), shallow)
    deep = (shallow,)
    with pytest.raises(RemoteProtocolError, match="pickled value"):
        decode_value(encode_value(deep), allow_pickle=False)
    assert_identical(round_trip(deep), deep)


def test_hostile_nesting_of_tuple_extensions_is_refused() -> None:
    wire: Any = 1
    for _ in range(MAX_EXT_DEPTH + 1):
        wire = tup(wire)
    with pytest.raises(RemoteProtocolError, match="nests more than"):
        decode_value(msgpack.packb(wire), allow_pickle=True)


def _a_generator() -> Iterator[int]:
    yield 1


class Unpicklable:
    def __reduce__(self) -> Any:
        raise TypeError("no pickling here")


@pytest.mark.parametrize(
    ("value", "type_name"),
    [
        (threading.Lock(), "_thread.lock"),
        ([1, {"x": threading.Lock()}], "_thread.lock"),
        (_a_generator(), "generator"),
        (Unpicklable(), f"{__name__}.Unpicklable"),
        ("\ud800", "str"),  # a lone surrogate is no UTF-8
    ],
    ids=["lock", "nested-lock", "generator", "reduce-raises", "surrogate"],
)
def test_unserialisable_values_name_their_type(value: Any, type_name: str) -> None:
    with pytest.raises(ValueEncodeError) as info:
        encode_value(value)
    assert info.value.type_name == type_name
    assert repr(type_name) in str(info.value)
    assert info.value.message_index is None


@pytest.mark.parametrize(
    ("wire", "fragment"),
    [
        (msgpack.ExtType(42, b""), "unknown msgpack extension type 42"),
        (msgpack.ExtType(EXT_TUPLE, msgpack.packb({"a": 1})), "must hold an array, got dict"),
        (msgpack.ExtType(EXT_TUPLE, b"\x92\x01"), "truncated or invalid msgpack"),
        (msgpack.ExtType(EXT_SET, msgpack.packb([[1]])), "invalid set extension"),
        (msgpack.ExtType(EXT_BIG_INT, b"\x05"), "fits 64 bits"),
        (msgpack.ExtType(EXT_PICKLE, b"not a pickle"), "cannot unpickle"),
        (msgpack.ExtType(EXT_PICKLE, b""), "cannot unpickle"),
    ],
    ids=repr,
)
def test_malformed_extensions_are_remote_errors(wire: Any, fragment: str) -> None:
    with pytest.raises(RemoteProtocolError, match=fragment):
        decode_value(msgpack.packb(wire), allow_pickle=True)


def test_an_object_whose_module_is_gone_decodes_as_unreadable() -> None:
    # Issue 9 changed this on purpose: a class only the sender has fails the task whose
    # value it is, not the whole frame (it used to be a RemoteProtocolError).
    # By reference to module "collections"; renamed to one of the same length, so that
    # the pickle stays well-formed.
    data = pickle.dumps(collections.OrderedDict(), protocol=4)
    data = data.replace(b"collections", b"collectionz")
    value = decode_value(msgpack.packb(msgpack.ExtType(EXT_PICKLE, data)), allow_pickle=True)
    assert isinstance(value, UnreadableValue)
    assert value.error == "ModuleNotFoundError: No module named 'collectionz'"


def _refuse_to_load(reason: str) -> None:
    raise ValueError(reason)


class LoadsBadly:
    """Pickles fine; loading it calls a function that raises."""

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (_refuse_to_load, ("not on this side",))


def test_a_value_that_fails_to_load_decodes_as_unreadable_wherever_it_is() -> None:
    before = unreadable_values_decoded()
    value = decode_value(encode_value([1, {"k": (LoadsBadly(), "x")}]), allow_pickle=True)
    marker = UnreadableValue("ValueError: not on this side")
    assert value == [1, {"k": (marker, "x")}]
    assert find_unreadable(value) == marker
    assert unreadable_values_decoded() == before + 1
    assert find_unreadable([1, {"k": ("x", frozenset({2}))}, {3}]) is None
    # The marker travels on as itself.
    assert decode_value(encode_value(marker), allow_pickle=True) == marker
    assert repr(marker) == "<unreadable value: ValueError: not on this side>"


def test_a_refused_value_stays_refused_as_it_travels_on() -> None:
    refused = UnreadableValue("a value of 3,000 bytes, more than this side takes in", refused=True)
    assert refused != UnreadableValue(refused.error)  # not an unpickling failure
    assert pickle.loads(pickle.dumps(refused)) == refused
    assert decode_value(encode_value([refused]), allow_pickle=True) == [refused]
    assert repr(refused).startswith("<refused value: a value of 3,000 bytes")


# Property: every value built from these round-trips with its exact types.
_scalars = (
    st.none()
    | st.booleans()
    | st.integers()  # unbounded: big ints too
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.binary(max_size=20)
)
_hashables = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3).map(tuple) | st.frozensets(inner, max_size=3),
    max_leaves=8,
)
VALUES = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.lists(inner, max_size=4).map(tuple)
        | st.dictionaries(st.text(max_size=5) | st.integers() | _hashables, inner, max_size=4)
        | st.sets(_hashables, max_size=4)
        | st.frozensets(_hashables, max_size=4)
    ),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None)
@given(VALUES)
def test_values_round_trip_exactly_without_pickle(value: Any) -> None:
    assert_identical(round_trip(value, allow_pickle=False), value)
