"""shell_pid (P1): launches through the pane's shell with send-keys and records ``#{pane_pid}``.

What it does wrong: the session starts the default shell; the supervisor's command line is typed into
it with ``send-keys`` (followed by ``; exit`` so the pane still closes), and the task's ``agent_pid``
is taken from ``#{pane_pid}`` -- the shell, not the agent. Supervision itself is the reference's, so
states are right; only the recorded agent identity is wrong (what a dispatcher that `kill -0`s that PID,
or reports it, would get wrong).
Caught by: the P01 agent-pid checks.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Sequence
from typing import Any

from conformance.known_bad import _seam


def apply() -> None:
    from runner.procid import ProcessIdentity
    from runner.tasks import Runner
    from runner.tmux import Tmux

    def new_session(orig: Any, self: Tmux, name: str, argv: Sequence[str], *a: Any, **kw: Any) -> Any:
        env = dict(kw.pop("env", None) or {})
        env.setdefault("HISTFILE", "/dev/null")  # do not touch the user's shell history
        session, pane = orig(self, name, [], *a, env=env, **kw)  # the pane runs the default shell
        _await_prompt(self, pane.id)
        self.run("send-keys", "-t", pane.id, "-l", shlex.join(list(argv)) + "; exit")
        self.run("send-keys", "-t", pane.id, "Enter")
        # supervision stays the reference's: its supervisor is the process the shell runs for the typed
        # line (the wrapper), not the shell; found here so only the agent pid below is wrong
        sup = _typed_child(pane.pid) if pane.pid else None
        return session, pane._replace(pid=sup)

    _seam.wrap(Tmux, "new_session", new_session)

    def launch(orig: Any, self: Runner, store: Any, row: dict[str, Any], *a: Any, **kw: Any) -> Any:
        out = orig(self, store, row, *a, **kw)
        t = store.get(row["task_id"])
        if t and t.get("pane_id"):
            pid = self.tmux.pane_pid(t["pane_id"])  # the seed's list-panes -F '#{pane_pid}'
            ident = ProcessIdentity.of(pid) if pid else None
            if ident is not None:
                store.update(
                    row["task_id"],
                    agent_pid=ident.pid,
                    agent_start=ident.start,
                    agent_started_at=ident.started_at(),
                )
        return out

    _seam.wrap(Runner, "_launch", launch)


def _await_prompt(tmux: Any, pane_id: str) -> None:
    """Until the shell has drawn its prompt (it reads the terminal from then on). Keys typed earlier are
    echoed by the tty and then dropped by the starting shell: 3 of 30 lines were lost so under CI's load,
    and a lost line is a start that hangs (0 of 30 after waiting for the prompt)."""
    from runner.clock import Deadline

    dl = Deadline(20.0)
    delay = 0.002
    while not dl.expired():
        cp = tmux.run("capture-pane", "-p", "-t", pane_id, check=False)
        if cp.returncode != 0 or cp.stdout.strip():
            return  # drawn (or the pane is gone: the start fails on its own)
        time.sleep(delay)
        delay = min(0.05, delay * 2)


def _typed_child(shell_pid: int) -> int | None:
    """The shell's child running the typed command line, once the shell has read and forked it."""
    from runner.clock import Deadline
    from runner.procid import children_map

    dl = Deadline(20.0)
    delay = 0.002
    while not dl.expired():
        kids = children_map().get(shell_pid, [])
        if kids:
            return kids[0]
        time.sleep(delay)
        delay = min(0.05, delay * 2)
    return None


def main(argv: list[str]) -> int:
    return _seam.run("shell_pid", argv, apply)
