"""tmux faults applied to real servers: frozen, killed, old tmux, no tmux."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest

from faults.procfault import ProcIdentity
from faults.tmuxfault import (
    freeze_server,
    kill_pane,
    kill_server,
    kill_session,
    no_tmux,
    old_tmux_dir,
    path_without_tmux,
    server_answers,
    server_identity,
    stop_server,
)


@pytest.fixture
def server(sandbox):
    tmux = ["tmux", "-S", str(sandbox.socket)]
    env = sandbox.env()
    subprocess.run([*tmux, "new-session", "-d", "-s", "s1", "sleep 300"], env=env, check=True, timeout=10)
    yield tmux, env
    stop_server(sandbox.socket)


def test_freeze_server_stops_and_resumes(sandbox, server) -> None:
    tmux, env = server
    assert server_answers(sandbox.socket, 5)
    with freeze_server(sandbox.socket) as ident:
        assert ident.state() == "T"
        t = time.monotonic()
        assert not server_answers(sandbox.socket, 0.5)
        assert time.monotonic() - t < 3  # the probe itself is bounded
    assert ident.state() in ("S", "R")
    assert server_answers(sandbox.socket, 5)
    assert server_identity(sandbox.socket) == ident


def test_freeze_server_resumes_on_error(sandbox, server) -> None:
    with pytest.raises(RuntimeError), freeze_server(sandbox.socket) as ident:
        raise RuntimeError("boom")
    assert ident.state() in ("S", "R") and server_answers(sandbox.socket, 5)


def test_kill_session_and_pane(sandbox, server) -> None:
    tmux, env = server
    subprocess.run([*tmux, "new-session", "-d", "-s", "s2", "sleep 300"], env=env, check=True, timeout=10)
    pane = subprocess.run(
        [*tmux, "split-window", "-t", "=s2:", "-P", "-F", "#{pane_id}", "sleep 300"],
        env=env,
        check=True,
        timeout=10,
        capture_output=True,
        text=True,
    ).stdout.strip()
    kill_pane(sandbox.socket, pane)
    panes = subprocess.run(
        [*tmux, "list-panes", "-a", "-F", "#{pane_id}"], env=env, capture_output=True, text=True, timeout=10
    )
    assert pane not in panes.stdout.split()
    kill_session(sandbox.socket, "s2")
    assert (
        subprocess.run(
            [*tmux, "has-session", "-t", "=s2"], env=env, timeout=10, capture_output=True
        ).returncode
        == 1
    )
    assert subprocess.run([*tmux, "has-session", "-t", "=s1"], env=env, timeout=10).returncode == 0
    with pytest.raises(LookupError):
        kill_session(sandbox.socket, "s2")


def test_kill_server_is_abrupt(sandbox, server) -> None:
    ident = kill_server(sandbox.socket)
    assert not ident.alive()
    assert sandbox.socket.exists()  # SIGKILL: no cleanup, a stale socket remains
    assert not server_answers(sandbox.socket, 2)


def test_old_tmux_dir(sandbox, server, tmp_path) -> None:
    tmux, env = server
    d = old_tmux_dir(tmp_path / "old", "3.1c")
    env = dict(env, PATH=f"{d}{os.pathsep}{env['PATH']}")
    assert shutil.which("tmux", path=env["PATH"]) == str(d / "tmux")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["tmux", "-S", str(sandbox.socket), *args], env=env, capture_output=True, text=True, timeout=10
        )

    assert (
        subprocess.run(["tmux", "-V"], env=env, capture_output=True, text=True, timeout=10).stdout
        == "tmux 3.1c\n"
    )
    r = run("new-session", "-d", "-e", "A=1", "-s", "neu", "sleep 1")
    assert r.returncode == 1 and r.stderr.startswith("usage: new-session ")
    assert run("has-session", "-t", "=neu").returncode == 1  # nothing was created
    r = run("display-popup", "-E", "true")
    assert (r.returncode, r.stderr) == (1, "unknown command: display-popup\n")
    r = run("set-option", "-g", "remain-on-exit", "failed")
    assert (r.returncode, r.stderr) == (1, "bad value: failed\n")
    # Supported things run on the real server; newer formats expand to nothing, like old tmux.
    assert run("new-window", "-d", "-e", "A=1", "-t", "=s1", "sleep 300").returncode == 0  # -e is 3.0
    out = run("list-panes", "-s", "-t", "=s1", "-F", "[#{pane_dead_status}][#{pane_dead}]").stdout.split()
    assert out == ["[][0]", "[][0]"]
    r = run("pipe-pane", "-I", "-t", "=s1:", "true")
    assert r.returncode == 0
    older = old_tmux_dir(tmp_path / "older", "2.6")
    env["PATH"] = f"{older}{os.pathsep}{env['PATH']}"
    r = run("pipe-pane", "-O", "-t", "=s1:", "true")
    assert (r.returncode, r.stderr) == (1, "usage: pipe-pane [-IOo] [-t target-pane] [command]\n")
    ancient = old_tmux_dir(tmp_path / "ancient", "1.5")
    env["PATH"] = f"{ancient}{os.pathsep}{env['PATH']}"
    r = run("list-sessions", "-F", "#{session_name}")
    assert r.returncode == 1 and r.stderr.startswith("usage: list-sessions")
    assert run("-V").stdout == "tmux 1.5\n"


def test_old_tmux_33_error_text(sandbox, server, tmp_path) -> None:
    d = old_tmux_dir(tmp_path / "o", "3.3a")
    env = dict(server[1], PATH=f"{d}{os.pathsep}{server[1]['PATH']}")
    r = subprocess.run(
        ["tmux", "-S", str(sandbox.socket), "wait-for", "-S", "x"],
        env=env,
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert r.returncode == 0  # 3.3a has everything we know about


def test_path_without_tmux(sandbox) -> None:
    env = sandbox.env()
    assert shutil.which("tmux", path=env["PATH"])
    with no_tmux(env) as bare:
        assert shutil.which("tmux", path=bare["PATH"]) is None
        for tool in ("sh", "python3", "env", "cat"):
            assert shutil.which(tool, path=bare["PATH"]), tool
        r = subprocess.run(
            ["sh", "-c", "command -v tmux || echo none; python3 -c 'print(1)'"],
            env=bare,
            capture_output=True,
            text=True,
            timeout=10,
        )
        assert r.stdout.split() == ["none", "1"]
        shadow = bare["PATH"].split(os.pathsep)
    assert not any(os.path.isdir(p) for p in shadow if "dk-notmux-" in p)
    plain = path_without_tmux(env)
    assert shutil.which("tmux", path=plain["PATH"]) is None


def test_identity_helpers(sandbox) -> None:
    p = subprocess.Popen(["sleep", "30"], env=sandbox.env())
    ident = ProcIdentity.of(p.pid)
    assert ident.alive()
    assert ident.signal(9) and ident.wait_gone(5) and not ident.alive()
    assert not ident.signal(9)
    p.wait()
