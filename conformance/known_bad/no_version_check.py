"""no_version_check (P13): never checks that tmux exists or is recent enough; fails late with a mess.

What it does wrong: ``Runner.require_tmux`` is a no-op, so `start` creates the state dir, the sqlite
store and a task row before the first real tmux call fails (tmux missing: ``tmux_unreachable`` instead of
``tmux_missing``; tmux too old: it just goes ahead).
Caught by: the P13 tmux-missing / tmux-too-old checks (exit 3, right code, nothing created).
"""

from __future__ import annotations

from conformance.known_bad import _seam


def apply() -> None:
    from runner.tasks import Runner

    Runner.require_tmux = lambda self: "unchecked"  # type: ignore[method-assign]


def main(argv: list[str]) -> int:
    return _seam.run("no_version_check", argv, apply)
