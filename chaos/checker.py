"""The chaos checker: which terminal outcomes a task may legitimately report, derived from ground truth.

Ground truth is what the fake agent journaled (its heartbeats, its result, how it ended) plus what the
chaos run itself did (faults, stops, killed CLI calls), all on the host's monotonic clock. Each thing
that could end a task is a :class:`Cause` with a time window ``[lo, hi]``: ``lo`` is the earliest a
correct dispatcher may act on it, ``hi`` the latest by which it surely has (``inf`` when the cause is
only possible). A reported outcome is accepted iff some cause allows it, could have come first (its
``lo`` is not after the earliest sure ``hi``), and was possible when the dispatcher decided (its ``lo``
is not after the decision). Where faults race, this accepts the whole set of legitimate outcomes.

Pure logic (no processes, no tmux), so every rule is unit-tested alone.
"""

from __future__ import annotations

import math
import os
import signal as _signal
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from runner.contract import LIVE as NON_TERMINAL  # noqa: F401  (re-exported for chaos.stateful)
from runner.contract import TERMINAL  # noqa: F401
from runner.contract import Knobs as ContractKnobs

INF = math.inf


def _scale() -> float:
    try:
        return max(0.1, float(os.environ.get("DK_CHAOS_SLACK_SCALE", "1")))
    except ValueError:
        return 1.0


@dataclass(frozen=True)
class Knobs(ContractKnobs):
    """The dispatcher knobs of a run (seconds) and the tolerances the checker allows around them.

    ``early``: how much earlier than nominal a journal time may be acted on (journal lines are written
    just after the act, fsync included). ``race``: how long after an agent's own end a racing fault may
    still win (the supervisor must notice the exit and record it). ``detect``: how late a dispatcher may
    be on a loaded 2-core machine (the conformance suite's slack).
    """

    stale: float = 0.5
    grace: float = 0.5
    max_lifetime: float = 4.0
    early: float = 0.15
    race: float = 1.0
    detect: float = 2.5

    @classmethod
    def scaled(cls, **kw: float) -> Knobs:
        s = _scale()
        k = cls(**kw)
        return cls(k.stale, k.grace, k.max_lifetime, k.early, k.race * s, k.detect * s)


class Violation(AssertionError):
    """The dispatcher reported something no history of operations, faults and journal allows."""


# -- facts ------------------------------------------------------------------------------------


@dataclass
class Fault:
    """A fault aimed at one task: kind, when it was applied (monotonic window), whether it landed."""

    kind: str  # kill_agent | kill_member | kill_supervisor | kill_session
    t0: float
    t1: float
    applied: bool = True
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class Stop:
    """One `stop` call: its window and whether it ran to completion (False: the CLI was killed)."""

    t0: float
    t1: float
    completed: bool = True


@dataclass
class Journal:
    """What the fake agent journaled, reduced to what the checker needs (monotonic times)."""

    started: float | None = None  # `start` event
    beats: list[float] = field(default_factory=list)
    result_at: float | None = None  # complete result visible
    result_complete: bool | None = None  # None: no result written
    ended: float | None = None  # `ending` event
    how: str | None = None  # exit | signal
    code: int | None = None
    signal: int | None = None

    @classmethod
    def from_events(cls, events: Iterable[Any]) -> Journal:
        """Build from ``fake_agents.journal.Event`` objects (only the agent's own pid counts)."""
        j = cls()
        agent_pid = None
        for e in events:
            if e.event == "start" and agent_pid is None:
                agent_pid = e.pid
                j.started = e.mono
            if agent_pid is not None and e.pid != agent_pid:
                continue
            if e.event == "heartbeat":
                j.beats.append(e.mono)
            elif e.event == "result":
                j.result_complete = bool(e.get("complete"))
                if j.result_complete:
                    j.result_at = e.mono
            elif e.event == "ending" and j.ended is None:
                j.ended = e.mono
                j.how = e.get("how")
                j.code = e.get("code")
                j.signal = e.get("signal")
        return j


