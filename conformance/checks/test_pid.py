"""P1 (the pane's PID is not the agent's) and P2 (a recycled PID is not the agent)."""

from __future__ import annotations

import contextlib
import os
import signal
import time

import psutil

from conformance.checks._procs import Supervision, frozen, supervision
from conformance.context import Ctx, wait_until
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
            gone, _ = wait_until(lambda: ns.host_pid(start.pid) is None, 10)
            assert gone, "the killed agent's PID never became free"
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
