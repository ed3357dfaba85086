"""no_grace (P12): the agent is killed as ``hung`` the moment its heartbeat is stale; no grace period.

What it does wrong: ``DISPATCH_GRACE_S`` is ignored for staleness (it is still honoured after a result):
an agent that pauses its heartbeat for a little more than ``STALE_AFTER`` and then resumes, or writes
its result during what should be the grace period, is killed and recorded ``hung``. (No ``stalled``
state is ever entered.)
Caught by: the P12 grace / result-during-grace checks.
"""

from __future__ import annotations

from typing import Any

from conformance.known_bad import _seam


def pane_apply() -> None:
    from runner import states

    orig = states.decide

    def decide(o: Any) -> Any:
        d = orig(o)
        if d.kind in (states.KILL, states.END) or states.is_terminal(o.state) or o.intent is not None:
            return d
        if o.stale_after > 0 and o.result != states.VALID:
            last = o.started if o.last_beat_change is None else o.last_beat_change
            if o.now - last >= o.stale_after:
                return states.Decision(states.KILL, states.HUNG, "heartbeat_stale")
            if d.kind == states.ENTER and d.state == states.STALLED:
                return states.Decision(states.NONE, next_check=d.next_check)
        return d

    states.decide = decide


def main(argv: list[str]) -> int:
    return _seam.run("no_grace", argv, None, pane_apply)
