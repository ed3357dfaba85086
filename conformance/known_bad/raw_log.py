"""raw_log (P3): the log pipe copies the pane's bytes verbatim, like ``cat >> LOG``.

What it does wrong: the pipe-pane command writes what tmux hands it unfiltered: ANSI/OSC escape
sequences, CR LF line ends, C0 controls and whatever byte sequences the pane produced stay in the log
(and `logs` decodes it with replacement characters). It still acknowledges the end marker, so nothing
is lost -- the log is just not plain UTF-8 text.
Caught by: P03.log.plain-utf8.
"""

from __future__ import annotations

import os
from typing import Any

from conformance.known_bad import _seam


def logpipe_mode(argv: list[str]) -> int:
    """The pipe process: raw copy of stdin to the log; ack the wrapper's end marker when it passes."""
    from runner.atomicio import write_atomic
    from runner.procid import ProcessIdentity

    log_path, taskdir, nonce = argv
    me = ProcessIdentity.me()
    write_atomic(os.path.join(taskdir, "logpipe.pid"), f"{me.pid} {me.start}\n")
    want = b"\x1b]dk-end;" + nonce.encode() + b"\x07"
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    tail = b""
    try:
        while True:
            try:
                data = os.read(0, 65536)
            except InterruptedError:
                continue
            if not data:
                return 0
            os.write(fd, data)  # verbatim (the flaw)
            window = tail + data
            if want in window:
                os.fsync(fd)
                write_atomic(os.path.join(taskdir, "logpipe.ack"), nonce)
                return 0
            tail = window[-len(want) :]
    finally:
        os.close(fd)


def apply() -> None:
    from runner.tmux import Tmux

    def pipe_pane(orig: Any, self: Tmux, pane: str, command: str | None) -> None:
        if command is not None:
            command = command.replace("-m runner.logpipe", "-m conformance.known_bad raw_log _logpipe", 1)
        orig(self, pane, command)

    _seam.wrap(Tmux, "pipe_pane", pipe_pane)


def main(argv: list[str]) -> int:
    return _seam.run("raw_log", argv, apply, modes={"_logpipe": logpipe_mode})
