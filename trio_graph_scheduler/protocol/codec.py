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
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Final, Union, get_args, get_origin

import msgspec

from ..shared.errors import LocalProtocolError, RemoteProtocolError
from .messages import MESSAGE_TYPES, VALUE_MARKER, Message, Record
from .values import ValueEncodeError, ValuePacker, value_ext_hook

#: The largest frame either side sends or accepts. The WebSocket layer must allow
#: messages of this size (trio-websocket's own default is only 1 MiB).
MAX_FRAME_BYTES: Final = 16 * 2**20  # 16 MiB

#: Values of these exact types encode the same through msgspec as through the value
#: codec, so they need no packing of their own: the common case (None, a number, a
#: string) stays cheap.
_NATIVE_VALUE_TYPES: Final = frozenset({type(None), bool, int, float, str, bytes})

_Pack = Callable[[Any, ValuePacker], Any]


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


def _pack_value(value: Any, packer: ValuePacker) -> Any:
    if type(value) in _NATIVE_VALUE_TYPES and (type(value) is not int or -(2**63) <= value < 2**64):
        return value
    return msgspec.Raw(packer.pack(value))


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

    def pack_struct(struct: Any, packer: ValuePacker) -> Any:
        changes = {}
        for name, pack in plans:
            value = getattr(struct, name)
            try:
                packed = pack(value, packer)
            except ValueEncodeError as exc:
                if not names_field:
                    raise
                raise ValueEncodeError(exc.type_name, exc.reason, field=name) from exc
            if packed is not value:
                changes[name] = packed
        # Most values are native (None, a number, a string): then nothing is copied.
        return msgspec.structs.replace(struct, **changes) if changes else struct

    return pack_struct


def _field_packer(annotation: Any) -> _Pack | None:
    origin = get_origin(annotation)
    if origin is Annotated:
        base, *extras = get_args(annotation)
        return _pack_value if VALUE_MARKER in extras else _field_packer(base)
    if isinstance(annotation, type) and issubclass(annotation, Record):
        return _struct_packer(annotation, names_field=False)
    if origin is list:
        inner = _field_packer(get_args(annotation)[0])
        if inner is None:
            return None

        def pack_items(items: list[Any], packer: ValuePacker) -> list[Any]:
            packed = [inner(item, packer) for item in items]
            same = all(new is old for new, old in zip(packed, items, strict=True))
            return items if same else packed

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
    if not messages:
        raise LocalProtocolError("a frame needs at least one message")
    packer = ValuePacker()
    wire = list(messages)
    for index, message in enumerate(messages):
        try:
            pack = _PACKERS[type(message)]
        except KeyError:
            raise LocalProtocolError(
                f"message {index} is a {type(message).__name__}, not a message"
            ) from None
        if pack is not None:
            try:
                wire[index] = pack(message, packer)
            except ValueEncodeError as exc:
                raise ValueEncodeError(
                    exc.type_name, exc.reason, message_index=index, field=exc.field
                ) from exc
    frame = _ENCODER.encode(wire)
    if len(frame) > max_frame_bytes:
        raise FrameTooLargeError(len(frame), max_frame_bytes)
    return frame


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
            ``Expected `int`, got `str` - at `$[0].lease```.
    """
    if isinstance(data, str):
        raise RemoteProtocolError("frame must be binary, got a text message")
    if len(data) > max_frame_bytes:
        raise RemoteProtocolError(
            f"frame of {len(data)} bytes exceeds the limit of {max_frame_bytes} bytes"
        )
    try:
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
