"""The value codec: arbitrary Python values (task arguments and results) to msgpack and back.

Values that msgpack carries exactly travel as plain msgpack: ``None``, ``bool``, ``int``
(64-bit), ``float``, ``str``, ``bytes``, ``list`` and ``dict``, each of exactly that type.
Everything else travels as a msgpack extension type (``ExtType(code, data)``):

=========================  ============================================================
``EXT_TUPLE`` (1)          a ``tuple``; ``data`` is the msgpack array of its items
``EXT_SET`` (2)            a ``set``; ``data`` is the msgpack array of its items
``EXT_FROZENSET`` (3)      a ``frozenset``; ``data`` is the msgpack array of its items
``EXT_BIG_INT`` (4)        an ``int`` outside 64 bits; big-endian two's complement bytes
``EXT_PICKLE`` (5)         anything else (subclasses such as namedtuple, StrEnum or
                           defaultdict, datetimes, user objects): cloudpickle bytes
``EXT_STREAMED`` (6)       a value too large for its frame, sent before it as a stream
                           of ``value_chunk`` messages; ``data`` is the stream's id (8
                           bytes, big-endian). Only at the top of a value field.
``EXT_NOT_SENT`` (7)       a value left out on purpose (a predecessor's arguments over
                           ``MAX_SHIPPED_ARGUMENTS``): decodes as :data:`NOT_SENT`;
                           ``data`` is empty.
=========================  ============================================================

Tuples, sets and big ints have codes of their own so that plain data never needs pickle,
which matters because decoding a pickle runs code chosen by the sender. Decoding with
``allow_pickle=False`` refuses ``EXT_PICKLE`` outright.

A well-formed pickle that fails to load on this side (a class only the sender has, a
``__reduce__`` that raises when called) does not fail the frame: it decodes as an
:class:`UnreadableValue` that says why, so that the session fails the one task whose
value it is and the connection carries on. Bytes that are not a pickle at all (a peer
sending garbage) still fail the frame.

Decoding is bounded: data larger than :data:`CHECKED_ABOVE` bytes may hold at most one
list or dict (tuples and sets included) per :data:`BYTES_PER_CONTAINER` bytes, checked
before anything is built, so that a frame of a few MiB of empty lists cannot make this
side allocate 70 times its size (a Python list is 56 bytes, its msgpack form one byte).

Two losses are known and accepted: ``bytearray`` and ``memoryview`` arrive as ``bytes``
(msgpack packs them natively, before any hook can see them), and a ``msgpack.ExtType`` or
``msgpack.Timestamp`` inside a value is packed as itself.
"""

from __future__ import annotations

import pickle
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Final, Protocol, final

import cloudpickle
import msgpack

from ..shared.errors import LocalProtocolError, RemoteProtocolError

if TYPE_CHECKING:
    from collections.abc import Iterator

EXT_TUPLE: Final = 1
EXT_SET: Final = 2
EXT_FROZENSET: Final = 3
EXT_BIG_INT: Final = 4
EXT_PICKLE: Final = 5
EXT_STREAMED: Final = 6
EXT_NOT_SENT: Final = 7

#: Data up to this size is decoded without counting its containers: whatever it holds,
#: it cannot make this side allocate more than a few MiB.
CHECKED_ABOVE: Final = 64 * 2**10
#: Larger data may hold at most one container (list, dict, tuple, set) per this many
#: bytes: decoding then allocates at most about 16 times the data's size.
BYTES_PER_CONTAINER: Final = 4

#: How many tuples, sets and frozensets may nest inside one another. Each level costs a few
#: Python frames on both sides; deeper values are pickled whole when encoding, and refused
#: when decoding, so that a hostile frame cannot exhaust the recursion limit.
MAX_EXT_DEPTH: Final = 64

_INT64_MIN: Final = -(2**63)
_UINT64_MAX: Final = 2**64 - 1


