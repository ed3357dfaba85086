"""Linux backend: /proc/PID/stat start ticks (field 22), pidfd for waiting and race-free signals."""

from __future__ import annotations

import _signal  # not `signal`: its enums cost a supervisor 0.8 MiB
import os
import select
import time

_CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError, PermissionError, OSError):
        return None
    r = data.rfind(")")
    if r < 0:
        return None
    # fields after comm: state is field 3 -> index 0 here
    return data[r + 2 :].split()


def start_token(pid: int) -> int | None:
    """Start time in clock ticks since boot, or None if no such live (non-zombie) process."""
    f = _stat(pid)
    if f is None or len(f) < 20:
        return None
    if f[0] in ("Z", "X", "x"):
        return None
    return int(f[19])


def ppid(pid: int) -> int | None:
    f = _stat(pid)
    return int(f[1]) if f else None


def started_at(token: int) -> float | None:
    """Epoch seconds of a start token: now minus the process age on the boot-time clock."""
    try:
        age = time.clock_gettime(time.CLOCK_BOOTTIME) - token / _CLK_TCK
    except (AttributeError, OSError):
        return None
    return time.time() - age


def pids() -> list[int]:
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


def parent_map() -> dict[int, int]:
    """pid -> ppid for every live process."""
    out: dict[int, int] = {}
    for pid in pids():
        f = _stat(pid)
        if f is not None and f[0] not in ("Z", "X"):
            out[pid] = int(f[1])
    return out


def environ_has(pid: int, needle: bytes) -> bool:
    """True if the process environment holds exactly the entry `needle` (b"VAR=value")."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            data = f.read()
    except OSError:
        return False
    return (b"\0" + needle + b"\0") in (b"\0" + data + (b"" if data.endswith(b"\0") else b"\0"))


def _open(pid: int, token: int) -> int | None:
    """A pidfd for (pid, token), verified after opening so it cannot point at a recycled PID."""
    try:
        fd = os.pidfd_open(pid)
    except (ProcessLookupError, OSError):
        return None
    if start_token(pid) != token:
        # gone, zombie, or recycled: but a zombie is still "ours" for waiting purposes
        f = _stat(pid)
        if f is not None and f[0] == "Z" and int(f[19]) == token:
            return fd
        os.close(fd)
        return None
    return fd


def wait_exit(pid: int, token: int, timeout: float | None) -> bool:
    """Block until the process has exited (zombie counts), up to `timeout`; True if it has."""
    fd = _open(pid, token)
    if fd is None:
        return True
    try:
        if start_token(pid) != token:
            return True
        p = select.poll()
        p.register(fd, select.POLLIN)
        return bool(p.poll(None if timeout is None else max(0, int(timeout * 1000 + 0.999))))
    finally:
        os.close(fd)


def send_signal(pid: int, token: int, sig: int) -> bool:
    """Signal (pid, token) race-free via its pidfd; False if it is not that live process."""
    fd = _open(pid, token)
    if fd is None:
        return False
    try:
        if start_token(pid) != token:
            return False
        _signal.pidfd_send_signal(fd, sig)
        return True
    except (ProcessLookupError, OSError):
        return False
    finally:
        os.close(fd)
