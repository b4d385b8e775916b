"""Frames: a batch of messages as one msgpack array of message maps, and back.

A frame is one WebSocket binary message: ``[{"type": tag, field: value, ...}, ...]``.
Batching several messages per frame is what makes small tasks cheap.

msgspec does the structural work in C: it encodes the messages, and decodes a frame
straight into message objects while checking every field against its annotation. What it
cannot do alone is carry task values exactly (it would turn a tuple into a list), so
value fields go through the value codec: on the way out each is packed by
:class:`~.values.ValuePacker` and embedded as raw msgpack, and on the way in the value
codec's extension hook rebuilds tuples, sets, big ints and (once the peer is trusted)
pickled objects. Which fields hold values is read once, at import, from the annotations.
"""

from __future__ import annotations

import functools
import itertools
import operator
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Final, Union, get_args, get_origin

import msgspec

from ..shared.errors import LocalProtocolError, RemoteProtocolError
from .messages import (
    MAX_SHIPPED_ARGUMENTS,
    MESSAGE_TYPES,
    SMALL_MARKER,
    VALUE_MARKER,
    Message,
    Record,
)
from .values import (
    EXT_NOT_SENT,
    ValueEncodeError,
    ValuePacker,
    check_containers,
    qualified_type_name,
    value_ext_hook,
)

#: The largest frame either side sends or accepts. The WebSocket layer must allow
#: messages of this size (trio-websocket's own default is only 1 MiB).
MAX_FRAME_BYTES: Final = 16 * 2**20  # 16 MiB

#: Values of these exact types encode the same through msgspec as through the value
#: codec, so they need no packing of their own: the common case (None, a number, a
#: string) stays cheap.
_NATIVE_VALUE_TYPES: Final = frozenset({type(None), bool, int, float, str, bytes})

#: Called with a value's packed bytes when they are larger than the pass's ``spill_above``:
#: returns what the frame carries instead (an ``EXT_STREAMED`` reference). ``index`` is
#: the message holding the value.
Spill = Callable[[int, bytes], bytes]


class _Packing:
    """One encoding pass: the value packer, and where large values go (if anywhere)."""

    __slots__ = ("_values", "index", "spill", "spill_above", "spill_limit")

    def __init__(self, spill: Spill | None, spill_above: int, spill_limit: int) -> None:
        self._values: ValuePacker | None = None
        self.spill = spill
        self.spill_above = spill_above
        self.spill_limit = spill_limit
        #: The index of the message being packed.
        self.index = 0

    @property
    def values(self) -> ValuePacker:
        """The value packer, made on first use: most frames hold no value that needs
        one, and making one (a msgpack Packer and its buffer) costs about a microsecond,
        once per frame."""
        if self._values is None:
            self._values = ValuePacker()
        return self._values


_Pack = Callable[[Any, _Packing], Any]

#: Lists of records up to this long are checked a record at a time: the check of all
#: their values at once costs more than it saves for a few.
_FEW_ITEMS: Final = 4

#: Per struct class that holds values: its value fields' values, as one tuple.
_VALUE_GETTERS: dict[type[msgspec.Struct], Callable[[Any], tuple[Any, ...]]] = {}


