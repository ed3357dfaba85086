"""mtime_clock (P6): heartbeat staleness = wall-clock now - the heartbeat file's mtime.

What it does wrong: instead of timing *changes of content* on the monotonic clock, the supervisor
computes ``time.time() - os.stat(hb).st_mtime``: a wall-clock jump (NTP, a FakeClock) makes a live agent
look stale (killed as ``hung``) or a dead one fresh, and an mtime that does not move (coarse timestamps,
a heartbeat file whose mtime is set back) makes a beating agent look stale.
Caught by: the P06 clock-jump / coarse-mtime checks.
"""

from __future__ import annotations

import os
import time
from typing import Any

from conformance.known_bad import _seam


def pane_apply() -> None:
    from runner import states

    hb = os.path.join(_seam.pane_taskdir(), "heartbeat")
    orig = states.decide

    def decide(o: Any) -> Any:
        if o.stale_after > 0:
            try:
                age = time.time() - os.stat(hb).st_mtime
                o = o.replace(last_beat_change=o.now - age)
            except OSError:
                o = o.replace(last_beat_change=None)
        return orig(o)

    states.decide = decide


def main(argv: list[str]) -> int:
    return _seam.run("mtime_clock", argv, None, pane_apply)
