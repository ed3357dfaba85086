"""The client side of a chaos program (Jepsen's "client"): every contract operation, one function each.

An operation is a :mod:`chaos.steps` step registered with :func:`operation` and enabled by
``ChaosConfig.ops``. It calls the implementation through the world's contract client, records the
call in the history and holds what came back against the model (``chaos.model.observe``: terminal states
are forever). ``after_stop``/``after_poll``/``check_reaped`` are shared with the faults that kill a
`stop` or `reap` mid-call (:mod:`chaos.nemesis`).
"""

from __future__ import annotations

import time
from typing import Any

from chaos import model, steps
from chaos.checker import TERMINAL, Stop, Violation
from chaos.steps import BEHAVIOUR, BOOL, TASK, Step, registrar
from conformance.harness import Call
from conformance.isolation import find_marked

WORKS = (0.2, 1.0, 2.5)
PAUSES = (0.2, 0.8, 1.5)
WAITS = (0.3, 1.5)
STOP_CLEAN_S = 3.0

# every operation, by rule name (each is also its ChaosConfig.ops entry)
REGISTRY: dict[str, Step] = {}
operation = registrar(REGISTRY)


def groups() -> tuple[str, ...]:
    """The operations a config may list (``ChaosConfig.ops``), in registration order."""
    return steps.groups(REGISTRY)


@operation("start", new_task=True, behaviour=BEHAVIOUR, work=WORKS, variant=range(4), noise=BOOL)
def start(w: Any, behaviour: str, work: float = 0.3, variant: int = 0, noise: bool = False) -> str:
    """Start a fake agent of BEHAVIOUR; it must be accepted (a refusal only while tmux is frozen)."""
    tid, argv, m = w._new_task(behaviour, work, variant, noise)
    call = w.impl.start_call(tid, argv, timeout=60.0)
    t1 = time.monotonic()
    t0 = t1 - call.duration_s
    w._op("start", call, t0, t1, tid, behaviour=behaviour, work=work, variant=variant, noise=noise)
    w._register_start(m, call, t0, t1, killed=False)
    return tid


@operation("stop", task=TASK)
def stop(w: Any, task: str) -> None:
    """`stop`: a terminal state at once, and nothing of the task left running."""
    m = w._task(task)
    call, t0, t1 = w._run("stop", task, timeout=60.0)
    w._op("stop", call, t0, t1, task)
    after_stop(w, m, call, t0, t1)


def after_stop(w: Any, m: Any, call: Call, t0: float, t1: float) -> None:
    """A `stop` that returned: terminal at once, and within STOP_CLEAN_S nothing of the agent left."""
    if call.exit_code == 2 and call.error_code == "unknown_task" and m.exists != "yes" and not m.seen:
        return
    if call.exit_code != 0:
        raise Violation(f"stop {m.tid} failed: {call.describe()}")
    if call.doc.get("state") not in TERMINAL:
        raise Violation(f"stop {m.tid} returned non-terminal state {call.doc.get('state')!r}")
    m.facts.stops.append(Stop(t0, t1, True))
    model.observe(w, call.doc, t0, t1, "stop")
    left = wait_gone(w, m, STOP_CLEAN_S)
    if left:
        raise Violation(f"stop {m.tid} returned but processes of the task remain: {left}")


def wait_gone(w: Any, m: Any, timeout: float) -> list[str]:
    """Processes carrying the agent's FAKE_AGENT_MARKER (agent, children, daemon) still alive."""
    st = w._journal_start(m)
    if st is None:
        return []
    marker = st.get("marker")
    deadline = time.monotonic() + timeout
    while True:
        left = find_marked(marker, "FAKE_AGENT_MARKER") if marker else []
        if not left or time.monotonic() >= deadline:
            return [str(x) for x in left]
        time.sleep(0.05)


@operation("wait", task=TASK, timeout=WAITS)
def wait(w: Any, task: str, timeout: float = 0.3) -> None:
    """`wait --timeout`: 0 with a terminal state, or 124 with a live one."""
    m = w._task(task)
    call, t0, t1 = w._run("wait", task, "--timeout", f"{timeout:g}", timeout=timeout + 30.0)
    w._op("wait", call, t0, t1, task, timeout=timeout)
    after_poll(w, m, call, t0, t1, "wait", timeout_ok=True)


def after_poll(w: Any, m: Any, call: Call, t0: float, t1: float, verb: str, timeout_ok: bool = False) -> None:
    """A `status`/`wait` that returned: exit code and state agree, and the task is held to the model."""
    if call.exit_code == 2 and call.error_code == "unknown_task" and m.exists != "yes" and not m.seen:
        return
    if call.exit_code == 124 and timeout_ok:
        if call.doc.get("state") in TERMINAL:
            raise Violation(f"wait {m.tid} exited 124 with a terminal state {call.doc.get('state')}")
    elif call.exit_code != 0:
        raise Violation(f"{verb} {m.tid} failed: {call.describe()}")
    elif verb == "wait" and call.doc.get("state") not in TERMINAL:
        raise Violation(f"wait {m.tid} exited 0 with non-terminal state {call.doc.get('state')}")
    model.observe(w, call.doc, t0, t1, verb)


@operation("status", task=TASK)
def status(w: Any, task: str) -> None:
    """`status`: one look at the task."""
    m = w._task(task)
    call, t0, t1 = w._run("status", task)
    w._op("status", call, t0, t1, task)
    after_poll(w, m, call, t0, t1, "status")


@operation("reap")
def reap(w: Any) -> None:
    """`reap`: it may end only what nobody supervises."""
    call, t0, t1 = w._run("reap", timeout=60.0)
    w._op("reap", call, t0, t1, reaped=call.doc.get("reaped") if isinstance(call.doc, dict) else None)
    if call.exit_code != 0:
        raise Violation(f"reap failed: {call.describe()}")
    check_reaped(w, call.doc.get("reaped", []), t1)


def check_reaped(w: Any, reaped: list[dict[str, Any]], now: float) -> None:
    """Reap may only end what nobody supervises: lost supervisors, expired lifetimes, dead sessions."""
    for r in reaped:
        tid = r.get("task_id")
        if tid is None or tid not in w.tasks:
            continue
        m = w.tasks[tid]
        lost = any(f.kind in ("kill_supervisor", "kill_session") and f.applied for f in m.facts.faults)
        expired = now >= m.facts.call_t0 + w.k.max_lifetime
        if not (lost or expired or m.facts.start_killed or m.terminal is not None):
            raise Violation(f"reap ended task {tid}, which was supervised and within its lifetime: {r}")


@operation("pause", seconds=PAUSES)
def pause(w: Any, seconds: float) -> None:
    """Let time pass (agents work, heartbeats go stale, lifetimes run out)."""
    t0 = time.monotonic()
    time.sleep(seconds)
    w.history.add("op", "pause", t0, time.monotonic(), seconds=seconds)
