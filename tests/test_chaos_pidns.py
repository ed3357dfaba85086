"""PidNamespace really hands a chosen PID to a chosen process, and leaves nothing behind."""

from __future__ import annotations

import os
import random
import sys

import pytest

from faults.pidns import PidNamespace
from faults.procfault import ProcIdentity


def _cmdline(pid: int) -> list[str]:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return [a.decode() for a in f.read().split(b"\0")[:-1]]


def test_spawn_at_chosen_pid_and_reuse_it(sandbox) -> None:
    target = random.randint(300, 20000)
    imposter = [sys.executable, "-c", "import time; time.sleep(120)", "imposter-a"]
    with PidNamespace(env=sandbox.env()) as ns:
        assert ns.init is not None and ns.init.alive()
        # Inside, the namespace's own /proc: the init is PID 1.
        r = ns.run(["cat", "/proc/1/cmdline"], text=True, timeout=10)
        assert "nsinit.py" in r.stdout
        host_a = ns.spawn_at_pid(target, imposter)
        a = ProcIdentity.of(host_a)
        assert ns.host_pid(target) == host_a
        assert _cmdline(host_a) == imposter
        inside = ns.run(["cat", f"/proc/{target}/cmdline"], text=True, timeout=10).stdout.split("\0")
        assert inside[:-1] == imposter
        with pytest.raises(ValueError):
            ns.spawn_at_pid(target, ["sleep", "1"])  # taken
        # Reuse: kill the first owner, give the same PID to a different process.
        assert a.signal(9) and a.wait_gone(5)
        other = ["sleep", "77.5"]
        host_b = ns.spawn_at_pid(target, other)
        b = ProcIdentity.of(host_b)
        assert _cmdline(host_b) == other and b != a
        assert ns.run(["cat", f"/proc/{target}/cmdline"], text=True, timeout=10).stdout == "sleep\x0077.5\x00"
        init = ns.init
        members = ns.members()
        assert host_b in members and init.pid in members
    assert not init.alive() and not b.alive()
    assert ns.members() == []


def test_run_passes_cwd_env_input_and_timeout(sandbox) -> None:
    with PidNamespace(env=sandbox.env()) as ns:
        r = ns.run(
            ["sh", "-c", 'echo "$$ $PWD $X"; cat'],
            env=sandbox.env(X="yes"),
            cwd=sandbox.workdir,
            input="piped",
            text=True,
            timeout=10,
        )
        pid, cwd, x = r.stdout.splitlines()[0].split()
        assert int(pid) > 1 and cwd == os.path.realpath(sandbox.workdir) and x == "yes"
        assert r.stdout.splitlines()[1] == "piped"
        # A daemon left behind inside dies with the namespace.
        p = ns.popen(["sh", "-c", "sleep 300 >/dev/null 2>&1 & echo $!"], stdout=-1, text=True)
        out, _ = p.communicate(timeout=10)
        host = ns.host_pid(int(out))
        assert host is not None
        daemon = ProcIdentity.of(host)
    assert not daemon.alive()
