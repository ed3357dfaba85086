"""The one atomic write: temp file in the same dir, fsync, rename, fsync dir; 0600 files, 0700 dirs (P5, P11).

Imports only `os` at load: the pipe-pane process writes its identity with this while the wrapper and
the agent start beside it on the same cores (json, pathlib and typing were ~27 ms of its CPU).
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

FILE_MODE = 0o600
DIR_MODE = 0o700


def ensure_dir(path: str | os.PathLike[str], mode: int = DIR_MODE) -> Path:
    """Create `path` (and parents) with a private mode if missing; return it."""
    from pathlib import Path

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


def write_atomic(
    path: str | os.PathLike[str], data: bytes | str, mode: int = FILE_MODE, durable: bool = True
) -> None:
    """Replace `path` with `data` so a reader sees the old file or the whole new one, never a part.

    durable=False skips the two fsyncs (file and dir, 3-12 ms each here): still atomic for every
    reader, only not guaranteed to survive a power loss (for files whose task would not either).
    """
    p = os.fspath(path)
    parent, name = os.path.split(p)
    if isinstance(data, str):
        data = data.encode()
    fd, tmp = _mkstemp(parent or ".", f".{name}.", ".tmp")
    try:
        os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        if durable:
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
    if durable:
        fsync_dir(parent or ".")


def _mkstemp(parent: str, prefix: str, suffix: str) -> tuple[int, str]:
    """tempfile.mkstemp's file (0600, O_EXCL, no symlink followed) without importing tempfile, which
    brings shutil, bz2, lzma and random into every `dispatch` call: tens of ms under load."""
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        name = os.path.join(parent, f"{prefix}{os.urandom(6).hex()}{suffix}")
        try:
            return os.open(name, flags, FILE_MODE), name
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name in {str(parent)!r}")


def write_json(path: str | os.PathLike[str], obj: Any, mode: int = FILE_MODE, durable: bool = True) -> None:
    """Atomically write `obj` as JSON."""
    import json

    write_atomic(path, json.dumps(obj, sort_keys=True), mode, durable)


def copy_private(src: str | os.PathLike[str], dst: str | os.PathLike[str], durable: bool = True) -> int:
    """Copy `src` byte for byte to a private (0600) `dst`, atomically; return the byte count."""
    with open(src, "rb") as f:
        data = f.read()
    write_atomic(dst, data, durable=durable)
    return len(data)
