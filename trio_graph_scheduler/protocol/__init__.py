"""The wire protocol between coordinator and workers, sans I/O.

Bytes in, typed and validated messages out, and back: no sockets, no trio. Messages are
frozen dataclasses (``messages``), a frame is a msgpack array of them (``codec``), task
values travel through the value codec (``values``), and ``session`` checks the order of
messages on one connection; values larger than a frame travel as streams of chunks
(``chunks``).
"""

from ..shared.errors import LocalProtocolError as LocalProtocolError
from ..shared.errors import RemoteProtocolError as RemoteProtocolError
from .chunks import MAX_VALUE_BYTES as MAX_VALUE_BYTES
from .chunks import InboundValues as InboundValues
from .chunks import OutgoingValues as OutgoingValues
from .codec import MAX_FRAME_BYTES as MAX_FRAME_BYTES
from .codec import FrameTooLargeError as FrameTooLargeError
from .codec import decode_frame as decode_frame
from .codec import encode_frame as encode_frame
from .messages import MESSAGE_TYPES as MESSAGE_TYPES
from .messages import PROTOCOL_VERSION as PROTOCOL_VERSION
from .messages import Assign as Assign
from .messages import Cancel as Cancel
from .messages import Cancelled as Cancelled
from .messages import CancelTaskRequest as CancelTaskRequest
from .messages import Claim as Claim
from .messages import ConditionRecord as ConditionRecord
from .messages import CreateConditionRequest as CreateConditionRequest
from .messages import CreateTaskRequest as CreateTaskRequest
from .messages import HandBack as HandBack
from .messages import Heartbeat as Heartbeat
from .messages import Hello as Hello
from .messages import InvalidFieldError as InvalidFieldError
from .messages import ListedTask as ListedTask
from .messages import LoopBlocked as LoopBlocked
from .messages import LoopStatus as LoopStatus
from .messages import Message as Message
from .messages import PredecessorRecord as PredecessorRecord
from .messages import PrependRequest as PrependRequest
from .messages import Reject as Reject
from .messages import Reply as Reply
from .messages import ResultsDropped as ResultsDropped
from .messages import RunningTask as RunningTask
from .messages import Shutdown as Shutdown
from .messages import SlotFreed as SlotFreed
from .messages import Started as Started
from .messages import StatusReply as StatusReply
from .messages import StatusRequest as StatusRequest
from .messages import SuccessorsRequest as SuccessorsRequest
from .messages import TaskFailed as TaskFailed
from .messages import TaskFilter as TaskFilter
from .messages import TaskQuery as TaskQuery
from .messages import TaskRecord as TaskRecord
from .messages import TaskSucceeded as TaskSucceeded
from .messages import ValueChunk as ValueChunk
from .messages import Welcome as Welcome
from .messages import WorkerStatus as WorkerStatus
from .session import HANDSHAKE_MAX_FRAME_BYTES as HANDSHAKE_MAX_FRAME_BYTES
from .session import TRANSITIONS as TRANSITIONS
from .session import CloseCode as CloseCode
from .session import ProtocolSession as ProtocolSession
from .session import Role as Role
from .session import SessionState as SessionState
from .values import EXT_BIG_INT as EXT_BIG_INT
from .values import EXT_FROZENSET as EXT_FROZENSET
from .values import EXT_PICKLE as EXT_PICKLE
from .values import EXT_SET as EXT_SET
from .values import EXT_STREAMED as EXT_STREAMED
from .values import EXT_TUPLE as EXT_TUPLE
from .values import UnreadableValue as UnreadableValue
from .values import ValueEncodeError as ValueEncodeError
from .values import decode_value as decode_value
from .values import encode_value as encode_value
