"""kill0 (P2): liveness by ``kill -0`` alone, no start-time check: a reused PID looks alive.

What it does wrong: status/wait/reap decide "still running" the seeds' way -- ``kill -0 $AGENT_PID``
succeeds -- and ``ProcessIdentity.is_alive`` (the supervisor check) becomes "does *some* process have
this PID". When the supervisor and agent die and the agent's (or wrapper's) PID is recycled, status keeps
reporting ``running`` instead of ``crashed/supervisor_lost``.
Caught by: the P02 PID-reuse check.
"""

from __future__ import annotations

import os
from typing import Any

from conformance.known_bad import _seam


def kill0_alive(self: Any) -> bool:
    return pid_alive(self.pid)


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def apply() -> None:
    from runner import reaper, states
    from runner.procid import ProcessIdentity

    ProcessIdentity.is_alive = kill0_alive  # type: ignore[method-assign]

    def reconcile(orig: Any, store: Any, task: dict[str, Any], tmux: Any) -> Any:
        if not states.is_terminal(task["state"]) and pid_alive(task.get("agent_pid")):
            return None  # "kill -0 $AGENT_PID" says it runs
        return orig(store, task, tmux)

    _seam.wrap(reaper, "reconcile", reconcile)


def main(argv: list[str]) -> int:
    return _seam.run("kill0", argv, apply)