class ValueEncodeError(LocalProtocolError):
    """A value cannot be serialised: msgpack cannot carry it and cloudpickle fails on it.

    Attributes:
        type_name: The qualified name of the type that could not be serialised.
        reason: Why, as the underlying library put it.
        message_index: Set by ``encode_frame``: the index of the message holding the value.
        field: Set by ``encode_frame``: the field of that message holding the value.
        too_large: The value could be serialised, but it is larger than the peer takes in.
    """

    def __init__(
        self,
        type_name: str,
        reason: str,
        *,
        message_index: int | None = None,
        field: str | None = None,
        too_large: bool = False,
    ) -> None:
        self.type_name = type_name
        self.reason = reason
        self.message_index = message_index
        self.field = field
        self.too_large = too_large
        where = ""
        if message_index is not None:
            where = f"message {message_index}" + (f", field {field!r}" if field else "") + ": "
        super().__init__(f"{where}cannot serialise a value of type {type_name!r}: {reason}")


def qualified_type_name(value: object) -> str:
    """Return ``module.QualName`` of the value's type, or the bare name for builtins."""
    kind = type(value)
    if kind.__module__ == "builtins":
        return kind.__qualname__
    return f"{kind.__module__}.{kind.__qualname__}"


@final
class _Encoder:
    """The ``default`` hook of one encoding pass; it counts ext nesting depth."""

    __slots__ = ("_nested", "depth")

    def __init__(self) -> None:
        self.depth = 0
        # One Packer per nesting depth, made on first use: making a Packer allocates its
        # buffer, which costs more than packing a small tuple. Reusing the one of a depth
        # is safe because nested packing is strictly last-in, first-out.
        self._nested: list[msgpack.Packer] = []

    def packer(self) -> msgpack.Packer:
        # strict_types: a subclass of list/dict/str/int/float is not packed as its base
        # type (which would lose it) but handed to `default`, which pickles it.
        return msgpack.Packer(default=self.default, strict_types=True, use_bin_type=True)

    def default(self, value: Any) -> msgpack.ExtType:
        kind = type(value)
        if kind is int:
            # msgpack hands exact ints to `default` only when they overflow 64 bits.
            size = (value.bit_length() + 8) // 8  # +1 bit for the sign, rounded up
            return msgpack.ExtType(EXT_BIG_INT, value.to_bytes(size, "big", signed=True))
        if self.depth < MAX_EXT_DEPTH:
            if kind is tuple:
                return msgpack.ExtType(EXT_TUPLE, self._pack_items(value))
            if kind is set:
                return msgpack.ExtType(EXT_SET, self._pack_items(value))
            if kind is frozenset:
                return msgpack.ExtType(EXT_FROZENSET, self._pack_items(value))
        try:
            data = cloudpickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            raise ValueEncodeError(qualified_type_name(value), str(exc) or repr(exc)) from exc
        return msgpack.ExtType(EXT_PICKLE, data)

    def _pack_items(self, items: tuple[Any, ...] | set[Any] | frozenset[Any]) -> bytes:
        # Not the outer Packer: it is in the middle of packing and is not reentrant.
        if len(self._nested) == self.depth:
            self._nested.append(self.packer())
        packer = self._nested[self.depth]
        self.depth += 1
        try:
            return bytes(packer.pack(list(items)))
        finally:
            self.depth -= 1


@final
class ValuePacker:
    """Packs values (or structures holding values) to msgpack bytes; one per encoding pass.

    Not thread-safe: make one per thread, they are cheap.
    """

    __slots__ = ("_packer",)

    def __init__(self) -> None:
        self._packer = _Encoder().packer()

    def pack(self, value: Any) -> bytes:
        """Return the msgpack bytes of ``value``.

        Raises:
            ValueEncodeError: Some part of ``value`` cannot be serialised.
        """
        try:
            return bytes(self._packer.pack(value))
        except ValueEncodeError:
            raise
        except (ValueError, TypeError, OverflowError, RecursionError) as exc:
            # msgpack's own refusals: nesting over its limit, a str with lone surrogates,
            # a bytes object over 4 GiB. The packer resets itself on error.
            raise ValueEncodeError(qualified_type_name(value), str(exc) or repr(exc)) from exc

    def pack_array_header(self, length: int) -> bytes:
        """Return the msgpack header of an array of ``length`` items."""
        return bytes(self._packer.pack_array_header(length))


