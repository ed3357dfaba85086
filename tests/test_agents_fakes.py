"""Each agent profile end to end against its fake look-alike on real tmux: the prompt arrives byte for byte
(the fake's journal sha256), it was submitted, completion and result are detected, a crash is detected,
resume uses the agent's own id, a question is detected as needs_input and answered with send."""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_runner_support import end_tasks

from conformance.isolation import Sandbox
from fake_agents import journal

shims = pytest.importorskip("fake_agents.shims")

PY = sys.executable
DEADLINE = 90.0
PROMPT = "Refactor the parser.\n$(touch pwned) `id` 'q' \"d\" {prompt} \\n ünïcode ✓\n\tlast line".encode()
# (profile, run options): every look-alike in every mode the profiles use
CASES = [
    ("claude", ["--interactive"]),
    ("claude", ["--batch"]),
    ("codex", []),
    ("opencode", []),
    ("pi", []),
]
IDS = ["claude-interactive", "claude-batch", "codex", "opencode", "pi"]
TEED = ("codex", "opencode", "pi")  # run in JSON-event mode under runner.agents.tee
BATCH = [c for c in CASES if "--interactive" not in c[1]]
BATCH_IDS = [i for i, c in zip(IDS, CASES, strict=True) if "--interactive" not in c[1]]


class Env:
    def __init__(self, sb: Sandbox) -> None:
        self.sb = sb
        bin_dir = shims.bin_dir(sb.root / "bin")
        self.journal = sb.root / "journal.jsonl"
        self.env = sb.env(
            PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', os.defpath)}",
            DISPATCH_CONFIG=str(sb.root / "agents.toml"),
            DISPATCH_GRACE_S="0.5",
            FAKE_AGENT_JOURNAL=str(self.journal),
        )
        (sb.root / "p.txt").write_bytes(PROMPT)

    def agents(
        self, *args: str, flags: str = "", timeout: float = DEADLINE, **extra: str
    ) -> subprocess.CompletedProcess[str]:
        env = dict(self.env, FAKE_AGENT_FLAGS=flags, **extra)
        return subprocess.run([PY, "-m", "runner.agents", *args], env=env, capture_output=True, text=True,
                              timeout=timeout, cwd=self.sb.workdir)  # fmt: skip

    def run(self, agent: str, opts: list[str], *more: str, flags: str = "", **extra: str) -> tuple[int, dict]:
        cp = self.agents("run", "--json", "--agent", agent, "--prompt-file", str(self.sb.root / "p.txt"),
                         *opts, *more, flags=flags, **extra)  # fmt: skip
        try:
            return cp.returncode, json.loads(cp.stdout)
        except ValueError:
            raise AssertionError(f"not JSON: {cp.stdout!r}\n{cp.stderr}") from None

    def events(self) -> list[journal.Event]:
        return journal.read(self.journal)

    def cleanup(self) -> None:
        end_tasks(self.sb, self.env)


@pytest.fixture
def fx(sandbox: Sandbox) -> Iterator[Env]:
    e = Env(sandbox)
    yield e
    e.cleanup()


def prompt_digests(events: list[journal.Event]) -> list[str]:
    """sha256 of every prompt the fake saw (argv/stdin/env prompt events and pasted input)."""
    out = [e["sha256"] for e in journal.all_of(events, "prompt") if e.get("sha256")]
    out += [
        e["sha256"] for e in journal.all_of(events, "input") if e.get("kind") == "paste" and e.get("sha256")
    ]
    return out


@pytest.mark.parametrize(("agent", "opts"), CASES, ids=IDS)
def test_prompt_submitted_completed_with_result(fx: Env, agent: str, opts: list[str]) -> None:
    rc, doc = fx.run(agent, opts)
    assert rc == 0, doc
    assert doc["state"] == "succeeded", doc
    assert hashlib.sha256(PROMPT).hexdigest() in prompt_digests(fx.events())
    assert not (fx.sb.workdir / "pwned").exists()
    start = journal.first(fx.events(), "start")
    # teed agents run under our tee, TUIs under our recording pty relay (runner.agents.ptyrec): a child
    under = agent in TEED or "--interactive" in opts
    assert (start["ppid"] == doc["agent_pid"]) if under else (start.pid == doc["agent_pid"]), (start, doc)
    if agent == "opencode":  # it works in $PWD: the launcher makes that --cwd
        assert (
            os.path.realpath(start["pwd"])
            == os.path.realpath(start["cwd"])
            == os.path.realpath(fx.sb.workdir)
        )
    if agent == "claude":
        assert doc["result"]["agent"] == "claude" and doc["result"]["session_id"]
        assert doc["agent"]["native_id"] == doc["result"]["session_id"]
    if "--interactive" in opts:
        assert doc["agent"]["delivery"]["ok"], doc["agent"]
    if agent in TEED:
        assert doc["agent"]["native_id"] == start["session_id"], doc["agent"]
        assert doc["result"]["last_message"].startswith(f"fake {agent} finished"), doc["result"]


@pytest.mark.parametrize(("agent", "opts"), CASES, ids=IDS)
def test_crash_detected(fx: Env, agent: str, opts: list[str]) -> None:
    # an interactive session only ends (here: dies) after its turns; one turn, then SIGKILL. Its result
    # is complete `--work` before the kill: a grace shorter than that gap under load (0.5 s vs 0.3 s of
    # work) let the wrapper end it first as succeeded/completed_by_result (the whole suite in bookworm).
    rc, doc = fx.run(agent, opts, flags="--work 0.3 --die KILL", FAKE_CLAUDE_TURNS="1", DISPATCH_GRACE_S="10")
    assert rc == 1 and doc["state"] == "crashed" and doc["signal"] == 9, doc


