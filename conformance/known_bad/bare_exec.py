"""bare_exec (P10): the agent is ``exec``'d as the pane's process; no wrapper survives to record its exit.

What it does wrong: the pane process does the start handshake and then ``execvpe``'s ARGV in place (the
``tmux send-keys 'exec claude ...'`` fix for P1 from the seed), so agent_pid is right but nobody is left
to wait for the agent: no exit record, no result reading, no heartbeat supervision. When the agent ends
the pane closes and the dispatcher can only say ``crashed/supervisor_lost`` with ``exit_code: null``:
an agent that exited 0 (or 3) is indistinguishable from one that was killed.
Caught by: the P10 exit-status checks (and every check that needs the exit code or the result).
"""

from __future__ import annotations

import os
import select
import signal

from conformance.known_bad import _seam
from runner.clock import Deadline

HANDSHAKE_TIMEOUT = 60.0


def wait_go(fd: int, timeout: float = HANDSHAKE_TIMEOUT) -> bool:
    """Wait for the CLI's "go" on the FIFO (a fixed deadline, never a bare sleep)."""
    dl = Deadline(timeout)
    buf = b""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    try:
        while not dl.expired():
            if not poller.poll(int(dl.cap(0.5) * 1000) + 1):
                continue
            try:
                chunk = os.read(fd, 64)
            except (BlockingIOError, InterruptedError):
                continue
            buf += chunk
            if b"go" in buf:
                return True
            if not chunk:
                select.select([], [], [], dl.cap(0.01))
        return False
    finally:
        os.close(fd)


def exec_mode(argv: list[str]) -> int:
    """Pane process: handshake like the wrapper, then become the agent."""
    from runner import states
    from runner.clock import wall
    from runner.procid import ProcessIdentity
    from runner.wrapper import Wrapper

    (taskdir,) = argv
    w = Wrapper(taskdir)
    w.install_signals()
    me = ProcessIdentity.me()
    env = w.agent_env()
    w.store.update(
        w.task_id,
        wrapper_pid=me.pid,
        wrapper_start=me.start,
        agent_pid=me.pid,
        agent_start=me.start,
        agent_started_at=me.started_at(),
        started_at=wall(),
    )
    go_fd = os.open(w.p("ctl.go"), os.O_RDONLY | os.O_NONBLOCK)  # reader first, so "go" is never lost
    w.ack(f"spawned {me.pid} {me.start}")
    if not wait_go(go_fd):
        w.store.transition(w.task_id, states.FAILED, "spawn_failed")
        return 0
    w.store.transition(w.task_id, states.RUNNING, "spawned", expect=[states.STARTING])
    w.store.close()
    signal.set_wakeup_fd(-1)
    for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD, signal.SIGINT, signal.SIGPIPE):
        signal.signal(s, signal.SIG_DFL)
    os.chdir(w.task["cwd"])
    argv0 = w.task["argv"]
    try:
        os.execvpe(argv0[0], argv0, env)
    except OSError:
        os._exit(127)
    return 127  # pragma: no cover


def apply() -> None:
    from runner import tasks

    tasks.STOP_TIMEOUT = 0.5  # nobody will record `stopped` for it: don't wait the reference's 8 s
    _seam.swap_pane_module("bare_exec", "_exec")


def main(argv: list[str]) -> int:
    return _seam.run("bare_exec", argv, apply, modes={"_exec": exec_mode})
