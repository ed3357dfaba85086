"""Pure parts of what the real CLIs taught us: first-run screens, TUI text via pyte, event folding, launcher."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from runner.agents import firstrun, plan, screen, tee
from runner.agents.launch import Launch, parse
from runner.agents.profiles import tomllib

# the screens as Claude Code 2.1.332 drew them (captured from the real CLI against mock_model)
CONNECTIVITY = (
    " Unable to connect to Anthropic services\n Failed to connect to api.anthropic.com: ENOTFOUND\n"
)
TRUST = (" Quick safety check: Is this a project you created or one you trust? (Like your own code, a well-known\n"
         " ❯ No, exit\n   Yes, I trust this folder\n Enter to confirm · Esc to cancel\n")  # fmt: skip
READY = "────────\n❯  \n────────\n  ⏵⏵ auto mode on (shift+tab to cycle)\n"


def test_first_run_screens_recognised_and_ready_is_not() -> None:
    assert firstrun.recognise(CONNECTIVITY).key == "connectivity"  # type: ignore[union-attr]
    assert firstrun.recognise(TRUST).key == "trust"  # type: ignore[union-attr]
    assert firstrun.recognise(READY) is None
    msg = firstrun.message(firstrun.SCREENS[2])
    assert "trust" in msg and 'first_run = "preanswer"' in msg


def test_preanswer_merges_and_pending_clears(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "ANTHROPIC_API_KEY": "sk-" + "k" * 40}
    (tmp_path / ".claude.json").write_text(
        json.dumps({"userID": "keep-me", "projects": {"/other": {"x": 1}}})
    )
    assert [s.key for s in firstrun.pending(env, str(tmp_path))] == ["connectivity", "trust", "api_key"]
    firstrun.preanswer(env, str(tmp_path))
    cfg = json.loads((tmp_path / ".claude.json").read_text())
    assert cfg["userID"] == "keep-me" and cfg["projects"]["/other"] == {"x": 1}  # merged, never replaced
    assert firstrun.pending(env, str(tmp_path)) == []
    assert firstrun.pending(env, str(tmp_path / "elsewhere"))[0].key == "trust"  # only the run's cwd


def test_tui_output_reads_as_text() -> None:
    raw = b"\x1b[2J\x1b[3;2HUnable\x1b[3;9Hto\x1b[3;12Hconnect\x1b[3;20Hto\x1b[3;23HAnthropic"
    assert "Unable to connect to Anthropic" in screen.render(raw)


def test_event_folding_per_cli() -> None:
    out = tee.Outcome()
    for ev in ({"type": "item.completed", "item": {"type": "command_execution", "status": "failed", "exit_code": 1,
                                                    "aggregated_output": "Read-only file system"}},
               {"type": "item.completed", "item": {"type": "agent_message", "text": "done"}}):  # fmt: skip
        tee.observe(ev, "codex", out)
    assert out.last_message == "done" and "Read-only" in out.signals[0] and not out.failed
    tee.observe({"type": "turn.failed", "error": {"message": "boom"}}, "codex", out)
    assert out.failed
    assert tee.thread_id_of({"type": "step_start", "sessionID": "ses_1"}, "opencode") == "ses_1"
    assert tee.thread_id_of({"type": "session", "id": "p-1", "cwd": "/x"}, "pi") == "p-1"
    pi = tee.Outcome()
    tee.observe({"type": "message_end", "message": {"role": "assistant", "content": [{"type": "text", "text": "hi"}],
                                                    "stopReason": "stop"}}, "pi", pi)  # fmt: skip
    assert pi.last_message == "hi" and not pi.failed


def test_tee_fails_a_turn_the_agent_reported_failed(tmp_path: Path) -> None:
    child = (
        "import json; print(json.dumps({'type': 'turn.failed', 'error': {'message': 'stream disconnected'}}))"
    )
    env = {**os.environ, "DISPATCH_RESULT_FILE": str(tmp_path / "r.json")}
    cp = subprocess.run([sys.executable, "-m", "runner.agents.tee", "--kind", "codex", "--events", str(tmp_path / "e"),
                         "--id-file", str(tmp_path / "id"), "--", sys.executable, "-c", child],
                        env=env, capture_output=True, timeout=60)  # fmt: skip
    assert cp.returncode == 1 and b"failed turn" in cp.stderr
    assert "stream disconnected" in json.loads((tmp_path / "r.json").read_text())["failure_signals"][0]


def test_launcher_sets_pwd_env_and_stdin(tmp_path: Path) -> None:
    assert parse(["--set", "A=1", "--stdin-prompt", "--", "x"]) == Launch(True, {"A": "1"}, False, ["x"])
    assert parse(["--record", "/r", "--", "x"]) == Launch(False, {}, False, ["x"], "/r")
    assert parse(["--bogus", "--", "x"]) is None and parse(["--"]) is None
    (tmp_path / "p").write_bytes(b"\tprompt\n")
    child = "import os, sys; print(os.environ['PWD'], os.environ['A'], repr(sys.stdin.read()))"
    env = {**os.environ, "PWD": "/somewhere/else", "DISPATCH_PROMPT_FILE": str(tmp_path / "p")}
    cp = subprocess.run([sys.executable, "-m", "runner.agents.launch", "--stdin-prompt", "--set", "A=b c", "--",
                         sys.executable, "-c", child], env=env, cwd=tmp_path, capture_output=True, text=True,
                        timeout=60)  # fmt: skip
    assert cp.stdout.split(" ", 1)[0] == str(tmp_path) and "b c '\\tprompt\\n'" in cp.stdout, cp.stderr


def test_launcher_records_a_tui_and_ends_like_it(tmp_path: Path) -> None:
    """--record: the agent runs on our pty; its raw bytes are kept and replay as the text it drew; the
    exit code (and a signal death) is the agent's; input still reaches it."""
    rec = tmp_path / "screen.raw"
    child = (
        "import sys, os; print(sys.stdin.isatty(), sys.stdout.isatty()); line = sys.stdin.readline(); "
        "sys.stdout.write('\\x1b[5;1HUnable\\x1b[5;8Hto\\x1b[1Cconnect ' + line.strip() + '\\n'); sys.exit(3)"
    )
    cp = subprocess.run([sys.executable, "-m", "runner.agents.launch", "--record", str(rec), "--", sys.executable,
                         "-c", child], input=b"typed\n", capture_output=True, timeout=60)  # fmt: skip
    assert cp.returncode == 3, cp.stderr
    assert b"True True" in cp.stdout and b"Unable" in cp.stdout  # relayed to the pane as it came
    assert rec.stat().st_mode & 0o777 == 0o600
    assert "Unable to connect typed" in (screen.recording_text(rec) or "")
    die = "import os, signal; os.kill(os.getpid(), signal.SIGTERM)"
    cp = subprocess.run([sys.executable, "-m", "runner.agents.launch", "--record", str(rec), "--", sys.executable,
                         "-c", die], capture_output=True, timeout=60)  # fmt: skip
    assert cp.returncode == -15
    assert screen.task_log_text(tmp_path, "../x") is None and screen.task_log_text(tmp_path, "none") is None


