"""Deterministic fault points: a recovery test makes a process die exactly in a window it names (P9, P12).

Windows between a decision and its record are a few milliseconds wide; hoping a SIGKILL lands in one
makes a test that passes on a quiet machine whatever the code does. A test instead sets
``DISPATCH_FAULT_POINT=<point>[,<point>...]`` (explicit and test-only: nothing else sets it) and the
process SIGKILLs itself when it reaches that point, every time. ``<point>=stop`` SIGSTOPs it instead,
so the test can look around first and then kill it by identity. ``<point>=hold`` blocks it there until
the test writes a byte into the FIFO named by ``DISPATCH_FAULT_HOLD``: a pane's own process cannot be
held by SIGSTOP, because tmux SIGCONTs a pane process that stops.
"""

from __future__ import annotations

import _signal as signal  # not `signal`: its enums cost a supervisor 0.8 MiB
import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

ENV = "DISPATCH_FAULT_POINT"
HOLD_ENV = "DISPATCH_FAULT_HOLD"

# every point, so a typo in a test is an error rather than a fault that never fires
POINTS = frozenset(
    {
        "wrapper.observe",  # one look stamped, its heartbeat not yet read (every pass; =hold: tmux SIGCONTs =stop)
        "wrapper.after_intent",  # intent.json written, the agent not yet signalled
        "wrapper.after_kill",  # the agent ended and reaped, the exit record not yet written
        "wrapper.after_exit_record",  # exit.json written, the terminal state not yet recorded
        "start.before_pipe",  # the wrapper acked and logpipe.wanted exists; pipe-pane not yet asked
        "start.before_go",  # the wrapper acked and the log pipe is on; "go" not yet sent
        "start.before_ack",  # the session (and its wrapper) is up; the ack not yet read
    }
)


def armed(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The points armed in `env` (default: this process's environment) and their action."""
    spec = (os.environ if env is None else env).get(ENV, "")
    out: dict[str, str] = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        name, _, action = item.partition("=")
        if name not in POINTS or action not in ("", "kill", "stop", "hold"):
            raise ValueError(f"{ENV}: unknown fault point {item!r}")
        out[name] = action or "kill"
    return out


def hit(point: str, env: Mapping[str, str] | None = None) -> None:
    """Die (or freeze) here if a test armed `point`; a no-op otherwise."""
    assert point in POINTS, point
    action = armed(env).get(point)
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif action == "stop":
        os.kill(os.getpid(), signal.SIGSTOP)
    elif action == "hold":
        # opening blocks until the test opens the FIFO to write (it then knows we are here), the read
        # until it writes; a signal in between runs its handler and the wait goes on (PEP 475)
        fd = os.open((os.environ if env is None else env)[HOLD_ENV], os.O_RDONLY)
        try:
            os.read(fd, 1)
        finally:
            os.close(fd)
