"""stop, reap, lost supervisors and sessions, frozen tmux servers: nothing of a task survives (P4, P9, P14)."""

from __future__ import annotations

import os
import signal
import time

from test_runner_support import (
    dispatch,
    pyagent,
    sessions,
    settle,
    start_ok,
    status,
    tmux,
    wait_done,
    wait_for,
)

from runner.procid import ProcessIdentity, find_by_env

TREE = """
import os, sys, time, subprocess
out = os.environ["OUT_DIR"]
subprocess.Popen(["sleep", "300"])
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        open(os.path.join(out, "daemon.pid"), "w").write(str(os.getpid()))
        time.sleep(300)
    os._exit(0)
time.sleep(300)
"""


def _marker_procs(sb, task_id):
    import json

    marker = json.loads((sb.state_dir / "tasks" / task_id / "task.json").read_text())["run_marker"]
    return find_by_env("DISPATCH_RUN_MARKER", marker)


def _logpipe(sb, task_id):
    p = sb.state_dir / "tasks" / task_id / "logpipe.pid"
    pid, start = (int(x) for x in p.read_text().split())
    return ProcessIdentity(pid, start)


def test_stop_ends_whole_tree_pipe_and_session(sandbox):
    start_ok(sandbox, "st", *pyagent(TREE), env={"OUT_DIR": str(sandbox.workdir)})
    daemon_pid = int(
        wait_for(
            lambda: (sandbox.workdir / "daemon.pid").exists() and (sandbox.workdir / "daemon.pid").read_text()
        )
    )
    assert wait_for(lambda: len(_marker_procs(sandbox, "st")) >= 3)
    t = status(sandbox, "st")
    agent = ProcessIdentity.of(t["agent_pid"])
    pipe = wait_for(lambda: (sandbox.state_dir / "tasks/st/logpipe.pid").exists() and _logpipe(sandbox, "st"))
    assert pipe.is_alive()
    assert t["session"] in sessions(sandbox)
    t0 = time.monotonic()
    r = dispatch(sandbox, "stop", "st")
    elapsed = time.monotonic() - t0
    assert r.rc == 0 and (r.doc["state"], r.doc["reason"]) == ("stopped", "stop_requested")
    assert elapsed < 6
    assert not agent.is_alive()
    assert ProcessIdentity.of(daemon_pid) is None or not _marker_procs(sandbox, "st")
    assert _marker_procs(sandbox, "st") == []
    assert not pipe.is_alive()
    assert t["session"] not in sessions(sandbox)
    again = dispatch(sandbox, "stop", "st")
    assert again.rc == 0 and again.doc["state"] == "stopped"
    settle(sandbox)


def test_stop_agent_ignoring_sigterm_is_killed(sandbox):
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(300)"
    start_ok(sandbox, "ig", *pyagent(code))
    r = dispatch(sandbox, "stop", "ig")
    assert r.doc["state"] == "stopped" and r.doc["signal"] == signal.SIGKILL
    settle(sandbox)


def test_natural_exit_leaves_no_descendants(sandbox):
    code = TREE.rsplit("time.sleep(300)", 1)[0] + (
        "while not os.path.exists(os.path.join(out, 'daemon.pid')): time.sleep(0.01)\n"
    )
    start_ok(sandbox, "ne", *pyagent(code), env={"OUT_DIR": str(sandbox.workdir)})
    t = wait_done(sandbox, "ne")
    assert t["state"] == "succeeded"
    assert (sandbox.workdir / "daemon.pid").exists()
    assert _marker_procs(sandbox, "ne") == []
    settle(sandbox)


def test_killed_supervisor_is_detected_and_cleaned(sandbox):
    start_ok(sandbox, "sl", *pyagent(TREE), env={"OUT_DIR": str(sandbox.workdir)})
    wait_for(lambda: (sandbox.workdir / "daemon.pid").exists())
    t = status(sandbox, "sl")
    os.kill(t["wrapper_pid"], signal.SIGKILL)
    t = dispatch(sandbox, "wait", "sl", "--timeout", "10").doc
    assert (t["state"], t["reason"]) == ("crashed", "supervisor_lost")
    assert _marker_procs(sandbox, "sl") == []
    assert t["session"] not in sessions(sandbox)
    settle(sandbox)


