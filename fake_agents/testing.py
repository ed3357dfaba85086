"""Small helpers for tests that drive the fakes: end processes by PID + start time, find by marker."""

from __future__ import annotations

import os
import signal
import time

from fake_agents.procinfo import identity, start_ticks


def alive(pid: int, ticks: int | None) -> bool:
    """True when PID is running and is still the process that had these start ticks (not a zombie)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return False
    state = raw[raw.rindex(b")") + 2 :].split()[0]
    return state != b"Z" and (ticks is None or start_ticks(pid) == ticks)


def kill_identity(pid: int, ticks: int | None, timeout: float = 5.0) -> None:
    """SIGKILL PID only if its start ticks still match; wait (deadline) until it is gone."""
    if alive(pid, ticks):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
    deadline = time.monotonic() + timeout
    while alive(pid, ticks):
        if time.monotonic() > deadline:
            raise TimeoutError(f"pid {pid} still alive after SIGKILL")
        time.sleep(0.01)


def pids_with_env(name: str, value: str) -> list[int]:
    """PIDs whose exec-time environment holds NAME=VALUE (Linux /proc/*/environ)."""
    needle = f"{name}={value}".encode()
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/environ", "rb") as f:
                env = f.read().split(b"\0")
        except OSError:
            continue
        if needle in env and alive(int(d), None):
            out.append(int(d))
    return out


__all__ = ["alive", "identity", "kill_identity", "pids_with_env"]