class FrameTooLargeError(LocalProtocolError):
    """The frame to send is larger than the peer accepts; send fewer or smaller values.

    Attributes:
        size: The frame's size in bytes.
        limit: The largest size allowed, in bytes.
    """

    def __init__(self, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit
        super().__init__(f"frame of {size} bytes exceeds the limit of {limit} bytes")


def _pack_value(value: Any, packing: _Packing) -> Any:
    kind = type(value)
    # A native value stays as it is, unless it is a long string or bytes that may spill.
    if (
        kind in _NATIVE_VALUE_TYPES
        and (kind is not int or -(2**63) <= value < 2**64)
        and (packing.spill is None or kind not in (bytes, str) or len(value) <= packing.spill_above)
    ):
        return value
    if kind is bytes and packing.spill is not None and len(value) > packing.spill_above:
        # A large bytes value (the usual big result): its msgpack form is a header and
        # the bytes, one copy (a Packer grows its buffer and copies it out: three).
        return _packed(value, _bin_header(len(value)) + value, packing)
    return _packed(value, packing.values.pack(value), packing)


def _bin_header(size: int) -> bytes:
    """The msgpack header of a bin of ``size`` bytes (over 255: bin 16 or bin 32)."""
    if size < 2**16:
        return b"\xc5" + size.to_bytes(2, "big")
    return b"\xc6" + size.to_bytes(4, "big")


#: What a value left out is on the wire: an ``EXT_NOT_SENT`` with no data (an ext 8 of
#: length 0).
_NOT_SENT_RAW: Final = msgspec.Raw(bytes((0xC7, 0, EXT_NOT_SENT)))


def _pack_small_value(value: Any, packing: _Packing) -> Any:
    """A value sent only when its encoded form is at most ``MAX_SHIPPED_ARGUMENTS``, to a
    peer that takes streams (an older one does not know ``EXT_NOT_SENT``)."""
    kind = type(value)
    if (
        kind in _NATIVE_VALUE_TYPES
        and (kind is not int or -(2**63) <= value < 2**64)
        and (kind not in (bytes, str) or len(value) <= MAX_SHIPPED_ARGUMENTS // 4)
    ):
        return value
    packed = packing.values.pack(value)
    if len(packed) > MAX_SHIPPED_ARGUMENTS and packing.spill is not None:
        return _NOT_SENT_RAW
    return _packed(value, packed, packing)


def _packed(value: Any, packed: bytes, packing: _Packing) -> Any:
    if packing.spill is not None and len(packed) > packing.spill_above:
        if len(packed) > packing.spill_limit:
            raise ValueEncodeError(
                qualified_type_name(value),
                f"its {len(packed):,} encoded bytes are more than the peer takes in "
                f"({packing.spill_limit:,} bytes, --max-value-bytes)",
                too_large=True,
            )
        return msgspec.Raw(packing.spill(packing.index, packed))
    return msgspec.Raw(packed)


def _struct_packer(cls: type[msgspec.Struct], *, names_field: bool) -> _Pack | None:
    """What replaces a struct's value fields by packed ones; None if it holds no values.

    With ``names_field``, a ValueEncodeError is raised again naming the struct's field.
    """
    plans: list[tuple[str, _Pack]] = []
    for field in msgspec.structs.fields(cls):
        pack = _field_packer(field.type)
        if pack is not None:
            plans.append((field.name, pack))
    if not plans:
        return None

    names = tuple(name for name, _ in plans)
    # All the value fields in one call (C): a struct whose values are all None, the
    # usual predecessor record, is checked without a Python call per field.
    get_values = operator.attrgetter(*names) if len(names) > 1 else _one_attr(names[0])
    _VALUE_GETTERS[cls] = get_values
    unset = len(names)

    def pack_struct(struct: Any, packer: _Packing) -> Any:
        values = get_values(struct)
        if values.count(None) == unset:
            return struct
        changes = None
        index = 0
        for value in values:
            if value is not None:  # None is carried as it is by every field
                name, pack = plans[index]
                try:
                    packed = pack(value, packer)
                except ValueEncodeError as exc:
                    if not names_field:
                        raise
                    raise ValueEncodeError(
                        exc.type_name, exc.reason, field=name, too_large=exc.too_large
                    ) from exc
                if packed is not value:
                    if changes is None:
                        changes = {}
                    changes[name] = packed
            index += 1  # noqa: SIM113  # cheaper than enumerate here, per assignment
        # Most values are native (None, a number, a string): then nothing is copied.
        return struct if changes is None else msgspec.structs.replace(struct, **changes)

    return pack_struct


def _one_attr(name: str) -> Callable[[Any], tuple[Any]]:
    """A getter of one attribute that returns it in a tuple, as attrgetter of several."""

    def get(struct: Any) -> tuple[Any]:
        return (getattr(struct, name),)

    return get


def _field_packer(annotation: Any) -> _Pack | None:
    origin = get_origin(annotation)
    if origin is Annotated:
        base, *extras = get_args(annotation)
        if VALUE_MARKER in extras:
            return _pack_small_value if SMALL_MARKER in extras else _pack_value
        return _field_packer(base)
    if isinstance(annotation, type) and issubclass(annotation, Record):
        return _struct_packer(annotation, names_field=False)
    if origin is list:
        item_type = get_args(annotation)[0]
        inner = _field_packer(item_type)
        if inner is None:
            return None
        get_values = _VALUE_GETTERS.get(item_type)

        def pack_items(items: list[Any], packer: _Packing) -> list[Any]:
            if get_values is not None and len(items) > _FEW_ITEMS:
                # Records whose values are all None (a join's 100,000 predecessors that
                # returned nothing) are checked in C, without a call per record.
                values = list(itertools.chain.from_iterable(map(get_values, items)))
                if values.count(None) == len(values):
                    return items
            # A copy only once an item changed: usually none does.
            packed: list[Any] | None = None
            for index, item in enumerate(items):
                new = inner(item, packer)
                if new is not item:
                    if packed is None:
                        packed = list(items)
                    packed[index] = new
            return items if packed is None else packed

        return pack_items
    if origin is Union and any(_field_packer(arg) for arg in get_args(annotation)):
        raise TypeError(f"records or values inside a union are not supported: {annotation}")
    return None


# Generated once, at import: which message classes hold values, and how to pack them.
_PACKERS: Final[dict[type[Message], _Pack | None]] = {
    cls: _struct_packer(cls, names_field=True) for cls in MESSAGE_TYPES.values()
}
_ENCODER: Final = msgspec.msgpack.Encoder()
_FRAME_TYPE: Final = list[Union[tuple(MESSAGE_TYPES.values())]]  # type: ignore[misc]  # noqa: UP007
_DECODERS: Final = {
    allow_pickle: msgspec.msgpack.Decoder(
        _FRAME_TYPE, ext_hook=functools.partial(value_ext_hook, allow_pickle=allow_pickle)
    )
    for allow_pickle in (False, True)
}


def encode_frame(messages: Sequence[Message], *, max_frame_bytes: int = MAX_FRAME_BYTES) -> bytes:
    """Encode a batch of messages as one frame.

    Args:
        messages: At least one message, in the order the peer will handle them.
        max_frame_bytes: The largest frame the peer accepts.

    Returns:
        The frame's bytes, for one WebSocket binary message.

    Raises:
        ValueEncodeError: A value in a message cannot be serialised; ``message_index``
            and ``field`` say where. Nothing was encoded.
        FrameTooLargeError: The frame would exceed ``max_frame_bytes``.
        LocalProtocolError: ``messages`` is empty or holds something that is not a
            message (a bug).
    """
    return encode_wire(pack_messages(messages), max_frame_bytes=max_frame_bytes)


def pack_messages(
    messages: Sequence[Message],
    *,
    spill: Spill | None = None,
    spill_above: int = 0,
    spill_limit: int = 0,
) -> list[Any]:
    """The messages with their values packed: what :func:`encode_wire` encodes.

    Args:
        messages: At least one message.
        spill: Where values whose packed form is larger than ``spill_above`` bytes go
            (their place in the message holds what ``spill`` returns); ``None``: every
            value stays in its message.
        spill_above: See ``spill``.
        spill_limit: The largest value ``spill`` takes (the peer's limit): a larger one
            raises ``ValueEncodeError``.

    Raises:
        ValueEncodeError: A value cannot be serialised (``message_index``, ``field``);
            whatever ``spill`` raised, likewise.
        LocalProtocolError: ``messages`` is empty or holds a non-message (a bug).
    """
    if not messages:
        raise LocalProtocolError("a frame needs at least one message")
    packing = _Packing(spill, spill_above, spill_limit)
    wire = list(messages)
    for index, message in enumerate(messages):
        try:
            pack = _PACKERS[type(message)]
        except KeyError:
            raise LocalProtocolError(
                f"message {index} is a {type(message).__name__}, not a message"
            ) from None
        if pack is not None:
            packing.index = index
            try:
                wire[index] = pack(message, packing)
            except ValueEncodeError as exc:
                raise ValueEncodeError(
                    exc.type_name,
                    exc.reason,
                    message_index=index,
                    field=exc.field,
                    too_large=exc.too_large,
                ) from exc
    return wire


def encode_wire(wire: Sequence[Any], *, max_frame_bytes: int = MAX_FRAME_BYTES) -> bytes:
    """One frame of messages packed by :func:`pack_messages`.

    Raises:
        FrameTooLargeError: The frame would exceed ``max_frame_bytes``.
    """
    frame = _ENCODER.encode(wire)
    if len(frame) > max_frame_bytes:
        raise FrameTooLargeError(len(frame), max_frame_bytes)
    return frame


#: How a frame of exactly one value chunk starts (as this package encodes it). Its other
#: fields are ints and bytes: a container there fails validation before it is built, so
#: such a frame (a MiB of a value) needs no count of its containers.
_ONE_CHUNK: Final = b"\x91\x85\xa4type\xabvalue_chunk"


def decode_frame(
    data: bytes | bytearray | memoryview | str,
    *,
    allow_pickle: bool,
    max_frame_bytes: int = MAX_FRAME_BYTES,
) -> list[Message]:
    """Decode one frame into its messages, checking every field of every message.

    Args:
        data: One WebSocket message. A ``str`` (a text message) is always refused.
        allow_pickle: Whether pickled values are unpickled. Unpickling runs code the
            sender chooses: pass ``False`` until the peer is authenticated.
        max_frame_bytes: The largest frame accepted.

    Returns:
        The messages, at least one, in frame order.

    Raises:
        RemoteProtocolError: The frame is too large, not msgpack, not a non-empty array
            of message maps, or a message is unknown, lacks or adds a field, or has a
            field of the wrong type or value; the text says which, e.g.
            ``Expected `int`, got `str` - at `$[0].lease```. Also a frame holding
            more lists and dicts than its size allows (``values.check_containers``),
            and a reference to a streamed value that the session's stream source (see
            ``values.streams_from``) does not hold.
    """
    if isinstance(data, str):
        raise RemoteProtocolError("frame must be binary, got a text message")
    if len(data) > max_frame_bytes:
        raise RemoteProtocolError(
            f"frame of {len(data)} bytes exceeds the limit of {max_frame_bytes} bytes"
        )
    try:
        if data[: len(_ONE_CHUNK)] != _ONE_CHUNK:
            check_containers(data)
        messages: list[Message] = _DECODERS[allow_pickle].decode(data)
    except msgspec.ValidationError as exc:
        raise RemoteProtocolError(f"invalid message: {exc}") from None
    except RemoteProtocolError:
        raise  # from the value codec's extension hook
    except RecursionError:
        raise RemoteProtocolError("invalid msgpack: nested too deeply") from None
    except Exception as exc:
        # msgspec.DecodeError for bad or truncated bytes, UnicodeDecodeError for bad UTF-8
        # in a key: whatever msgspec refuses, the peer sent garbage.
        raise RemoteProtocolError(f"invalid msgpack: {exc}") from None
    if not messages:
        raise RemoteProtocolError("frame must hold at least one message, got none")
    return messages
