"""A failed task's exception as an object that can travel: from a worker to the
coordinator (pickled), and kept on its node without keeping its frames alive.
"""

from __future__ import annotations

import io
import pickle
from typing import Any, Final

import cloudpickle

from .errors import RemoteTaskError

#: A task's exception pickled larger than this is not sent: a stand-in with its type's
#: name and message comes instead (an exception holding a large value must not make the
#: answer too large to send).
MAX_PICKLED_EXCEPTION_BYTES: Final = 64 * 1024


def without_frames(error: BaseException) -> BaseException:
    """``error`` with the tracebacks of it and its causes dropped, and returned.

    A node keeps its task's exception for as long as the graph lives; a traceback would
    keep every frame of the failed call alive with its locals. The text of the traceback
    is in ``exception_trace``, made before this.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        current.__traceback__ = None
        current = current.__cause__ or current.__context__
    return error


def _rebuild_exception(
    cls: type[BaseException], args: tuple[Any, ...], state: dict[str, Any] | None
) -> BaseException:
    """An exception as it was pickled: its ``args`` and attributes, ``__init__`` not
    called again (it may take other arguments than ``args`` holds)."""
    error = cls.__new__(cls, *args)
    if state:
        error.__dict__.update(state)
    return error


class _ExceptionPickler(cloudpickle.Pickler):  # type: ignore[misc]  # cloudpickle has no types
    """cloudpickle, with exceptions rebuilt without calling their ``__init__``.

    Python pickles an exception as ``cls(*args)`` plus its attributes, which fails to
    load for the many classes whose ``__init__`` wants other arguments (httpx's
    ``HTTPStatusError(message, *, request, response)``, a ``MyError(url, status)`` that
    passes a sentence to ``super().__init__``). A class with a ``__reduce__`` of its own
    keeps it.
    """

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, BaseException) and type(obj).__reduce__ is _DEFAULT_REDUCE:
            return _rebuild_exception, (type(obj), obj.args, getattr(obj, "__dict__", None))
        return super().reducer_override(obj)


_DEFAULT_REDUCE: Final = BaseException.__reduce__


def pickle_exception(error: BaseException) -> tuple[bytes | None, str]:
    """``error`` cloudpickled to travel, or ``None`` and why it cannot."""
    try:
        with io.BytesIO() as file:
            pickler = _ExceptionPickler(file, protocol=pickle.HIGHEST_PROTOCOL)
            pickler.dump(without_frames(error))
            data = file.getvalue()
    except Exception as exc:  # pickling a user's object can raise anything
        return None, f"it cannot be pickled on the worker: {exc!r}"
    if len(data) > MAX_PICKLED_EXCEPTION_BYTES:
        limit = MAX_PICKLED_EXCEPTION_BYTES
        return None, f"pickled, it takes {len(data)} bytes (more than {limit})"
    return data, ""


def unpickle_exception(
    data: bytes | None, type_name: str, message: str, why: str = ""
) -> BaseException:
    """The exception a worker sent (``data``), or a :class:`RemoteTaskError` standing in
    for it (with its type's name and message) when none came or it cannot be unpickled."""
    if data is not None:
        try:
            error = cloudpickle.loads(data)
        except Exception as exc:  # unpickling a user's object can raise anything
            why = f"it cannot be unpickled on the coordinator: {exc!r}"
        else:
            if isinstance(error, BaseException):
                return error
            why = f"the worker sent a {type(error).__name__}, not an exception"
    return RemoteTaskError(type_name, message, why)
