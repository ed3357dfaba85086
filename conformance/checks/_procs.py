"""Black-box process roles of a running task, for checks that must work on any supervision structure.

A dispatcher may supervise from a wrapper inside the pane (the reference), from a monitor outside
tmux, from one long-lived daemon, or from nothing but its CLI calls. Checks that inject a supervisor
death or freeze supervision cannot rely on ``wrapper_pid``: every process of the check's sandbox
(they all carry its marker) that is neither the agent's tree nor the tmux server is "the task's
supervision" here, whatever its shape.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from dataclasses import dataclass

from conformance.context import Agent, Ctx
from conformance.isolation import find_marked


@dataclass
class Supervision:
    """The sandbox's non-agent, non-server processes (PIDs + start times) at one moment."""

    idents: list  # runner.procid identities, signalled only while still that very process

    def signal(self, sig: int) -> int:
        """Send ``sig`` to every one still alive; returns how many were hit."""
        return sum(1 for i in self.idents if i.signal(sig))

    @property
    def pids(self) -> list[int]:
        return [i.pid for i in self.idents]


def _server_pid(dispatch: Ctx) -> int | None:
    from faults.tmuxfault import server_identity

    try:
        return server_identity(dispatch.sandbox.socket).pid
    except (ProcessLookupError, OSError):
        return None


def supervision(dispatch: Ctx, agent: Agent, exclude: tuple[int, ...] = ()) -> Supervision:
    """Every process of the sandbox except the agent's tree, the tmux server and ``exclude``."""
    agents = {lk.pid for lk in agent.processes()}
    skip = agents | {_server_pid(dispatch), *exclude}
    found = [
        lk.identity
        for lk in find_marked(dispatch.sandbox.marker)
        if lk.pid not in skip and lk.identity and not _is_tmux_server(lk.pid)
    ]
    return Supervision(found)


def _is_tmux_server(pid: int) -> bool:
    """A tmux server (its title is `tmux: server`); also right when its PID is a namespace's."""
    try:
        with open(f"/proc/{pid}/comm", "rb") as f:
            return f.read().strip() == b"tmux: server"
    except OSError:
        return False


@contextlib.contextmanager
def frozen(sup: Supervision) -> Iterator[Supervision]:
    """SIGSTOP the supervision for the block; SIGCONT on the way out, whatever happens."""
    sup.signal(signal.SIGSTOP)
    try:
        yield sup
    finally:
        sup.signal(signal.SIGCONT)
