"""P7: session names come from a fixed prefix and a random id, never from input; every target is exact."""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

import pytest

from conformance.context import Ctx
from conformance.harness import TERMINAL
from conformance.registry import check

HOSTILE_LABELS = [
    "fix: the bug",
    "a.b:c",
    "$(touch CANARY)",
    "`id`; rm -rf ~",
    "-t =dk_",
    "'quoted' \"double\"",
    "   spaces   ",
    "ünïcödé 日本 🎉",
    "#{session_name} %1 @1",
    "x" * 128,
]


def _foreign(dispatch: Ctx, name: str) -> None:
    """A session that belongs to the user, not the implementation (running a harmless sleeper)."""
    r = dispatch.tmux(
        "new-session", "-d", "-s", name, "--", sys.executable, "-c", "import time; time.sleep(600)"
    )
    assert r.returncode == 0, f"could not create foreign session {name!r}: {r.stderr.strip()}"


def _recording_foreign(dispatch: Ctx, name: str) -> tuple[str, object]:
    """A user's session whose program appends whatever reaches its terminal to a file (typed input)."""
    typed = dispatch.sandbox.root / f"typed-{len(name)}-{abs(hash(name)) % 10**8}"
    prog = (
        "import os, sys, time\n"
        f"f = open({str(typed)!r}, 'ab', 0)\n"
        "while True:\n"
        "    b = os.read(0, 4096)\n"
        "    f.write(b) if b else time.sleep(600)\n"
    )
    r = dispatch.tmux("new-session", "-d", "-s", name, "--", sys.executable, "-c", prog)
    assert r.returncode == 0, f"could not create foreign session {name!r}: {r.stderr.strip()}"
    return dispatch.sessions()[name], typed


def _sessions(dispatch: Ctx) -> dict[str, str]:
    """Like ``dispatch.sessions()`` with a limit for 20 busy sessions on a loaded 2-core machine."""
    r = dispatch.tmux("list-sessions", "-F", "#{session_name}\t#{session_id}", timeout=30)
    assert r.returncode == 0, f"list-sessions on the implementation's socket failed: {r.stderr.strip()}"
    return dict(line.split("\t", 1) for line in r.stdout.splitlines() if "\t" in line)


def _quick(dispatch: Ctx, **kw) -> str:
    tid = dispatch.task_id()
    dispatch.impl.start(tid, dispatch.agent("--work", "0.2", heartbeat=None).argv, **kw)
    return tid


@check(
    id="P07.label.collision",
    level="MUST",
    pitfall="P07",
    reason="never derive session names from labels; two tasks with the same label get distinct sessions",
)
def test_same_label_distinct_sessions(dispatch: Ctx) -> None:
    agents = [dispatch.agent("--work", "1.0") for _ in range(2)]
    tids = [dispatch.task_id() for _ in agents]
    docs = [dispatch.impl.start(t, a.argv, label="same label") for t, a in zip(tids, agents, strict=True)]
    assert docs[0]["session"] != docs[1]["session"], f"same label, same session {docs[0]['session']!r}"
    for tid, agent in zip(tids, agents, strict=True):
        task = dispatch.impl.wait(tid, 20)
        dispatch.require_succeeded(task)
        env = agent.wait_for("start", 5)["env"]
        dispatch.require_task_env(env, tid)
        assert env.get("DISPATCH_TASK_ID") == tid, (
            f"agent of {tid} saw DISPATCH_TASK_ID {env.get('DISPATCH_TASK_ID')!r}"
        )


@check(
    id="P07.label.hostile",
    level="MUST",
    pitfall="P07",
    reason="store labels verbatim and use them for nothing else: not in session names, tmux targets or shells",
)
def test_hostile_labels_stored_verbatim(dispatch: Ctx) -> None:
    # The control: the same agent with a plain label. Only when it succeeds can a hostile label that
    # ends otherwise (a session name built from 'fix: the bug' is lost to tmux) be blamed on the label.
    # It runs to its end before any hostile label exists, so a flaw that hits other tasks' sessions
    # (a target built from a hostile label matching 'dk_...-plain') cannot reach it.
    control = dispatch.task_id()
    tids = {}
    for label in ("plain", *HOSTILE_LABELS):
        tid = control if label == "plain" else dispatch.task_id()
        call = dispatch.impl.start_call(
            tid, dispatch.agent("--work", "0.1", heartbeat=None).argv, label=label
        )
        assert call.exit_code == 0, f"valid label {label!r} refused: {call.describe()}"
        tids[tid] = label
        if tid == control:
            dispatch.require_succeeded(
                dispatch.impl.wait_all([control], 20)[control], "the control task (label 'plain')"
            )
    tasks = dispatch.impl.wait_all(list(tids), 20)
    for tid, label in tids.items():
        task = tasks[tid]
        assert task["label"] == label, f"label {label!r} came back as {task['label']!r}"
        again = task if task["state"] == "succeeded" else _rerun(dispatch, label)
        assert again["state"] == "succeeded", (
            f"the task with label {label!r} ended {task['state']!r} ({task.get('reason')}), and again "
            f"{again['state']!r} ({again.get('reason')}) on a rerun, where the same agent with a plain "
            "label succeeded: the label changed how the task ran"
        )
        if len(label.strip()) >= 4:
            assert label not in task["session"], f"session name {task['session']!r} is built from the label"
    canaries = list(dispatch.sandbox.workdir.glob("CANARY*"))
    assert not canaries, f"a label was run by a shell: {canaries}"


