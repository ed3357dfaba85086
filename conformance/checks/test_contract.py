"""Contract rules beyond the seed's pitfalls: the agent's environment, the user's own tmux server,
interactive submission, refusals that create nothing, wait/send/events semantics."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conformance.context import Ctx, fake_program
from conformance.harness import LIVE, TERMINAL
from conformance.registry import check


@check(
    id="EX.env.caller-not-server",
    level="MUST",
    pitfall="EX",
    reason="start the agent with the environment of the `start` call (new-session -e / a saved env file "
    "applied by the wrapper), not the tmux server's global environment",
)
def test_agent_gets_callers_env(dispatch: Ctx) -> None:
    server_env = dict(dispatch.impl.env, FAKE_AGENT_PROBE="server", FAKE_AGENT_SERVERONLY="1")
    r = dispatch.tmux(
        "new-session",
        "-d",
        "-s",
        "user-keep",
        "--",
        sys.executable,
        "-c",
        "import time; time.sleep(600)",
        env=server_env,
    )
    assert r.returncode == 0, f"could not pre-start the tmux server: {r.stderr.strip()}"
    impl = dispatch.impl.with_env(FAKE_AGENT_PROBE="caller")
    agent = dispatch.agent("--work", "0.2")
    tid = dispatch.task_id()
    impl.start(tid, agent.argv)
    env = agent.wait_for("start", 15)["env"]
    impl.wait(tid, 20)
    assert env.get("FAKE_AGENT_PROBE") == "caller", (
        f"the agent saw FAKE_AGENT_PROBE={env.get('FAKE_AGENT_PROBE')!r}: the tmux server's env, not the caller's"
    )
    assert "FAKE_AGENT_SERVERONLY" not in env, "the agent inherited a variable only the tmux server had"
    assert env.get("DISPATCH_TASK_ID") == tid, f"DISPATCH_TASK_ID={env.get('DISPATCH_TASK_ID')!r}"
    for var in ("DISPATCH_PROMPT_FILE", "DISPATCH_RESULT_FILE", "DISPATCH_HEARTBEAT_FILE"):
        assert env.get(var) and os.path.isabs(env[var]), f"{var}={env.get(var)!r} is not an absolute path"


def _new_clients(log: Path) -> int:
    return sum(1 for line in log.read_text(errors="replace").splitlines() if " new client " in line)


@check(
    id="EX.tmux.default-server-untouched",
    level="MUST",
    pitfall="EX",
    reason="pass -S/-L to every tmux call (never rely on $TMUX or the default socket); the user's own "
    "tmux server must never be contacted",
)
def test_users_default_server_untouched(dispatch: Ctx) -> None:
    tmux = shutil.which("tmux")
    assert tmux
    user_tmp = dispatch.sandbox.root / "usertmux"
    logs = dispatch.sandbox.root / "usertmux-logs"
    user_tmp.mkdir(mode=0o700)
    logs.mkdir()
    uenv = dict(dispatch.impl.env, TMUX_TMPDIR=str(user_tmp))
    uenv.pop("DISPATCH_TMUX_SOCKET", None)
    # the user's default server, verbose: its log records every client that connects
    r = subprocess.run(
        [
            tmux,
            "-v",
            "new-session",
            "-d",
            "-s",
            "sentinel",
            "--",
            sys.executable,
            "-c",
            "import time; time.sleep(600)",
        ],
        env=uenv,
        cwd=logs,
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert r.returncode == 0, f"could not start the sentinel server: {r.stderr.strip()}"
    sock = user_tmp / f"tmux-{os.getuid()}" / "default"
    info = subprocess.run(
        [tmux, "-S", str(sock), "display-message", "-p", "#{pid}"],
        env=uenv,
        capture_output=True,
        text=True,
        timeout=10,
    ).stdout.strip()
    log = next(logs.glob("tmux-server-*.log"))
    try:
        baseline = _new_clients(log)
        # the caller runs inside the user's tmux: $TMUX points at the sentinel server
        impl = dispatch.impl.with_env(TMUX_TMPDIR=str(user_tmp), TMUX=f"{sock},{info},0", TMUX_PANE="%0")
        dispatch.impl = impl
        a = dispatch.agent("--print", "hi", "--work", "0.3")
        tid = dispatch.task_id()
        impl.start(tid, a.argv)
        impl.status(tid)
        impl.wait(tid, 20)
        impl.run("logs", tid, strict=False)
        impl.run("events", tid, strict=False)
        b = dispatch.task_id()
        impl.start(b, dispatch.agent("--work", "30").argv)
        impl.stop(b)
        impl.run("reap", strict=False)
        impl.list()
        contacted = _new_clients(log) - baseline
        assert contacted == 0, (
            f"the implementation contacted the user's default tmux server {contacted} time(s)"
        )
        out = subprocess.run(
            [tmux, "-S", str(sock), "list-sessions", "-F", "#{session_name}"],
            env=uenv,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.split()
        assert out == ["sentinel"], f"the user's default server now has sessions {out}"
    finally:
        subprocess.run([tmux, "-S", str(sock), "kill-server"], env=uenv, capture_output=True, timeout=10)


@check(
    id="EX.send.interactive-submitted",
    level="MUST",
    pitfall="EX",
    reason="after pasting into an interactive agent, send exactly one Enter so the prompt is submitted",
    needs=("send",),
)
def test_send_to_interactive_agent_is_submitted(dispatch: Ctx) -> None:
    try:
        from fake_agents import claude  # noqa: F401
        from fake_agents import journal as J
    except ImportError:
        pytest.skip("fake_agents.claude (fake-claude) is not available yet")
    journal = dispatch.sandbox.root / "claude.jsonl"
    impl = dispatch.set_knobs(stale=0).with_env(
        FAKE_AGENT_JOURNAL=str(journal), FAKE_CLAUDE_TURNS="1", FAKE_CLAUDE_WORK_S="0.2"
    )
    dispatch.impl = impl
    tid = dispatch.task_id()
    impl.start(tid, fake_program("fake-claude"))
    try:
        J.wait_for(journal, "ready", 20)  # the input box is drawn, bracketed paste on
    except TimeoutError as e:
        raise AssertionError(f"fake-claude never became ready: {e}") from None
    text = "Fix the failing test in parser.py, then run the suite.\nKeep the public API."
    impl.send(tid, text)
    want = hashlib.sha256(text.encode()).hexdigest()
    try:
        J.wait_for(journal, "prompt", 15, where=lambda e: e.get("source") == "tui")
    except TimeoutError:
        tail = [(e.event, e.get("kind")) for e in J.read(journal)][-6:]
        raise AssertionError(
            f"the pasted prompt was never submitted (no Enter after the paste; journal {tail})"
        ) from None
    submitted = [e for e in J.read(journal) if e.event == "prompt" and e.get("source") == "tui"]
    assert submitted[0]["sha256"] == want, (
        f"the submitted prompt differs from the text sent ({submitted[0]['length']} bytes, expected {len(text.encode())})"
    )
    assert len(submitted) == 1, f"one send submitted {len(submitted)} prompts"
    task = impl.wait(tid, 20)
    assert task["state"] == "succeeded", f"state {task['state']!r} (reason {task['reason']!r})"


@check(
    id="EX.refusals.nothing-created",
    level="MUST",
    pitfall="EX",
    reason="validate every input before creating anything; refuse with exit 2, the documented error.code "
    "and one line, leaving no task, session or server",
)
def test_bad_input_refused_cleanly(dispatch: Ctx) -> None:
    impl = dispatch.impl
    good = dispatch.agent(heartbeat=None).argv
    cases = [
        ("bad task id", dict(task_id="../etc", argv=good), "bad_task_id"),
        ("bad task id", dict(task_id="-rf", argv=good), "bad_task_id"),
        ("bad task id", dict(task_id="x" * 65, argv=good), "bad_task_id"),
        ("bad cwd", dict(task_id="okcwd", argv=good, cwd="/nonexistent/dir"), "bad_cwd"),
        (
            "unreadable prompt",
            dict(task_id="okprompt", argv=good, prompt_file="/nonexistent/prompt"),
            "bad_prompt_file",
        ),
        ("empty argv", dict(task_id="okargv", argv=[]), "bad_argv"),
    ]
    for what, kw, code in cases:
        tid = kw.pop("task_id")
        argv = kw.pop("argv")
        call = impl.start_call(tid, argv, strict=False, **kw)
        assert call.problem is None, f"{what}: {call.describe()}"
        assert call.exit_code == 2, f"{what}: {call.describe()}, expected exit 2"
        assert call.error_code == code, f"{what}: error.code {call.error_code!r}, expected {code}"
        assert call.stderr.strip() and "\n" not in call.stderr.strip(), f"{what}: stderr is not one line"
    assert not dispatch.sandbox.socket.exists(), "a refused start created the tmux server"
    assert impl.list() == [], "a refused start left a task"
    call = impl.run("status", "no-such-task", strict=False)
    assert call.exit_code == 2 and call.error_code == "unknown_task", (
        f"status of an unknown task: {call.describe()}"
    )
    tid = dispatch.task_id()
    impl.start(tid, dispatch.agent("--work", "0.2", heartbeat=None).argv)
    call = impl.start_call(tid, good, strict=False)
    assert call.exit_code == 2 and call.error_code == "duplicate_task_id", (
        f"duplicate task id: {call.describe()}"
    )
    assert len(impl.list()) == 1, "a duplicate start created a second task"


@check(
    id="EX.wait.timeout-124",
    level="MUST",
    pitfall="EX",
    reason="`wait --timeout` returns the live task object with exit 124 when the task has not ended",
)
def test_wait_timeout(dispatch: Ctx) -> None:
    tid = dispatch.run_agent(dispatch.agent("--work", "30"))
    call = dispatch.impl.run("wait", tid, "--timeout", "0.5", timeout=15)
    assert call.exit_code == 124, (
        f"wait --timeout 0.5 on a running task: {call.describe()}, expected exit 124"
    )
    assert call.doc.get("state") in LIVE, f"wait timed out but printed state {call.doc.get('state')!r}"
    assert call.duration_s < 10, f"wait --timeout 0.5 took {call.duration_s:.1f}s"


@check(
    id="EX.send.ended-task",
    level="MUST",
    pitfall="EX",
    reason="refuse `send` to a task that has ended with exit 2, not_running",
    needs=("send",),
)
def test_send_to_ended_task_refused(dispatch: Ctx) -> None:
    tid = dispatch.run_agent(dispatch.agent("--work", "0.1", heartbeat=None))
    dispatch.impl.wait(tid, 20)
    call = dispatch.impl.send_call(tid, "hello", strict=False)
    assert call.problem is None, call.describe()
    assert call.exit_code == 2 and call.error_code == "not_running", (
        f"send to an ended task: {call.describe()}"
    )


@check(
    id="EX.events.transitions",
    level="SHOULD",
    pitfall="EX",
    reason="record every state transition as an event (seq increasing, monotonic time, terminal last)",
    needs=("events",),
)
def test_events_record_transitions(dispatch: Ctx) -> None:
    tid = dispatch.run_agent(dispatch.agent("--work", "0.3", "--exit", "3"))
    task = dispatch.impl.wait(tid, 20)
    events = dispatch.impl.events(tid)
    assert events, "no events for an ended task"
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(set(seqs)), f"event seq not strictly increasing: {seqs}"
    monos = [e["mono"] for e in events]
    assert monos == sorted(monos), "event mono times go backwards"
    assert events[-1]["state"] == task["state"], (
        f"last event {events[-1]['state']!r} != task state {task['state']!r}"
    )
    assert sum(e["state"] in TERMINAL for e in events) == 1, "more than one terminal event"


@check(
    id="EX.cwd.agent-pwd",
    level="MUST",
    pitfall="EX",
    reason="run the agent in --cwd and set its PWD to --cwd too (agents such as opencode write where PWD "
    "says); never leave the caller's PWD in place",
)
def test_agent_pwd_and_cwd_are_the_given_cwd(dispatch: Ctx) -> None:
    caller = dispatch.sandbox.root / "caller dir"
    target = dispatch.sandbox.workdir / "given cwd"
    caller.mkdir()
    target.mkdir()
    impl = dispatch.make_impl(PWD=str(caller))
    impl.cwd = str(caller)  # the caller runs `start` from elsewhere, with its own PWD
    dispatch.impl = impl
    agent = dispatch.agent("--work", "5", heartbeat=None)
    tid = dispatch.run_agent(agent, cwd=target)
    start = agent.wait_for("start", 20)
    try:  # the running agent's own process, as the kernel sees it (its journal keeps no PWD)
        real = os.readlink(f"/proc/{start.pid}/cwd")
        with open(f"/proc/{start.pid}/environ", "rb") as f:
            env = dict(v.split(b"=", 1) for v in f.read().split(b"\0") if b"=" in v)
    except OSError as e:
        raise AssertionError(f"the agent (pid {start.pid}) ended before its cwd could be read: {e}") from None
    finally:
        dispatch.impl.run("stop", tid, strict=False)
    pwd = env.get(b"PWD", b"").decode() or None
    assert real == os.path.realpath(target), f"the agent runs in {real!r}, not --cwd {str(target)!r}"
    assert pwd is not None and os.path.realpath(pwd) == os.path.realpath(target), (
        f"the agent's PWD is {pwd!r}, not --cwd {str(target)!r} (the caller's PWD was left in place)"
    )
