"""A decision's event time is never before the evidence it rests on (the chaos checker relies on it).

In CI's macos-like container a chaos program's `kill_session` fault was stamped 30 ms *after* the
reference's `crashed/session_lost` for the same task: the supervisor stamped its look (`now`), then,
while it read the result and heartbeat files, tmux's SIGHUP arrived, and the look reported the session
lost at a time before the session was killed. The fault point `wrapper.observe=hold` holds the
supervisor right after the stamp, every pass, so the test kills the session inside that window for sure.
"""

from __future__ import annotations

import errno
import os
import signal
import time
from typing import Any

from test_runner_support import dispatch, pyagent, row, start_ok, tmux, wait_done, wait_for

from runner.procid import ProcessIdentity

SLEEPER = "import time\ntime.sleep(60)\n"
TERMINAL = ("crashed", "stopped", "failed", "succeeded", "hung", "timed_out")


def _held(fifo: str) -> int | None:
    """The FIFO's write end once the supervisor waits at its fault point (its read end is open)."""
    try:
        return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as e:
        if e.errno != errno.ENXIO:
            raise
        return None


def _release(fd: int) -> bool:
    """Write the byte the held supervisor reads. EPIPE: the write end was opened against a reader that
    was just leaving (the look before, let go), or one whose open() a signal interrupted for a retry: the
    next look's reader will come (or the supervisor has recorded its end)."""
    try:
        os.write(fd, b"x")
        return True
    except BrokenPipeError:
        return False


def _unhold(sb: Any) -> None:
    """Kill a supervisor still held (by identity), then let `stop` end the rest of the task."""
    r = row(sb, "st")
    if r["state"] in TERMINAL or not r["wrapper_pid"]:
        return
    ProcessIdentity(r["wrapper_pid"], r["wrapper_start"]).signal(signal.SIGKILL)
    dispatch(sb, "stop", "st")


def test_session_lost_is_stamped_after_the_session_was_killed(sandbox):
    fifo = str(sandbox.root / "hold.fifo")
    os.mkfifo(fifo)
    env = {"DISPATCH_FAULT_POINT": "wrapper.observe=hold", "DISPATCH_FAULT_HOLD": fifo}
    start_ok(sandbox, "st", *pyagent(SLEEPER), env=env)
    try:
        r = row(sandbox, "st")
        fd = wait_for(lambda: _held(fifo), 15, "the supervisor held at its first look")
        killed_at = time.monotonic()  # the look in progress was stamped before this
        assert tmux(sandbox, "kill-session", "-t", "=" + r["session"]).returncode == 0

        # let it go look after look (each one holds again) until it has recorded the end
        def ended() -> bool:
            return row(sandbox, "st")["state"] in TERMINAL

        held: int | None = fd
        while held is not None:
            wait_for(lambda h=held: _release(h) or ended(), 15, "the held supervisor let go")
            os.close(held)
            nxt = wait_for(lambda: _held(fifo) or ended(), 15, "its next look")
            held = None if nxt is True else nxt
    finally:  # whatever failed above, never leave a supervisor held at its fault point (a leak)
        _unhold(sandbox)
    t = wait_done(sandbox, "st", 20)
    assert (t["state"], t["reason"]) == ("crashed", "session_lost"), t
    ev = dispatch(sandbox, "events", "st")
    assert ev.rc == 0, ev.err
    (end,) = [e for e in ev.doc if e["state"] == "crashed"]
    assert end["mono"] >= killed_at, (
        f"session_lost stamped {killed_at - end['mono']:.3f} s before the session was killed: "
        "the look's time precedes a SIGHUP it reported"
    )