def _rerun(dispatch: Ctx, label: str) -> dict[str, Any]:
    """The same agent and label once more, alone: does the label itself make the task fail?

    A label's effect is deterministic (a session name tmux rewrites, a format, a shell word fails every
    time), a flake is not: libtmux-easy lost one task's exit status in a run (tmux 3.3a left its exited
    pane process an unreaped zombie: pane dead, no status) and the 128-character label was blamed for
    it, though the peer never sees labels. That loss is P10's pitfall, judged by P10.exit-recorded.*.
    """
    tid = dispatch.task_id()
    dispatch.impl.start(tid, dispatch.agent("--work", "0.1", heartbeat=None).argv, label=label)
    return dispatch.impl.wait_all([tid], 20)[tid]


@check(
    id="P07.label.control-refused",
    level="MUST",
    pitfall="P07",
    reason="refuse labels with control characters or newlines (exit 2, bad_label) before creating anything",
)
def test_control_label_refused(dispatch: Ctx) -> None:
    for label in ("two\nlines", "esc\x1b[31m", "", "x" * 129):
        tid = dispatch.task_id()
        call = dispatch.impl.start_call(tid, dispatch.agent(heartbeat=None).argv, label=label, strict=False)
        assert call.problem is None, call.describe()
        assert call.exit_code == 2, f"label {label[:20]!r}: {call.describe()}, expected exit 2"
        assert call.error_code == "bad_label", f"label {label[:20]!r}: error.code {call.error_code!r}"
    assert dispatch.impl.list() == [], "a refused start left a task"
    assert not dispatch.server_running(), "a refused start started a tmux server"


# Two halves, two checks (a parametrized id; the base id covers both): the longest check of the suite
# (35 s of calls under load) runs on both workers instead of one.
FOREIGN_PHASES = ["together", "one-at-a-time"]


@pytest.mark.parametrize("phase", FOREIGN_PHASES)
@check(
    id="P07.foreign-session.untouched",
    level="MUST",
    pitfall="P07",
    reason="target sessions exactly (`=NAME`, pane ids) and reap only names that fully match your own "
    "scheme; never touch sessions whose names merely share a prefix",
)
def test_foreign_sessions_untouched(dispatch: Ctx, phase: str) -> None:
    if phase == "together":
        _lookalikes_together(dispatch)
    else:
        _lookalikes_one_at_a_time(dispatch)


