"""P1 (the pane's PID is not the agent's) and P2 (a recycled PID is not the agent)."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from typing import Any

import psutil

from conformance.checks._procs import Supervision, frozen, supervision
from conformance.context import Blocked, Ctx
from conformance.harness import LIVE, TERMINAL
from conformance.registry import check


def _kill(pid: int, start_ticks: int | None) -> None:
    """SIGKILL the journaled agent, by PID and start time (never a recycled PID)."""
    from faults.procfault import ProcIdentity

    ident = ProcIdentity(pid, start_ticks) if start_ticks is not None else ProcIdentity.of(pid)
    assert ident.signal(signal.SIGKILL), f"the agent (pid {pid}) was already gone before the kill"


@check(
    id="P01.agent-pid.journaled",
    level="MUST",
    pitfall="P01",
    reason="agent_pid must be the PID of the process running ARGV (exec ARGV from the supervisor), "
    "not the pane's shell or the wrapper",
)
def test_agent_pid_is_the_agent(dispatch: Ctx) -> None:
    agent = dispatch.agent("--slow-start", "0.8", "--work", "20")
    tid = dispatch.run_agent(agent)
    start = agent.wait_for("start", 15)
    task = dispatch.wait_running(tid)
    assert task["agent_pid"] == start.pid, (
        f"agent_pid {task['agent_pid']} but the agent journaled pid {start.pid} "
        f"(wrapper_pid {task['wrapper_pid']})"
    )
    assert task["wrapper_pid"] != task["agent_pid"], "wrapper_pid equals agent_pid"


@check(
    id="P01.agent-death.detected",
    level="MUST",
    pitfall="P01",
    reason="judge liveness on the agent's own process (PID + start time), not on the pane or its shell",
)
def test_agent_death_detected_while_pane_lives(dispatch: Ctx) -> None:
    agent = dispatch.agent("--slow-start", "0.8", "--work", "30")
    tid = dispatch.run_agent(agent)
    start = agent.wait_for("start", 15)
    dispatch.wait_running(tid)
    _kill(start.pid, start.get("start_ticks"))
    t_kill = time.monotonic()
    bound = dispatch.knobs.crash_bound
    poll = dispatch.impl.wait_for_state(tid, TERMINAL, bound)
    assert poll.matched, f"agent SIGKILLed, status still {poll.state!r} after {bound:.1f}s"
    dispatch.latency("agent-killed->terminal", poll.matched_at - t_kill)
    assert poll.state in ("crashed", "failed"), f"agent SIGKILLed, state {poll.state!r}, expected crashed"
    assert poll.task["agent_pid"] == start.pid, f"agent_pid {poll.task['agent_pid']} != journaled {start.pid}"


REAP_S = 0.5  # how long a zombie may wait for its parent's own reaping before the parent is nudged


def _zombie_parent(host_pid: int) -> tuple[int, str] | None:
    """(parent PID, its name) when ``host_pid`` is a zombie, else None (alive, or gone already)."""
    try:
        with open(f"/proc/{host_pid}/status") as f:
            fields = dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
        if not fields.get("State", "").startswith("Z"):
            return None
        ppid = int(fields["PPid"])
        with open(f"/proc/{ppid}/comm") as f:
            return ppid, f.read().strip()
    except (OSError, ValueError, KeyError):
        return None


def await_freed(ns: Any, ns_pid: int, timeout: float = 10.0) -> None:
    """Wait until the killed agent's PID is free; ``Blocked`` if its parent never reaps it.

    tmux 3.3a at times misses a SIGCHLD: an exited pane process (the agent itself, for a dispatcher
    that runs it as the pane's command) stays a zombie of the server, pane_dead=1 without a status,
    until another child of the server exits (measured: a zombie kept >8 s, reaped within 1 s of the
    next pane's exit). The PID cannot be recycled meanwhile, which is no flaw of the dispatcher's, so
    the zombie's parent is sent the SIGCHLD it missed (by PID + start time; a parent that reaps on
    SIGCHLD, as tmux does, then frees the PID). Still held after ``timeout``: the precondition is unmet.
    """
    from faults.procfault import ProcIdentity

    t0 = time.monotonic()
    nudged: set[int] = set()
    held = None
    while (host := ns.host_pid(ns_pid)) is not None:
        held = _zombie_parent(host)
        # a normal parent reaps within milliseconds: only a zombie older than REAP_S missed its SIGCHLD
        if held and held[0] not in nudged and time.monotonic() - t0 > REAP_S:
            with contextlib.suppress(ProcessLookupError):
                ProcIdentity.of(held[0]).signal(signal.SIGCHLD)
            nudged.add(held[0])
        if time.monotonic() - t0 > timeout:
            who = f"a zombie of pid {held[0]} ({held[1]!r}), sent SIGCHLD" if held else "not a zombie"
            raise Blocked(
                "the killed agent's PID is freed, so a look-alike can take it",
                "no check: the PID is held by the agent's parent, not by the dispatcher's liveness test",
                f"pid {ns_pid} (host {host}) still taken {timeout:.0f} s after SIGKILL: {who}",
            )
        time.sleep(0.05)


@check(
    id="P02.pid-reuse.not-running",
    level="MUST",
    pitfall="P02",
    reason="identify the agent by PID *and* start time (and the supervisor's record); a recycled PID "
    "running the same command line is not the agent",
)
def test_pid_reuse_is_not_the_agent(dispatch: Ctx) -> None:
    from faults.pidns import PidNamespace

    env = dispatch.env()
    with PidNamespace(env=env) as ns:
        # every call of the implementation runs inside the namespace: its PIDs are namespace PIDs
        impl = dispatch.impl.wrapped(lambda argv: ns.command(argv, dispatch.sandbox.workdir))
        agent = dispatch.agent("--work", "60")
        tid = dispatch.task_id()
        impl.start(tid, agent.argv)
        start = agent.wait_for("start", 15)
        poll = impl.wait_for_state(tid, {"running", *TERMINAL}, 15)
        task = poll.task
        assert task["state"] == "running", f"expected running, got {task['state']!r}"
        assert task["agent_pid"] == start.pid, f"agent_pid {task['agent_pid']} != journaled {start.pid}"
        agent_host = ns.host_pid(start.pid)
        assert agent_host, "the agent is not visible in the namespace"
        cmdline = open(f"/proc/{agent_host}/cmdline", "rb").read().split(b"\0")[:-1]
        # Whatever the supervision's shape (a wrapper in the pane, a monitor outside tmux, a daemon,
        # none): the agent's parent and any reported wrapper die, every other supervising process is
        # frozen until the PID is recycled, so no supervisor can see the death before the look-alike.
        parent = psutil.Process(agent_host).ppid()
        wrapper_host = ns.host_pid(task["wrapper_pid"]) if task.get("wrapper_pid") else None
        sup = supervision(dispatch, agent, exclude=(ns.init.pid if ns.init else 0,))
        doomed = [i for i in sup.idents if i.pid in (parent, wrapper_host)]
        rest = Supervision([i for i in sup.idents if i not in doomed])
        with frozen(rest):
            for ident in doomed:
                ident.signal(signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):  # it may already have died of the pane's SIGHUP
                os.kill(agent_host, signal.SIGKILL)
            t_kill = time.monotonic()
            await_freed(ns, start.pid)
            # an unrelated process, same command line, on the agent's exact PID (no journal, no heartbeat)
            impostor_env = {k: v for k, v in env.items() if not k.startswith("DISPATCH_")}
            impostor_argv = [os.fsdecode(a) for a in cmdline]
            if "--journal" in impostor_argv:
                i = impostor_argv.index("--journal")
                impostor_argv[i + 1] = os.devnull
            ns.spawn_at_pid(start.pid, impostor_argv, env=impostor_env, cwd=dispatch.sandbox.workdir)
        bound = dispatch.knobs.crash_bound
        poll = impl.wait_for_state(tid, TERMINAL, bound)
        assert poll.matched, (
            f"agent SIGKILLed (supervision frozen or killed) and pid {start.pid} recycled by a look-alike: "
            f"status still "
            f"{poll.state!r} after {bound:.1f}s"
        )
        dispatch.latency("killed+recycled->terminal", poll.matched_at - t_kill)
        assert poll.state != "hung", (
            f"pid {start.pid} recycled by a look-alike was taken for the agent: declared hung (the "
            "look-alike never beats) instead of crashed"
        )
        assert poll.state in ("crashed", "failed"), f"state {poll.state!r}, expected crashed"
        # and it stays so: a terminal state is never left, even with the look-alike alive
        later = impl.wait_for_state(tid, LIVE, 1.0)
        assert not later.matched, f"state went back to {later.state!r} with pid {start.pid} recycled"
