"""Waiting for a fake agent to boot without blaming a slow boot on the check's pitfall (P06, P12).

A Python fake agent can take seconds to start on a loaded 2-core machine, and a dispatcher counts
staleness from the task's start until the first beat. An agent that has not journaled what the check
needs by then is ended ``hung`` before the check's event even happened: that is an unmet precondition
(``blocked``), not the pitfall. Only a dispatcher that ends the task sooner than ``stale+grace`` after
the check called ``start`` (the earliest its own start can be) has provably judged too early: a failure.
"""

from __future__ import annotations

import time

from conformance.context import Agent, Ctx, journal_api
from conformance.harness import TERMINAL

COVERS_BOOT = "no other check: the fake agent's start-up time on this (loaded) machine"


def start_and_await(
    dispatch: Ctx, agent: Agent, event: str, timeout: float, count: int = 1
) -> tuple[str, float]:
    """Start ``agent``, wait until it journals ``count`` x ``event``; return (task id, start time).

    Blocked when the agent never got there in ``timeout`` or the task ended at or after ``stale+grace``
    from the start call (its boot ate the budget); a failure when the task ended provably sooner.
    """
    t0 = time.monotonic()
    tid = dispatch.run_agent(agent)
    k = dispatch.knobs
    deadline = t0 + timeout
    ended: dict | None = None
    ended_after = 0.0
    while time.monotonic() < deadline:
        if len(journal_api().all_of(agent.events(), event)) >= count:
            return tid, t0
        task = dispatch.impl.status(tid)  # one process: its own start-up paces this loop
        if task.get("state") in TERMINAL:
            ended, ended_after = task, time.monotonic() - t0
            if len(journal_api().all_of(agent.events(), event)) >= count:
                return tid, t0
            break
        try:  # between two `status` processes, watch the journal rather than sleep
            journal_api().wait_for(agent.journal, event, 0.3, count=count)
            return tid, t0
        except TimeoutError:
            pass
    seen = agent.names()[-5:]
    if ended is not None:
        assert ended_after >= k.stale + k.grace - 0.05, (
            f"task ended {ended.get('state')!r} (reason {ended.get('reason')!r}) {ended_after:.2f}s after "
            f"start, before stale+grace ({k.stale + k.grace:.1f}s) could pass even counted from the start"
        )
        if ended.get("state") == "hung":
            _assert_a_silence_allowed_it(agent, t0, t0 + ended_after, k.stale + k.grace)
        detail = (
            f"it ended {ended.get('state')!r} ({ended.get('reason')!r}) {ended_after:.1f}s after start, "
            f"the agent had journaled {seen} (booting slower than stale+grace {k.stale + k.grace:.1f}s)"
        )
    else:
        detail = f"no {count}x {event!r} after {timeout:.0f}s; the agent journaled {seen}"
    dispatch.require(False, f"the agent must journal {event!r} before its task ends", COVERS_BOOT, detail)
    raise AssertionError("unreachable")  # require(False) raises Blocked


def _assert_a_silence_allowed_it(agent: Agent, t0: float, seen_end: float, limit: float) -> None:
    """A `hung` seen by `seen_end` needs a heartbeat silence of `limit` before it: from the start call to
    the first beat, or between two beats. An agent that beat all along was live: ending it hung is the
    pitfall (a dispatcher without grace did so under load in CI's bookworm container), not a slow boot.
    """
    beats = [e.mono for e in agent.all("heartbeat") if e.mono <= seen_end]
    if not beats:
        return  # never beat: a slow boot, blocked
    points = [t0, *beats, seen_end]
    longest = max(b - a for a, b in zip(points, points[1:], strict=False))
    assert longest >= limit - 0.05, (
        f"task ended 'hung' by {seen_end - t0:.2f}s after start although the agent beat all along "
        f"(its longest silence {longest:.2f}s, stale+grace {limit:.1f}s)"
    )
