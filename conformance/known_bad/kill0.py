"""kill0 (P2): liveness by ``kill -0`` alone, no start-time check: a reused PID looks alive.

What it does wrong: status/wait/reap decide "still running" the seeds' way -- ``kill -0 $AGENT_PID``
succeeds -- and the supervisor check becomes "does *some* process have the wrapper's PID". Its kill
paths keep their identity checks (a known-bad must never signal a stranger's processes). When the supervisor and agent die and the agent's (or wrapper's) PID is recycled, status keeps
reporting ``running`` instead of ``crashed/supervisor_lost``.
Caught by: the P02 PID-reuse check.
"""

from __future__ import annotations

import os
from typing import Any

from conformance.known_bad import _seam


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

    # The flaw is in the liveness *decision* only ("kill -0 $PID": is the task still running?). It used
    # to replace ProcessIdentity.is_alive globally, which also reached the kill paths: `stop`'s tree walk
    # took whatever process now holds a recycled agent/log-pipe PID for ours and SIGTERMed its children,
    # i.e. other runs' supervisors and agents (the kit's chaos tests, in CI). A known-bad fails its own
    # checks; it never signals a stranger.
    def reconcile(orig: Any, store: Any, task: dict[str, Any], tmux: Any) -> Any:
        if not states.is_terminal(task["state"]) and (
            pid_alive(task.get("agent_pid")) or pid_alive(task.get("wrapper_pid"))
        ):
            return None  # "kill -0 $AGENT_PID" (or the supervisor's) says it runs
        return orig(store, task, tmux)

    _seam.wrap(reaper, "reconcile", reconcile)


def main(argv: list[str]) -> int:
    return _seam.run("kill0", argv, apply)
