"""`run`, `send`, `ls`, `queue`/`workers`, `--on-done`, `--notify` end to end on real tmux, against the generic
fake agent (the look-alike CLIs are covered in test_agents_fakes.py). Waits have deadlines, never sleeps."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Iterator

import pytest
from test_runner_support import end_tasks, wait_for

from conformance.isolation import Sandbox
from fake_agents import journal

PY = sys.executable
FAKE = [PY, "-m", "fake_agents.generic"]
DEADLINE = 60.0


class Agents:
    """`python -m runner.agents` inside one sandbox."""

    def __init__(self, sb: Sandbox) -> None:
        self.sb = sb
        self.env = sb.env(DISPATCH_CONFIG=str(sb.root / "agents.toml"), DISPATCH_GRACE_S="2")

    def __call__(self, *args: str, timeout: float = DEADLINE) -> subprocess.CompletedProcess[str]:
        return subprocess.run([PY, "-m", "runner.agents", *args], env=self.env, capture_output=True, text=True,
                              timeout=timeout, cwd=self.sb.workdir)  # fmt: skip

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen([PY, "-m", "runner.agents", *args], env=self.env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, cwd=self.sb.workdir)  # fmt: skip

    def json(self, *args: str) -> tuple[int, object]:
        cp = self(*args)
        try:
            return cp.returncode, json.loads(cp.stdout)
        except ValueError:
            raise AssertionError(f"not one JSON document: {cp.stdout!r} {cp.stderr!r}") from None

    def cleanup(self) -> None:
        end_tasks(self.sb, self.env)


@pytest.fixture
def agents(sandbox: Sandbox) -> Iterator[Agents]:
    a = Agents(sandbox)
    yield a
    a.cleanup()


def wait_until(cond, timeout: float = DEADLINE, what: str = "condition"):  # noqa: ANN001, ANN201
    return wait_for(cond, timeout, what)


def test_cmd_run_prompt_byte_for_byte_and_result(agents: Agents) -> None:
    prompt = "Fix the parser. $(touch pwned) `id` 'quotes' \"dq\" {prompt} \\ ünïcode\nline 2\n".encode()
    pf = agents.sb.root / "prompt.txt"
    pf.write_bytes(prompt)
    j = agents.sb.root / "j.jsonl"
    rc, doc = agents.json("run", "--json", "--agent", "cmd", "--prompt-file", str(pf), "--label", "parser",
                          "--", *FAKE, "--journal", str(j), "--result-mode", "atomic", "--result", '{"ok": 1}')  # fmt: skip
    assert rc == 0, doc
    assert doc["state"] == "succeeded" and doc["result"] == {"ok": 1} and doc["label"] == "parser"
    assert doc["agent"]["name"] == "cmd"
    ev = journal.first(journal.read(j), "prompt")
    assert ev["sha256"] == hashlib.sha256(prompt).hexdigest() and ev["length"] == len(prompt)
    assert not (agents.sb.workdir / "pwned").exists()


def test_crash_is_reported(agents: Agents) -> None:
    rc, doc = agents.json("run", "--json", "--agent", "cmd", "--prompt", "x", "--", *FAKE, "--die", "SEGV")
    assert rc == 1 and doc["state"] == "crashed" and doc["signal"] == 11


def test_refusals_create_nothing(agents: Agents) -> None:
    for args, code in [
        (["--agent", "codex", "--model", "opus"], "model_not_allowed"),
        (["--agent", "nope"], "bad_usage"),
        (["--agent", "cmd", "--task-id", "bad id"], "bad_task_id"),
        (["--agent", "cmd", "--cwd", "/does/not/exist"], "bad_cwd"),
        (["--agent", "cmd"], "bad_argv"),
    ]:
        rc, doc = agents.json("run", "--json", "--prompt", "p", *args)
        assert rc == 2 and doc["error"]["code"] == code, (args, doc)
    assert not (agents.sb.state_dir / "agents").exists() or not any(
        (agents.sb.state_dir / "agents").iterdir()
    )
    assert not agents.sb.socket.exists()


def test_question_detected_reported_and_answered(agents: Agents) -> None:
    j = agents.sb.root / "j.jsonl"
    note = agents.sb.root / "notified.json"
    p = agents.popen("run", "--json", "--agent", "cmd", "--task-id", "q1", "--prompt", "p",
                     "--notify", f"cat > {note}", "--", *FAKE, "--journal", str(j),
                     "--ask", "QUESTION: may I delete build/ ?")  # fmt: skip
    try:
        wait_until(lambda: note.exists() and note.stat().st_size > 0, what="--notify")
        told = json.loads(note.read_text())
        assert told["state"] == "needs_input" and "QUESTION: may I delete build/" in told["question"]
        rc, rows = agents.json("ls", "--live", "--json")
        row = next(r for r in rows if r["task_id"] == "q1")
        assert row["live_state"] == "needs_input" and row["agent"] == "cmd"
        cp = agents("send", "q1", "--text", "yes")
        assert cp.returncode == 0, cp.stderr
        out, err = p.communicate(timeout=DEADLINE)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, err
    assert json.loads(out)["state"] == "succeeded"
    ans = [e for e in journal.all_of(journal.read(j), "input") if e.get("kind") == "answer"]
    assert ans and ans[0]["sha256"] == hashlib.sha256(b"yes").hexdigest()


def test_on_done_gets_task_json(agents: Agents) -> None:
    out = agents.sb.root / "done.json"
    rc, doc = agents.json("run", "--json", "--agent", "cmd", "--prompt", "p", "--on-done", f"cat > {out}",
                          "--", *FAKE, "--exit", "3")  # fmt: skip
    assert rc == 1 and doc["state"] == "failed"
    told = json.loads(out.read_text())
    assert told["task_id"] == doc["task_id"] and told["exit_code"] == 3


def test_timeout_leaves_task_running(agents: Agents) -> None:
    rc, doc = agents.json("run", "--json", "--agent", "cmd", "--task-id", "slow", "--prompt", "p",
                          "--timeout", "0.5", "--", *FAKE, "--work", "30")  # fmt: skip
    assert rc == 124 and doc["state"] in ("starting", "running")
    cp = agents("events", "slow", "--json")
    assert cp.returncode == 0 and json.loads(cp.stdout)


def test_queue_workers_limit_and_cleanup(agents: Agents) -> None:
    js = []
    # a barrier, not a race: each job waits (30 s at most) until two jobs have started, so with --max 2
    # the first two overlap however loaded the machine is; --work 3 keeps them overlapping after it
    bar = agents.sb.root / "barrier"
    bar.mkdir()
    wait2 = ('touch "$1/$2"; n=0; while [ "$(ls "$1" | wc -l)" -lt 2 ] && [ $n -lt 600 ]; do sleep 0.05; '
             'n=$((n+1)); done; shift 2; exec "$@"')  # fmt: skip
    for i in range(4):
        j = agents.sb.root / f"j{i}.jsonl"
        js.append(j)
        rc, doc = agents.json("queue", "add", "--json", "--agent", "cmd", "--task-id", f"job{i}", "--prompt",
                              f"p{i}", "--", "/bin/sh", "-c", wait2, "wait2", str(bar), f"job{i}", *FAKE, "--journal",
                              str(j), "--work", "3")  # fmt: skip
        assert rc == 0 and doc["state"] == "queued"
    rc, doc = agents.json("queue", "add", "--json", "--agent", "cmd", "--task-id", "gone", "--prompt", "p",
                          "--", *FAKE)  # fmt: skip
    assert agents.json("queue", "cancel", "--json", "gone")[1]["state"] == "cancelled"
    rc, rows = agents.json("ls", "--live", "--json")
    assert [r["task_id"] for r in rows if r["live_state"] == "queued"] == ["job0", "job1", "job2", "job3"]
    cp = agents("workers", "--max", "2", "--until-empty", "--poll", "0.1", timeout=120)
    assert cp.returncode == 0, cp.stderr
    rc, items = agents.json("queue", "ls", "--json")
    by = {i["key"]: i for i in items}
    assert all(by[f"job{i}"]["outcome"] == "succeeded" for i in range(4)), [
        (i["key"], i.get("outcome"), i.get("spec", {}).get("extra")) for i in items
    ]
    spans = []
    for j in js:
        evs = journal.read(j)
        spans.append((journal.first(evs, "start").mono, journal.first(evs, "ending").mono))
    most = max(sum(1 for s, e in spans if s <= t < e) for t, _ in spans)
    assert most == 2  # ran two at a time, never three
    # retention 0: everything finished is cleaned on the next pass
    assert agents("workers", "--max", "1", "--until-empty", "--retention", "0").returncode == 0
    assert agents.json("queue", "ls", "--json")[1] == []


def test_queue_retry_reruns_with_a_new_task_id(agents: Agents) -> None:
    agents.json(
        "queue",
        "add",
        "--json",
        "--agent",
        "cmd",
        "--task-id",
        "r",
        "--prompt",
        "p",
        "--",
        *FAKE,
        "--exit",
        "1",
    )
    agents("workers", "--max", "1", "--until-empty", "--poll", "0.1")
    assert agents.json("queue", "ls", "--json")[1][0]["outcome"] == "failed"
    assert agents.json("queue", "retry", "--json", "r")[1]["state"] == "queued"
    agents("workers", "--max", "1", "--until-empty", "--poll", "0.1")
    item = agents.json("queue", "ls", "--json")[1][0]
    assert item["task_id"] == "r.r2" and item["attempts"] == 2


def test_logs_follow_until_end(agents: Agents) -> None:
    p = agents.popen("run", "--json", "--detach", "--agent", "cmd", "--task-id", "lf", "--prompt", "p", "--",
                     *FAKE, "--print", "hello-one", "--work", "0.5", "--burst-before-exit", "200")  # fmt: skip
    p.communicate(timeout=DEADLINE)
    cp = agents("logs", "-f", "lf")
    assert cp.returncode == 0 and "hello-one" in cp.stdout and "BURST-END" in cp.stdout


def test_interactive_paste_pipeline_byte_for_byte(agents: Agents) -> None:
    """A user-defined TUI profile: wait for its banner, bracketed paste, Enter; the agent got exact bytes."""
    j = agents.sb.root / "j.jsonl"
    (agents.sb.root / "agents.toml").write_text(
        "[agents.tui]\ndefault_mode = 'interactive'\n"
        "[agents.tui.modes.interactive]\n"
        f"argv = {json.dumps([*FAKE, '--journal', str(j), '--print', 'TUI READY', '--read-paste', '--work', '0.3'])}\n"
        "prompt = 'paste'\nready = ['TUI READY']\nready_timeout_s = 30\nworking = ['never-shown']\n"
        "submit_timeout_s = 20\n"
    )
    prompt = "multi\nline $(x) `y` \\ 'q' \"d\" Enter C-c ünï\n\tend".encode()
    (agents.sb.root / "p.txt").write_bytes(prompt)
    rc, doc = agents.json("run", "--json", "--agent", "tui", "--prompt-file", str(agents.sb.root / "p.txt"))
    assert rc == 0, doc
    assert doc["agent"]["delivery"]["ok"] and doc["agent"]["prompt_delivery"] == "paste"
    pastes = [e for e in journal.all_of(journal.read(j), "input") if e.get("kind") == "paste"]
    assert b"".join(__import__("base64").b64decode(e["b64"]) for e in pastes) == prompt


def test_refused_by_the_runner_leaves_nothing(agents: Agents) -> None:
    """tmux missing is found by the runner after our checks pass: our dirs must go too (P13)."""
    sd = agents.sb.root / "fresh-state"
    env = dict(agents.env, DISPATCH_STATE_DIR=str(sd), DISPATCH_TMUX_BIN=str(agents.sb.root / "no-tmux"))
    cp = subprocess.run([PY, "-m", "runner.agents", "run", "--json", "--agent", "cmd", "--prompt", "p", "--",
                         *FAKE], env=env, capture_output=True, text=True, timeout=DEADLINE)  # fmt: skip
    assert cp.returncode == 3 and json.loads(cp.stdout)["error"]["code"] == "tmux_missing", cp.stdout
    assert not sd.exists(), list(sd.rglob("*"))


def test_state_dir_created_private(agents: Agents) -> None:
    rc, doc = agents.json("run", "--json", "--agent", "cmd", "--prompt", "p", "--", *FAKE)
    assert rc == 0, doc
    assert oct(agents.sb.state_dir.stat().st_mode & 0o777) == "0o700"
    assert oct((agents.sb.state_dir / "agents").stat().st_mode & 0o777) == "0o700"