def _lookalikes_together(dispatch: Ctx) -> None:
    """Every look-alike at once, while the task runs and after it was stopped: status/stop/reap/start."""
    _foreign(dispatch, "user")
    _foreign(dispatch, "dk")
    first = dispatch.task_id()
    doc = dispatch.impl.start(first, dispatch.agent("--work", "30").argv)
    real = doc["session"]
    # names a sloppy implementation confuses with its own: prefixes of a real name, and the real
    # name extended (what a non-exact `-t NAME` matches once NAME itself is gone)
    for name in {real[: max(1, len(real) // 3)], real[: len(real) - 2], real + "-user", real + "0"}:
        if name != real:
            _foreign(dispatch, name)
    before = {n: i for n, i in dispatch.sessions().items() if n != real}
    dispatch.impl.status(first)
    dispatch.impl.stop(first)
    dispatch.impl.stop(first)
    dispatch.impl.status(first)
    dispatch.impl.run("events", first, strict=False)
    dispatch.impl.run("logs", first, strict=False)
    dispatch.impl.run("reap", strict=False)
    second = _quick(dispatch)  # a start (which reaps) with the look-alikes present
    dispatch.impl.wait(second, 20)
    after = dispatch.sessions()
    missing = {n for n in before if n not in after or after[n] != before[n]}
    assert not missing, (
        f"foreign sessions were killed or replaced: {sorted(missing)} (own session was {real!r})"
    )


def _lookalikes_one_at_a_time(dispatch: Ctx) -> None:
    """One look-alike at a time (two at once make a loose `-t NAME` fail as ambiguous, which hides it),
    driven through every path that runs after the task's own session is gone."""
    dispatch.set_knobs(stale=0, max_lifetime=120)  # supervision timing is not what is tested here
    agents = {form: dispatch.agent("--work", "120") for form in LOOKALIKES}  # started together: faster
    tids = {form: dispatch.run_agent(agent) for form, agent in agents.items()}
    for form, make in LOOKALIKES.items():
        real = dispatch.wait_running(tids[form], agents[form])["session"]
        _one_lookalike(dispatch, form, tids[form], real, make(real))


# each form of look-alike, made from the task's real session name
LOOKALIKES = {
    "name+suffix": lambda real: real + "-user",
    "name-as-prefix": lambda real: real[: len(real) - 2],
    "glob-like": lambda real: real[: len(real) - 4] + "*",
}


def _one_lookalike(dispatch: Ctx, form: str, tid: str, real: str, foreign: str) -> None:
    """Plant ONE look-alike, kill the task's own session, then: supervisor, send, stop twice, reap."""
    sid, typed = _recording_foreign(dispatch, foreign)
    r = dispatch.tmux("kill-session", "-t", f"={real}")
    assert r.returncode == 0, f"could not kill the task's own session {real!r}: {r.stderr.strip()}"
    poll = dispatch.impl.wait_for_state(tid, TERMINAL, dispatch.knobs.crash_bound + 6.0)  # supervisor
    if dispatch.caps.has("send"):
        dispatch.impl.send_call(tid, "echo TYPED-INTO-FOREIGN", strict=False)
    dispatch.impl.run("stop", tid, strict=False)
    dispatch.impl.run("stop", tid, strict=False)
    if dispatch.caps.has("reap"):
        dispatch.impl.run("reap", strict=False)
    dispatch.impl.run("status", tid, strict=False)
    now = dispatch.sessions()
    assert now.get(foreign) == sid, (
        f"look-alike {foreign!r} ({form}) was killed or replaced after the task's own session {real!r} "
        f"was gone (task {poll.state!r}; second stop/reap/supervisor/send)"
    )
    got = typed.read_bytes() if typed.exists() else b""
    assert not got, f"input was typed into look-alike {foreign!r} ({form}): {got[:60]!r}"
    dispatch.tmux("kill-session", "-t", f"={foreign}")


@check(
    id="P07.concurrent-starts.distinct",
    level="MUST",
    pitfall="P07",
    reason="draw a fresh random session id per task and retry on `duplicate session`; concurrent "
    "starts must not collide or touch other sessions",
    serial=True,
)
def test_concurrent_starts(dispatch: Ctx) -> None:
    n = 20
    impl = dispatch.set_knobs(stale=0)  # 60 processes on 2 cores: heartbeats are not what is tested
    _foreign(dispatch, "user-work")  # prefix look-alikes are P07.foreign-session.untouched's business
    _foreign(dispatch, "dk")
    before = _sessions(dispatch)
    agents = [dispatch.agent("--work", "4.0", heartbeat=None) for _ in range(n)]
    # Ids in pairs that tmux turns into the same session name ('.' becomes '_' in session names): a
    # name derived from the id collides on every run, whatever the scheduling (no luck needed).
    pairs = [dispatch.task_id("c") for _ in range(n // 2)]
    tids = [t for p in pairs for t in (p.replace("-", ".", 1), p.replace("-", "_", 1))]
    calls: dict[str, object] = {}

    def go(tid: str, argv: list[str]) -> None:
        calls[tid] = impl.start_call(tid, argv, strict=False, timeout=60)

    threads = [threading.Thread(target=go, args=(t, a.argv)) for t, a in zip(tids, agents, strict=True)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    bad = {t: c.describe() for t, c in calls.items() if c.exit_code != 0 or c.problem}
    assert not bad, f"{len(bad)} of {n} concurrent starts failed: {next(iter(bad.values()))}"
    sessions = [c.doc["session"] for c in calls.values()]
    assert len(set(sessions)) == n, f"{n} concurrent starts got {len(set(sessions))} distinct sessions"
    as_tmux = {s.replace(".", "_").replace(":", "_") for s in sessions}  # what tmux really names them
    assert len(as_tmux) == n, (
        f"{n} concurrent starts got {len(as_tmux)} distinct tmux sessions: names derived from the task "
        "id collide ('.' becomes '_' in a tmux session name)"
    )
    dispatch.latency(f"{n} concurrent starts", time.monotonic() - t0)
    tasks = {t["task_id"]: t for t in impl.list()}
    assert set(tids) <= set(tasks), f"list lacks {sorted(set(tids) - set(tasks))[:3]}"
    for tid, agent in zip(tids, agents, strict=True):
        env = agent.wait_for("start", 30)["env"]
        dispatch.require_task_env(env, tid)
        assert env.get("DISPATCH_TASK_ID") == tid, (
            f"task {tid}'s session runs the agent of {env.get('DISPATCH_TASK_ID')}"
        )
    after = _sessions(dispatch)
    touched = {s for s in before if after.get(s) != before[s]}
    assert not touched, f"concurrent starts touched foreign sessions {sorted(touched)}"
    for tid, task in impl.wait_all(tids, 60).items():
        assert task["state"] in TERMINAL, f"{tid}: {task['state']}"
        dispatch.require_succeeded(task)
