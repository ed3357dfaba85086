"""prefix_reaper (P7): reap ends every session whose name starts with the prefix ``dk_``.

What it does wrong: the ownerless-session sweep treats any session named ``dk_...`` that belongs to no
live task as its own (``name.startswith("dk_")``) instead of requiring the whole name to match its
scheme (``dk_`` + 12 hex digits). A user's ``dk_notes`` or ``dk_3f2a-user`` session is killed by the
next `start` or `reap`. (The reference had exactly this bug once.)
Caught by: P07.foreign-session.untouched.
"""

from __future__ import annotations

from conformance.known_bad import _seam


def apply() -> None:
    from runner import reaper
    from runner.config import SESSION_PREFIX

    reaper.is_our_session_name = lambda name: name.startswith(SESSION_PREFIX)  # type: ignore[assignment]


def main(argv: list[str]) -> int:
    return _seam.run("prefix_reaper", argv, apply)
