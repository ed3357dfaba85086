"""Privacy between ordinary users: state dirs 0700, runner files 0600, and a second user can neither read
nor signal nor attach to the first one's tasks.

``test_state_modes`` runs as whoever runs the tests (the ordinary-user CI job runs it unprivileged).
``test_other_user_*`` need root only to *become* two plain users (setpriv drops every capability); they
run when ``DK_PRIV_USERS="user1 user2"`` names two accounts and ``DK_PRIV_KIT`` a checkout with a
``.venv`` that user1 can run (``.ci/as-user`` sets both); otherwise they skip saying so.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from conformance.isolation import Sandbox

PY = sys.executable
REPO = str(Path(__file__).resolve().parents[1])
# Written by the agent with its own umask (the runner must not change the agent's umask: it would apply
# to the user's project files too); the 0700 task dir is what keeps them private.
AGENT_WRITTEN = {"heartbeat", "result", "result.json"}


def _private(p: Path) -> bool:
    return stat.S_IMODE(p.lstat().st_mode) & 0o077 == 0


def _modes(state: Path) -> list[str]:
    bad = []
    for p in [state, *state.rglob("*")]:
        st = p.lstat()
        if stat.S_ISDIR(st.st_mode) and not _private(p):
            bad.append(f"dir {oct(stat.S_IMODE(st.st_mode))} {p}")
        elif stat.S_ISREG(st.st_mode) and p.name not in AGENT_WRITTEN and not _private(p):
            bad.append(f"file {oct(stat.S_IMODE(st.st_mode))} {p}")
    return bad


def _dispatch(env: dict[str, str], *args: str, prefix: list[str] | None = None, py: str = PY):
    argv = [*(prefix or []), py, "-m", "runner.cli", *args]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)


def _running(env: dict[str, str], tid: str, prefix: list[str] | None = None, py: str = PY) -> dict:
    """Poll `status` until the task runs (deadline 30 s: a loaded 2-core machine is slow to start)."""
    deadline = time.monotonic() + 30
    while True:
        r = _dispatch(env, "status", "--json", tid, prefix=prefix, py=py)
        doc = json.loads(r.stdout) if r.stdout.strip().startswith("{") else {}
        if doc.get("state") == "running" or time.monotonic() > deadline:
            assert doc.get("state") == "running", r.stdout + r.stderr
            return doc
        time.sleep(0.1)


def test_state_modes(sandbox: Sandbox) -> None:
    """As this user: every dir under the state dir is 0700, every runner-written file 0600."""
    sb = sandbox
    # The state dir the user named does not exist yet: the runner creates it (and must create it 0700).
    env = sb.env(DISPATCH_STATE_DIR=str(sb.root / "fresh" / "state"), PYTHONPATH=REPO)
    prompt = sb.root / "prompt.txt"
    prompt.write_text("hello\n")
    agent = [str(Path(PY).with_name("fake-agent")), "--work", "30", "--heartbeat", "0.2"]
    r = _dispatch(env, "start", "--json", "--task-id", "m1", "--cwd", str(sb.workdir), "--prompt-file",
                  str(prompt), "--", *agent)  # fmt: skip
    assert r.returncode == 0, r.stderr
    try:
        _running(env, "m1")
        state = sb.root / "fresh" / "state"
        assert not _modes(state), _modes(state)
        sock = Path(env["DISPATCH_TMUX_SOCKET"])
        assert _private(sock.parent), f"socket dir {oct(stat.S_IMODE(sock.parent.stat().st_mode))}"
    finally:
        _dispatch(env, "stop", "--json", "m1")
        subprocess.run(["tmux", "-S", env["DISPATCH_TMUX_SOCKET"], "kill-server"], capture_output=True)


# -- two ordinary users (root only to switch) ------------------------------------------------------


@dataclass
class Users:
    first: pwd.struct_passwd
    second: pwd.struct_passwd
    kit: Path

    def as_user(self, who: pwd.struct_passwd) -> list[str]:
        return ["setpriv", f"--reuid={who.pw_uid}", f"--regid={who.pw_gid}", "--init-groups",
                "--inh-caps=-all", "--bounding-set=-all", "--"]  # fmt: skip


@pytest.fixture
def users() -> Iterator[Users]:
    names = os.environ.get("DK_PRIV_USERS", "").split()
    kit = os.environ.get("DK_PRIV_KIT", "")
    if os.geteuid() != 0:
        pytest.skip("needs root to become two ordinary users (setpriv); run by .ci/as-user as root")
    if len(names) != 2 or not kit:
        pytest.skip('set DK_PRIV_USERS="user1 user2" and DK_PRIV_KIT=<checkout with .venv> (.ci/as-user)')
    if not shutil.which("setpriv"):
        pytest.skip("needs setpriv (util-linux)")
    try:
        u1, u2 = (pwd.getpwnam(n) for n in names)
    except KeyError as e:
        pytest.skip(f"no such account: {e}")
    yield Users(u1, u2, Path(kit))


@pytest.fixture
def first_users_task(users: Users) -> Iterator[tuple[Users, dict[str, str], dict]]:
    """A running task of user1 in a fresh 0700 dir of theirs under /tmp's sticky dir, ended after."""
    base = Path(tempfile.mkdtemp(prefix="dk-priv-", dir="/tmp"))  # reachable by both users
    os.chown(base, users.first.pw_uid, users.first.pw_gid)
    base.chmod(0o755)  # an open project dir: only the modes the runner gives its state may protect it
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": str(base / "home"),
           "TMPDIR": str(base / "tmp"), "DISPATCH_STATE_DIR": str(base / "state"),
           "DISPATCH_TMUX_SOCKET": str(base / "tmux.sock")}  # fmt: skip
    py = str(users.kit / ".venv" / "bin" / "python")
    u1 = users.as_user(users.first)
    setup = f"mkdir -m 700 {base}/home {base}/tmp {base}/work && echo hi > {base}/prompt"
    subprocess.run([*u1, "sh", "-c", setup], check=True, env=env)
    agent = [str(users.kit / ".venv" / "bin" / "fake-agent"), "--work", "60", "--heartbeat", "0.2"]
    r = _dispatch(env, "start", "--json", "--task-id", "p1", "--cwd", f"{base}/work", "--prompt-file",
                  f"{base}/prompt", "--", *agent, prefix=u1, py=py)  # fmt: skip
    try:
        assert r.returncode == 0, r.stdout + r.stderr
        yield users, env, _running(env, "p1", prefix=u1, py=py)
    finally:
        _dispatch(env, "stop", "--json", "p1", prefix=u1, py=py)
        subprocess.run([*u1, "tmux", "-S", env["DISPATCH_TMUX_SOCKET"], "kill-server"], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


PROBE = r"""
import json, os, socket, stat, sys
state, sock, pids = sys.argv[1], sys.argv[2], [int(p) for p in sys.argv[3:]]
got = {}
for root, dirs, files in os.walk(state):
    for f in files:
        try:
            if not stat.S_ISREG(os.lstat(os.path.join(root, f)).st_mode):
                continue  # a FIFO would block the open
            open(os.path.join(root, f), "rb").read(1); got[os.path.join(root, f)] = "read"
        except OSError:
            pass
try:
    got["listdir " + state] = os.listdir(state)
except OSError:
    pass
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sock); got["connect " + sock] = "connected"
except OSError:
    pass
for p in pids:
    try:
        os.kill(p, 0); got[f"signal {p}"] = "allowed"
    except ProcessLookupError:
        got[f"signal {p}"] = "no such process (the task is not running: test broken)"
    except PermissionError:
        pass
print(json.dumps(got))
"""


def test_other_user_cannot_read_signal_or_attach(first_users_task) -> None:
    users, env, task = first_users_task
    pids = [str(task[k]) for k in ("wrapper_pid", "agent_pid") if task.get(k)]
    assert pids, task
    probe = [*users.as_user(users.second), "/usr/bin/python3", "-S", "-c", PROBE,
             env["DISPATCH_STATE_DIR"], env["DISPATCH_TMUX_SOCKET"], *pids]  # fmt: skip
    r = subprocess.run(probe, capture_output=True, text=True, timeout=60, env={"PATH": env["PATH"]})
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {}, f"user {users.second.pw_name} reached: {r.stdout}"


def test_other_user_dispatch_cannot_see_or_stop(first_users_task) -> None:
    users, env, _task = first_users_task
    u2 = users.as_user(users.second)
    py = str(users.kit / ".venv" / "bin" / "python")
    other = {**env, "HOME": "/nonexistent", "TMPDIR": "/nonexistent"}
    for verb in (["status", "--json", "p1"], ["stop", "--json", "p1"], ["logs", "p1"]):
        r = _dispatch(other, *verb, prefix=u2, py=py)
        assert r.returncode != 0, (
            f"user {users.second.pw_name}: dispatch {verb[0]} succeeded: {r.stdout[:200]}"
        )
    u1 = users.as_user(users.first)
    s = _dispatch(env, "status", "--json", "p1", prefix=u1, py=py)
    assert json.loads(s.stdout)["state"] == "running", s.stdout


def test_probe_reaches_a_loosened_state_dir(first_users_task) -> None:
    """The probe is not vacuous: once user1 opens the state dir to others, user2 reads the task's files."""
    users, env, task = first_users_task
    subprocess.run(
        [*users.as_user(users.first), "chmod", "-R", "go+rX", env["DISPATCH_STATE_DIR"]], check=True
    )
    probe = [*users.as_user(users.second), "/usr/bin/python3", "-S", "-c", PROBE,
             env["DISPATCH_STATE_DIR"], env["DISPATCH_TMUX_SOCKET"]]  # fmt: skip
    r = subprocess.run(probe, capture_output=True, text=True, timeout=60, env={"PATH": env["PATH"]})
    reached = json.loads(r.stdout)
    assert any(k.endswith("task.json") for k in reached), reached
