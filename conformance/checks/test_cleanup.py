"""P4 (pipe-pane outlives the session) and P9 (zombie sessions, leaked processes, no lifetime cap)."""

from __future__ import annotations

import os
import secrets
import signal
import time
from typing import Any

from conformance.checks._procs import supervision
from conformance.context import Agent, Ctx, describe_procs, holders, wait_until
from conformance.harness import TERMINAL
from conformance.registry import check


def _running_with_log(dispatch: Ctx, agent: Agent, **kw: Any) -> tuple[str, dict[str, Any]]:
    tid = dispatch.run_agent(agent, **kw)
    agent.wait_for("start", 15)
    task = dispatch.wait_running(tid)
    dispatch.require_sessions_on_socket()  # _assert_released judges the session too
    # log_path may be null (CONTRACT.md): without a log file there is no pipe to leak, P04 is blocked
    dispatch.require_log(task)
    return tid, task


def _assert_released(dispatch: Ctx, task: dict[str, Any], t0: float, what: str) -> None:
    """Nothing holds the task's log, its session is gone (or its pipe off), within the cleanup bound."""
    log, session = task["log_path"], task["session"]
    bound = dispatch.knobs.cleanup_bound
    free, waited = wait_until(lambda: not holders(log), bound)
    assert free, f"after {what}, pids {holders(log)} still hold the log {log} open ({bound:.1f}s later)"
    gone, _ = wait_until(lambda: session not in dispatch.sessions(), bound)
    if not gone:
        r = dispatch.tmux("list-panes", "-t", f"={session}", "-F", "#{pane_pipe}")
        assert r.stdout.strip() in ("", "0"), f"after {what}, session {session} still has pipe-pane on"
    dispatch.latency(f"{what}->log released", time.monotonic() - t0)


def _assert_no_processes(dispatch: Ctx, agent: Agent, what: str) -> None:
    bound = dispatch.knobs.cleanup_bound
    gone, _ = wait_until(lambda: not agent.processes(), bound)
    assert gone, (
        f"after {what}, processes of the agent are alive {bound:.1f}s later: {describe_procs(agent.processes())}"
    )


@check(
    id="P04.stop.releases-log",
    level="MUST",
    pitfall="P04",
    reason="on stop, turn pipe-pane off and end the pipe process (by identity) before/when the session goes",
)
def test_stop_releases_log(dispatch: Ctx) -> None:
    agent = dispatch.agent("--print", "hello", "--work", "30")
    tid, task = _running_with_log(dispatch, agent)
    doc = dispatch.impl.stop(tid)
    t0 = time.monotonic()
    assert doc["state"] == "stopped", f"stop printed state {doc['state']!r}"
    _assert_released(dispatch, task, t0, "stop")


@check(
    id="P04.session-killed.releases-log",
    level="MUST",
    pitfall="P04",
    reason="when the session is killed from outside, the supervisor (SIGHUP) must end the agent and the "
    "pipe process and record crashed/session_lost",
)
def test_session_killed_releases_log(dispatch: Ctx) -> None:
    from faults.tmuxfault import kill_session

    agent = dispatch.agent("--print", "hello", "--work", "30")
    tid, task = _running_with_log(dispatch, agent)
    kill_session(dispatch.sandbox.socket, task["session"])
    t0 = time.monotonic()
    poll = dispatch.impl.wait_for_state(tid, TERMINAL, dispatch.knobs.crash_bound)
    assert poll.matched, f"session killed from outside: status still {poll.state!r}"
    dispatch.latency("session killed->terminal", poll.matched_at - t0)
    assert poll.state == "crashed", f"session killed from outside: state {poll.state!r}, expected crashed"
    _assert_released(dispatch, task, t0, "session kill")
    _assert_no_processes(dispatch, agent, "the session was killed")


@check(
    id="P04.label-reuse.fresh-log",
    level="MUST",
    pitfall="P04",
    reason="give every task its own log path (never derived from the label) and end each pipe with its task",
)
def test_reused_label_gets_a_fresh_log(dispatch: Ctx) -> None:
    label = "reused label"
    a_nonce, b_nonce = secrets.token_hex(4), secrets.token_hex(4)
    a = dispatch.agent("--print", f"A-{a_nonce}", "--work", "30")
    tid_a, task_a = _running_with_log(dispatch, a, label=label)
    dispatch.impl.stop(tid_a)
    wait_until(lambda: not holders(task_a["log_path"]), dispatch.knobs.cleanup_bound)
    size_a = os.path.getsize(task_a["log_path"])
    # B works until stopped, so "running" is observable however loaded the machine is.
    b = dispatch.agent("--print", f"B-{b_nonce}", "--work", "30")
    tid_b, task_b = _running_with_log(dispatch, b, label=label)
    assert task_b["log_path"] != task_a["log_path"], "two tasks with the same label share a log path"
    wait_until(lambda: f"B-{b_nonce}".encode() in open(task_b["log_path"], "rb").read(), 10)
    dispatch.impl.stop(tid_b)
    old = open(task_a["log_path"], "rb").read()
    assert f"B-{b_nonce}".encode() not in old, "the new task's output was written into the old task's log"
    assert len(old) == size_a, "the old task's log grew after it was stopped"
    assert not holders(task_a["log_path"]), f"pids {holders(task_a['log_path'])} still hold the old log"


