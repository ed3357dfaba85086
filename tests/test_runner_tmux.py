"""The tmux gateway against a real server on the sandbox socket: timeouts, exact targets, argv (P7, P13, P14)."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
from test_runner_support import PY, wait_for

from runner.tmux import Tmux, TmuxError, TmuxMissing, TmuxTimeout, TmuxTooOld, min_version


@pytest.fixture
def tm(sandbox):
    t = Tmux(socket_path=sandbox.socket, timeout=3.0, env=sandbox.env())
    yield t
    t.run("kill-server", check=False)
    wait_for(lambda: not sandbox.leaks(), 10, "tmux server exit")


def test_version_and_floor(tm):
    installed = subprocess.run(["tmux", "-V"], capture_output=True, text=True, check=True).stdout.split()[-1]
    assert tm.version() == installed
    assert tm.require() == installed
    assert min_version() == "3.2a"
    with pytest.raises(TmuxTooOld) as ei:
        tm.require("9.9")
    assert ei.value.found == installed and ei.value.minimum == "9.9"


def test_floor_is_at_least_libtmux_floor():
    """Our floor is a constant (no libtmux import per CLI call); it must never be below libtmux's."""
    from libtmux.common import TMUX_MIN_VERSION

    from runner.tmux import parse_version

    assert parse_version(min_version()) >= parse_version(str(TMUX_MIN_VERSION))


def test_new_session_execs_argv_without_a_shell(tm, sandbox):
    out = sandbox.workdir / "argv.txt"
    code = "import sys, os; open(sys.argv[1], 'w').write(repr(sys.argv[2:]) + str(os.getppid()))"
    evil = "a b; touch pwned $(touch pwned2)"
    s, pane = tm.new_session(
        "dk_test00000001", [PY, "-c", code, str(out), evil, "'"], cwd=str(sandbox.workdir)
    )
    assert s.name == "dk_test00000001" and s.target == "=dk_test00000001" and s.id.startswith("$")
    assert pane.id.startswith("%") and pane.target == pane.id
    wait_for(lambda: out.exists() and out.read_text())
    text = out.read_text()
    assert text.startswith(repr([evil, "'"]))
    assert not (sandbox.workdir / "pwned").exists() and not (sandbox.workdir / "pwned2").exists()


def test_exact_session_targets(tm):
    tm.new_session("dk_ab", ["sleep", "60"])
    tm.new_session("dk_abc", ["sleep", "60"])
    assert not tm.kill_session("dk_a")  # no prefix matching
    assert not tm.has_session("dk_a")
    assert tm.kill_session("dk_ab")
    assert [s.name for s in tm.list_sessions()] == ["dk_abc"]


def test_duplicate_session_is_an_error(tm):
    tm.new_session("dk_dup", ["sleep", "60"])
    with pytest.raises(TmuxError) as ei:
        tm.new_session("dk_dup", ["sleep", "60"])
    assert "duplicate session" in ei.value.stderr


def test_no_server_means_no_sessions(sandbox):
    t = Tmux(socket_path=sandbox.socket, env=sandbox.env())
    assert t.list_sessions() == []
    assert not t.kill_session("dk_x")
    assert not sandbox.socket.exists() or t.list_sessions() == []


def test_every_call_times_out_on_a_frozen_server(tm):
    tm.new_session("dk_frozen", ["sleep", "60"])
    pid = int(tm.run("display-message", "-p", "#{pid}").stdout)
    os.kill(pid, signal.SIGSTOP)
    try:
        fast = Tmux(socket_path=tm.socket_args[1], timeout=0.3, env=tm.env)
        t0 = time.monotonic()
        with pytest.raises(TmuxTimeout):
            fast.list_sessions()
        with pytest.raises(TmuxTimeout):
            fast.run("has-session", "-t", "=dk_frozen", timeout=0.2)
        assert time.monotonic() - t0 < 3
    finally:
        os.kill(pid, signal.SIGCONT)


def test_missing_binary(sandbox):
    empty = sandbox.tmpdir / "nobin"
    empty.mkdir()
    t = Tmux(socket_path=sandbox.socket, env={**sandbox.env(), "PATH": str(empty)})
    with pytest.raises(TmuxMissing) as ei:
        t.version()
    assert "install" in str(ei.value)


def test_socket_args_exactly_one():
    with pytest.raises(ValueError):
        Tmux()
    assert Tmux(socket_name="dk-x").socket_args == ["-L", "dk-x"]
