"""late_pipe (P3): pipe-pane is attached after the agent has started, so its first output is lost.

What it does wrong: `start` lets the agent go first and attaches ``pipe-pane`` once the agent has
visibly come up (its first output is in the pane, the seeds' "wait for the prompt, then pipe" order)
instead of before releasing it. Whatever the agent printed before the pipe was on never reaches the log.
Caught by: P03.log.first-byte.
"""

from __future__ import annotations

import time
from typing import Any

from conformance.known_bad import _seam

UP_WAIT_S = 5.0  # how long `start` waits for the agent's first output before piping anyway


def apply() -> None:
    from runner import tasks
    from runner.tmux import Tmux, TmuxError

    deferred: list[tuple[Any, str, str]] = []

    def pipe_pane(orig: Any, self: Tmux, pane: str, command: str | None) -> None:
        if command is None:
            return orig(self, pane, command)
        deferred.append((self, pane, command))  # attached only after "go" (the flaw)
        return None

    def write_fifo(orig: Any, path: Any, data: bytes, dl: Any) -> bool:
        ok = orig(path, data, dl)
        while deferred:
            tmux, pane, command = deferred.pop()
            end = time.monotonic() + UP_WAIT_S
            while time.monotonic() < end:  # wait until the agent has shown something
                cp = tmux.run("capture-pane", "-p", "-t", pane, check=False)
                if cp.returncode != 0 or cp.stdout.strip():
                    break
                time.sleep(0.02)
            try:
                Tmux.pipe_pane.__wrapped__(tmux, pane, command)  # type: ignore[attr-defined]
            except TmuxError:
                pass
        return ok

    _seam.wrap(Tmux, "pipe_pane", pipe_pane)
    _seam.wrap(tasks, "_write_fifo", write_fifo)


def main(argv: list[str]) -> int:
    return _seam.run("late_pipe", argv, apply)
