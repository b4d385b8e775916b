"""Code shipped to workers by value, with the sources of the files it came from.

A worker may have none of the user's files, yet a traceback of the user's code should
name its file and line and show the source line there. The coordinator keeps each
function's real file name in its code objects and sends the sources of those files along
(:func:`pack_shipped`); the worker registers them with :mod:`linecache`, where
:mod:`traceback` looks source lines up (:func:`load_shipped`).
"""

from __future__ import annotations

import linecache
import pickle
from typing import TYPE_CHECKING, Any, Final

import cloudpickle

if TYPE_CHECKING:
    from collections.abc import Mapping

#: Marks a payload that carries sources besides the pickled callable.
_TAG: Final = "tgs-shipped-code/1"


def pack_shipped(pickled: bytes, sources: Mapping[str, str]) -> bytes:
    """A callable already cloudpickled, with the sources of its files (by file name)."""
    if not sources:
        return pickled
    return pickle.dumps((_TAG, dict(sources), pickled), protocol=pickle.HIGHEST_PROTOCOL)


def load_shipped(payload: bytes) -> Any:
    """The callable of a payload made by :func:`pack_shipped` (or a plain cloudpickle),
    with its files' sources registered for tracebacks.

    Raises:
        Exception: whatever unpickling the user's callable raises.
    """
    loaded = cloudpickle.loads(payload)
    if isinstance(loaded, tuple) and len(loaded) == 3 and loaded[0] == _TAG:
        _, sources, pickled = loaded
        register_sources(sources)
        return cloudpickle.loads(pickled)
    return loaded


def register_sources(sources: Mapping[str, str]) -> None:
    """Make :mod:`linecache` answer with these sources for these file names.

    An entry without a modification time is never checked against the disk
    (``linecache.checkcache`` skips it), so a file of the same name on this machine
    does not replace the source of the code that actually runs.
    """
    for filename, text in sources.items():
        linecache.cache[filename] = (len(text), None, text.splitlines(True), filename)