@dataclass
class TaskFacts:
    """Everything known about one task: the start call, the plan, the journal, faults and stops."""

    task_id: str
    behaviour: str
    call_t0: float  # `start` call began
    call_t1: float  # `start` call returned (or was killed)
    journal: Journal
    result_doc: Any = None  # what the agent was told to write (None: no result file)
    start_killed: bool = False  # the `start` CLI was killed mid-call: its fate is open
    faults: list[Fault] = field(default_factory=list)
    stops: list[Stop] = field(default_factory=list)


@dataclass(frozen=True)
class Cause:
    """Something that may end the task, the outcomes it allows, and when."""

    label: str
    outcomes: frozenset[tuple[str, str | None]]  # (state, reason); reason None = any reason
    lo: float
    hi: float
    sure: bool
    nominal: float  # the ground-truth instant, for detection latency
    exit_code: int | None = None
    signal: int | None = None
    result: Any = None  # the result a `succeeded` must carry (None: must be null)
    check_fields: bool = False

    def allows(self, state: str, reason: str | None) -> bool:
        return any(s == state and (r is None or r == reason) for s, r in self.outcomes)


def _o(*pairs: tuple[str, str | None]) -> frozenset[tuple[str, str | None]]:
    return frozenset(pairs)


def agent_end(f: TaskFacts, k: Knobs) -> list[Cause]:
    """The agent ended on its own: how it ended decides the one outcome allowed."""
    j, end = f.journal, f.journal.ended
    if end is None:
        return []
    lo, hi = end - k.early, end + k.race
    if j.how == "signal":
        c = Cause(
            f"agent died by signal {j.signal}", _o(("crashed", None)), lo, hi, True, end, signal=j.signal
        )
    elif j.code != 0:
        c = Cause(f"agent exited {j.code}", _o(("failed", "exited")), lo, hi, True, end, exit_code=j.code)
    elif j.result_complete is False:
        label = "agent exited 0 with an incomplete result"
        c = Cause(label, _o(("failed", "invalid_result")), lo, hi, True, end, exit_code=0)
    else:
        label = "agent exited 0" + (" with a complete result" if j.result_complete else "")
        result = f.result_doc if j.result_complete else None
        c = Cause(label, _o(("succeeded", None)), lo, hi, True, end, exit_code=0, result=result)
    return [replace(c, check_fields=True)]


def result_then_grace(f: TaskFacts, k: Knobs) -> list[Cause]:
    """A complete result while the agent runs on: succeeded/completed_by_result after GRACE."""
    j = f.journal
    if j.result_at is None or (j.ended is not None and j.ended <= j.result_at + k.grace - k.early):
        return []
    t = j.result_at + k.grace
    outcome = _o(("succeeded", "completed_by_result"))
    label = "complete result, agent still running after grace"
    return [Cause(label, outcome, t - k.early, t + k.detect, True, t, result=f.result_doc, check_fields=True)]


def heartbeat_silence(f: TaskFacts, k: Knobs) -> list[Cause]:
    """The first heartbeat silence of at least STALE + GRACE before a complete result: hung."""
    j = f.journal
    limit = k.stale + k.grace
    points = [f.call_t0, *j.beats]
    gap_end = j.ended
    for fault in f.faults:  # a dead agent beats no more, but neither is it hung
        if fault.kind == "kill_agent" and fault.applied:
            gap_end = fault.t1 if gap_end is None else min(gap_end, fault.t1)
    for i, b in enumerate(points):
        nxt = points[i + 1] if i + 1 < len(points) else (gap_end if gap_end is not None else INF)
        if j.result_at is not None and b >= j.result_at:
            break
        if nxt - b >= limit - k.early:
            t = b + limit
            # Before the first beat the dispatcher's clock may start anywhere from the start call to its
            # return (the reference's starts with supervision, after "go"): hung is allowed from the
            # earliest, sure only counted from the latest. A start call slowed 3.7 s by load, then an
            # agent that ended at once without a beat, was "surely hung" counted from the call (trixie,
            # CI at load 20).
            sure_from = max(b, f.call_t1) if i == 0 else b
            sure = nxt - sure_from >= limit + k.detect
            # relative to the start call, as every time in a report (an absolute monotonic time here
            # read like a wall-clock jump)
            span = "ever" if nxt == INF else f"{nxt - b:.2f}s"
            label = f"heartbeat silent from {b - f.call_t0:+.2f} s for {span}"
            hi = sure_from + limit + k.detect if sure else INF
            return [Cause(label, _o(("hung", "heartbeat_stale")), t - k.early, hi, sure, t)]
    return []


