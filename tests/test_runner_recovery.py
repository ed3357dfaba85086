"""A `start` killed mid-handshake (through a blocking tmux shim, another shape than the fault point).

The supervisor-death windows (decision recorded after the decider died) are forced with fault points in
tests/test_recovery_faultpoints.py: the db-lock + SIGKILL version that lived here could find the
wrapper already gone under load (ProcessLookupError on trixie).
"""

from __future__ import annotations

from test_runner_support import status, wait_for


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
        wait_for(mark.exists, 60, "start blocked in pipe-pane")
        cli.kill()
        cli.wait()
        t0 = time.monotonic()
        t = wait_for(
            lambda: (s := status(sandbox, "hs"))["state"] not in ("starting", "running") and s,
            30,
            "task ended",
        )
        assert (t["state"], t["reason"]) == ("failed", "start_abandoned"), t
        assert (
            time.monotonic() - t0 < 30
        )  # not the 60 s handshake timeout (status alone takes seconds under load)
    finally:
        kill_marked(sandbox.marker)  # the shim's blocked `sleep`, by identity
