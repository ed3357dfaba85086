"""The one atomic write: temp file in the same dir, fsync, rename, fsync dir; 0600 files, 0700 dirs (P5, P11)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

FILE_MODE = 0o600
DIR_MODE = 0o700


def ensure_dir(path: str | os.PathLike[str], mode: int = DIR_MODE) -> Path:
    """Create `path` (and parents) with a private mode if missing; return it."""
    p = Path(path)
    p.mkdir(mode=mode, parents=True, exist_ok=True)
    return p


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Make a rename/creation in `path` durable (best effort where dirs cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomic(path: str | os.PathLike[str], data: bytes | str, mode: int = FILE_MODE) -> Path:
    """Replace `path` with `data` so a reader sees the old file or the whole new one, never a part."""
    p = Path(path)
    if isinstance(data, str):
        data = data.encode()
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        os.fsync(fd)
        os.close(fd)
        fd = -1
        os.replace(tmp, p)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    fsync_dir(p.parent)
    return p


def write_json(path: str | os.PathLike[str], obj: Any, mode: int = FILE_MODE) -> Path:
    """Atomically write `obj` as JSON."""
    return write_atomic(path, json.dumps(obj, sort_keys=True), mode)


def copy_private(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> int:
    """Copy `src` byte for byte to a private (0600) `dst`, atomically; return the byte count."""
    with open(src, "rb") as f:
        data = f.read()
    write_atomic(dst, data)
    return len(data)
