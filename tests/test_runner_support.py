"""Helpers shared by the runner's tests (no tests here): run `dispatch` against a sandbox, wait on state."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conformance.isolation import Sandbox
from runner.contract import invoke, reference_command

PY = sys.executable
REPO = str(Path(__file__).resolve().parent.parent)
FAST = {"DISPATCH_STALE_AFTER_S": "0", "DISPATCH_GRACE_S": "0.5"}


@dataclass
class Res:
    rc: int
    out: str
    err: str

    @property
    def doc(self) -> Any:
        return json.loads(self.out)


def dispatch(
    sb: Sandbox, verb: str, *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> Res:
    """Run `python -m runner.cli VERB --json ARGS...` in the sandbox environment (the contract client)."""
    e = sb.env(**FAST)
    e["PYTHONPATH"] = REPO
    if env:
        e.update(env)
    inv = invoke(
        [*reference_command(installed=False), verb, "--json", *args], e, timeout=timeout, cwd=str(sb.workdir)
    )
    if inv.timed_out:
        raise subprocess.TimeoutExpired(verb, timeout)
    return Res(inv.exit_code, inv.stdout.decode(errors="replace"), inv.stderr.decode(errors="replace"))


def prompt(sb: Sandbox, data: bytes = b"do the thing\n", name: str = "prompt.txt") -> str:
    p = sb.workdir / name
    p.write_bytes(data)
    return str(p)


def start(sb: Sandbox, task_id: str, *argv: str, env: dict[str, str] | None = None, extra: tuple = ()) -> Res:
    r = dispatch(
        sb,
        "start",
        "--task-id",
        task_id,
        "--cwd",
        str(sb.workdir),
        "--prompt-file",
        prompt(sb),
        *extra,
        "--",
        *argv,
        env=env,
    )
    return r


def start_ok(
    sb: Sandbox, task_id: str, *argv: str, env: dict[str, str] | None = None, extra: tuple = ()
) -> dict:
    r = start(sb, task_id, *argv, env=env, extra=extra)
    assert r.rc == 0, (r.out, r.err)
    return r.doc


def pyagent(code: str) -> list[str]:
    """An inline Python agent (until/besides fake agents): argv for `python -c CODE`."""
    return [PY, "-c", code]


def wait_done(sb: Sandbox, task_id: str, timeout: float = 20) -> dict:
    r = dispatch(sb, "wait", task_id, "--timeout", str(timeout))
    assert r.rc == 0, (r.rc, r.out, r.err)
    return r.doc


def status(sb: Sandbox, task_id: str) -> dict:
    r = dispatch(sb, "status", task_id)
    assert r.rc == 0, (r.out, r.err)
    return r.doc


def wait_for(pred, timeout: float = 10.0, what: str = "condition"):
    """Poll `pred` until truthy or fail after the deadline (an event wait, not a fixed sleep)."""
    end = time.monotonic() + timeout
    delay = 0.01
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(delay)
        delay = min(0.1, delay * 1.5)


def wait_state(sb: Sandbox, task_id: str, state: str, timeout: float = 10.0) -> dict:
    return wait_for(
        lambda: (lambda d: d if d["state"] == state else None)(status(sb, task_id)), timeout, state
    )


def settle(sb: Sandbox, timeout: float = 10.0) -> None:
    """Wait until nothing of the sandbox runs any more (the tmux server exits after its last session)."""
    wait_for(lambda: not sb.leaks(), timeout, "no processes left: " + ", ".join(map(str, sb.leaks())))


def tmux(sb: Sandbox, *args: str) -> subprocess.CompletedProcess:
    """tmux on the sandbox socket through the kit's one gateway; a non-zero exit is returned."""
    from runner.tmux import Tmux

    return Tmux(socket_path=str(sb.socket), timeout=5, env=sb.env()).run(*args, check=False)


def end_tasks(sb: Sandbox, env: dict[str, str]) -> None:
    """Test teardown: stop every task still live (the runner's own stop), then end the tmux server."""
    from runner import states
    from runner.agents.backend import Runner

    try:
        r = Runner(env)
        for t in r.list():
            if t["state"] not in states.TERMINAL:
                r.stop(t["task_id"])
    except Exception:
        pass  # teardown: the sandbox's leak check still judges what is left
    from faults.tmuxfault import stop_server

    # kill-server returns before the server has exited (measured: alive after it in 11/30 under load,
    # up to 44 ms): the sandbox's leak check then saw the server (argv `tmux ... new-session`) outlive it
    stop_server(sb.socket)


def sessions(sb: Sandbox) -> list[str]:
    cp = tmux(sb, "list-sessions", "-F", "#{session_name}")
    return cp.stdout.split() if cp.returncode == 0 else []


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def tree_files(path: Path) -> set[str]:
    if not path.exists():
        return set()
    return {str(p.relative_to(path)) for p in path.rglob("*")}


__all__ = [name for name in dir() if not name.startswith("_") and name not in ("annotations",)]


def row(sb: Sandbox, task_id: str) -> dict[str, Any]:
    """The task's row read straight from sqlite: no `dispatch` verb runs (each one would recover, and a
    held supervisor could not answer)."""
    db = sqlite3.connect(f"file:{sb.state_dir / 'dispatch.sqlite3'}?mode=ro", uri=True, timeout=10)
    try:
        db.row_factory = sqlite3.Row
        return dict(db.execute("SELECT * FROM tasks WHERE task_id=?", (task_id,)).fetchone())
    finally:
        db.close()