@check(
    id="P09.supervisor-killed.reaped",
    level="MUST",
    pitfall="P09",
    reason="`reap` must end tasks whose supervisor died: the agent's whole tree (children, double-forked "
    "daemons, found by identity/marker), its pipe and its session",
    needs=("reap",),
)
def test_supervisor_killed_then_reaped(dispatch: Ctx) -> None:
    agent = dispatch.agent("--children", "2", "--daemon", "--ignore", "HUP", "--work", "60")
    tid, task = _running_with_log(dispatch, agent)
    agent.wait_for("child", 10, count=3)
    # the supervisor, whatever its shape (wrapper in the pane, monitor outside tmux, daemon): every
    # process of the sandbox that is neither the agent's tree nor the tmux server
    sup = supervision(dispatch, agent)
    sup.signal(signal.SIGKILL)
    t0 = time.monotonic()
    wait_until(lambda: not any(os.path.exists(f"/proc/{p}/stat") for p in sup.pids), 5)
    reaped = dispatch.impl.reap()["reaped"]
    _assert_no_processes(dispatch, agent, "the supervisor was SIGKILLed and reap ran")
    dispatch.latency("supervisor killed->tree gone", time.monotonic() - t0)
    _assert_released(dispatch, task, t0, "reap")
    status = dispatch.impl.status(tid)
    assert status["state"] in ("crashed", "failed"), (
        f"after reap the task is {status['state']!r}, expected crashed"
    )
    named = [r for r in reaped if r.get("task_id") == tid or r.get("session") == task["session"]]
    assert named or status["state"] in TERMINAL, f"reap did not report task {tid}: {reaped}"


@check(
    id="P09.stop.kills-tree",
    level="MUST",
    pitfall="P09",
    reason="`stop` must end the agent's whole process tree, double-forked setsid daemons included "
    "(subreaper / environment marker), and its session",
)
def test_stop_kills_whole_tree(dispatch: Ctx) -> None:
    agent = dispatch.agent(
        "--children", "2", "--daemon", "--ignore", "TERM", "--ignore", "HUP", "--work", "60"
    )
    tid = dispatch.run_agent(agent)  # a running agent is all it needs (no log file: P04's business)
    task = dispatch.wait_running(tid, agent)
    dispatch.require_sessions_on_socket()  # it judges the session too: decided now, before any wait
    agent.wait_for("child", 10, count=3)
    assert len(agent.processes()) >= 4, f"expected agent + 2 children + daemon, saw {agent.processes()}"
    doc = dispatch.impl.stop(tid, timeout=20)
    assert doc["state"] == "stopped", f"stop printed state {doc['state']!r}"
    _assert_no_processes(dispatch, agent, "stop")
    gone, _ = wait_until(lambda: task["session"] not in dispatch.sessions(), dispatch.knobs.cleanup_bound)
    assert gone, f"session {task['session']} survived stop"
    again = dispatch.impl.stop(tid)
    assert again["state"] == "stopped", f"stopping again changed the state to {again['state']!r}"


@check(
    id="P09.max-lifetime.timed-out",
    level="MUST",
    pitfall="P09",
    reason="enforce DISPATCH_MAX_LIFETIME_S on the supervisor's monotonic clock: kill the agent's tree "
    "and record timed_out",
    needs=("max_lifetime",),
)
def test_max_lifetime_enforced(dispatch: Ctx) -> None:
    dispatch.set_knobs(max_lifetime=3.0)
    agent = dispatch.agent("--children", "1", "--work", "60")
    t_before = time.monotonic()  # the task's lifetime cannot have started earlier than this
    tid = dispatch.run_agent(agent)
    agent.wait_for("start", 15)
    limit = dispatch.knobs.max_lifetime
    bound = dispatch.knobs.lifetime_bound
    poll = dispatch.impl.wait_for_state(tid, TERMINAL, bound, interval=0.1)
    assert poll.matched, f"max lifetime {limit:g}s: still {poll.state!r} after {bound:.1f}s"
    assert poll.state == "timed_out", (
        f"state {poll.state!r} (reason {poll.task.get('reason')!r}), expected timed_out"
    )
    assert poll.matched_at >= t_before + limit - 0.05, (
        f"timed out {poll.matched_at - t_before:.2f}s after start, before the {limit:g}s lifetime"
    )
    dispatch.latency("lifetime end->timed_out", poll.matched_at - (t_before + limit))
    _assert_no_processes(dispatch, agent, "timed_out")
