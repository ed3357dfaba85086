"""The end of a chaos program: heal every fault, wait for every task, judge again, look for leaks.

Jepsen's final phase: after the program's last step the faults are undone, each task is waited for
(a task whose `start` CLI was killed is stopped, as an operator would), every outcome is judged once
more with the complete journal, and no process, tmux server, session or socket of the run may remain.
"""

from __future__ import annotations

import time
from typing import Any

from chaos import model, operations
from chaos.checker import Violation, overdue
from conformance.isolation import find_marked

LEAK_WAIT_S = 6.0
KILL_ESCALATION_S = 3.0  # SIGTERM, a grace of a second or so, SIGKILL, then the record


def thaw(w: Any) -> None:
    """Release every frozen tmux server (the freeze threads end)."""
    for th, release in w._freezes:
        release.set()
        th.join(15.0)
    w._freezes.clear()


def heal(w: Any) -> None:
    """Undo the faults still in force: frozen servers thawed, the clock back to real time."""
    t0 = time.monotonic()
    thaw(w)
    if w.clock is not None:
        w.clock.reset()
    w.history.add("heal", "faults", t0, time.monotonic())


def final_check(w: Any) -> None:
    """Heal, reap, wait for every task to end, judge every outcome again, then look for leaks."""
    heal(w)
    operations.reap(w)
    for m in list(w.tasks.values()):
        if m.exists == "no" or m.terminal is not None:
            continue
        await_end(w, m)
    model.check_list(w)
    for m in w.tasks.values():
        if m.exists == "yes" and m.terminal is None:
            raise Violation(f"task {m.tid} never reached a terminal state")
        if m.terminal is not None:
            m.facts.journal = w.journal(m)
            model.judge_task(w, m)  # again, with the complete journal
    check_leaks(w)
    w.history.add("check", "final", ok=True)


def await_end(w: Any, m: Any) -> None:
    """Wait until the task is terminal; a start whose CLI was killed may need a `stop` (an operator would)."""
    m.facts.journal = w.journal(m)
    now = time.monotonic()
    due = overdue(m.facts, w.k, float("inf"))
    # + KILL_ESCALATION: a dispatcher that ends an agent ignoring SIGTERM records it after the SIGKILL
    limit = (due.hi if due else m.facts.call_t1 + w.k.max_lifetime + w.k.detect) + KILL_ESCALATION_S - now
    if m.facts.start_killed:
        limit = min(limit, 1.0)
    call, t0, t1 = w._run("wait", m.tid, "--timeout", f"{max(0.1, limit):.2f}", timeout=max(0.1, limit) + 30)
    w._op("wait", call, t0, t1, m.tid, timeout=round(limit, 2), final=True)
    operations.after_poll(w, m, call, t0, t1, "wait", timeout_ok=True)
    if m.terminal is not None or (call.error_code == "unknown_task" and m.exists == "maybe"):
        return
    if not m.facts.start_killed:
        m.facts.journal = w.journal(m)
        cause = overdue(m.facts, w.k, time.monotonic() - KILL_ESCALATION_S)
        raise Violation(
            f"task {m.tid} ({m.facts.behaviour}) is still {call.doc.get('state')!r}"
            + (f", although {cause.label!r} was due by {cause.hi - m.facts.call_t0:+.2f}s" if cause else "")
        )
    call, t0, t1 = w._run("stop", m.tid, timeout=60.0)
    w.history.add("heal", "stop", t0, t1, m.tid, exit=call.exit_code, state=(call.doc or {}).get("state"))
    operations.after_stop(w, m, call, t0, t1)


def check_leaks(w: Any) -> None:
    """No process, tmux server, session or socket of the run may outlive it."""
    deadline = time.monotonic() + LEAK_WAIT_S
    while True:
        left = find_marked(w.sb.marker)
        if not left or time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    sessions = []
    if w.sb.socket.exists():
        from faults.tmuxfault import _tmux

        r = _tmux(w.sb.socket, "list-sessions", "-F", "#{session_name}")
        sessions = r.stdout.split() if r.returncode == 0 else []
    if left or sessions:
        raise Violation(
            "the run left behind "
            + "; ".join([f"process {x}" for x in left[:8]] + [f"session {s}" for s in sessions[:8]])
        )
