"""The clock shim shifts wall time live for its processes and leaves monotonic time, sleeps and waits alone."""

from __future__ import annotations

import subprocess
import sys
import time

from faults.clock import FakeClock
from faults.tmuxfault import stop_server

CHILD = r"""
import sys, threading, time
for line in sys.stdin:
    cmd = line.strip()
    if cmd == "now":
        print(time.time(), time.monotonic(), time.clock_gettime(time.CLOCK_REALTIME), flush=True)
    elif cmd == "sleep":
        m = time.monotonic(); time.sleep(0.2); s = time.monotonic() - m
        m = time.monotonic(); threading.Event().wait(0.2); w = time.monotonic() - m
        print(s, w, flush=True)
"""


class Child:
    def __init__(self, env: dict[str, str]) -> None:
        self.p = subprocess.Popen(
            [sys.executable, "-c", CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )

    def ask(self, cmd: str) -> list[float]:
        assert self.p.stdin and self.p.stdout
        self.p.stdin.write(cmd + "\n")
        self.p.stdin.flush()
        return [float(x) for x in self.p.stdout.readline().split()]

    def close(self) -> None:
        assert self.p.stdin
        self.p.stdin.close()
        self.p.wait(timeout=10)


def test_jump_applies_live_and_leaves_monotonic_sleep_and_wait(sandbox, tmp_path) -> None:
    with FakeClock.create(tmp_path) as clk:
        child = Child(sandbox.env(**clk.env()))
        try:
            wall0, mono0, rt0 = child.ask("now")
            assert abs(wall0 - time.time()) < 1.0 and abs(rt0 - wall0) < 1.0
            clk.jump(3600)
            # Live: the running process sees the jump at its next read (shim re-checks every 2 ms).
            deadline = time.monotonic() + 5
            while True:
                wall1, mono1, rt1 = child.ask("now")
                if wall1 - time.time() > 3500 or time.monotonic() > deadline:
                    break
                time.sleep(0.005)
            assert 3599 < wall1 - time.time() < 3601
            assert 3599 < rt1 - time.time() < 3601
            assert abs(mono1 - time.monotonic()) < 1.0, "monotonic must stay real"
            assert 0 <= mono1 - mono0 < 5
            clk.jump(-86400)
            time.sleep(0.01)
            wall2, _, _ = child.ask("now")
            assert -86401 < wall2 - time.time() < -86399
            slept, waited = child.ask("sleep")
            assert 0.19 < slept < 2.0 and 0.19 < waited < 2.0
            clk.reset()
            time.sleep(0.01)
            wall3, _, _ = child.ask("now")
            assert abs(wall3 - time.time()) < 1.0
        finally:
            child.close()
    assert not clk.file.exists()


def test_drift_is_continuous(sandbox, tmp_path) -> None:
    with FakeClock.create(tmp_path) as clk:
        child = Child(sandbox.env(**clk.env()))
        try:
            clk.drift(1.0)  # fake clock runs at twice real speed
            w0, m0, _ = child.ask("now")
            time.sleep(0.3)
            w1, m1, _ = child.ask("now")
            ratio = (w1 - w0) / (m1 - m0)
            assert 1.8 < ratio < 2.2, ratio
            assert clk.offset > 0.25
        finally:
            child.close()


def test_date_sees_jump(sandbox, tmp_path) -> None:
    with FakeClock.create(tmp_path) as clk:
        env = sandbox.env(**clk.env())
        clk.jump(7 * 86400)
        out = subprocess.run(["date", "+%s"], env=env, capture_output=True, text=True, timeout=10, check=True)
        assert abs(int(out.stdout) - (time.time() + 7 * 86400)) <= 2
        clk.jump(-3600)
        out = subprocess.run(["date", "+%s"], env=env, capture_output=True, text=True, timeout=10, check=True)
        assert abs(int(out.stdout) - (time.time() - 3600)) <= 2


def test_ld_preload_is_appended(tmp_path) -> None:
    clk = FakeClock.create(tmp_path)
    env = clk.env({"LD_PRELOAD": "/x/a.so /x/b.so"})
    assert env["LD_PRELOAD"] == f"/x/a.so:/x/b.so:{clk.lib}"
    clk.close()


def test_tmux_runs_under_the_shim(sandbox, tmp_path) -> None:
    with FakeClock.create(tmp_path) as clk:
        env = sandbox.env(**clk.env())
        clk.jump(86400)
        tmux = ["tmux", "-S", str(sandbox.socket)]
        try:
            subprocess.run(
                [*tmux, "new-session", "-d", "-s", "c", "sleep 30"], env=env, check=True, timeout=10
            )
            out = subprocess.run(
                [*tmux, "list-sessions", "-F", "#{session_created}"],
                env=env,
                capture_output=True,
                text=True,
                timeout=10,
                check=True,
            )
            # The server (started under the shim) stamped its session with the shifted clock.
            assert abs(int(out.stdout) - (time.time() + 86400)) <= 5
            # ... and still runs commands promptly (its event loop uses monotonic time).
            t = time.monotonic()
            subprocess.run([*tmux, "list-sessions"], env=env, check=True, timeout=10, capture_output=True)
            assert time.monotonic() - t < 5
        finally:
            stop_server(sandbox.socket)


def test_shim_is_cached_by_source_hash(tmp_path) -> None:
    a = FakeClock.create(tmp_path)
    b = FakeClock.create(tmp_path)
    assert a.lib == b.lib and a.file != b.file
    a.close()
    b.close()
