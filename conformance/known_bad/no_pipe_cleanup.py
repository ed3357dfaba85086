"""no_pipe_cleanup (P4): pipe-pane is never turned off and the pipe process is never ended.

What it does wrong: the supervisor still flushes the log (end marker + ack) but then leaves the pipe
process alone, `stop` and `reap` never end it by identity, and ``pipe-pane`` (off) is never issued. The
pipe command here behaves like the seed's ``cat``/``sed`` filter that P4 describes: once its pane is gone
it sits idle holding the log file open -- so every task leaves one pipe process behind.
Caught by: the P04 pipe-pane leak checks.
"""

from __future__ import annotations

import signal
import sys
from typing import Any

from conformance.known_bad import _seam


def logpipe_mode(argv: list[str]) -> int:
    """The pipe process: the reference filter, then idle forever (nobody ends it)."""
    from runner import logpipe

    log_path, taskdir, nonce = argv
    fd = open(log_path, "ab")  # held open for as long as it lives, like an orphaned `cat >> LOG`
    logpipe.run(log_path, taskdir, nonce)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    while True:
        signal.pause()
    fd.close()  # pragma: no cover


def apply() -> None:
    from runner import reaper
    from runner.tmux import Tmux

    def pipe_pane(orig: Any, self: Tmux, pane: str, command: str | None) -> None:
        if command is None:
            return  # never turned off
        command = command.replace("-m runner.logpipe", "-m conformance.known_bad no_pipe_cleanup _logpipe", 1)
        orig(self, pane, command)

    _seam.wrap(Tmux, "pipe_pane", pipe_pane)
    reaper.logpipe_ident = lambda task: None  # stop/reap never find it to end it


def pane_apply() -> None:
    import os
    import time

    from runner.clock import Deadline
    from runner.wrapper import END_MARKER_WAIT, Wrapper, end_marker

    def flush_log(self: Wrapper) -> None:
        """End marker and ack as the reference does -- but the pipe process is left running."""
        if not os.path.exists(self.p("logpipe.pid")):
            return
        nonce = self.task["log_nonce"]
        try:
            os.write(1, end_marker(nonce))
        except OSError:
            pass
        dl = Deadline(END_MARKER_WAIT)
        while not dl.expired():
            try:
                with open(self.p("logpipe.ack")) as f:
                    if f.read().strip() == nonce:
                        return
            except OSError:
                pass
            time.sleep(0.02)

    Wrapper.flush_log = flush_log  # type: ignore[method-assign]


def main(argv: list[str]) -> int:
    return _seam.run("no_pipe_cleanup", argv, apply, pane_apply, modes={"_logpipe": logpipe_mode})


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
