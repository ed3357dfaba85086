"""Claude hook commands and the Codex tee, run for real (sh one-liners, child processes, signals)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from runner.agents import plan as plans
from runner.agents.hook import last_assistant_text
from runner.agents.tee import thread_id_of


def _run_hook(
    settings: dict, event: str, stdin: dict, env: dict[str, str]
) -> subprocess.CompletedProcess[bytes]:
    cmd = settings["hooks"][event][0]["hooks"][0]["command"]
    return subprocess.run(["/bin/sh", "-c", cmd], input=json.dumps(stdin).encode(), env=env,
                          capture_output=True, timeout=30)  # fmt: skip


def test_generated_hooks_write_heartbeat_session_and_result(tmp_path: Path) -> None:
    agent_dir = tmp_path / "agent"
    agent_dir.mkdir()
    settings = plans.claude_settings(agent_dir)
    env = {"PATH": os.defpath, "DISPATCH_HEARTBEAT_FILE": str(tmp_path / "hb"),
           "DISPATCH_RESULT_FILE": str(tmp_path / "result.json")}  # fmt: skip
    _run_hook(settings, "SessionStart", {"session_id": "sess-1", "hook_event_name": "SessionStart"}, env)
    assert (agent_dir / "session_id").read_text() == "sess-1"
    first = (tmp_path / "hb").read_text()
    _run_hook(settings, "PostToolUse", {"session_id": "sess-2", "tool_name": "Bash"}, env)
    assert (tmp_path / "hb").read_text() != first  # liveness is change of content
    assert (agent_dir / "session_id").read_text() == "sess-2"  # the latest id (it changes on /clear, forks)
    _run_hook(settings, "UserPromptSubmit", {"session_id": "sess-1", "prompt": "x"}, env)
    assert (agent_dir / "submitted.json").exists()
    assert not (tmp_path / "result.json").exists()
    cp = _run_hook(settings, "Stop", {"session_id": "sess-1", "last_assistant_message": "done!"}, env)
    assert cp.returncode == 0
    doc = json.loads((tmp_path / "result.json").read_text())
    assert doc["session_id"] == "sess-1" and doc["last_message"] == "done!" and doc["agent"] == "claude"
    assert oct((tmp_path / "result.json").stat().st_mode & 0o777) == "0o600"


def test_interactive_turn_ending_in_a_question_waits(tmp_path: Path) -> None:
    agent_dir = tmp_path / "agent"
    agent_dir.mkdir()
    settings = plans.claude_settings(agent_dir, interactive=True)
    env = {"PATH": os.defpath, "DISPATCH_RESULT_FILE": str(tmp_path / "result.json")}
    _run_hook(settings, "Stop", {"session_id": "s", "last_assistant_message": "QUESTION: red or blue?"}, env)
    assert not (tmp_path / "result.json").exists()
    assert "red or blue" in json.loads((agent_dir / "attention.json").read_text())["message"]
    _run_hook(settings, "UserPromptSubmit", {"session_id": "s", "prompt": "blue"}, env)
    assert not (agent_dir / "attention.json").exists()  # answered: no longer waiting
    _run_hook(settings, "Stop", {"session_id": "s", "last_assistant_message": "Painted it blue."}, env)
    assert json.loads((tmp_path / "result.json").read_text())["last_message"] == "Painted it blue."


def test_hook_never_fails_the_agent(tmp_path: Path) -> None:
    settings = plans.claude_settings(tmp_path / "does-not-exist")
    env = {"PATH": os.defpath, "DISPATCH_RESULT_FILE": str(tmp_path / "no" / "such" / "dir" / "r.json")}
    cp = subprocess.run(["/bin/sh", "-c", settings["hooks"]["Stop"][0]["hooks"][0]["command"]],
                        input=b"not json", env=env, capture_output=True, timeout=30)  # fmt: skip
    assert cp.returncode == 0


def test_last_assistant_text_from_transcript(tmp_path: Path) -> None:
    t = tmp_path / "t.jsonl"
    lines = [
        {"type": "user", "message": {"role": "user", "content": "hi"}},
        {
            "type": "assistant",
            "message": {"role": "assistant", "content": [{"type": "text", "text": "answer"}]},
        },
        "garbage",
    ]
    t.write_text("\n".join(json.dumps(x) if isinstance(x, dict) else x for x in lines))
    assert last_assistant_text(str(t)) == "answer"
    assert last_assistant_text(str(tmp_path / "missing")) is None


def test_thread_id_of() -> None:
    assert thread_id_of({"type": "thread.started", "thread_id": "abc"}) == "abc"
    assert thread_id_of({"type": "turn.started"}) is None
    assert thread_id_of([1]) is None


CHILD = r"""
import json, os, signal, sys, time
print(json.dumps({"type": "thread.started", "thread_id": "th-42"}), flush=True)
print("plain text line", flush=True)
for i in range(3):
    print(json.dumps({"type": "item.completed", "n": i}), flush=True)
mode = sys.argv[1]
if mode == "kill":
    os.kill(os.getpid(), signal.SIGSEGV)
if mode == "sigkill":
    os.kill(os.getpid(), signal.SIGKILL)
sys.exit(int(mode))
"""


def _tee(tmp_path: Path, mode: str) -> tuple[subprocess.CompletedProcess[bytes], Path]:
    child = tmp_path / "child.py"
    child.write_text(CHILD)
    env = {**os.environ, "DISPATCH_HEARTBEAT_FILE": str(tmp_path / "hb")}
    cp = subprocess.run(
        [sys.executable, "-m", "runner.agents.tee", "--events", str(tmp_path / "ev.jsonl"),
         "--thread-file", str(tmp_path / "tid"), "--", sys.executable, str(child), mode],
        env=env, capture_output=True, timeout=60,
    )  # fmt: skip
    return cp, tmp_path


def test_tee_passes_output_records_events_and_exit_code(tmp_path: Path) -> None:
    cp, d = _tee(tmp_path, "3")
    assert cp.returncode == 3
    assert b"plain text line" in cp.stdout and cp.stdout.count(b"item.completed") == 3
    assert (d / "tid").read_text() == "th-42"
    assert len((d / "ev.jsonl").read_bytes().splitlines()) == 4
    assert (d / "hb").read_text().startswith("4 ")


def test_tee_dies_by_the_agents_signal(tmp_path: Path) -> None:
    cp, _ = _tee(tmp_path, "kill")
    assert cp.returncode == -signal.SIGSEGV
    cp, _ = _tee(tmp_path, "sigkill")
    assert cp.returncode == -signal.SIGKILL


def test_launch_puts_prompt_on_stdin_and_keeps_pid(tmp_path: Path) -> None:
    prompt = tmp_path / "p"
    prompt.write_bytes(b"\x00\x01 bytes \xff\n")
    script = "import os,sys; sys.stdout.write(str(os.getpid())+' '); sys.stdout.flush(); sys.stdout.buffer.write(sys.stdin.buffer.read())"
    p = subprocess.Popen(
        [sys.executable, "-m", "runner.agents.launch", "--stdin-prompt", "--", sys.executable, "-c", script],
        env={**os.environ, "DISPATCH_PROMPT_FILE": str(prompt)}, stdout=subprocess.PIPE,
    )  # fmt: skip
    out, _ = p.communicate(timeout=60)
    pid, _, data = out.partition(b" ")
    assert int(pid) == p.pid and data == prompt.read_bytes()
