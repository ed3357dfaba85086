"""Where the container tooling keeps its cache: one place, so builds stay incremental across runs."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def cache_dir() -> Path:
    """`$DK_CACHE` if set, else `~/.cache/dispatch-kit/containers` (created on demand)."""
    env = os.environ.get("DK_CACHE")
    base = Path(env) if env else Path.home() / ".cache" / "dispatch-kit" / "containers"
    base.mkdir(parents=True, exist_ok=True)
    return base