@final
class UnreadableValue:
    """Stands for a value that this side could not take in; ``error`` says why.

    Either a pickled value that failed to load here (a class only the sender has, a
    module missing), or, with ``refused``, a value streamed to this side that it refused
    unread (larger than ``--max-value-bytes``, or too much waiting already).

    It travels on as itself (it pickles by reference to this class), so a value that a
    worker sent and the coordinator cannot read never turns into a different value.
    """

    __slots__ = ("error", "refused")

    def __init__(self, error: str, *, refused: bool = False) -> None:
        self.error = error
        self.refused = refused

    def __repr__(self) -> str:
        return f"<{'refused' if self.refused else 'unreadable'} value: {self.error}>"

    def __eq__(self, other: object) -> bool:
        return (
            type(other) is UnreadableValue
            and other.error == self.error
            and other.refused == self.refused
        )

    def __hash__(self) -> int:
        return hash((UnreadableValue, self.error, self.refused))

    def __reduce__(self) -> tuple[Any, ...]:
        if self.refused:
            return (_refused_value, (self.error,))
        return (UnreadableValue, (self.error,))


def _refused_value(error: str) -> UnreadableValue:
    """Unpickles a refused :class:`UnreadableValue` (``__reduce__`` takes no keywords)."""
    return UnreadableValue(error, refused=True)


# How many UnreadableValues this process has decoded: a reader compares it before and
# after decoding a frame, and looks for the markers only if it moved (rare), so that
# ordinary results are never walked.
_unreadable_decoded = 0


def unreadable_values_decoded() -> int:
    """How many :class:`UnreadableValue` markers have been decoded so far (ever-growing)."""
    return _unreadable_decoded


def find_unreadable(value: Any) -> UnreadableValue | None:
    """The first :class:`UnreadableValue` inside ``value`` (lists, dicts, tuples, sets,
    frozensets, walked without recursion), or ``None``. O(size of value)."""
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is UnreadableValue:
            return item  # type: ignore[no-any-return]
        if kind is dict:
            stack.extend(item.keys())
            stack.extend(item.values())
        elif kind in (list, tuple, set, frozenset):
            stack.extend(item)
    return None


@final
class NotSent:
    """Stands for a value the sender left out on purpose (see ``EXT_NOT_SENT``)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<not sent>"

    def __reduce__(self) -> str:
        return "NOT_SENT"


#: The one :class:`NotSent`.
NOT_SENT: Final = NotSent()


@final
class StreamRefused:
    """What a stream source gives for a value it refused to take in (too large)."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


class StreamSource(Protocol):
    """Where the values that came as streams wait for the message that refers to them."""

    def take(self, stream: int) -> list[bytes] | StreamRefused:
        """The stream's whole value in pieces (it is forgotten here), or why it was
        refused.

        Raises:
            RemoteProtocolError: no such stream was finished.
        """
        ...


# The source the frame being decoded takes its streamed values from (decoding is
# synchronous: set around one decode by :func:`streams_from`).
_streams: StreamSource | None = None


@contextmanager
def streams_from(source: StreamSource | None) -> Iterator[None]:
    """Resolve ``EXT_STREAMED`` references from ``source`` while decoding in this block."""
    global _streams
    previous, _streams = _streams, source
    try:
        yield
    finally:
        _streams = previous


_CONTAINER_HEADERS: Final = bytes([*range(0x80, 0xA0), 0xDC, 0xDD, 0xDE, 0xDF])
_NOT_CONTAINER_HEADERS: Final = bytes(b for b in range(256) if b not in _CONTAINER_HEADERS)
_NESTED_EXTS: Final = (EXT_TUPLE, EXT_SET, EXT_FROZENSET)


class _TooManyContainers(Exception):
    pass


_BIN_HEADERS: Final = {0xC4: 1, 0xC5: 2, 0xC6: 4}


def _one_bin(pieces: list[bytes]) -> bytes | None:
    """The bytes of a value that is one msgpack bin, joined from its pieces without its
    header (one copy); ``None`` if it is anything else."""
    head = pieces[0][:5] if len(pieces[0]) >= 5 else b"".join(pieces)[:5]
    if not head or head[0] not in _BIN_HEADERS:
        return None
    skip = 1 + _BIN_HEADERS[head[0]]
    if len(head) < skip or _bin_length(head) != sum(len(piece) for piece in pieces):
        return None
    views = [memoryview(piece) for piece in pieces]
    while skip:  # drop the header, which may span the first pieces
        cut = min(skip, len(views[0]))
        views[0] = views[0][cut:]
        skip -= cut
        if not views[0]:
            views.pop(0)
    return b"".join(views)


