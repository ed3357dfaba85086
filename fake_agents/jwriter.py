"""The journal writer alone, so a fake's start-up does not pay for dataclasses/inspect (see journal.py)."""

from __future__ import annotations

import json
import os
import time
from typing import Any


class Journal:
    """Appends events to a path (O_APPEND, so children and the parent can share one file)."""

    def __init__(self, path: str | os.PathLike[str] | None) -> None:
        self.path = os.fspath(path) if path else None
        self._fd: int | None = None
        if self.path:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)

    def write(self, event: str, **data: Any) -> None:
        """Append one event; a no-op when there is no journal."""
        if self._fd is None:
            return
        rec = {"event": event, "pid": os.getpid(), "mono": time.monotonic(), "wall": time.time()}
        rec.update(data)
        line = (json.dumps(rec, separators=(",", ":"), default=str) + "\n").encode()
        os.write(self._fd, line)
        try:
            os.fsync(self._fd)
        except OSError:
            pass

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
