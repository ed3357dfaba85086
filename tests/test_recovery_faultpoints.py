"""Every path that records a decision after its decider died, forced deterministically (P9, P12).

The supervisor (runner.wrapper) decides, then records: intent.json, the kill, exit.json, the state.
A test arms a fault point (runner.faultpoint, `DISPATCH_FAULT_POINT` in the `start` environment) so
the supervisor SIGKILLs itself exactly between two of those steps, every run. What is recorded then
must equal what the living supervisor records for the same agent: the same state, reason and result
(and exit code and signal once the exit record was written). Found by `dispatch chaos run --seed 7`
under load: a lingering agent's completed result was recovered as `result: null`.
"""

from __future__ import annotations

import os
import time
from typing import Any

import pytest
from test_runner_support import dispatch, pyagent, row, settle, start, start_ok, status, wait_done, wait_for

from runner.procid import ProcessIdentity

GRACE = {"DISPATCH_GRACE_S": "0.5", "DISPATCH_STALE_AFTER_S": "0"}

# writes a complete result and keeps running: ended by the supervisor after GRACE (completed_by_result)
LINGER = (
    "import json, os, time\n"
    "p = os.environ['DISPATCH_RESULT_FILE']\n"
    "open(p + '.tmp', 'w').write(json.dumps({'done': True})); os.replace(p + '.tmp', p)\n"
    "time.sleep(60)\n"
)
# writes a complete result and exits 0 at once
EXIT_WITH_RESULT = (
    "import json, os\n"
    "p = os.environ['DISPATCH_RESULT_FILE']\n"
    "open(p + '.tmp', 'w').write(json.dumps({'n': 7})); os.replace(p + '.tmp', p)\n"
)
# on SIGTERM (being stopped) writes its result during the kill grace, then exits 0
RESULT_ON_TERM = (
    "import json, os, signal, sys, time\n"
    "def bye(*a):\n"
    "    p = os.environ['DISPATCH_RESULT_FILE']\n"
    "    open(p + '.tmp', 'w').write(json.dumps({'late': True})); os.replace(p + '.tmp', p)\n"
    "    sys.exit(0)\n"
    "signal.signal(signal.SIGTERM, bye)\n"
    "open(os.environ['DISPATCH_HEARTBEAT_FILE'], 'w').write('up')\n"
    "time.sleep(60)\n"
)
FIELDS = ("state", "reason", "result")
ALL_FIELDS = (*FIELDS, "exit_code", "signal")


def supervisor_died(sb: Any, task_id: str) -> dict[str, Any]:
    """Wait until the task's supervisor has killed itself at its fault point; return the raw row."""
    r = wait_for(lambda: (x := row(sb, task_id))["wrapper_pid"] and x, 15, "wrapper recorded")
    w = ProcessIdentity(r["wrapper_pid"], r["wrapper_start"])
    assert w.wait_exit(30), "the supervisor never reached its fault point"
    r = row(sb, task_id)
    assert r["state"] not in ("succeeded", "failed", "crashed", "hung", "timed_out", "stopped"), r
    return r


def baseline(sb: Any, code: str, then_stop: bool = False) -> dict[str, Any]:
    """What the living supervisor records for this agent (the reference for every recovery)."""
    start_ok(sb, "ref", *pyagent(code), env=GRACE)
    if then_stop:
        wait_for(lambda: os.path.exists(os.path.join(row(sb, "ref")["task_dir"], "heartbeat")), 15, "up")
        assert dispatch(sb, "stop", "ref").rc == 0
    return wait_done(sb, "ref", 30)


def recover(sb: Any, how: str, task_id: str) -> dict[str, Any]:
    """Let one recovery path find the dead supervisor, then read what it recorded."""
    if how == "reap":
        r = dispatch(sb, "reap")
        assert r.rc == 0, r.err
        assert task_id in {x["task_id"] for x in r.doc["reaped"]}, r.doc
    elif how == "start":  # every start reaps first
        start_ok(sb, "other", "true", env=GRACE)
        wait_done(sb, "other")
    elif how == "wait":
        return wait_done(sb, task_id, 20)
    elif how == "stop":
        r = dispatch(sb, "stop", task_id)
        assert r.rc == 0, r.err
        return r.doc
    return status(sb, task_id)


