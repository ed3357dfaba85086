"""kill0 (P2): liveness by ``kill -0`` alone, no start-time check: a reused PID looks alive.

What it does wrong: ``ProcessIdentity.is_alive`` (used by status/wait/reap to decide whether a task's
supervisor still lives) becomes "does *some* process have this PID". When the wrapper dies and its PID
is recycled (or is a zombie), status keeps reporting ``running`` instead of ``crashed/supervisor_lost``.
Caught by: the P02 PID-reuse checks.
"""

from __future__ import annotations

import os

from conformance.known_bad import _seam


def kill0_alive(self: object) -> bool:
    try:
        os.kill(self.pid, 0)  # type: ignore[attr-defined]
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def apply() -> None:
    from runner.procid import ProcessIdentity

    ProcessIdentity.is_alive = kill0_alive  # type: ignore[method-assign]


def main(argv: list[str]) -> int:
    return _seam.run("kill0", argv, apply)
