"""`dispatch doctor`: is this machine ready to dispatch agents? Each problem comes with its fix.

Broken (exit 3): tmux missing or too old, state dir or socket dir unusable, a user agent config that does
not load. Warnings (exit 0): agent CLIs not on PATH (you only need the ones you use), a socket path too
long for sun_path (the runner falls back to -L), a state dir with loose permissions.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

OK, WARN, BROKEN = "ok", "warn", "broken"


@dataclass(frozen=True)
class Check:
    """One finding: what was checked, its status, what was seen, and how to fix it when not ok."""

    name: str
    status: str
    detail: str
    fix: str | None = None


def check_tmux(env: Mapping[str, str]) -> Check:
    from runner.tmux import Tmux, TmuxError, install_hint, min_version, version_at_least

    minimum = min_version()
    path = env.get("DISPATCH_TMUX_BIN") or shutil.which("tmux", path=env.get("PATH", os.defpath))
    if not path:
        return Check("tmux", BROKEN, "tmux not found on PATH", install_hint())
    try:
        v = Tmux(socket_name="dk-doctor", binary=path, env=env).version()
    except TmuxError as e:
        return Check("tmux", BROKEN, f"{path} does not run: {e}", install_hint())
    if not version_at_least(v, minimum):
        return Check(
            "tmux", BROKEN, f"{path} is tmux {v}, older than {minimum}", f"upgrade tmux; {install_hint()}"
        )
    return Check("tmux", OK, f"{path} tmux {v} (minimum {minimum})")


def check_state_dir(state_dir: Path) -> Check:
    """The state dir must be (or be creatable as) a private, writable dir; doctor itself creates nothing."""
    if not state_dir.exists():
        parent = state_dir.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if os.access(parent, os.W_OK | os.X_OK):
            return Check("state dir", OK, f"{state_dir} (will be created 0700 on first use)")
        return Check("state dir", BROKEN, f"{state_dir} does not exist and {parent} is not writable",
                     f"mkdir -p -m 700 {state_dir} as its owner, or set DISPATCH_STATE_DIR")  # fmt: skip
    if not state_dir.is_dir():
        return Check(
            "state dir", BROKEN, f"{state_dir} is not a directory", "set DISPATCH_STATE_DIR to a directory"
        )
    db_path = state_dir / "dispatch.sqlite3"
    try:
        fd, tmp = tempfile.mkstemp(prefix=".doctor.", dir=state_dir)
        os.close(fd)
        os.unlink(tmp)
        if db_path.exists():
            db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)
            try:
                db.execute("PRAGMA quick_check").fetchone()
            finally:
                db.close()
    except (OSError, sqlite3.Error) as e:
        return Check("state dir", BROKEN, f"{state_dir} is not usable: {e}",
                     f"fix its ownership/permissions (chown $USER {state_dir}; chmod 700 {state_dir}) "
                     "or point DISPATCH_STATE_DIR elsewhere")  # fmt: skip
    mode = stat.S_IMODE(state_dir.stat().st_mode)
    if mode & 0o077:
        return Check("state dir", WARN, f"{state_dir} is mode {mode:o}; prompts and logs are readable by others",
                     f"chmod 700 {state_dir}")  # fmt: skip
    return Check(
        "state dir", OK, f"{state_dir} (private, writable" + (", sqlite ok)" if db_path.exists() else ")")
    )


def check_socket(cfg: Any) -> Check:
    from runner.config import socket_fits

    if cfg.socket_path is None:
        return Check("tmux socket", WARN, f"default socket path too long for sun_path; using -L {cfg.socket_name}",
                     "set DISPATCH_TMUX_SOCKET to a short path, or use a shorter DISPATCH_STATE_DIR")  # fmt: skip
    sock = Path(cfg.socket_path)
    if not socket_fits(sock):
        return Check("tmux socket", BROKEN, f"{sock} is too long for a unix socket path",
                     "set DISPATCH_TMUX_SOCKET to a shorter path")  # fmt: skip
    parent = sock.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not os.access(parent, os.W_OK | os.X_OK):
        return Check("tmux socket", BROKEN, f"socket dir {parent} is not writable",
                     f"chmod u+rwx {parent}, or set DISPATCH_TMUX_SOCKET elsewhere")  # fmt: skip
    if sock.exists() and not stat.S_ISSOCK(sock.stat().st_mode):
        return Check("tmux socket", BROKEN, f"{sock} exists and is not a socket", f"remove it: rm {sock}")
    return Check("tmux socket", OK, f"{sock}")


def check_agents(env: Mapping[str, str]) -> list[Check]:
    from runner.agents.profiles import ProfileError, load_all, user_config_path

    try:
        profiles = load_all(env)
    except ProfileError as e:
        return [Check("agent config", BROKEN, str(e), f"fix or move away {user_config_path(env)}")]
    out = []
    cfg = user_config_path(env)
    if cfg.exists():
        out.append(Check("agent config", OK, f"{cfg} loaded"))
    path = env.get("PATH", os.defpath)
    for name in sorted(profiles):
        p = profiles[name]
        if not p.binary:
            continue
        found = shutil.which(p.binary, path=path)
        if found:
            out.append(Check(f"agent {name}", OK, f"{p.binary} -> {found}"))
            if p.first_run == "report":
                out.extend(check_first_run(name, env))
        else:
            fix = p.install or f"install {p.description or name}"
            out.append(
                Check(
                    f"agent {name}", WARN, f"{p.binary!r} not on PATH (needed only for --agent {name})", fix
                )
            )
    return out


def check_first_run(name: str, env: Mapping[str, str]) -> list[Check]:
    """Claude's first-run screens still ahead for this directory: each would stop an interactive run."""
    from runner.agents import firstrun

    return [Check(f"agent {name} first run", WARN, f"{s.what} (here: {os.getcwd()})", s.fix)
            for s in firstrun.pending(env, os.getcwd())]  # fmt: skip


def run_checks(env: Mapping[str, str] | None = None) -> list[Check]:
    """All checks, in the order a person would fix them."""
    from runner import config
    from runner.errors import DispatchError

    env = dict(os.environ if env is None else env)
    checks = [Check("python", OK, f"{sys.version.split()[0]} at {sys.executable}")]
    checks.append(check_tmux(env))
    try:
        cfg = config.load(env)
    except DispatchError as e:
        checks.append(Check("config", BROKEN, e.message, "fix the DISPATCH_* variable it names"))
        return checks
    checks.append(check_state_dir(cfg.state_dir))
    checks.append(check_socket(cfg))
    checks.extend(check_agents(env))
    return checks


def exit_status(checks: list[Check]) -> int:
    """3 (environment) when anything is broken, else 0."""
    return 3 if any(c.status == BROKEN for c in checks) else 0


def render(checks: list[Check]) -> str:
    mark = {OK: "ok  ", WARN: "warn", BROKEN: "FAIL"}
    lines = []
    for c in checks:
        lines.append(f"[{mark[c.status]}] {c.name:<16} {c.detail}")
        if c.fix and c.status != OK:
            lines.append(f"       fix: {c.fix}")
    broken = sum(c.status == BROKEN for c in checks)
    warns = sum(c.status == WARN for c in checks)
    lines.append("ready to dispatch" if not broken else f"{broken} problem(s) to fix before dispatching")
    if warns:
        lines[-1] += f" ({warns} warning(s))"
    return "\n".join(lines)


def to_json(checks: list[Check]) -> dict[str, Any]:
    return {"ok": exit_status(checks) == 0, "checks": [asdict(c) for c in checks]}