def test_a_retry_the_agent_recovered_from_is_no_failure() -> None:
    """Measured event shapes: codex 0.171 `error` "Reconnecting... n/5", pi 0.73 auto_retry_start/end."""
    cx = tee.Outcome()
    tee.observe({"type": "error", "message": "Reconnecting... 1/5 (unexpected status 529)"}, "codex", cx)
    assert cx.retrying and not cx.failed and not cx.signals
    tee.observe({"type": "item.completed", "item": {"type": "agent_message", "text": "ok"}}, "codex", cx)
    assert cx.retrying is None and cx.retries and not cx.failed
    tee.observe({"type": "error", "message": "unexpected status 529"}, "codex", cx)
    assert cx.failed and cx.signals == ["error: unexpected status 529"]
    pi = tee.Outcome()
    err = {"role": "assistant", "content": [], "stopReason": "error", "errorMessage": "529 Overloaded"}
    for ev in ({"type": "message_end", "message": err}, {"type": "turn_end", "message": err}):
        tee.observe(ev, "pi", pi)
    assert pi.failed
    tee.observe({"type": "auto_retry_start", "attempt": 1, "maxAttempts": 3, "delayMs": 2000,
                 "errorMessage": "529 Overloaded"}, "pi", pi)  # fmt: skip
    assert not pi.failed and not pi.signals and pi.retrying and "attempt 1 of 3" in pi.retrying
    tee.observe({"type": "auto_retry_end", "success": False, "attempt": 3}, "pi", pi)
    assert pi.failed and pi.retrying is None


