"""no_flush (P3): when the agent ends, the log pipe is killed at once instead of being drained.

What it does wrong: the log filter batches its writes (block buffering, as ``sed ... >> LOG`` or a
Python filter writing to a file does by default), and when the agent ends the supervisor kills the pipe-pane process
straight away -- no end marker, no waiting for the pipe to catch up and flush. The pipe dies with its
last buffer unwritten (and whatever was still in flight through tmux), so the end of every log is lost:
a burst printed right before exit never reaches the log.
Caught by: P03.log.burst-kept (and, since every log loses its tail, the other P03 log checks).
"""

from __future__ import annotations

import os
import time
from typing import Any

from conformance.known_bad import _seam

PIPE_UP_WAIT_S = 5.0
# the filter batches its writes BLOCK bytes at a time; not a power of two, so a log whose length is a
# multiple of a power of two (the suite's 256 KiB burst) does not happen to end on a batch boundary
BLOCK = 5000


def logpipe_mode(argv: list[str]) -> int:
    """The pipe process: the reference filter, writes batched in blocks; the remainder only at EOF."""
    from runner.atomicio import write_atomic
    from runner.logpipe import Stripper
    from runner.procid import ProcessIdentity

    log_path, taskdir, _nonce = argv
    me = ProcessIdentity.me()
    write_atomic(os.path.join(taskdir, "logpipe.pid"), f"{me.pid} {me.start}\n")
    s = Stripper()
    pending = bytearray()
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    while True:  # block buffering: whole blocks go out, the remainder waits (until EOF)
        try:
            data = os.read(0, 65536)
        except InterruptedError:
            continue
        pending += (s.feed(data) if data else s.finish()).encode()
        cut = len(pending) if not data else len(pending) - len(pending) % BLOCK
        if cut:
            os.write(fd, pending[:cut])
            del pending[:cut]
        if not data:
            os.close(fd)
            return 0


def apply() -> None:
    from runner.tmux import Tmux

    def pipe_pane(orig: Any, self: Tmux, pane: str, command: str | None) -> None:
        if command is not None:
            command = command.replace("-m runner.logpipe", "-m conformance.known_bad no_flush _logpipe", 1)
        orig(self, pane, command)

    _seam.wrap(Tmux, "pipe_pane", pipe_pane)


def pane_apply() -> None:
    from runner.clock import Deadline
    from runner.procid import ProcessIdentity, kill_tree
    from runner.wrapper import Wrapper

    def flush_log(self: Wrapper) -> None:
        dl = Deadline(PIPE_UP_WAIT_S)  # a pipe still starting up is ended too, once it says who it is
        while True:
            try:
                with open(self.p("logpipe.pid")) as f:
                    pid, start = (int(x) for x in f.read().split())
                break
            except (OSError, ValueError):
                if dl.expired():
                    return
                time.sleep(0.02)
        kill_tree([ProcessIdentity(pid, start)], None, term_timeout=0.5)  # no end marker, no drain

    Wrapper.flush_log = flush_log  # type: ignore[method-assign]


def main(argv: list[str]) -> int:
    return _seam.run("no_flush", argv, apply, pane_apply, modes={"_logpipe": logpipe_mode})
