"""Frames: a batch of messages as one msgpack array of message maps, and back.

A frame is one WebSocket binary message: ``[{"type": tag, field: value, ...}, ...]``.
Batching several messages per frame is what makes small tasks cheap.

The encoder and decoder of every message class are generated once, at import, from the
dataclass fields and annotations in ``messages``; this module spells no key or tag.
Decoding checks the frame's shape and each message's keys here, and the field values
through the message constructors (the same checks a locally built message gets), turning
every failure into a :class:`RemoteProtocolError` that says which message and which field
was wrong.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Final, Union, get_args, get_origin

from ..shared.errors import LocalProtocolError, RemoteProtocolError
from .messages import MESSAGE_TYPES, TYPE_KEY, InvalidFieldError, Message, Struct
from .validation import InvalidValue, type_name
from .values import ValueEncodeError, ValuePacker, unpack

#: The largest frame either side sends or accepts. The WebSocket layer should allow
#: messages of this size (trio-websocket's own default is only 1 MiB).
MAX_FRAME_BYTES: Final = 16 * 2**20  # 16 MiB

_Convert = Callable[[Any], Any]


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


@dataclasses.dataclass(frozen=True, slots=True)
class _StructCodec:
    """The generated wire form of one message or record class."""

    #: Fields in declaration order, and as a set to compare a map's keys with.
    names: tuple[str, ...]
    name_set: frozenset[str]
    #: Fields holding records, with their (to wire, from wire) converters.
    converted: tuple[tuple[str, _Convert, _Convert], ...]
    build: Callable[..., Struct]

    def encode(self, struct: Struct, wire: dict[str, Any]) -> dict[str, Any]:
        for name in self.names:
            wire[name] = getattr(struct, name)
        for name, to_wire, _ in self.converted:
            wire[name] = to_wire(wire[name])
        return wire

    def decode(self, wire: dict[Any, Any]) -> Any:
        """Build the struct from its map (without the tag); raise InvalidValue."""
        if wire.keys() != self.name_set:
            raise InvalidValue(self._describe_keys(wire))
        for name, _, from_wire in self.converted:
            try:
                wire[name] = from_wire(wire[name])
            except InvalidValue as exc:
                raise InvalidValue(f"field {name!r} {exc}") from None
        try:
            return self.build(**wire)
        except InvalidFieldError as exc:
            raise InvalidValue(exc.detail) from None

    def _describe_keys(self, wire: dict[Any, Any]) -> str:
        missing = [name for name in self.names if name not in wire]
        if missing:
            return f"missing field {missing[0]!r}"
        unexpected = [key for key in wire if key not in self.name_set]
        return f"unexpected field {unexpected[0]!r}"


def _struct_codec(cls: type[Struct]) -> _StructCodec:
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    converted = []
    for field in fields:
        converters = _converters(field.type)
        if converters is not None:
            converted.append((field.name, *converters))
    return _StructCodec(
        names=tuple(field.name for field in fields),
        name_set=frozenset(field.name for field in fields),
        converted=tuple(converted),
        build=cls,
    )


def _converters(annotation: Any) -> tuple[_Convert, _Convert] | None:
    """(to wire, from wire) for a field holding records, or None if it holds none."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _converters(get_args(annotation)[0])
    if isinstance(annotation, type) and issubclass(annotation, Struct):
        return _record_converters(_struct_codec(annotation))
    if origin is list:
        inner = _converters(get_args(annotation)[0])
        return None if inner is None else _list_converters(*inner)
    if origin is Union or origin is types.UnionType:
        (member,) = [arg for arg in get_args(annotation) if arg is not type(None)]
        inner = _converters(member)
        return None if inner is None else _optional_converters(*inner)
    if origin is dict and any(_converters(arg) for arg in get_args(annotation)):
        raise TypeError(f"records inside a dict are not supported: {annotation}")
    return None