def test_codex_failures_read_from_its_rollout(tmp_path: Path) -> None:
    """The shape codex 0.171 writes (measured): a function_call_output with the unified exec's header."""
    tid = "01a22e48-becc-7150-8a73-fa1384693ba0"
    day = tmp_path / "sessions" / "2026" / "11" / "30"
    day.mkdir(parents=True)
    out = "Chunk ID: fd595a\nWall time: 0.0000 seconds\nProcess exited with code 1\nOutput:\nnope.txt: Read-only file system\n"
    rows = [{"timestamp": "2026-11-30T21:07:30.340Z", "type": "response_item",
             "payload": {"type": "function_call_output", "call_id": "c1", "output": out}},
            {"timestamp": "2026-11-30T21:07:31.000Z", "type": "response_item",
             "payload": {"type": "function_call_output", "call_id": "c2", "output": out.replace("code 1", "code 0")}},
            {"timestamp": "2026-11-29T10:00:00.000Z", "type": "response_item",  # an earlier run of the thread
             "payload": {"type": "function_call_output", "call_id": "c0", "output": out}}]  # fmt: skip
    (day / f"rollout-2026-11-30T21-07-29-{tid}.jsonl").write_text(
        "\n".join(json.dumps(r) for r in rows) + "\n"
    )
    since = tee._wall("2026-11-30T21:07:00Z")
    got = tee.codex_rollout_failures(tid, since, home=str(tmp_path))
    assert got == ["command failed (1): nope.txt: Read-only file system\n"]
    assert tee.codex_rollout_failures("../../etc", since, home=str(tmp_path)) == []
    o = tee.Outcome(signals=["command failed (1): nope.txt: Read-only file system\n"])
    (tmp_path / "id").write_text(tid)
    os.environ["CODEX_HOME"], old = str(tmp_path), os.environ.get("CODEX_HOME")
    try:
        tee.add_rollout_failures(o, tmp_path / "id", since)
    finally:
        os.environ.pop("CODEX_HOME") if old is None else os.environ.__setitem__("CODEX_HOME", old)
    assert len(o.signals) == 1  # the events' own report is not repeated


def test_codex_notify_writes_the_result_of_the_users_thread_only(tmp_path: Path) -> None:
    """The Codex TUI's `notify` fires for the user's turn and for its unsaved title thread (measured on
    0.171): only a thread with a session record ($CODEX_HOME/sessions/.../rollout-*-ID.jsonl) counts."""
    agent_dir, home = tmp_path / "agent", tmp_path / "codex"
    agent_dir.mkdir()
    user, title = "01a22ed8-ec4a-7f62-a07b-55456045e592", "01a22ed9-0998-7391-b7c1-20bb3ef17890"
    (home / "sessions" / "2026" / "11" / "30").mkdir(parents=True)
    (home / "sessions" / "2026" / "11" / "30" / f"rollout-2026-11-30T23-44-57-{user}.jsonl").write_text(
        "{}\n"
    )
    argv = tomllib.loads("notify = " + plan.notify_toml(agent_dir))["notify"]
    env = {"PATH": "/usr/bin:/bin", "CODEX_HOME": str(home), "DISPATCH_RESULT_FILE": str(tmp_path / "r.json")}
    for tid, text in ((title, "Paint the shed"), (user, "-PAINTED 'it' \"blue\"")):
        doc = {"type": "agent-turn-complete", "thread-id": tid, "last-assistant-message": text}
        subprocess.run([*argv, json.dumps(doc)], env=env, check=True, timeout=60)
        if tid == title:
            assert not (tmp_path / "r.json").exists() and not (agent_dir / "submitted.json").exists()
    res = json.loads((tmp_path / "r.json").read_text())
    assert res["agent"] == "codex" and res["last_message"] == "-PAINTED 'it' \"blue\""
    assert (agent_dir / "thread_id").read_text() == user and (agent_dir / "submitted.json").exists()
    assert sys.executable in argv[2]


def test_claude_api_error_read_from_its_transcript(tmp_path: Path) -> None:
    """The entry Claude Code 2.1.332 wrote when `-p` gave up on a 529 (trimmed), and a later real answer."""
    from runner.agents.hook import api_error

    err = {"type": "assistant", "error": "server_error", "isApiErrorMessage": True, "apiErrorStatus": 529,
           "apiErrorType": "overloaded_error", "message": {"model": "<synthetic>", "role": "assistant",
           "content": [{"type": "text", "text": "API Error: 529 Overloaded. This is a server-side issue"}]}}  # fmt: skip
    ok = {"type": "assistant", "message": {"role": "assistant", "content": [{"type": "text", "text": "hi"}]}}
    t = tmp_path / "t.jsonl"
    t.write_text(json.dumps(err) + "\n" + json.dumps({"type": "cost-state"}) + "\n")
    got = api_error(str(t))
    assert got == {"status": 529, "type": "overloaded_error", "message": err["message"]["content"][0]["text"]}
    t.write_text(json.dumps(err) + "\n" + json.dumps(ok) + "\n")
    assert api_error(str(t)) is None and api_error(str(tmp_path / "none")) is None
