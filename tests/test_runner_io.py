"""logs, send, refusals that create nothing, and paths (P3, P8, P11, P13, P15)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from test_runner_support import (
    PY,
    REPO,
    dispatch,
    prompt,
    pyagent,
    sessions,
    settle,
    start,
    start_ok,
    status,
    tree_files,
    wait_done,
    wait_for,
)

NOISY = r"""
import os, sys, time
w = sys.stdout.buffer
w.write(b"\x1b[31mred\x1b[0m plain\r\n"); w.flush()
w.write(b"\x1b]0;window title\x07title gone\r\n"); w.flush()
w.write(b"\x1b[2J\x1b[H\x1b[?25lcursor\x1b[10;5Hmoved\r\n"); w.flush()
w.write(b"euro \xe2\x82"); w.flush(); time.sleep(0.05); w.write(b"\xac done\r\n"); w.flush()
w.write(b"".join(b"burst line %05d\r\n" % i for i in range(3000)))
w.write(b"BURST-END nonce-42\r\n"); w.flush()
"""


def test_logs_are_plain_utf8_and_keep_burst_before_exit(sandbox):
    start_ok(sandbox, "lg", *pyagent(NOISY))
    t = wait_done(sandbox, "lg")
    assert t["state"] == "succeeded"
    r = dispatch(sandbox, "logs", "lg")
    assert r.rc == 0 and r.doc["task_id"] == "lg" and r.doc["log_path"] == t["log_path"]
    text = r.doc["text"]
    assert "red plain\n" in text and "title gone\n" in text and "euro € done\n" in text
    assert "cursormoved" in text
    assert "\x1b" not in text and "\r" not in text and "window title" not in text
    assert "burst line 02999\nBURST-END nonce-42\n" in text  # nothing lost right before exit (P3)
    assert "dk-end" not in text
    assert Path(t["log_path"]).is_relative_to(sandbox.state_dir)
    human = subprocess.run(
        [sys.executable, "-m", "runner.cli", "logs", "lg"], capture_output=True, env=sandbox.env()
    )
    assert human.stdout.decode() == text
    settle(sandbox)


RAW_READER = r"""
import os, sys, termios, tty
fd = 0
tty.setraw(fd)
os.write(1, b"\x1b[?2004h")
open(os.path.join(os.environ["OUT_DIR"], "ready"), "w").close()
buf = b""
while not buf.endswith(b"\x1b[201~\r"):
    buf += os.read(fd, 65536)
