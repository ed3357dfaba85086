"""Process identity on real processes: recycled PIDs, zombies, waiting, trees, double forks (P2, P9)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from test_runner_support import wait_for

from runner.clock import Deadline
from runner.procid import BACKEND, ProcessIdentity, descendants, find_by_env, kill_tree, tree


def _spawn(code: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code], env={**os.environ, **(env or {})})


def test_backend_is_pidfd_on_linux():
    if sys.platform.startswith("linux"):
        assert BACKEND == "linux"


def test_alive_then_dead_and_zombie_is_dead(sandbox):
    p = subprocess.Popen(["sleep", "60"], env=sandbox.env())
    ident = ProcessIdentity.of(p.pid)
    assert ident and ident.is_alive()
    assert abs(ident.started_at() - time.time()) < 5
    os.kill(p.pid, signal.SIGKILL)
    assert ident.wait_exit(5)  # zombie (not reaped yet) counts as exited
    assert not ident.is_alive() and ProcessIdentity.of(p.pid) is None
    p.wait()
    assert not ident.is_alive()


def test_same_pid_other_start_is_not_alive(sandbox):
    p = subprocess.Popen(["sleep", "60"], env=sandbox.env())
    try:
        real = ProcessIdentity.of(p.pid)
        recycled = ProcessIdentity(p.pid, real.start - 1)  # same PID, same cmdline, other start
        assert real.is_alive() and not recycled.is_alive()
        assert not recycled.signal(signal.SIGKILL)
        assert recycled.wait_exit(0)  # "ours" is gone, so waiting returns at once
        assert real.is_alive()
    finally:
        p.kill()
        p.wait()


def test_wait_exit_sleeps_until_exit(sandbox):
    p = subprocess.Popen(["sleep", "0.3"], env=sandbox.env())
    ident = ProcessIdentity.of(p.pid)
    assert not ident.wait_exit(Deadline(0.05))
    t0 = time.monotonic()
    assert ident.wait_exit(Deadline(10))
    assert time.monotonic() - t0 < 2
    p.wait()


DOUBLE_FORK = """
import os, sys, time, subprocess
subprocess.Popen(["sleep", "300"])
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        open(sys.argv[1], "w").write(str(os.getpid()))
        time.sleep(300)
    os._exit(0)
time.sleep(300)
"""


def test_kill_tree_reaches_double_forked_marked_descendants(sandbox):
    pidfile = sandbox.workdir / "daemon.pid"
    env = {**sandbox.env(), "DISPATCH_RUN_MARKER": "m-" + sandbox.marker}
    p = subprocess.Popen([sys.executable, "-c", DOUBLE_FORK, str(pidfile)], env=env)
    root = ProcessIdentity.of(p.pid)
    daemon = int(wait_for(lambda: pidfile.exists() and pidfile.read_text()))
    d_ident = ProcessIdentity.of(daemon)
    assert d_ident not in descendants(root)  # re-parented away: only the marker finds it
    marked = find_by_env("DISPATCH_RUN_MARKER", "m-" + sandbox.marker)
    assert {root, d_ident} <= set(marked)
    assert len(tree([root], ("DISPATCH_RUN_MARKER", "m-" + sandbox.marker))) >= 3
    killed = kill_tree([root], ("DISPATCH_RUN_MARKER", "m-" + sandbox.marker), term_timeout=1)
    p.wait()
    assert d_ident in killed and not d_ident.is_alive()
    assert find_by_env("DISPATCH_RUN_MARKER", "m-" + sandbox.marker) == []


def test_kill_tree_escalates_to_sigkill(sandbox):
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('r', flush=True); time.sleep(60)"
    p = subprocess.Popen([sys.executable, "-c", code], env=sandbox.env(), stdout=subprocess.PIPE)
    assert p.stdout.readline() == b"r\n"
    ident = ProcessIdentity.of(p.pid)
    t0 = time.monotonic()
    kill_tree([ident], None, term_timeout=0.3)
    assert p.wait(5) == -signal.SIGKILL
    assert time.monotonic() - t0 < 3
