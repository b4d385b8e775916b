"""Count the WebSocket frames each tgs process sends, and the messages in them by type
(a measuring aid for the benchmarks, not part of tgs).

Put this directory on ``PYTHONPATH`` (an absolute path: the benchmarks start processes
in other directories) and name a directory in ``FRAME_COUNT_DIR``: every Python process
started so (``tgs-coordinator``, each ``tgs-worker``) sends its frames through a wrapper
around ``trio_websocket.WebSocketConnection.send_message`` and writes
``coordinator-PID.txt`` or ``worker-PID.txt`` there at exit, one ``name count`` line per
figure (``frames``, then each message type). Decoding each frame costs CPU: read the
counts, not the speed, of a counted run::

    mkdir /tmp/frames
    FRAME_COUNT_DIR=/tmp/frames PYTHONPATH=$PWD/scripts/frame_count \\
        python scripts/bench_scale.py --workers 100 --shapes noop
    cat /tmp/frames/coordinator-*.txt
    cat /tmp/frames/worker-*.txt | awk '{n[$1] += $2} END {for (k in n) print k, n[k]}'
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import os
import sys
from typing import Any

_OUT = os.environ.get("FRAME_COUNT_DIR")


def _install(out: str) -> None:
    import msgpack
    import trio_websocket

    counts: collections.Counter[str] = collections.Counter()
    send_message = trio_websocket.WebSocketConnection.send_message

    async def counted(self: trio_websocket.WebSocketConnection, message: Any) -> None:
        counts["frames"] += 1
        try:
            for item in msgpack.unpackb(message, raw=False, strict_map_key=False):
                counts[str(item.get("type", "?"))] += 1
        except Exception:  # a handshake or close payload, not a frame of messages
            counts["not a frame of messages"] += 1
        await send_message(self, message)

    trio_websocket.WebSocketConnection.send_message = counted  # type: ignore[method-assign]

    def write() -> None:
        if counts:
            role = "coordinator" if "coordinator" in " ".join(sys.argv) else "worker"
            with open(os.path.join(out, f"{role}-{os.getpid()}.txt"), "w") as file:
                file.writelines(f"{name} {count}\n" for name, count in sorted(counts.items()))

    atexit.register(write)


if _OUT:
    # A Python without tgs's dependencies (a tool the run starts) counts nothing.
    with contextlib.suppress(ImportError):
        _install(_OUT)