open(os.path.join(os.environ["OUT_DIR"], "got.bin"), "wb").write(buf)
"""


def test_send_delivers_bytes_bracketed_then_enter(sandbox):
    start_ok(sandbox, "sd", *pyagent(RAW_READER), env={"OUT_DIR": str(sandbox.workdir)})
    wait_for(lambda: (sandbox.workdir / "ready").exists())
    payload = "line one\nEnter C-c $(touch pwned) `id` \\ 'q' \"dq\"\n\ttab ✓ end".encode()
    f = sandbox.workdir / "text.txt"
    f.write_bytes(payload)
    r = dispatch(sandbox, "send", "sd", "--text-file", str(f))
    assert r.rc == 0 and r.doc == {"task_id": "sd", "delivered": True, "bytes": len(payload)}
    t = wait_done(sandbox, "sd")
    assert t["state"] == "succeeded"
    got = (sandbox.workdir / "got.bin").read_bytes()
    assert got == b"\x1b[200~" + payload + b"\x1b[201~\r"
    assert not (sandbox.workdir / "pwned").exists()
    settle(sandbox)


def test_send_cooked_line_and_refusals(sandbox):
    code = "import sys, os; open(os.environ['OUT_DIR'] + '/line', 'wb').write(sys.stdin.buffer.readline())"
    start_ok(sandbox, "sc", *pyagent(code), env={"OUT_DIR": str(sandbox.workdir)})
    f = sandbox.workdir / "t.txt"
    f.write_bytes(b"hello $HOME Enter")
    bad = dispatch(sandbox, "send", "sc", "--text-file", str(sandbox.workdir / "missing"))
    assert bad.rc == 2 and bad.doc["error"]["code"] == "bad_text_file"
    assert dispatch(sandbox, "send", "sc", "--text-file", str(f)).rc == 0
    wait_done(sandbox, "sc")
    assert (sandbox.workdir / "line").read_bytes() == b"hello $HOME Enter\n"
    r = dispatch(sandbox, "send", "sc", "--text-file", str(f))
    assert r.rc == 2 and r.doc["error"]["code"] == "not_running"
    r = dispatch(sandbox, "send", "nope", "--text-file", str(f))
    assert r.rc == 2 and r.doc["error"]["code"] == "unknown_task"
    settle(sandbox)


def _refused(sb, res, code, exit_status=2):
    assert res.rc == exit_status, (res.out, res.err)
    assert res.doc["error"]["code"] == code, res.doc
    assert res.out.count("\n") <= 1 and len(res.err.strip().splitlines()) == 1
    assert not sb.socket.exists()  # no tmux server
    assert sessions(sb) == []


@pytest.mark.parametrize(
    "args,env,code",
    [
        (["--task-id", "bad id"], {}, "bad_task_id"),
        (["--task-id", "-x"], {}, "bad_task_id"),
        (["--task-id", "x" * 65], {}, "bad_task_id"),
        (["--label", "two\nlines"], {}, "bad_label"),
        (["--label", ""], {}, "bad_label"),
        (["--label", "x" * 129], {}, "bad_label"),
        (["--label", "c1\x85"], {}, "bad_label"),
        (["--model", "opus"], {"DISPATCH_MODELS": "sonnet,haiku"}, "model_not_allowed"),
        (["--model", "rm -rf"], {}, "model_not_allowed"),
        (["--cwd", "/definitely/not/here"], {}, "bad_cwd"),
        (["--prompt-file", "/definitely/not/here"], {}, "bad_prompt_file"),
        (["--prompt-file", "/"], {}, "bad_prompt_file"),
        (["--bogus-flag"], {}, "bad_usage"),
        ([], {"DISPATCH_GRACE_S": "soon"}, "bad_config"),
    ],
)
def test_start_refusals_create_nothing(sandbox, args, env, code):
    base = {"--task-id": "t1", "--cwd": str(sandbox.workdir), "--prompt-file": prompt(sandbox)}
    extra = list(args)
    for k, v in base.items():
        if k not in extra:
            extra += [k, v]
    before = tree_files(sandbox.state_dir)
    res = dispatch(sandbox, "start", *extra, "--", "true", env=env)
    _refused(sandbox, res, code)
    assert tree_files(sandbox.state_dir) == before


def test_empty_argv_refused(sandbox):
    before = tree_files(sandbox.state_dir)
    res = dispatch(
        sandbox, "start", "--task-id", "e", "--cwd", str(sandbox.workdir), "--prompt-file", prompt(sandbox)
    )
    _refused(sandbox, res, "bad_argv")
    res = dispatch(
        sandbox,
        "start",
        "--task-id",
        "e",
        "--cwd",
        str(sandbox.workdir),
        "--prompt-file",
        prompt(sandbox),
        "--",
    )
    _refused(sandbox, res, "bad_argv")
    assert tree_files(sandbox.state_dir) == before


def test_duplicate_task_id_refused(sandbox):
    start_ok(sandbox, "dup", "true")
    wait_done(sandbox, "dup")
    settle(sandbox)
    before = tree_files(sandbox.state_dir)
    res = start(sandbox, "dup", "true")
    assert res.rc == 2 and res.doc["error"]["code"] == "duplicate_task_id"
    assert tree_files(sandbox.state_dir) == before
    assert sessions(sandbox) == [] and not sandbox.leaks()


def _shim_dir(sb, body: str) -> str:
    d = sb.tmpdir / "bin"
    d.mkdir(exist_ok=True)
    shim = d / "tmux"
    shim.write_text("#!/bin/sh\n" + body)
    shim.chmod(0o755)
    return str(d)


def test_tmux_missing_exit_3_with_hint(sandbox):
    empty = sandbox.tmpdir / "emptybin"
    empty.mkdir()
    before = tree_files(sandbox.state_dir)
    res = start(sandbox, "tm", "true", env={"PATH": str(empty)})
    _refused(sandbox, res, "tmux_missing", 3)
    msg = res.doc["error"]["message"]
    assert any(k in msg for k in ("apt-get", "brew", "dnf", "apk"))
    assert tree_files(sandbox.state_dir) == before


def test_tmux_too_old_names_both_versions_and_runs_nothing_else(sandbox):
    log = sandbox.tmpdir / "calls"
    d = _shim_dir(sandbox, f'echo "$@" >> "{log}"\necho "tmux 3.1c"\n')
    before = tree_files(sandbox.state_dir)
    res = start(sandbox, "old", "true", env={"PATH": d + os.pathsep + os.environ["PATH"]})
    _refused(sandbox, res, "tmux_too_old", 3)
    assert "3.1c" in res.doc["error"]["message"] and "3.2a" in res.doc["error"]["message"]
    calls = log.read_text().splitlines()
    assert all(c.endswith("-V") for c in calls) and calls
    assert tree_files(sandbox.state_dir) == before


def test_every_tmux_call_uses_our_socket(sandbox):
    log = sandbox.tmpdir / "calls"
    d = _shim_dir(sandbox, f'echo "$@" >> "{log}"\nexec /usr/bin/tmux "$@"\n')
    env = {"PATH": d + os.pathsep + os.environ["PATH"]}
    code = "import sys; sys.stdin.readline()"
    start_ok(sandbox, "sk", *pyagent(code), env=env)
    f = sandbox.workdir / "t.txt"
    f.write_text("x")
    assert dispatch(sandbox, "send", "sk", "--text-file", str(f), env=env).rc == 0
    wait_done(sandbox, "sk")
    dispatch(sandbox, "reap", env=env)
    start_ok(sandbox, "sk2", "sleep", "30", env=env)
    dispatch(sandbox, "stop", "sk2", env=env)
    calls = log.read_text().splitlines()
    assert len(calls) >= 8
    assert all(c.startswith(f"-S {sandbox.socket} ") for c in calls), calls
    joined = "\n".join(calls)
    assert "new-session" in joined and "pipe-pane -o -t %" in joined and "paste-buffer -p" in joined
    assert "send-keys -t %" in joined and " Enter" in joined
    settle(sandbox)


def test_state_dir_unusable_exit_3(sandbox):
    f = sandbox.tmpdir / "a-file"
    f.write_text("")
    res = start(sandbox, "sd", "true", env={"DISPATCH_STATE_DIR": str(f / "sub")})
    _refused(sandbox, res, "state_dir_unusable", 3)


def test_long_state_dir_with_spaces_falls_back_from_sun_path(sandbox):
    long_dir = sandbox.root / "var folders" / ("x" * 40) / ("T y" * 20) / "state dir"
    env = sandbox.env(DISPATCH_STATE_DIR=str(long_dir))
    env.pop("DISPATCH_TMUX_SOCKET")
    env["PYTHONPATH"] = REPO
    # The fallback is tmux -L, under TMUX_TMPDIR: under macOS' long /var/folders TMPDIR plus the test
    # session's dirs, that place is itself past sun_path, and there is nothing left to show here.
    from runner.config import socket_fits

    ldir = os.path.join(env.get("TMUX_TMPDIR") or "/tmp", f"tmux-{os.getuid()}", "dk-" + "0" * 16)
    if not socket_fits(ldir):
        pytest.skip(f"TMUX_TMPDIR is too long for a -L socket here ({len(ldir)} bytes)")
    p = sandbox.workdir / "prompt with space.txt"
    p.write_text("hi")
    cwd = sandbox.workdir / "work dir"
    cwd.mkdir()
    cmd = [PY, "-m", "runner.cli"]
    cp = subprocess.run(
        [
            *cmd,
            "start",
            "--json",
            "--task-id",
            "lp",
            "--cwd",
            str(cwd),
            "--prompt-file",
            str(p),
            "--",
            "sleep",
            "30",
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert cp.returncode == 0, cp.stderr
    from runner.config import load

    cfg = load(env)
    assert cfg.socket_path is None and cfg.socket_name
    ls = subprocess.run(
        ["tmux", "-L", cfg.socket_name, "ls", "-F", "#{session_name}"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert ls.stdout.split() == [__import__("json").loads(cp.stdout)["session"]]
    assert stat.S_IMODE(long_dir.stat().st_mode) == 0o700
    st = subprocess.run([*cmd, "stop", "--json", "lp"], capture_output=True, text=True, env=env)
    assert __import__("json").loads(st.stdout)["state"] == "stopped"
    assert Path(__import__("json").loads(st.stdout)["log_path"]).is_relative_to(long_dir)
    settle(sandbox)


def test_model_allowlist_accepts_listed_model_and_records_exact_argv(sandbox):
    argv = ["sh", "-c", 'test "$DISPATCH_MODEL" = haiku', "--model", "opus"]
    start_ok(sandbox, "md", *argv, env={"DISPATCH_MODELS": "sonnet, haiku"}, extra=("--model", "haiku"))
    t = wait_done(sandbox, "md")
    assert t["state"] == "succeeded" and t["model"] == "haiku" and t["argv"] == argv
    assert status(sandbox, "md")["argv"] == argv
    settle(sandbox)


def test_bad_wait_timeout_is_bad_usage(sandbox):
    start_ok(sandbox, "wt", "true")
    r = dispatch(sandbox, "wait", "wt", "--timeout", "never")
    assert r.rc == 2 and r.doc["error"]["code"] == "bad_usage"
    wait_done(sandbox, "wt")
    settle(sandbox)


def test_users_tmux_conf_is_not_read(sandbox):
    home = sandbox.tmpdir / "home"
    home.mkdir()
    (home / ".tmux.conf").write_text("set -g remain-on-exit on\nset -g exit-empty off\n")
    env = {"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config")}
    start_ok(sandbox, "cf", "true", env=env)
    assert wait_done(sandbox, "cf")["state"] == "succeeded"
    wait_for(lambda: sessions(sandbox) == [], 10, "session closed")
    settle(sandbox)
