"""tmux_no_timeout (P14): tmux calls without a timeout; status asks tmux and hangs on a frozen server.

What it does wrong: ``Tmux.run`` runs tmux with no timeout, and `status` does what most dispatchers do
(the seeds' "has-session && echo running"): asks tmux whether the session is there. With the tmux server
stopped (SIGSTOP), `status` (and stop/send/start) block forever instead of answering within 5 s.
Caught by: the P14 frozen-server checks.
"""

from __future__ import annotations

import subprocess
from typing import Any

from conformance.known_bad import _seam


def run_forever(self: Any, *args: str, timeout: float | None = None, check: bool = True) -> Any:
    from runner.tmux import TmuxError, TmuxMissing

    argv = [self.binary, *self.socket_args, *args]
    try:
        cp = subprocess.run(
            argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace", env=self.env
        )  # no timeout= : the flaw
    except FileNotFoundError:
        raise TmuxMissing(f"tmux not runnable at {self.binary}") from None
    if check and cp.returncode != 0:
        raise TmuxError(argv, cp.returncode, cp.stderr)
    return cp


def apply() -> None:
    from runner import states
    from runner.tasks import Runner
    from runner.tmux import Tmux

    Tmux.run = run_forever  # type: ignore[method-assign]

    def status(orig: Any, self: Runner, task_id: str) -> dict[str, Any]:
        t = self.task(task_id)
        if not states.is_terminal(t["state"]):
            self.tmux.has_session(t["session"])  # "is it still running?" -- unbounded
        return orig(self, task_id)

    _seam.wrap(Runner, "status", status)


def main(argv: list[str]) -> int:
    return _seam.run("tmux_no_timeout", argv, apply)
