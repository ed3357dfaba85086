"""The nemesis (Jepsen's word): every fault a chaos program can fire, one function each, in a registry.

A fault is a :mod:`chaos.steps` step registered with :func:`fault`: its rule name in programs, the
``ChaosConfig.faults`` entry that enables it (``crash_cli`` covers three), and what a program draws
for each argument. Adding a fault is one function here. A fault that lands appends a
:class:`chaos.checker.Fault` to its task's facts (when it can end the task); every fault records
itself in the history with whether it landed.
"""

from __future__ import annotations

import signal
import threading
import time
from typing import Any

from chaos import operations, steps
from chaos.checker import Fault, Stop, Violation
from chaos.steps import BEHAVIOUR, TASK, Step, registrar
from conformance.harness import ContractViolation
from conformance.isolation import MARKER_VAR

FREEZES = (0.3, 1.0)
JUMPS = (3600.0, -3600.0, 86400.0, -30 * 86400.0)
CLI_KILL_DELAYS = (0.05, 0.25, 0.6)

# every fault, by rule name (crash_start, crash_stop and crash_reap share the config entry crash_cli)
REGISTRY: dict[str, Step] = {}
fault = registrar(REGISTRY)
Nemesis = Step


def groups() -> tuple[str, ...]:
    """The fault names a config may list (``ChaosConfig.faults``), in registration order."""
    return steps.groups(REGISTRY)


def _environ_value(pid: int, var: str) -> str:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            for item in f.read().split(b"\0"):
                if item.startswith(var.encode() + b"="):
                    return item.split(b"=", 1)[1].decode(errors="replace")
    except OSError:
        pass
    return ""


def agent_ident(w: Any, m: Any) -> Any:
    """The agent as the fake agent journaled it (PID + start ticks), or None before it started."""
    from faults.procfault import ProcIdentity

    st = w._journal_start(m)
    if st is None or st.get("start_ticks") is None:
        return None
    return ProcIdentity(st.pid, int(st.get("start_ticks")))


@fault("kill_agent", task=TASK)
def kill_agent(w: Any, task: str) -> None:
    """SIGKILL the agent itself, by the identity it journaled."""
    m = w._task(task)
    ident = agent_ident(w, m)
    t0 = time.monotonic()
    applied = bool(ident and ident.signal(signal.SIGKILL))
    t1 = time.monotonic()
    m.facts.faults.append(Fault("kill_agent", t0, t1, applied))
    w._fault("kill_agent", t0, t1, applied, task, pid=ident.pid if ident else None)


@fault("kill_member", task=TASK, pick=range(4))
def kill_member(w: Any, task: str, pick: int = 0) -> None:
    """SIGKILL a descendant of the agent or its daemon: the agent itself stays healthy."""
    from fake_agents import journal as fj
    from faults.procfault import ProcIdentity, tree

    m = w._task(task)
    agent = agent_ident(w, m)
    members = []
    if agent is not None and agent.alive():
        members += tree(agent.pid, include_root=False)
    for ev in fj.all_of(fj.read(m.journal), "child"):
        if ev.get("start_ticks") is not None:
            ident = ProcIdentity(int(ev["child_pid"]), int(ev["start_ticks"]))
            if ident not in members and ident.alive():
                members.append(ident)
    t0 = time.monotonic()
    victim = members[pick % len(members)] if members else None
    applied = bool(victim and victim.signal(signal.SIGKILL))
    t1 = time.monotonic()
    m.facts.faults.append(Fault("kill_member", t0, t1, applied))
    w._fault("kill_member", t0, t1, applied, task, pid=victim.pid if victim else None)


@fault("kill_supervisor", task=TASK)
def kill_supervisor(w: Any, task: str) -> None:
    """SIGKILL the task's `wrapper_pid` (the dispatcher's own supervisor) by identity."""
    from faults.procfault import ProcIdentity

    m = w._task(task)
    call, s0, s1 = w._run("status", task)
    w._op("status", call, s0, s1, task)
    operations.after_poll(w, m, call, s0, s1, "status")
    pid = call.doc.get("wrapper_pid") if call.exit_code == 0 else None
    ident = None
    if isinstance(pid, int) and pid > 0:
        try:
            ident = ProcIdentity.of(pid)
            if w.sb.marker not in _environ_value(pid, MARKER_VAR):
                ident = None  # not ours (gone and recycled): never signal a stranger
        except (ProcessLookupError, ValueError):
            ident = None
    t0 = time.monotonic()
    applied = bool(ident and ident.signal(signal.SIGKILL))
    t1 = time.monotonic()
    m.facts.faults.append(Fault("kill_supervisor", t0, t1, applied))
    w._fault("kill_supervisor", t0, t1, applied, task, pid=pid)