def _bin_length(data: bytes | bytearray | memoryview) -> int:
    """The size of ``data`` if it is one msgpack bin (header and bytes), else -1."""
    width = _BIN_HEADERS[data[0]]
    return 1 + width + int.from_bytes(data[1 : 1 + width], "big")


def check_containers(data: bytes | bytearray | memoryview) -> None:
    """Refuse msgpack data holding more containers than its size allows.

    At most one list, dict, tuple or set per :data:`BYTES_PER_CONTAINER` bytes of data
    larger than :data:`CHECKED_ABOVE` bytes (tuples and sets inside extension types
    count too). A first pass in C counts the bytes that could start a container; only
    when they are too many is the data walked to count the real ones, which stops as
    soon as the limit is passed, so the check itself allocates no more than the limit.

    Raises:
        RemoteProtocolError: too many containers for the data's size.
    """
    size = len(data)
    if size <= CHECKED_ABOVE:
        return
    budget = size // BYTES_PER_CONTAINER
    if data[0] in _BIN_HEADERS and _bin_length(data) == size:
        return  # one bytes value, the usual large one: no container at all
    whole = data if isinstance(data, bytes | bytearray) else bytes(data)
    if len(whole.translate(None, _NOT_CONTAINER_HEADERS)) <= budget:
        return  # an upper bound on the containers is within the limit
    count = 0

    def counted(obj: Any) -> Any:
        nonlocal count
        count += 1
        if count > budget:
            raise _TooManyContainers
        return obj

    def ext(code: int, payload: bytes) -> None:
        if code in _NESTED_EXTS:
            counted(None)
            walk(payload)

    def walk(payload: bytes | bytearray | memoryview) -> None:
        msgpack.unpackb(
            payload,
            list_hook=counted,
            object_hook=counted,
            ext_hook=ext,
            raw=True,
            strict_map_key=False,
        )

    try:
        walk(data)
    except _TooManyContainers:
        raise RemoteProtocolError(
            f"a value of {size} bytes holds more than {budget} lists, dicts, tuples or "
            f"sets (one per {BYTES_PER_CONTAINER} bytes at most): refused before decoding"
        ) from None
    except Exception:
        return  # malformed: the decoder says how


@final
class _Decoder:
    """The ``ext_hook`` of one decoding pass; it counts ext nesting depth."""

    __slots__ = ("allow_pickle", "depth")

    def __init__(self, *, allow_pickle: bool) -> None:
        self.allow_pickle = allow_pickle
        self.depth = 0

    def unpack(self, data: bytes | bytearray | memoryview) -> Any:
        # use_list: msgpack arrays are lists; tuples come back through EXT_TUPLE.
        # strict_map_key=False: values may be dicts keyed by ints, tuples, ...
        # unpackb caps every str/bin/array/map/ext length at len(data), and msgpack caps
        # nesting (StackError), so a small frame cannot claim a huge allocation.
        return msgpack.unpackb(
            data,
            ext_hook=self.ext_hook,
            use_list=True,
            raw=False,
            strict_map_key=False,
        )

    def ext_hook(self, code: int, data: bytes | memoryview) -> Any:
        if code == EXT_PICKLE:
            return self._unpickle(data)
        if code == EXT_STREAMED:
            return self._streamed(data)
        if code == EXT_NOT_SENT and self.depth == 0 and not data:
            return NOT_SENT
        if code == EXT_BIG_INT:
            value = int.from_bytes(data, "big", signed=True)
            if _INT64_MIN <= value <= _UINT64_MAX:
                raise RemoteProtocolError(f"big int extension holds {value}, which fits 64 bits")
            return value
        if code in (EXT_TUPLE, EXT_SET, EXT_FROZENSET):
            items = self._unpack_items(data)
            if code == EXT_TUPLE:
                return tuple(items)
            try:
                return set(items) if code == EXT_SET else frozenset(items)
            except TypeError as exc:  # an unhashable item, which no encoder produces
                raise RemoteProtocolError(f"invalid set extension: {exc}") from None
        raise RemoteProtocolError(f"unknown msgpack extension type {code}")

    def _unpack_items(self, data: bytes | memoryview) -> list[Any]:
        if self.depth >= MAX_EXT_DEPTH:
            raise RemoteProtocolError(f"value nests more than {MAX_EXT_DEPTH} tuples or sets")
        self.depth += 1
        try:
            items = self.unpack(data)
        finally:
            self.depth -= 1
        if type(items) is not list:
            raise RemoteProtocolError(
                f"tuple or set extension must hold an array, got {type(items).__name__}"
            )
        return items

    def _streamed(self, data: bytes | memoryview) -> Any:
        source = _streams
        if source is None or self.depth > 0 or len(data) != 8:
            raise RemoteProtocolError("a streamed value where none may be")
        pieces = source.take(int.from_bytes(data, "big"))
        if isinstance(pieces, StreamRefused):
            global _unreadable_decoded
            _unreadable_decoded += 1
            return UnreadableValue(pieces.reason, refused=True)
        value = _one_bin(pieces)
        if value is not None:
            return value  # the usual large value: bytes, made in one copy
        whole = b"".join(pieces)
        check_containers(whole)
        # A streamed value holds no streamed value: the depth says it is nested.
        self.depth += 1
        try:
            return self.unpack(whole)
        finally:
            self.depth -= 1

    def _unpickle(self, data: bytes | memoryview) -> Any:
        if not self.allow_pickle:
            raise RemoteProtocolError(
                "the peer sent a pickled value, which this connection does not accept "
                "(not authenticated yet)"
            )
        try:
            return cloudpickle.loads(data)
        except (pickle.UnpicklingError, EOFError) as exc:
            # Not a pickle, or a truncated one: the peer sent garbage.
            raise RemoteProtocolError(f"cannot unpickle a value: {exc!r}") from exc
        except Exception as exc:
            # A pickle that loads code or data this side lacks (ImportError,
            # AttributeError), or whose reconstructor raised: the value is unreadable
            # here, which fails the task it belongs to, not the connection.
            global _unreadable_decoded
            _unreadable_decoded += 1
            return UnreadableValue(f"{type(exc).__name__}: {exc}")