def pick(doc: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    return {k: doc.get(k) for k in fields}


@pytest.mark.parametrize("how", ["reap", "start", "status", "wait"])
def test_lost_result_supervisor_died_after_kill(sandbox, how):
    """The chaos seed-7 loss: ended the lingering agent for its result, died before the exit record."""
    ref = baseline(sandbox, LINGER)
    assert pick(ref, FIELDS) == {
        "state": "succeeded",
        "reason": "completed_by_result",
        "result": {"done": True},
    }
    start_ok(sandbox, "lg", *pyagent(LINGER), env={**GRACE, "DISPATCH_FAULT_POINT": "wrapper.after_kill"})
    supervisor_died(sandbox, "lg")
    got = recover(sandbox, how, "lg")
    assert pick(got, FIELDS) == pick(ref, FIELDS), got


def test_supervisor_died_after_intent_before_kill(sandbox):
    """intent.json written, the agent not yet signalled: reap ends it and records the decision whole."""
    ref = baseline(sandbox, LINGER)
    start_ok(sandbox, "lg", *pyagent(LINGER), env={**GRACE, "DISPATCH_FAULT_POINT": "wrapper.after_intent"})
    r = supervisor_died(sandbox, "lg")  # the agent may outlive it or die of the pane's hangup
    got = recover(sandbox, "reap", "lg")
    assert pick(got, FIELDS) == pick(ref, FIELDS), got
    assert not ProcessIdentity(r["agent_pid"], r["agent_start"]).is_alive()


@pytest.mark.parametrize("how", ["reap", "stop"])
def test_supervisor_died_after_exit_record(sandbox, how):
    """exit.json written, state not: reap (and `stop` racing the natural end) record the decision.

    `stop` used to find the supervisor gone and record `stopped` over an agent that had exited 0.
    """
    ref = baseline(sandbox, EXIT_WITH_RESULT)
    assert pick(ref, ALL_FIELDS) == {
        "state": "succeeded",
        "reason": "exited",
        "result": {"n": 7},
        "exit_code": 0,
        "signal": None,
    }
    env = {**GRACE, "DISPATCH_FAULT_POINT": "wrapper.after_exit_record"}
    start_ok(sandbox, "ex", *pyagent(EXIT_WITH_RESULT), env=env)
    r = supervisor_died(sandbox, "ex")
    # the decision is final: a result file changed after it must not change the record
    with open(os.path.join(r["task_dir"], "result.json"), "w") as f:
        f.write('{"n": "rewritten after the decision"}')
    got = recover(sandbox, how, "ex")
    assert pick(got, ALL_FIELDS) == pick(ref, ALL_FIELDS), got


def test_result_written_during_kill_grace_survives_supervisor_death(sandbox):
    """Stopped; the agent writes its result while being ended; the supervisor dies before recording."""
    ref = baseline(sandbox, RESULT_ON_TERM, then_stop=True)
    assert pick(ref, FIELDS) == {"state": "stopped", "reason": "stop_requested", "result": {"late": True}}
    env = {**GRACE, "DISPATCH_FAULT_POINT": "wrapper.after_kill"}
    start_ok(sandbox, "st", *pyagent(RESULT_ON_TERM), env=env)
    wait_for(lambda: os.path.exists(os.path.join(row(sandbox, "st")["task_dir"], "heartbeat")), 15, "up")
    got = dispatch(sandbox, "stop", "st").doc
    assert pick(got, FIELDS) == pick(ref, FIELDS), got


def test_start_killed_before_reading_the_ack_ends_the_task_at_once(sandbox):
    """`start` dies once the session is up, before reading the wrapper's ack: failed/start_abandoned.

    The wrapper then finds no reader for its ack. It used to retry until its 60 s handshake timeout:
    the session and the wrapper outlived the task (chaos seed 7 under 2x load left both behind).
    `start` dies right after new-session and one row update; the wrapper needs a Python start-up,
    its recorder and a fork before it acks, so it meets the dead reader (not forced by a second
    point: tmux SIGCONTs a pane process that stops itself).
    """
    r = start(sandbox, "ha", "sleep", "30", env={"DISPATCH_FAULT_POINT": "start.before_ack"})
    assert r.rc == -9, (r.rc, r.err)
    t0 = time.monotonic()
    t = wait_for(
        lambda: (s := row(sandbox, "ha"))["state"] not in ("starting", "running") and s, 30, "task ended"
    )
    assert (t["state"], t["reason"]) == ("failed", "start_abandoned"), dict(t)
    assert time.monotonic() - t0 < 30  # not the 60 s handshake timeout
    settle(sandbox, 20)  # the wrapper leaves, its pane and the session close: nothing of ours remains


def test_start_killed_before_go_ends_the_task_at_once(sandbox):
    """`start` dies after the handshake's ack, before "go": failed/start_abandoned within seconds."""
    r = start(sandbox, "hs", "sleep", "30", env={"DISPATCH_FAULT_POINT": "start.before_go"})
    assert r.rc == -9, (r.rc, r.err)
    t0 = time.monotonic()
    t = wait_for(
        lambda: (s := row(sandbox, "hs"))["state"] not in ("starting", "running") and s, 30, "task ended"
    )
    assert (t["state"], t["reason"]) == ("failed", "start_abandoned"), dict(t)
    assert (
        time.monotonic() - t0 < 30
    )  # not the 60 s handshake timeout (status alone takes seconds under load)
    assert not ProcessIdentity(t["agent_pid"], t["agent_start"]).is_alive()
    # the supervisor still flushes the log and closes the pane (the log pipe then reads EOF): nothing
    # of ours may remain
    settle(sandbox, 20)


def test_start_killed_before_pipe_pane_lets_the_wrapper_go_at_once(sandbox):
    """`start` dies after logpipe.wanted, before pipe-pane: the agent was never released, so there is
    no log to wait for and the wrapper leaves at once. It used to wait LOGPIPE_START_WAIT (10 s) for a
    pipe that never came: a chaos run under load found the wrapper and its session left behind."""
    r = start(sandbox, "hp", "sleep", "30", env={"DISPATCH_FAULT_POINT": "start.before_pipe"})
    assert r.rc == -9, (r.rc, r.err)
    t = wait_for(
        lambda: (s := row(sandbox, "hp"))["state"] not in ("starting", "running") and s, 30, "task ended"
    )
    assert (t["state"], t["reason"]) == ("failed", "start_abandoned"), dict(t)
    wrapper = ProcessIdentity(t["wrapper_pid"], t["wrapper_start"])
    wait_for(lambda: not wrapper.is_alive(), 30, "wrapper gone")
    # without the fix the wrapper outlives the recorded end by the full 10 s, every time
    assert time.time() - t["ended_at"] < 5, time.time() - t["ended_at"]
    settle(sandbox, 20)