def max_lifetime(f: TaskFacts, k: Knobs) -> list[Cause]:
    """The lifetime ends, counted from the start call (its end, at the latest)."""
    if k.max_lifetime <= 0:
        return []
    t = f.call_t0 + k.max_lifetime
    hi = f.call_t1 + k.max_lifetime + k.detect
    return [Cause("max lifetime", _o(("timed_out", "max_lifetime")), t - k.early, hi, True, t)]


def fault_kill_agent(fault: Fault, k: Knobs) -> Cause:
    outcome = _o(("crashed", "signaled"))
    sig = int(_signal.SIGKILL)
    label = "external SIGKILL of the agent"
    return Cause(label, outcome, fault.t0, fault.t1 + k.race, True, fault.t0, signal=sig, check_fields=True)


def fault_kill_supervisor(fault: Fault, k: Knobs) -> Cause:
    outcome = _o(("crashed", "supervisor_lost"), ("crashed", "session_lost"))
    return Cause("supervisor SIGKILLed", outcome, fault.t0, fault.t1 + k.race, True, fault.t0)


def fault_kill_session(fault: Fault, k: Knobs) -> Cause:
    # the pane's processes get SIGHUP: the agent may die of it before the supervisor acts
    outcome = _o(("crashed", "session_lost"), ("crashed", "signaled"), ("crashed", "supervisor_lost"))
    return Cause("tmux session killed from outside", outcome, fault.t0, fault.t1 + k.race, True, fault.t0)


# fault kind -> the cause it adds (kill_member: the agent stays healthy, no outcome of its own)
FAULT_CAUSES: dict[str, Callable[[Fault, Knobs], Cause]] = {
    "kill_agent": fault_kill_agent,
    "kill_supervisor": fault_kill_supervisor,
    "kill_session": fault_kill_session,
}


def faults(f: TaskFacts, k: Knobs) -> list[Cause]:
    """Each applied fault aimed at the task that can end it."""
    return [FAULT_CAUSES[x.kind](x, k) for x in f.faults if x.applied and x.kind in FAULT_CAUSES]


def stops(f: TaskFacts, k: Knobs) -> list[Cause]:
    """Each `stop` call; a killed one only maybe, and with no deadline."""
    outcome = _o(("stopped", "stop_requested"), ("stopped", None))
    return [
        Cause(
            "stop" if s.completed else "stop (CLI killed mid-call)",
            outcome,
            s.t0,
            s.t1 if s.completed else INF,
            s.completed,
            s.t0,
        )  # fmt: skip
        for s in f.stops
    ]


def start_killed(f: TaskFacts, k: Knobs) -> list[Cause]:
    """A `start` whose CLI was killed mid-call: the handshake may never complete."""
    if not f.start_killed:
        return []
    # start_abandoned: the wrapper saw its creator die before "go" (docs/architecture.md)
    outcome = _o(
        ("failed", "spawn_failed"), ("failed", "start_abandoned"), ("crashed", None), ("stopped", None)
    )
    return [Cause("start CLI killed mid-call", outcome, f.call_t0, INF, False, f.call_t1)]


# One function per cause; a new cause is one function here and one line in this list.
CAUSES: tuple[Callable[[TaskFacts, Knobs], list[Cause]], ...] = (
    agent_end,
    result_then_grace,
    heartbeat_silence,
    max_lifetime,
    faults,
    stops,
    start_killed,
)


