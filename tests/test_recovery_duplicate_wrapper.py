"""One supervisor per task: a second wrapper for a running task leaves it alone (P9, P10, issue 14).

A `start` that retries `new-session` after a lost reply can leave two wrappers on one task dir. The
second one used to claim the task, fork a second agent and, when its handshake failed, end every
process carrying the task's run marker: the first supervisor then saw its agent die of SIGTERM and
recorded `crashed/signaled` for an agent that would have exited normally (the CI red of issue 14 has
that shape). Here the duplicate is started by hand, deterministically.
"""

from __future__ import annotations

import os
import subprocess

from test_recovery_faultpoints import row
from test_runner_support import PY, REPO, dispatch, pyagent, start_ok, wait_for

from runner.procid import ProcessIdentity

SLEEPER = "import time\ntime.sleep(60)\n"


def test_a_second_wrapper_for_a_running_task_touches_nothing(sandbox):
    start_ok(sandbox, "one", *pyagent(SLEEPER))
    before = row(sandbox, "one")
    agent = ProcessIdentity(before["agent_pid"], before["agent_start"])
    assert before["state"] == "running" and agent.is_alive()
    env = sandbox.env(PYTHONPATH=REPO)
    dup = subprocess.run(
        [PY, "-m", "runner.wrapper", before["task_dir"]], env=env, capture_output=True, text=True, timeout=30
    )
    assert dup.returncode == 0, dup.stderr
    after = row(sandbox, "one")
    assert (after["wrapper_pid"], after["wrapper_start"]) == (before["wrapper_pid"], before["wrapper_start"])
    assert after["state"] == "running" and agent.is_alive(), after
    assert not os.path.exists(os.path.join(before["task_dir"], "wrapper.err"))
    doc = dispatch(sandbox, "stop", "one").doc
    assert (doc["state"], doc["reason"]) == ("stopped", "stop_requested"), doc
    wait_for(lambda: not agent.is_alive(), 10, "agent ended by stop")
