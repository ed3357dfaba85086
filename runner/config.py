"""Knobs from the environment (DISPATCH_*), parsed and validated once; durations accept fractions."""

from __future__ import annotations

import math
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

from runner.errors import DispatchError

# sun_path is 104 bytes on macOS/BSD, 108 on Linux; the path needs a terminating NUL.
SUN_PATH_MAX = 108 if sys.platform.startswith("linux") else 104
SESSION_PREFIX = "dk_"
SESSION_HEX = 12  # session names are exactly SESSION_PREFIX + 12 lowercase hex digits
SESSION_RE = re.compile(rf"{SESSION_PREFIX}[0-9a-f]{{{SESSION_HEX}}}")


def is_our_session_name(name: str) -> bool:
    """Only names that fully match our scheme are ours to reap (P7): never a mere prefix match."""
    return SESSION_RE.fullmatch(name) is not None


def parse_seconds(name: str, raw: str | None, default: float) -> float:
    """A non-negative, finite number of seconds (fractions allowed) or a bad_config refusal."""
    if raw is None or raw.strip() == "":
        return default
    try:
        v = float(raw)
    except ValueError:
        raise DispatchError("bad_config", f"{name}={raw!r} is not a number of seconds") from None
    if not math.isfinite(v) or v < 0:
        raise DispatchError("bad_config", f"{name}={raw!r} must be a finite number >= 0")
    return v


def default_state_dir(env: Mapping[str, str]) -> Path:
    xdg = env.get("XDG_STATE_HOME")
    base = Path(xdg) if xdg else Path(env.get("HOME") or os.path.expanduser("~")) / ".local" / "state"
    return base / "dispatch-kit"


def socket_fits(path: str | os.PathLike[str]) -> bool:
    """True when `path` fits in sun_path (with its NUL)."""
    return len(os.fsencode(os.fspath(path))) < SUN_PATH_MAX


class Config(NamedTuple):
    """Everything the environment says, resolved once per process (a NamedTuple: frozen, without
    importing `dataclasses` on every `dispatch` call)."""

    state_dir: Path
    socket_path: Path | None  # tmux -S
    socket_name: str | None  # tmux -L (fallback when the default path is too long for sun_path)
    stale_after: float
    grace: float
    max_lifetime: float
    models: tuple[str, ...] | None
    tmpdir: Path
    tmux_timeout: float
    tmux_bin: str | None

    @property
    def db_path(self) -> Path:
        return self.state_dir / "dispatch.sqlite3"

    @property
    def tasks_dir(self) -> Path:
        return self.state_dir / "tasks"

    def socket_args(self) -> list[str]:
        """The socket selection passed to every tmux call."""
        if self.socket_path is not None:
            return ["-S", str(self.socket_path)]
        assert self.socket_name is not None
        return ["-L", self.socket_name]

    def knobs(self) -> dict[str, float]:
        """The supervision knobs a task is started with (recorded in its task dir)."""
        return {"stale_after": self.stale_after, "grace": self.grace, "max_lifetime": self.max_lifetime}


def load(env: Mapping[str, str] | None = None) -> Config:
    """Read DISPATCH_* knobs; raises DispatchError(bad_config) on nonsense values."""
    env = os.environ if env is None else env
    sd_raw = env.get("DISPATCH_STATE_DIR")
    state_dir = Path(sd_raw).absolute() if sd_raw else default_state_dir(env).absolute()
    sock_raw = env.get("DISPATCH_TMUX_SOCKET")
    socket_path: Path | None
    socket_name: str | None = None
    if sock_raw:
        socket_path = Path(sock_raw).absolute()
    else:
        candidate = state_dir / "tmux.sock"
        if socket_fits(candidate):
            socket_path = candidate
        else:
            socket_path = None
            import hashlib  # here: only this default needs it (OpenSSL's load is a few ms of each call)

            socket_name = "dk-" + hashlib.sha256(os.fsencode(str(state_dir))).hexdigest()[:16]
    models_raw = env.get("DISPATCH_MODELS")
    models = None
    if models_raw is not None and models_raw.strip() != "":
        models = tuple(m.strip() for m in models_raw.split(",") if m.strip())
    tmpdir = Path(env.get("TMPDIR") or "/tmp")
    return Config(
        state_dir=state_dir,
        socket_path=socket_path,
        socket_name=socket_name,
        stale_after=parse_seconds("DISPATCH_STALE_AFTER_S", env.get("DISPATCH_STALE_AFTER_S"), 0.0),
        grace=parse_seconds("DISPATCH_GRACE_S", env.get("DISPATCH_GRACE_S"), 30.0),
        max_lifetime=parse_seconds("DISPATCH_MAX_LIFETIME_S", env.get("DISPATCH_MAX_LIFETIME_S"), 0.0),
        models=models,
        tmpdir=tmpdir,
        tmux_timeout=parse_seconds("DISPATCH_TMUX_TIMEOUT_S", env.get("DISPATCH_TMUX_TIMEOUT_S"), 3.0) or 3.0,
        tmux_bin=env.get("DISPATCH_TMUX_BIN") or None,
    )
