"""Where the container tooling keeps its cache: one place, so builds stay incremental across runs."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def cache_dir() -> Path:
    """`$DK_CACHE` if set, else `~/.cache/dispatch-kit/containers` (created on demand)."""
    env = os.environ.get("DK_CACHE")
    base = Path(env) if env else Path.home() / ".cache" / "dispatch-kit" / "containers"
    base.mkdir(parents=True, exist_ok=True)
    return base


@contextmanager
def cache_lock(name: str) -> Iterator[None]:
    """An exclusive lock per cache item, so concurrent builds (pytest -n 2, CI + a developer) make each
    rootfs/image once instead of racing; the second waiter then finds the cached result."""
    path = cache_dir() / "locks" / f"{name}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
