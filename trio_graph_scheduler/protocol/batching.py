"""Turning a batch of outgoing messages into frames, without letting one bad value sink it.

A batch mixes messages of many tasks. If one task's value cannot be serialised, or one
message alone is larger than a frame may be, only that message is taken out (its owner
decides what to send instead, e.g. a ``TaskFailed``); the rest still go. A batch that is
too large as a whole is split into several frames. A value too large for any frame goes
as a stream (see ``chunks``): its message waits in the session, not in these frames.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .codec import FrameTooLargeError
from .values import ValueEncodeError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from ..shared.errors import LocalProtocolError
    from .messages import Message
    from .session import ProtocolSession


def encode_batches(
    session: ProtocolSession,
    messages: Sequence[Message],
    on_unsendable: Callable[[Message, LocalProtocolError], Message | None],
) -> list[bytes]:
    """Encode ``messages`` in order into as few frames as the size limit allows.

    Args:
        session: the connection's protocol session (checks order, encodes).
        messages: the batch, in the order the peer must handle it.
        on_unsendable: told about each message that cannot be encoded at all; what it
            returns (if anything) is sent in its place.

    Returns:
        The frames, possibly none if nothing could be sent (or everything waits for its
        values' streams: :meth:`ProtocolSession.stream_frames` sends it).
    """
    batch = list(messages)
    while batch:
        try:
            frame = session.send_streamed(batch)
            return [frame] if frame is not None else []
        except ValueEncodeError as exc:
            index = exc.message_index if exc.message_index is not None else 0
            replacement = on_unsendable(batch[index], exc)
            if replacement is None:
                del batch[index]
            else:
                batch[index] = replacement
        except FrameTooLargeError as exc:
            if len(batch) == 1:
                replacement = on_unsendable(batch[0], exc)
                batch = [replacement] if replacement is not None else []
                continue
            half = len(batch) // 2
            return encode_batches(session, batch[:half], on_unsendable) + encode_batches(
                session, batch[half:], on_unsendable
            )
    return []