@fault("kill_session", task=TASK)
def kill_session(w: Any, task: str) -> None:
    """Kill the task's tmux session from outside (its pane's processes get SIGHUP)."""
    from faults import tmuxfault

    m = w._task(task)
    t0 = time.monotonic()
    applied = False
    if m.session:
        try:
            tmuxfault.kill_session(w.sb.socket, m.session)
            applied = True
        except (LookupError, OSError):
            applied = False
    t1 = time.monotonic()
    if applied:
        m.facts.faults.append(Fault("kill_session", t0, t1, applied))
    w._fault("kill_session", t0, t1, applied, task, session=m.session)


@fault("freeze_tmux", seconds=FREEZES)
def freeze_tmux(w: Any, seconds: float) -> None:
    """SIGSTOP the tmux server for SECONDS in the background (thawed by a timer or by healing)."""
    from faults import tmuxfault

    t0 = time.monotonic()
    if w.freezing() or not w.sb.socket.exists():
        w._fault("freeze_tmux", t0, t0, False, seconds=seconds)
        return
    started, release = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def hold() -> None:
        try:
            with tmuxfault.freeze_server(w.sb.socket):
                started.set()
                release.wait(seconds)
        except BaseException as e:  # no server, or it vanished: the fault did not land
            errors.append(e)
        finally:
            started.set()

    th = threading.Thread(target=hold, name="chaos-freeze", daemon=True)
    th.start()
    started.wait(15.0)
    w._freezes.append((th, release))
    w._fault("freeze_tmux", t0, t0 + seconds, not errors, seconds=seconds)


@fault("clock_jump", seconds=JUMPS)
def clock_jump(w: Any, seconds: float) -> None:
    """Move the dispatcher's wall clock to real time + SECONDS (faults.clock; monotonic is untouched)."""
    t0 = time.monotonic()
    if w.clock is not None:
        w.clock.jump(seconds)
    w._fault("clock_jump", t0, time.monotonic(), w.clock is not None, seconds=seconds)


@fault("crash_start", "crash_cli", new_task=True, behaviour=BEHAVIOUR, delay=CLI_KILL_DELAYS)
def crash_start(w: Any, behaviour: str, delay: float, work: float = 0.3) -> str:
    """`start` whose CLI is SIGKILLed after DELAY: the task may or may not exist, never twice."""
    tid, argv, m = w._new_task(behaviour, work, 0, False)
    call = w.impl.start_call(tid, argv, timeout=delay, strict=False)
    t1 = time.monotonic()
    t0 = t1 - call.duration_s
    w._op("crash_start", call, t0, t1, tid, behaviour=behaviour, delay=delay)
    if not call.timed_out and call.problem:
        raise ContractViolation(call.describe())
    w._register_start(m, call, t0, t1, killed=call.timed_out)
    w._fault("crash_cli", t0, t1, call.timed_out, tid, verb="start", delay=delay)
    return tid


@fault("crash_stop", "crash_cli", task=TASK, delay=CLI_KILL_DELAYS)
def crash_stop(w: Any, task: str, delay: float) -> None:
    """`stop` whose CLI is SIGKILLed after DELAY: the task may end as stopped, or go on."""
    m = w._task(task)
    call, t0, t1 = w._run("stop", task, timeout=delay, strict=False)
    w._op("crash_stop", call, t0, t1, task, delay=delay)
    w._fault("crash_cli", t0, t1, call.timed_out, task, verb="stop", delay=delay)
    if call.timed_out:
        m.facts.stops.append(Stop(t0, t1, completed=False))
        return
    if call.problem:
        raise ContractViolation(call.describe())
    operations.after_stop(w, m, call, t0, t1)


@fault("crash_reap", "crash_cli", delay=CLI_KILL_DELAYS)
def crash_reap(w: Any, delay: float) -> None:
    """`reap` whose CLI is SIGKILLed after DELAY: whatever it did must still be a legitimate reap."""
    call, t0, t1 = w._run("reap", timeout=delay, strict=False)
    w._op("crash_reap", call, t0, t1, delay=delay)
    w._fault("crash_cli", t0, t1, call.timed_out, verb="reap", delay=delay)
    if not call.timed_out:
        if call.problem or call.exit_code != 0:
            raise Violation(f"reap failed: {call.describe()}")
        operations.check_reaped(w, call.doc.get("reaped", []), t1)