def value_ext_hook(code: int, data: memoryview, *, allow_pickle: bool) -> Any:
    """Rebuild one extension value (a tuple, set, big int or pickle) found in a frame.

    The ``ext_hook`` of the frame decoder.

    Raises:
        RemoteProtocolError: an unknown or malformed extension, or a pickle that is refused
            or not a pickle (one that fails to load is an :class:`UnreadableValue`).
    """
    try:
        return _Decoder(allow_pickle=allow_pickle).ext_hook(code, data)
    except RemoteProtocolError:
        raise
    except Exception as exc:  # msgpack's refusals of the nested data, as in unpack()
        raise RemoteProtocolError(
            f"truncated or invalid msgpack ({type(exc).__name__}: {exc})"
        ) from None


def unpack(data: bytes | bytearray | memoryview, *, allow_pickle: bool) -> Any:
    """Decode msgpack bytes that may hold values.

    Args:
        data: The msgpack bytes: exactly one msgpack object.
        allow_pickle: Whether ``EXT_PICKLE`` values are unpickled. Unpickling runs code
            the sender chooses, so pass ``False`` until the peer is authenticated.

    Returns:
        The decoded object.

    Raises:
        RemoteProtocolError: ``data`` is not exactly one valid msgpack object, holds an
            unknown or malformed extension, or a pickle that is refused or broken.
    """
    try:
        check_containers(data)
        return _Decoder(allow_pickle=allow_pickle).unpack(data)
    except RemoteProtocolError:
        raise
    except msgpack.ExtraData:
        raise RemoteProtocolError("invalid msgpack: extra bytes after the frame") from None
    except Exception as exc:
        # msgpack signals truncation with a bare ValueError, bad bytes with FormatError,
        # deep nesting with StackError, an unhashable map key with TypeError, bad UTF-8
        # with UnicodeDecodeError, a huge length with ValueError. None is our bug.
        raise RemoteProtocolError(
            f"truncated or invalid msgpack ({type(exc).__name__}: {exc})"
        ) from None


def encode_value(value: Any) -> bytes:
    """Return ``value`` as msgpack bytes, using extension types where needed.

    Raises:
        ValueEncodeError: Some part of ``value`` cannot be serialised.
    """
    return ValuePacker().pack(value)


def decode_value(data: bytes | bytearray | memoryview, *, allow_pickle: bool) -> Any:
    """Return the value that :func:`encode_value` turned into ``data``.

    Raises:
        RemoteProtocolError: ``data`` is not a valid encoded value, or holds a pickle and
            ``allow_pickle`` is false.
    """
    return unpack(data, allow_pickle=allow_pickle)