def test_reap_reports_lost_supervisor(sandbox):
    start_ok(sandbox, "rp", "sleep", "300")
    t = status(sandbox, "rp")
    os.kill(t["wrapper_pid"], signal.SIGKILL)
    wait_for(lambda: not ProcessIdentity.of(t["wrapper_pid"]))
    r = dispatch(sandbox, "reap").doc
    assert {"task_id": "rp", "session": t["session"], "reason": "supervisor_lost"} in r["reaped"]
    assert status(sandbox, "rp")["state"] == "crashed"
    assert not ProcessIdentity.of(t["agent_pid"])
    settle(sandbox)


def test_reap_kills_ownerless_prefixed_sessions_only(sandbox):
    start_ok(sandbox, "keep", "sleep", "300")
    assert tmux(sandbox, "new-session", "-d", "-s", "dk_0123456789ab", "sleep", "300").returncode == 0
    foreign = ["other", "dk_", "dk_0123", "dk_0123456789abc", "dk_0123456789ab-user", "dk_0123456789AB"]
    for name in foreign:
        assert tmux(sandbox, "new-session", "-d", "-s", name, "sleep", "300").returncode == 0
    r = dispatch(sandbox, "reap").doc
    assert r["reaped"] == [{"task_id": None, "session": "dk_0123456789ab", "reason": "ownerless_session"}]
    names = sessions(sandbox)
    assert set(foreign) <= set(names) and status(sandbox, "keep")["session"] in names
    assert status(sandbox, "keep")["state"] == "running"
    for name in foreign:
        tmux(sandbox, "kill-session", "-t", "=" + name)
    dispatch(sandbox, "stop", "keep")
    settle(sandbox)


def test_start_also_reaps(sandbox):
    start_ok(sandbox, "a0", "true")
    wait_done(sandbox, "a0")
    settle(sandbox)
    assert tmux(sandbox, "new-session", "-d", "-s", "dk_deadbeef0000", "sleep", "300").returncode == 0
    start_ok(sandbox, "a1", "true")
    assert "dk_deadbeef0000" not in sessions(sandbox)
    wait_done(sandbox, "a1")
    settle(sandbox)


def test_session_killed_from_outside_is_crashed_session_lost(sandbox):
    start_ok(sandbox, "kl", "sleep", "300")
    t = status(sandbox, "kl")
    assert tmux(sandbox, "kill-session", "-t", "=" + t["session"]).returncode == 0
    t = wait_done(sandbox, "kl")
    assert (t["state"], t["reason"]) == ("crashed", "session_lost")
    assert not ProcessIdentity.of(t["agent_pid"])
    settle(sandbox)


def test_status_answers_with_frozen_tmux_and_sees_agent_death(sandbox):
    start_ok(sandbox, "fz", "sleep", "300")
    t = status(sandbox, "fz")
    server = int(tmux(sandbox, "display-message", "-p", "#{pid}").stdout)
    os.kill(server, signal.SIGSTOP)
    try:
        os.kill(t["agent_pid"], signal.SIGKILL)
        t0 = time.monotonic()
        s = dispatch(sandbox, "status", "fz", timeout=10)
        assert time.monotonic() - t0 < 5
        s = wait_for(lambda: (lambda d: d if d["state"] == "crashed" else None)(status(sandbox, "fz")), 5)
        assert (s["reason"], s["signal"]) == ("signaled", signal.SIGKILL)
        r = dispatch(sandbox, "send", "fz", "--text-file", __file__, env={"DISPATCH_TMUX_TIMEOUT_S": "0.5"})
        assert r.rc == 2 and r.doc["error"]["code"] == "not_running"
    finally:
        os.kill(server, signal.SIGCONT)
    settle(sandbox)


def test_frozen_tmux_start_times_out_with_exit_3(sandbox):
    start_ok(sandbox, "z0", "sleep", "300")
    server = int(tmux(sandbox, "display-message", "-p", "#{pid}").stdout)
    os.kill(server, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        r = dispatch(
            sandbox,
            "start",
            "--task-id",
            "z1",
            "--cwd",
            str(sandbox.workdir),
            "--prompt-file",
            __file__,
            "--",
            "true",
            env={"DISPATCH_TMUX_TIMEOUT_S": "0.5"},
        )
        assert time.monotonic() - t0 < 8
        assert r.rc == 3 and r.doc["error"]["code"] == "tmux_unreachable"
        assert not (sandbox.state_dir / "tasks" / "z1").exists()
        assert "z1" not in [d["task_id"] for d in dispatch(sandbox, "list").doc]
    finally:
        os.kill(server, signal.SIGCONT)
    dispatch(sandbox, "stop", "z0")
    settle(sandbox)
