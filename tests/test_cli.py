"""`dispatch`'s one parser tree, through the installed `dispatch` entry point (real tmux, real agent):
`send --text` is never read as `--text-file`, every usage error under --json is the JSON error document,
`list`/`ls` are one verb, and `python -m runner.agents` is the same tree."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_runner_support import FAST, alive, end_tasks, wait_for

from conformance.isolation import Sandbox
from fake_agents import journal
from runner.tmux import Tmux

DISPATCH = str(Path(sys.executable).with_name("dispatch"))
PY = sys.executable


def run(sb: Sandbox, *args: str, module: bool = False) -> subprocess.CompletedProcess[str]:
    argv = [PY, "-m", "runner.agents", *args] if module else [DISPATCH, *args]
    return subprocess.run(
        argv, env=sb.env(**FAST), capture_output=True, text=True, timeout=60, cwd=sb.workdir
    )


def test_send_text_yes_delivers_yes_even_with_a_file_named_yes(sandbox: Sandbox) -> None:
    (sandbox.workdir / "yes").write_text("THE FILE, NOT THE TEXT\n")
    (sandbox.workdir / "p.txt").write_text("p\n")
    j = sandbox.root / "j.jsonl"
    agent = [PY, "-m", "fake_agents.generic", "--journal", str(j), "--ask", "QUESTION: go on?"]
    try:
        cp = run(sandbox, "start", "--json", "--task-id", "s1", "--cwd", str(sandbox.workdir),
                 "--prompt-file", "p.txt", "--", *agent)  # fmt: skip
        assert cp.returncode == 0, cp.stderr
        wait_for(lambda: journal.all_of(journal.read(j), "question"), 60, "the agent asks")
        cp = run(sandbox, "send", "s1", "--text", "yes")
        assert cp.returncode == 0, cp.stderr
        assert "delivered 3 bytes" in cp.stdout
        wait_for(lambda: journal.all_of(journal.read(j), "input"), 60, "the answer")
        ans = [e for e in journal.all_of(journal.read(j), "input") if e.get("kind") == "answer"]
        assert ans and ans[0]["sha256"] == hashlib.sha256(b"yes").hexdigest()
    finally:
        end_tasks(sandbox, sandbox.env(**FAST))


def test_end_tasks_returns_only_once_the_tmux_server_is_gone(sandbox: Sandbox) -> None:
    """The teardown helper waits for the server itself, not for kill-server's answer.

    CI: `processes outlived the test: ... tmux ... new-session ...` was the server, still exiting after
    kill-server had returned. Forced here: the server's history file is a FIFO nobody reads, so it
    blocks in its exit for good after answering kill-server.
    """
    fifo = sandbox.root / "history"
    os.mkfifo(fifo)
    gw = Tmux(socket_path=sandbox.socket, timeout=10, env=sandbox.env())
    gw.new_session("dk_end", [PY, "-c", "import time; time.sleep(60)"])
    server = int(gw.run("display-message", "-p", "#{pid}").stdout)
    gw.run("set-option", "-g", "history-file", str(fifo))
    try:
        end_tasks(sandbox, sandbox.env(**FAST))
        assert not alive(server), "end_tasks returned while the tmux server was still running"
    finally:
        os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))  # let a blocked server finish its exit


@pytest.mark.parametrize(
    "args",
    [
        ["send", "x", "--tex", "yes"],  # an abbreviation is refused, never expanded
        ["send", "x"],
        ["run", "--prompt", "p"],  # agent verbs: the same error document
        ["queue", "add", "--prompt", "p"],
        ["workers", "--max", "many"],
        ["resume"],
        ["nosuchverb"],
        ["status"],
    ],
)
def test_usage_errors_under_json_are_the_error_document(sandbox: Sandbox, args: list[str]) -> None:
    cp = run(sandbox, *args, "--json")
    assert cp.returncode == 2, cp
    doc = json.loads(cp.stdout)
    assert doc["error"]["code"] == "bad_usage" and "\n" not in doc["error"]["message"]
    assert cp.stderr.count("\n") == 1 and cp.stderr.startswith("dispatch: bad_usage: ")


def test_list_and_ls_are_one_verb_and_json_is_the_contract_document(sandbox: Sandbox) -> None:
    for verb in ("list", "ls"):
        cp = run(sandbox, verb, "--json")
        assert cp.returncode == 0 and json.loads(cp.stdout) == [], cp.stderr
    cp = run(sandbox, "ls", "--live", "--json")
    assert cp.returncode == 0 and json.loads(cp.stdout) == []


def test_python_m_runner_agents_is_the_same_tree(sandbox: Sandbox) -> None:
    a, b = run(sandbox, "--help"), run(sandbox, "--help", module=True)
    assert a.returncode == b.returncode == 0 and a.stdout == b.stdout
    cp = run(sandbox, "status", "nope", "--json", module=True)
    assert cp.returncode == 2 and json.loads(cp.stdout)["error"]["code"] == "unknown_task"


def test_logs_follow_refuses_json_and_unknown_task_is_one_line(sandbox: Sandbox) -> None:
    cp = run(sandbox, "logs", "-f", "nope", "--json")
    assert cp.returncode == 2 and json.loads(cp.stdout)["error"]["code"] == "bad_usage"
    cp = run(sandbox, "logs", "-f", "nope")
    assert cp.returncode == 2 and cp.stderr.strip() == "dispatch: unknown_task: no task 'nope'"
