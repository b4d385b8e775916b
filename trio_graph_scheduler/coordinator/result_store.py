"""Results past the memory limit, on disk: one SQLite file in a temporary directory.

The scheduling core decides what moves (``core/results.py``); this module is the
:class:`~.core.results.ResultSpill` it is given, and the options that set it up
(``memory_limit``, ``release_results``, ``spill_dir``) for both shells.

Why SQLite: the standard library has it, a million small rows cost one file (not a
million inodes), and big ones are read and written whole. The file is scratch space,
never a record: no journal and no syncs (``journal_mode=OFF``, ``synchronous=OFF``), and a
small page cache (the point is to hold less memory). It lives in a directory made with
:mod:`tempfile` (under ``spill_dir``, or the system's temporary directory: ``TMPDIR``)
the first time a result is written, so a run that stays under its limit touches no disk,
and it is removed when the graph is garbage-collected or the process exits (a process
killed with SIGKILL leaves it behind: ``tgs-results-*``).

Writes happen in the event loop's thread, synchronously, as the core pushes a result out:
the memory must be free before the next result comes in. A write of a MiB to the page
cache takes about a millisecond.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import sqlite3
import tempfile
import threading
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from ..protocol.values import ValueEncodeError, ValuePacker, decode_value
from ..shared.errors import ConfigError, TGSInternalError
from .core.results import ResultHolder

if TYPE_CHECKING:
    from .core.graph import TaskGraphCore

logger = logging.getLogger("tgs.results")

#: The share of the machine's memory ``tgs-coordinator`` keeps results in by default.
DEFAULT_MEMORY_SHARE: Final = 0.25
#: The default when the machine's memory cannot be read.
FALLBACK_MEMORY_LIMIT: Final = 1 << 30

_UNITS: Final = {
    "": 1,
    "b": 1,
    "k": 10**3,
    "kb": 10**3,
    "m": 10**6,
    "mb": 10**6,
    "g": 10**9,
    "gb": 10**9,
    "t": 10**12,
    "tb": 10**12,
    "kib": 1 << 10,
    "mib": 1 << 20,
    "gib": 1 << 30,
    "tib": 1 << 40,
}
_SIZE: Final = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*")


def parse_size(text: str, option: str = "--memory-limit") -> int:
    """Bytes from ``128MiB``, ``2GiB``, ``500MB``, ``1.5G`` or a plain number of bytes.

    ``KiB``/``MiB``/``GiB``/``TiB`` are powers of 1024, ``KB``/``MB``/... (and ``K``/``M``/
    ``G``/``T``) powers of 1000; case does not matter.

    Raises:
        ConfigError: not a size, or an unknown unit.
    """
    match = _SIZE.fullmatch(text)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _UNITS:
        raise ConfigError(
            f"bad {option} size {text!r}: expected a number with an optional unit, "
            "e.g. 128MiB, 2GiB, 500MB"
        )
    return int(float(match.group(1)) * _UNITS[unit])


def format_size(size: int) -> str:
    """``size`` bytes as ``1.5 GiB``, ``128 MiB``, ``512 B``."""
    amount = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if amount < 1024:
            return f"{amount:.3g} {unit}" if unit != "B" else f"{size} B"
        amount /= 1024
    return f"{amount:.3g} TiB"


def machine_memory() -> int | None:
    """The machine's physical memory in bytes, or ``None`` if it cannot be read."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def default_memory_limit() -> int:
    """What ``tgs-coordinator`` keeps in memory by default: a quarter of the machine's
    memory (1 GiB when it cannot be read)."""
    total = machine_memory()
    return FALLBACK_MEMORY_LIMIT if total is None else int(total * DEFAULT_MEMORY_SHARE)


