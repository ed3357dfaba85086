"""result_then_hung (P12): a complete result does not suspend heartbeat staleness.

What it does wrong: while the agent runs, the supervisor judges it by its heartbeat alone; the result
file only counts once the agent has exited. An agent that writes its complete result and then goes
quiet (waiting to be collected, as interactive CLIs do) is declared stale and killed as ``hung``
instead of being ended ``succeeded`` (``completed_by_result``) after the grace period.
Caught by: P12.result-then-silence.succeeded.
"""

from __future__ import annotations

from typing import Any

from conformance.known_bad import _seam


def pane_apply() -> None:
    from runner import states

    orig = states.decide

    def decide(o: Any) -> Any:
        if not o.exited and o.result == states.VALID:
            o = o.replace(result=states.ABSENT, result_seen_at=None)  # the flaw
        return orig(o)

    states.decide = decide


def main(argv: list[str]) -> int:
    return _seam.run("result_then_hung", argv, None, pane_apply)