@pytest.mark.parametrize(("agent", "opts"), CASES, ids=IDS)
def test_resume_uses_the_agents_own_id(fx: Env, agent: str, opts: list[str]) -> None:
    rc, doc = fx.run(agent, opts, "--task-id", "first")
    assert rc == 0, doc
    native = doc["agent"]["native_id"]
    cp = fx.agents("resume", "--json", "first", "--prompt", "carry on")
    assert cp.returncode == 0, cp.stdout + cp.stderr
    again = json.loads(cp.stdout)
    assert again["task_id"] == "first.r1" and again["state"] == "succeeded"
    assert again["agent"]["resume_of"] == "first"
    if native:
        assert native in again["argv"]
    starts = journal.all_of(fx.events(), "start")
    assert len(starts) == 2


@pytest.mark.parametrize(("agent", "opts"), BATCH, ids=BATCH_IDS)
def test_batch_question_becomes_the_result(fx: Env, agent: str, opts: list[str]) -> None:
    """The prompt came on stdin, so nobody can answer on the terminal: like the real -p/exec/run, the
    question ends the turn as its final message and the run succeeds with it as the result."""
    rc, doc = fx.run(agent, opts, flags="--ask 'QUESTION: may I run the migrations?'")
    assert rc == 0 and doc["state"] == "succeeded", doc
    assert "may I run the migrations" in doc["result"]["last_message"], doc["result"]
    asked = journal.all_of(fx.events(), "question")
    assert asked and asked[0]["answerable"] is False
    assert not [e for e in journal.all_of(fx.events(), "input") if e.get("kind") == "answer"]


@pytest.mark.parametrize(("agent", "opts"), [("claude", ["--interactive"])], ids=["claude-interactive"])
def test_question_detected_and_answered(fx: Env, agent: str, opts: list[str]) -> None:
    note = fx.sb.root / "note.json"
    env = dict(fx.env, FAKE_AGENT_FLAGS="--ask 'QUESTION: may I run the migrations?'")
    p = subprocess.Popen(
        [PY, "-m", "runner.agents", "run", "--json", "--agent", agent, "--task-id", "q", "--prompt-file",
         str(fx.sb.root / "p.txt"), *opts, "--notify", f"cat > {shlex.quote(str(note))}"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=fx.sb.workdir,
    )  # fmt: skip
    try:
        end = time.monotonic() + DEADLINE
        while not (note.exists() and note.stat().st_size):
            assert p.poll() is None, p.communicate()
            assert time.monotonic() < end, "needs_input was never reported"
            time.sleep(0.05)
        told = json.loads(note.read_text())
        assert told["state"] == "needs_input" and "may I run the migrations" in told["question"]
        cp = fx.agents("send", "q", "--text", "yes, go")
        assert cp.returncode == 0, cp.stderr
        out, err = p.communicate(timeout=DEADLINE)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, err
    assert json.loads(out)["state"] == "succeeded"
    answers = [e for e in journal.all_of(fx.events(), "input") if e.get("kind") == "answer"]
    assert answers and answers[0]["sha256"] == hashlib.sha256(b"yes, go").hexdigest()


def test_interactive_claude_submission_failure_is_said_clearly(fx: Env) -> None:
    """A TUI that never shows its banner (the prompt pasted, the profile's `-- {prompt}` dropped): run
    gives up at the deadline, says why, leaves nothing running."""
    Path(fx.env["DISPATCH_CONFIG"]).write_text(
        "[agents.claude.modes.interactive]\nprompt = 'paste'\nready = ['no such banner']\nready_timeout_s = 2\n"
    )
    rc, doc = fx.run("claude", ["--interactive"])
    assert rc == 1 and doc["error"]["code"] == "not_delivered"
    assert "no ready banner" in doc["error"]["message"]
    from runner.agents.backend import Runner

    assert all(t["state"] == "stopped" for t in Runner(fx.env).list())


def test_interactive_initial_prompt_never_taken_is_said_clearly(fx: Env) -> None:
    """A TUI given the prompt as its initial argument (tui-argv) that shows its input box but never takes
    it: one Enter, then run says so with the last screen, stops the task, exit 1."""
    Path(fx.env["DISPATCH_CONFIG"]).write_text(
        "[agents.tui]\ndefault_mode = 'interactive'\n[agents.tui.modes.interactive]\n"
        "argv = ['sh', '-c', 'echo INPUT BOX; exec sleep 120', 'sh', '--', '{prompt}']\n"
        "prompt = 'tui-argv'\nready = ['INPUT BOX']\nready_timeout_s = 2\nworking = ['never-shown']\n"
        "submit_timeout_s = 1\n"
    )
    rc, doc = fx.run("tui", [])
    assert rc == 1 and doc["error"]["code"] == "not_delivered", doc
    assert (
        "initial prompt was not taken" in doc["error"]["message"] and "INPUT BOX" in doc["error"]["message"]
    )
    from runner.agents.backend import Runner

    assert all(t["state"] == "stopped" for t in Runner(fx.env).list())
