"""The look-alikes for real: fake-claude's TUI in a real tmux pane (banner, bracketed paste), its -p mode
and hooks, fake-codex's JSONL, opencode and pi, journal plumbing and shims."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from fake_agents import journal, shims
from fake_agents.journal import wait_for
from fake_agents.testing import alive

T = 15.0


@pytest.fixture
def fx(sandbox):
    """Env with shims first on PATH and a journal; yields (env, bin dir, journal path)."""
    bindir = shims.bin_dir(sandbox.root / "bin")
    j = sandbox.root / "journal.jsonl"
    env = sandbox.env(
        PATH=f"{bindir}{os.pathsep}{os.environ.get('PATH', os.defpath)}",
        FAKE_AGENT_JOURNAL=str(j),
        FAKE_CLAUDE_HOME=str(sandbox.root / "claude-home"),
        FAKE_CODEX_HOME=str(sandbox.root / "codex-home"),
    )
    return env, bindir, j


def sh(env, *argv: str, input: bytes | None = None, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(argv, env=env, input=input, capture_output=True, timeout=T, cwd=cwd)


class Tmux:
    """A private tmux server on the sandbox socket (never the user's)."""

    def __init__(self, sb, env) -> None:
        self.sb, self.env = sb, env

    def __call__(self, *args: str, input: bytes | None = None) -> str:
        cp = subprocess.run(["tmux", "-S", str(self.sb.socket), "-f", "/dev/null", *args], env=self.env,
                            input=input, capture_output=True, timeout=10)  # fmt: skip
        assert cp.returncode == 0, cp.stderr
        return cp.stdout.decode()

    def close(self, pids: list[tuple[int, int | None]]) -> None:
        subprocess.run(["tmux", "-S", str(self.sb.socket), "kill-server"], capture_output=True, timeout=10)
        deadline = time.monotonic() + T
        while any(alive(p, t) for p, t in pids) or self.sb.leaks():
            assert time.monotonic() < deadline, self.sb.leaks()
            time.sleep(0.02)


def test_claude_tui_banner_and_tmux_paste_in_a_real_pane(fx, sandbox):
    env, bindir, j = fx
    settings = sandbox.root / "settings.json"
    stop_out = sandbox.root / "stop.json"
    settings.write_text(
        json.dumps({"hooks": {"Stop": [{"hooks": [{"type": "command", "command": f"cat > '{stop_out}'"}]}]}})
    )
    tm = Tmux(sandbox, dict(env, FAKE_CLAUDE_STARTUP_S="0.2", FAKE_CLAUDE_WORK_S="0.3"))
    pids = []
    try:
        pane = tm("new-session", "-d", "-P", "-F", "#{pane_id}", "-x", "120", "-y", "50", "-c", str(sandbox.workdir),
                  "--", str(bindir / "claude"), "--model", "opus", "--settings", str(settings)).strip()  # fmt: skip
        ready = wait_for(j, "ready", T)
        st = journal.first(journal.read(j), "start")
        pids.append((st.pid, st["start_ticks"]))
        assert st["mode"] == "interactive" and st["model"] == "opus"
        screen = tm("capture-pane", "-p", "-t", pane)
        assert "Welcome to Claude Code" in screen and ready["session_id"] in screen and "❯" in screen
        text = "first line\nsecond 'quoted' \"$(touch pwned)\" `id`\n\ttab ünïcødé ✓ end".encode()
        tm("load-buffer", "-b", "dkfa", "-", input=text)
        tm("paste-buffer", "-p", "-r", "-d", "-b", "dkfa", "-t", pane)
        tm("send-keys", "-t", pane, "Enter")
        paste = wait_for(j, "input", T, where=lambda e: e["kind"] == "paste")
        assert base64.b64decode(paste["b64"]) == text and paste["sha256"] == hashlib.sha256(text).hexdigest()
        turn = wait_for(j, "turn", T)
        prompt = journal.first(journal.read(j), "prompt")
        assert prompt["source"] == "tui" and prompt["sha256"] == hashlib.sha256(text).hexdigest()
        wait_for(j, "ready", T, count=2)  # back at the input box, still running
        assert alive(st.pid, st["start_ticks"])
        assert json.loads(stop_out.read_text())["session_id"] == turn["session_id"] == ready["session_id"]
        assert "finished the task" in tm("capture-pane", "-p", "-t", pane)
        assert not (sandbox.workdir / "pwned").exists()
    finally:
        tm.close(pids)


def test_claude_print_mode_hooks_resume_continue(fx, sandbox):
    env, bindir, j = fx
    post, stop = sandbox.root / "post.jsonl", sandbox.root / "stop.json"
    settings = sandbox.root / "s.json"
    settings.write_text(json.dumps({"hooks": {
        "PostToolUse": [{"matcher": "Bash|Write", "hooks": [{"type": "command", "command": f"cat >> '{post}'; echo >> '{post}'"}]}],
        "Stop": [{"hooks": [{"type": "command", "command": f"cat > '{stop}'"}]}],
    }}))  # fmt: skip
    cp = sh(
        env,
        "claude",
        "-p",
        "do the thing",
        "--model",
        "sonnet",
        "--settings",
        str(settings),
        cwd=sandbox.workdir,
    )
    assert cp.returncode == 0 and b"finished the task" in cp.stdout
    ev = journal.read(j)
    sid = journal.first(ev, "start")["session_id"]
    assert len(sid) == 36 and journal.first(ev, "start")["model"] == "sonnet"
    hooks = journal.all_of(ev, "hook")
    assert [h["hook_event"] for h in hooks] == ["PostToolUse", "Stop"] and all(h["code"] == 0 for h in hooks)
    payload = json.loads(post.read_text().splitlines()[0])
    assert payload["session_id"] == sid and payload["tool_name"] == "Bash"
    assert payload["hook_event_name"] == "PostToolUse" and payload["cwd"] == os.path.realpath(sandbox.workdir)
    assert json.loads(stop.read_text())["hook_event_name"] == "Stop"
    # --continue picks the last session in this cwd; --resume ID uses ID; JSON output carries it
    cp = sh(env, "claude", "-p", "--continue", "--output-format", "json", input=b"more", cwd=sandbox.workdir)
    doc = json.loads(cp.stdout)
    assert doc["session_id"] == sid and doc["type"] == "result"
    cp = sh(env, "claude", "--resume", "abc-123", "-p", "again", cwd=sandbox.workdir)
    starts = journal.all_of(journal.read(j), "start")
    assert starts[1]["resumed"] == "continue" and starts[2]["session_id"] == "abc-123"
    assert journal.all_of(journal.read(j), "prompt")[1]["source"] == "stdin"


def test_lookalike_takes_generic_faults_from_env(fx, sandbox):
    env, _, j = fx
    pf = sandbox.root / "p"
    pf.write_bytes(b"x")
    e = dict(env, FAKE_AGENT_FLAGS="--exit 5 --print 'two words' --result-mode atomic --result '{\"r\": 1}'",
             DISPATCH_RESULT_FILE=str(sandbox.root / "r.json"))  # fmt: skip
    cp = sh(e, "claude", "-p", "hi")
    assert cp.returncode == 5 and b"two words\n" in cp.stdout
    assert json.loads((sandbox.root / "r.json").read_text()) == {"r": 1}
    assert journal.first(journal.read(j), "ending")["code"] == 5
    cp = sh(dict(env, FAKE_AGENT_FLAGS="--die KILL"), "pi", "-p", "x")
    assert cp.returncode == -9
    cp = sh(dict(env, FAKE_AGENT_FLAGS="--no-such-flag"), "opencode", "run", "x")
    assert cp.returncode == 2 and b"FAKE_AGENT_FLAGS" in cp.stderr


def test_codex_exec_json_events_and_resume(fx, sandbox):
    env, _, j = fx
    cp = sh(
        env, "codex", "exec", "--json", "--model", "o3", "--full-auto", "fix the bug", cwd=sandbox.workdir
    )
    assert cp.returncode == 0, cp.stderr
    events = [json.loads(line) for line in cp.stdout.decode().splitlines()]
    assert [e["type"] for e in events] == [
        "thread.started",
        "turn.started",
        "item.completed",
        "item.completed",
        "turn.completed",
    ]
    tid = events[0]["thread_id"]
    msg = events[3]["item"]
    assert msg["type"] == "agent_message" and "finished the task" in msg["text"]
    assert journal.first(journal.read(j), "start")["thread_id"] == tid
    cp = sh(env, "codex", "exec", "--json", "resume", tid, "continue please", cwd=sandbox.workdir)
    again = [json.loads(line) for line in cp.stdout.decode().splitlines()]
    assert again[0] == {"type": "thread.started", "thread_id": tid}
    assert journal.all_of(journal.read(j), "start")[1]["resumed"] == tid
    cp = sh(env, "codex", "exec", "plain mode", cwd=sandbox.workdir)
    assert cp.returncode == 0 and b"finished the task" in cp.stdout and b"session id:" in cp.stderr
    cp = sh(dict(env, FAKE_AGENT_FLAGS="--exit 1"), "codex", "exec", "--json", "x", cwd=sandbox.workdir)
    assert cp.returncode == 1 and json.loads(cp.stdout.splitlines()[-1])["type"] == "turn.failed"


def test_opencode_and_pi(fx):
    env, _, j = fx
    cp = sh(env, "opencode", "run", "--model", "a/b", "hello", "world")
    assert cp.returncode == 0 and b"fake opencode" in cp.stdout
    cp = sh(env, "pi", "-p", "hi there", "--model", "m")
    assert cp.returncode == 0 and b"fake pi" in cp.stdout
    starts = journal.all_of(journal.read(j), "start")
    assert [s["kind"] for s in starts] == ["opencode", "pi"] and starts[1]["model"] == "m"
    prompts = journal.all_of(journal.read(j), "prompt")
    assert prompts[0]["sha256"] == hashlib.sha256(b"hello world").hexdigest()


def test_shims_are_executable_and_named_like_the_real_agents(tmp_path):
    d = shims.bin_dir(tmp_path / "b")
    for name in (
        "fake-agent",
        "fake-claude",
        "fake-codex",
        "fake-opencode",
        "fake-pi",
        "claude",
        "codex",
        "opencode",
        "pi",
    ):
        p = d / name
        assert os.access(p, os.X_OK) and p.read_text().startswith("#!")


def test_journal_reader_tolerates_torn_line_and_wait_for_times_out(tmp_path):
    p = tmp_path / "j"
    jw = journal.Journal(p)
    jw.write("start", x=1)
    jw.write("heartbeat", n=1)
    jw.close()
    with open(p, "ab") as f:
        f.write(b'{"event":"heartbeat","pid":1,"mo')
    ev = journal.read(p)
    assert [e.event for e in ev] == ["start", "heartbeat"] and ev[0]["x"] == 1 and ev[0].pid == os.getpid()
    assert journal.first(ev, "nope") is None and len(journal.all_of(ev, "heartbeat")) == 1
    assert wait_for(p, "heartbeat", 1).data == {"n": 1}
    with pytest.raises(TimeoutError):
        wait_for(p, "heartbeat", 0.05, count=2)
    assert journal.read(Path(tmp_path / "missing")) == []


def _tee_view(stdout: bytes, kind: str):
    """What runner.agents.tee reads from these events: (session id, outcome) — the real CLIs' shapes."""
    from runner.agents import tee

    out = tee.Outcome()
    ids = []
    for line in stdout.splitlines():
        ev = json.loads(line)
        tee.observe(ev, kind, out)
        if (tid := tee.thread_id_of(ev, kind)) is not None:
            ids.append(tid)
    return ids, out


@pytest.mark.parametrize(
    ("kind", "argv", "resume"),
    [
        ("opencode", ["opencode", "run", "--format", "json", "--auto"], ["-s"]),
        ("pi", ["pi", "-p", "--mode", "json"], ["--session"]),
        (
            "codex",
            ["codex", "exec", "--json", "--skip-git-repo-check", "--sandbox", "workspace-write", "-"],
            None,
        ),
    ],
)
def test_json_events_as_the_profiles_run_them(fx, sandbox, kind, argv, resume):
    """Prompt on stdin (a leading `-`/`@` is data), the session id, final message and a failed turn as
    runner.agents.tee parses them; resume by the agent's own flag keeps the id."""
    env, _, j = fx
    prompt = b"-x @file\n\tTAB $(touch CANARY)"
    cp = sh(env, *argv, input=prompt, cwd=sandbox.workdir)
    assert cp.returncode == 0, cp.stderr
    ids, out = _tee_view(cp.stdout, kind)
    assert len(ids) >= 1 and len(set(ids)) == 1 and not out.failed and not out.signals
    assert out.last_message and out.last_message.startswith(f"fake {kind} finished")
    p = journal.all_of(journal.read(j), "prompt")[-1]
    assert p["source"] == "stdin" and p["sha256"] == hashlib.sha256(prompt).hexdigest()
    assert not (sandbox.workdir / "CANARY").exists()
    if resume:
        cp = sh(env, *argv, *resume, ids[0], input=b"more", cwd=sandbox.workdir)
        assert cp.returncode == 0 and _tee_view(cp.stdout, kind)[0][0] == ids[0]
    cp = sh(dict(env, FAKE_AGENT_FLAGS="--exit 3"), *argv, input=b"x", cwd=sandbox.workdir)
    ids, out = _tee_view(cp.stdout, kind)
    assert cp.returncode == 3 and out.failed and out.signals, out
    cp = sh(
        dict(env, FAKE_AGENT_FLAGS="--ask 'QUESTION: red or blue?'"), *argv, input=b"x", cwd=sandbox.workdir
    )
    assert cp.returncode == 0 and _tee_view(cp.stdout, kind)[1].last_message == "QUESTION: red or blue?"