def causes(f: TaskFacts, k: Knobs) -> list[Cause]:
    """Every cause that may end task ``f`` under knobs ``k`` (see the module docstring)."""
    cs = [c for rule in CAUSES for c in rule(f, k)]
    if f.start_killed and f.journal.started is None:
        # The start CLI died and no agent ever ran: no supervisor may exist to act in time, so no
        # cause is sure; whichever `reap` or `stop` comes first ends the record (seed 7 under 2x load:
        # t2's start killed at +0.25 s, the final reap at +9.45 s recorded timed_out/max_lifetime,
        # which the unsupervised 'heartbeat silent, hung by +3.50 s' had wrongly ruled out).
        cs = [replace(c, sure=False, hi=INF) for c in cs]
    return cs


@dataclass
class Judgement:
    """The verdict on one reported terminal outcome."""

    ok: bool
    message: str
    cause: Cause | None = None
    latency: float | None = None
    candidates: list[Cause] = field(default_factory=list)


def describe(cs: Sequence[Cause], base: float) -> str:
    rows = []
    for c in sorted(cs, key=lambda c: c.lo):
        outs = ",".join(sorted(f"{s}/{r or '*'}" for s, r in c.outcomes))
        hi = "inf" if c.hi == INF else f"{c.hi - base:+.2f}"
        rows.append(f"    {c.label}: {outs} in [{c.lo - base:+.2f}, {hi}]{' sure' if c.sure else ''}")
    return "\n".join(rows) or "    (none)"


def judge(f: TaskFacts, k: Knobs, task: dict[str, Any], decided: tuple[float, float]) -> Judgement:
    """Is terminal ``task`` (a contract task object) allowed, given it was decided within ``decided``?"""
    state, reason = task.get("state"), task.get("reason")
    cs = causes(f, k)
    base = f.call_t0
    surely_by = min((c.hi for c in cs if c.sure), default=INF)
    first = [c for c in cs if c.lo <= surely_by and c.lo <= decided[1]]
    head = (
        f"task {f.task_id} ({f.behaviour}) reported {state}/{reason} "
        f"(exit_code={task.get('exit_code')}, signal={task.get('signal')}), decided in "
        f"[{decided[0] - base:+.2f}, {decided[1] - base:+.2f}] s after start"
    )
    ctx = f"\n  causes (times relative to start):\n{describe(cs, base)}"
    matching = [c for c in first if c.allows(state, reason)]
    if not matching:
        return Judgement(False, head + ": no cause allows it" + ctx, candidates=first)
    problems = []
    for c in matching:
        p = _field_problem(c, task)
        if p is None:
            lat = max(0.0, decided[1] - c.nominal) if decided[0] == decided[1] else None
            return Judgement(True, head, c, lat, first)
        problems.append(f"{c.label}: {p}")
    return Judgement(False, head + ": " + "; ".join(problems) + ctx, candidates=first)


def _field_problem(c: Cause, task: dict[str, Any]) -> str | None:
    """Exit code, signal and result must match the cause (P5: a result only when complete)."""
    if task.get("state") == "failed" and task.get("result") is not None:
        return f"a failed task carries a result {task.get('result')!r}"
    if not c.check_fields:
        return None
    if c.signal is not None and task.get("signal") != c.signal:
        return f"signal should be {c.signal}, is {task.get('signal')}"
    if c.exit_code is not None and task.get("reason") == "exited" and task.get("exit_code") != c.exit_code:
        return f"exit_code should be {c.exit_code}, is {task.get('exit_code')}"
    if task.get("state") == "succeeded" and task.get("result") != c.result:
        return (
            f"result should be {c.result!r}, is {task.get('result')!r} (a completed result lost or invented)"
        )
    return None


def overdue(f: TaskFacts, k: Knobs, now: float) -> Cause | None:
    """A sure cause whose deadline has passed (the task should be terminal by ``now``), or None."""
    due = [c for c in causes(f, k) if c.sure and c.hi < now]
    return min(due, key=lambda c: c.hi) if due else None


def percentiles(values: Sequence[float], qs: Sequence[float] = (50, 95, 99)) -> dict[str, float]:
    """Nearest-rank percentiles (no interpolation: every value reported was measured)."""
    if not values:
        return {}
    xs = sorted(values)
    out = {}
    for q in qs:
        i = max(0, min(len(xs) - 1, math.ceil(q / 100 * len(xs)) - 1))
        out[f"p{q:g}"] = xs[i]
    return out
