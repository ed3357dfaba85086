"""The supervisor dies between ending the agent and recording why: reap must record its decision (P9, P12).

Found by the chaos runner: `start linger; wait 0.3; kill_supervisor` came back crashed/signaled (the
supervisor's own SIGTERM read as a foreign signal) instead of succeeded/completed_by_result.
"""

from __future__ import annotations

import os
import signal
import sqlite3

from test_runner_support import dispatch, pyagent, start_ok, status, wait_for

LINGER = (
    "import json, os, time\n"
    "p = os.environ['DISPATCH_RESULT_FILE']\n"
    "open(p + '.tmp', 'w').write(json.dumps({'done': True})); os.replace(p + '.tmp', p)\n"
    "time.sleep(60)\n"
)


def test_decision_survives_supervisor_death_before_state_write(sandbox):
    start_ok(sandbox, "lg", *pyagent(LINGER), env={"DISPATCH_GRACE_S": "0.5"})
    task = status(sandbox, "lg")
    tdir = os.path.dirname(task["log_path"])
    db = sqlite3.connect(sandbox.state_dir / "dispatch.sqlite3", timeout=10)
    db.execute("BEGIN EXCLUSIVE")  # the supervisor's final state write now blocks
    try:
        # after GRACE it ends the lingering agent (intent, then exit.json), then blocks on the lock
        wait_for(lambda: os.path.exists(os.path.join(tdir, "exit.json")), 15, "exit.json")
        os.kill(task["wrapper_pid"], signal.SIGKILL)
        wait_for(lambda: not os.path.exists(f"/proc/{task['wrapper_pid']}"), 5, "wrapper gone")
    finally:
        db.rollback()
        db.close()
    dispatch(sandbox, "reap")
    t = status(sandbox, "lg")
    assert (t["state"], t["reason"]) == ("succeeded", "completed_by_result"), t
    assert t["result"] == {"done": True}


def test_start_killed_mid_handshake_is_not_left_starting(sandbox):
    """`start` dies after the wrapper came up but before "go": the task must end at once, not after 60 s."""
    import shutil
    import subprocess
    import time

    from test_runner_support import PY, REPO, prompt

    from conformance.isolation import kill_marked

    mark = sandbox.workdir / "in-pipe-pane"
    shim = sandbox.workdir / "tmux"
    shim.write_text(
        "#!/bin/sh\n"
        f'case " $* " in *" pipe-pane "*) touch "{mark}"; exec sleep 30;; esac\n'
        f'exec {shutil.which("tmux")} "$@"\n'
    )
    shim.chmod(0o755)
    env = sandbox.env(DISPATCH_TMUX_BIN=str(shim), DISPATCH_TMUX_TIMEOUT_S="30", PYTHONPATH=REPO)
    argv = [PY, "-m", "runner.cli", "start", "--json", "--task-id", "hs", "--cwd", str(sandbox.workdir)]
    argv += ["--prompt-file", prompt(sandbox), "--", "sleep", "30"]
    cli = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(mark.exists, 15, "start blocked in pipe-pane")
        cli.kill()
        cli.wait()
        t0 = time.monotonic()
        t = wait_for(
            lambda: (s := status(sandbox, "hs"))["state"] not in ("starting", "running") and s,
            10,
            "task ended",
        )
        assert (t["state"], t["reason"]) == ("failed", "start_abandoned"), t
        assert time.monotonic() - t0 < 5
    finally:
        kill_marked(sandbox.marker)  # the shim's blocked `sleep`, by identity
