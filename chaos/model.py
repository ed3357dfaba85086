"""The model (Jepsen's word): what the dispatcher has told us about each task, held against itself.

Every task object any call returns goes through :func:`observe`: a task no start created, a state
outside the contract, a terminal state that changes or goes back to live are violations on the spot.
The first terminal outcome is judged (:func:`judge_task`, by :mod:`chaos.checker` on the ground
truth), and after every step :func:`check_list` demands each started task exactly once in `list`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chaos.checker import NON_TERMINAL, TERMINAL, TaskFacts, Violation, judge


@dataclass
class TaskModel:
    """The runner's view of one task: the facts for the checker and what was observed."""

    facts: TaskFacts
    journal: Path
    marker_hint: str | None = None
    session: str | None = None
    exists: str = "yes"  # yes | maybe (start CLI killed) | no (refused)
    seen: bool = False  # ever returned by the dispatcher
    last_live: float = 0.0  # latest call start at which the task was observed non-terminal
    terminal: dict[str, Any] | None = None
    terminal_seen: float | None = None
    decided: tuple[float, float] | None = None
    verdict: Any = None

    @property
    def tid(self) -> str:
        return self.facts.task_id


def snapshot(doc: dict[str, Any]) -> dict[str, Any]:
    """The fields of a task object that may never change once it is terminal."""
    return {k: doc.get(k) for k in ("state", "reason", "exit_code", "signal", "result")}


def observe(w: Any, doc: Any, t0: float, t1: float, source: str) -> None:
    """Hold one task object against everything seen before (terminal states are forever)."""
    if not isinstance(doc, dict) or "task_id" not in doc or "state" not in doc:
        return
    tid = doc["task_id"]
    m = w.tasks.get(tid)
    if m is None:
        raise Violation(f"{source} returned task {tid!r}, which no successful start created")
    if m.exists == "no":
        raise Violation(
            f"{source} returned task {tid!r}, whose start was refused (a refusal must create nothing)"
        )
    m.seen = True
    state = doc["state"]
    if state not in TERMINAL | NON_TERMINAL:
        raise Violation(f"{source}: task {tid} has unknown state {state!r}")
    if state in TERMINAL:
        snap = snapshot(doc)
        if m.terminal is None:
            m.terminal, m.terminal_seen = snap, t1
            w.history.add("obs", "terminal", t0, t1, tid, via=source, **snap)
            judge_task(w, m)
        elif snap != m.terminal:
            raise Violation(f"task {tid} left its terminal state: first {m.terminal}, now {snap} ({source})")
    else:
        if m.terminal is not None:
            raise Violation(f"task {tid} went back from terminal {m.terminal['state']} to {state} ({source})")
        m.last_live = max(m.last_live, t0)


def decided_window(w: Any, m: TaskModel) -> tuple[float, float]:
    """When the dispatcher decided: its own `events` time if plausible, else our observation window."""
    assert m.terminal_seen is not None
    lo, hi = m.last_live, m.terminal_seen
    if "events" not in w.caps.capabilities:
        return lo, hi
    call, t0, t1 = w._run("events", m.tid)
    if call.exit_code != 0:
        raise Violation(f"events {m.tid} failed: {call.describe()}")
    evs = call.doc
    terms = [e for e in evs if e.get("state") in TERMINAL]
    if len(terms) != 1 or evs[-1] is not terms[0]:
        raise Violation(
            f"task {m.tid}: events must hold exactly one terminal transition, last; got "
            f"{[(e.get('state'), e.get('reason')) for e in evs]}"
        )
    if terms[0].get("state") != m.terminal["state"]:
        raise Violation(
            f"task {m.tid}: events end in {terms[0].get('state')}, status says {m.terminal['state']}"
        )
    mono = terms[0].get("mono")
    if isinstance(mono, (int, float)) and lo - 0.05 <= mono <= hi + 0.05:
        return float(mono), float(mono)
    return lo, hi


def judge_task(w: Any, m: TaskModel) -> None:
    """Judge M's terminal outcome (chaos.checker) and count it for the report."""
    assert m.terminal is not None
    if m.decided is None:
        m.decided = decided_window(w, m)
    m.facts.journal = w.journal(m)
    v = judge(m.facts, w.k, m.terminal, m.decided)
    w.history.add("check", "outcome", task_id=m.tid, ok=v.ok, cause=v.cause.label if v.cause else None)
    if not v.ok:
        raise Violation(v.message)
    if m.verdict is None:
        st = m.terminal["state"]
        w.stats.outcomes[st] = w.stats.outcomes.get(st, 0) + 1
        if v.latency is not None:
            w.stats.latencies.setdefault(st, []).append(v.latency)
    m.verdict = v


def check_list(w: Any) -> None:
    """Each started task appears exactly once; nothing else appears; observations stay consistent."""
    call, t0, t1 = w._run("list")
    if call.exit_code != 0:
        raise Violation(f"list failed: {call.describe()}")
    ids = [t.get("task_id") for t in call.doc]
    for tid in ids:
        if ids.count(tid) > 1:
            raise Violation(f"list shows task {tid} {ids.count(tid)} times: {ids}")
    for m in w.tasks.values():
        if m.exists == "yes" and m.tid not in ids:
            raise Violation(f"task {m.tid} was started but list does not show it (a lost task): {ids}")
        if m.exists == "maybe" and m.seen and m.tid not in ids:
            raise Violation(f"task {m.tid} was listed before and is now lost: {ids}")
    for doc in call.doc:
        observe(w, doc, t0, t1, "list")
