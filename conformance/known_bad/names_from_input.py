"""names_from_input (P7): the session name is built from the task id, and tmux targets are not exact.

What it does wrong: the session is ``dk_<task id>`` instead of ``dk_<random>``, and has-session /
kill-session address it as ``-t NAME`` instead of ``-t =NAME``, so tmux's prefix and pattern matching
apply: stopping (or reaping) task ``a`` after its session is gone kills task ``ab``'s session, and two
dispatchers sharing a socket collide on the same id.
Caught by: the P07 session-name and exact-target checks.
"""

from __future__ import annotations

from typing import Any

from conformance.known_bad import _seam


def apply() -> None:
    from runner.config import SESSION_PREFIX
    from runner.store import Store
    from runner.tmux import Tmux

    def insert(orig: Any, self: Store, row: dict[str, Any], *a: Any, **kw: Any) -> Any:
        # In place: the start's own row names the tmux session too (a copy renamed only the record, and
        # the start's reap then killed the real `dk_<random>` session as an orphan)
        row["session"] = SESSION_PREFIX + row["task_id"]
        return orig(self, row, *a, **kw)

    _seam.wrap(Store, "insert", insert)

    def has_session(self: Tmux, name: str) -> bool:
        return self.run("has-session", "-t", name, check=False).returncode == 0

    def kill_session(self: Tmux, name: str) -> bool:
        return self.run("kill-session", "-t", name, check=False).returncode == 0

    Tmux.has_session = has_session  # type: ignore[method-assign]
    Tmux.kill_session = kill_session  # type: ignore[method-assign]


def main(argv: list[str]) -> int:
    return _seam.run("names_from_input", argv, apply)