class DiskSpill:
    """The :class:`~.core.results.ResultSpill` of both shells: SQLite in a temporary
    directory, made on the first write.

    Args:
        directory: where to make the temporary directory; ``None`` for the system's.
    """

    def __init__(self, directory: str | os.PathLike[str] | None = None) -> None:
        self._parent = None if directory is None else Path(directory)
        self._directory: Path | None = None
        self._db: sqlite3.Connection | None = None
        self._finalizer: weakref.finalize[Any, DiskSpill] | None = None
        # The event loop writes; a sync task function's thread may read at the same time.
        self._lock = threading.Lock()
        # One packer for every value (making one costs more than packing a small value).
        self._packer = ValuePacker()
        self._warned = False

    @property
    def path(self) -> Path | None:
        """The SQLite file, once a result was written."""
        return None if self._directory is None else self._directory / "results.sqlite"

    def measure(self, value: Any) -> int | None:
        """Bytes and strings count their length; anything else its encoded size (the
        wire's codec); ``None`` for a value that cannot be encoded."""
        kind = type(value)
        if kind is bytes or kind is bytearray or kind is str:
            return len(value)
        if kind is int or kind is float or kind is bool:
            return 0
        try:
            return len(self._packer.pack(value))
        except ValueEncodeError:
            return None

    def write(self, uid: str, value: Any) -> bool:
        """Write ``value`` as the result of ``uid``; False (said once in the log) when it
        cannot be encoded or the disk refuses it."""
        try:
            data = self._packer.pack(value)
            with self._lock:
                self._connection().execute(
                    "INSERT OR REPLACE INTO results (uid, value) VALUES (?, ?)", (uid, data)
                )
        except (ValueEncodeError, sqlite3.Error, OSError) as exc:
            if not self._warned:
                self._warned = True
                logger.warning(
                    "a result could not be moved to disk, so it stays in memory "
                    "(said once): %s: %s",
                    type(exc).__name__,
                    exc,
                )
            return False
        return True

    def read(self, uid: str) -> Any:
        """The value written for ``uid`` (from any thread)."""
        with self._lock:
            if self._db is None:
                raise TGSInternalError(f"no result of {uid} was written")
            row = self._db.execute("SELECT value FROM results WHERE uid = ?", (uid,)).fetchone()
        if row is None:
            raise TGSInternalError(f"no result of {uid} was written")
        return decode_value(row[0], allow_pickle=True)

    def delete(self, uid: str) -> None:
        """Forget the value written for ``uid``."""
        with self._lock:
            if self._db is not None:
                self._db.execute("DELETE FROM results WHERE uid = ?", (uid,))

    def close(self) -> None:
        """Close the file and remove its directory (also done at garbage collection and
        at exit)."""
        if self._finalizer is not None:
            self._finalizer()  # closes and removes, once
        self._db = None
        self._directory = None

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            directory = Path(tempfile.mkdtemp(prefix="tgs-results-", dir=self._parent))
            # Any thread may read (under the lock): sync task functions run in threads.
            db = sqlite3.connect(
                directory / "results.sqlite", isolation_level=None, check_same_thread=False
            )
            # Not TemporaryDirectory: its cleanup at garbage collection warns, and the
            # graph (which holds this) is often dropped without a word.
            self._finalizer = weakref.finalize(self, _remove, db, directory)
            self._directory = directory
            db.execute("PRAGMA journal_mode=OFF")
            db.execute("PRAGMA synchronous=OFF")
            db.execute("PRAGMA cache_size=-1024")  # KiB: a small page cache
            db.execute("CREATE TABLE results (uid TEXT PRIMARY KEY, value BLOB NOT NULL)")
            logger.info("results past the memory limit go to %s", directory)
            self._db = db
        return self._db


def _remove(db: sqlite3.Connection, directory: Path) -> None:
    """Close a spill's file and remove its directory (at close, collection or exit)."""
    db.close()
    shutil.rmtree(directory, ignore_errors=True)


def configure_results(
    graph: TaskGraphCore,
    *,
    memory_limit: int | None,
    release_results: bool,
    spill_dir: str | os.PathLike[str] | None = None,
) -> ResultHolder | None:
    """Keep ``graph``'s results under ``memory_limit`` bytes (spilling the rest to disk)
    and/or release those nobody can need (``release_results``), from now on.

    Called by ``execute_graph`` and the coordinator before a run (before a journal is
    replayed, so that the results read back respect the limit too). A graph that has a
    holder keeps it, with the new settings; one with neither setting keeps its results in
    its nodes, as the seed did.

    Returns:
        The graph's holder (``graph.scheduler.results``), or ``None``.

    Raises:
        ConfigError: ``memory_limit`` is not positive.
    """
    if memory_limit is not None and memory_limit <= 0:
        raise ConfigError(f"memory_limit must be positive, got {memory_limit}")
    scheduler = graph.scheduler
    holder = scheduler.results
    if holder is None:
        if memory_limit is None and not release_results:
            return None
        spill = None if memory_limit is None else DiskSpill(spill_dir)
        holder = ResultHolder(spill, limit=memory_limit, release=release_results)
        holder.adopt(graph.nodes.values())
        scheduler.attach_results(holder)
        return holder
    if memory_limit is not None and holder.spill is None:
        holder.spill = DiskSpill(spill_dir)
    turned_on = release_results and not holder.release
    holder.release = release_results
    holder.set_limit(memory_limit)
    if turned_on:
        holder.adopt(graph.nodes.values())
    scheduler.attach_results(holder)
    return holder
