"""done_from_log (P3): completion is read from the log text (``__TASK_DONE__``, "exit code 0").

What it does wrong: the in-pane supervisor greps the captured output each pass; once it sees a done
marker it declares the task ``succeeded`` -- ending an agent that is still working, or overriding the
non-zero exit status / signal of an agent that printed the marker and then failed.
Caught by: the P03 done-marker checks (fake agent ``--fake-done``).
"""

from __future__ import annotations

import re
import time
from typing import Any

from conformance.known_bad import _seam

DONE_RE = re.compile(rb"__TASK_DONE__|exit code 0\b", re.IGNORECASE)
SETTLE_S = 0.5  # the log lags the pane a little: give it this long once the agent has exited


def log_says_done(log_path: str) -> bool:
    try:
        with open(log_path, "rb") as f:
            return DONE_RE.search(f.read()) is not None
    except OSError:
        return False


def pane_apply() -> None:
    from runner import states

    log_path = _seam.task_json(_seam.pane_taskdir())["log_path"]
    orig = states.decide

    def decide(o: Any) -> Any:
        if states.is_terminal(o.state) or o.intent is not None:
            return orig(o)
        if not o.exited:
            if log_says_done(log_path):
                return states.Decision(states.KILL, states.SUCCEEDED, "exited")
            return orig(o)
        d = orig(o)
        if d.state == states.SUCCEEDED:
            return d
        deadline = time.monotonic() + SETTLE_S
        while True:
            if log_says_done(log_path):
                return states.Decision(states.END, states.SUCCEEDED, "exited")
            if time.monotonic() >= deadline:
                return d
            time.sleep(0.05)

    states.decide = decide


def main(argv: list[str]) -> int:
    return _seam.run("done_from_log", argv, None, pane_apply)