def _record_converters(codec: _StructCodec) -> tuple[_Convert, _Convert]:
    def to_wire(record: Struct) -> dict[str, Any]:
        return codec.encode(record, {})

    def from_wire(wire: Any) -> Any:
        if type(wire) is not dict:
            raise InvalidValue(f"must be a map, got {type_name(wire)}")
        return codec.decode(wire)

    return to_wire, from_wire


def _list_converters(to_item: _Convert, from_item: _Convert) -> tuple[_Convert, _Convert]:
    def to_wire(items: list[Any]) -> list[Any]:
        return [to_item(item) for item in items]

    def from_wire(wire: Any) -> list[Any]:
        if type(wire) is not list:
            raise InvalidValue(f"must be list, got {type_name(wire)}")
        items = []
        for index, item in enumerate(wire):
            try:
                items.append(from_item(item))
            except InvalidValue as exc:
                raise InvalidValue(f"item {index}: {exc}") from None
        return items

    return to_wire, from_wire


def _optional_converters(to_inner: _Convert, from_inner: _Convert) -> tuple[_Convert, _Convert]:
    def to_wire(value: Any) -> Any:
        return None if value is None else to_inner(value)

    def from_wire(wire: Any) -> Any:
        return None if wire is None else from_inner(wire)

    return to_wire, from_wire


# Generated once, at import: the hot loops below only look classes and tags up.
_CODECS: Final[dict[type[Message], _StructCodec]] = {
    cls: _struct_codec(cls) for cls in MESSAGE_TYPES.values()
}
_CODECS_BY_TAG: Final[dict[str, _StructCodec]] = {
    tag: _CODECS[cls] for tag, cls in MESSAGE_TYPES.items()
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
    if not messages:
        raise LocalProtocolError("a frame needs at least one message")
    packer = ValuePacker()
    parts = [packer.pack_array_header(len(messages))]
    for index, message in enumerate(messages):
        codec = _CODECS.get(type(message))
        if codec is None:
            raise LocalProtocolError(f"message {index} is a {type_name(message)}, not a message")
        wire = codec.encode(message, {TYPE_KEY: message.TAG})
        try:
            parts.append(packer.pack(wire))
        except ValueEncodeError as exc:
            raise ValueEncodeError(
                exc.type_name, exc.reason, message_index=index, field=_bad_field(wire)
            ) from exc
    frame = b"".join(parts)
    if len(frame) > max_frame_bytes:
        raise FrameTooLargeError(len(frame), max_frame_bytes)
    return frame


def _bad_field(wire: dict[str, Any]) -> str | None:
    # The slow path, taken only after a failure: pack field by field to name the culprit.
    for name, value in wire.items():
        try:
            ValuePacker().pack(value)
        except ValueEncodeError:
            return name
    return None  # pragma: no cover (the whole map failed, so some field fails alone)


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
            field of the wrong type or value; the text says which.
    """
    if isinstance(data, str):
        raise RemoteProtocolError("frame must be binary, got a text message")
    if len(data) > max_frame_bytes:
        raise RemoteProtocolError(
            f"frame of {len(data)} bytes exceeds the limit of {max_frame_bytes} bytes"
        )
    frame = unpack(data, allow_pickle=allow_pickle)
    if type(frame) is not list:
        raise RemoteProtocolError(f"frame must be an array of messages, got {type_name(frame)}")
    if not frame:
        raise RemoteProtocolError("frame must hold at least one message, got none")
    messages = []
    for index, wire in enumerate(frame):
        if type(wire) is not dict:
            raise RemoteProtocolError(f"message {index} must be a map, got {type_name(wire)}")
        tag = wire.pop(TYPE_KEY, None)
        codec = _CODECS_BY_TAG.get(tag) if type(tag) is str else None
        if codec is None:
            what = "has no 'type'" if tag is None else f"has unknown message type {tag!r}"
            raise RemoteProtocolError(f"message {index} {what}")
        try:
            messages.append(codec.decode(wire))
        except InvalidValue as exc:
            raise RemoteProtocolError(f"message {index} ({tag}): {exc}") from None
    return messages
