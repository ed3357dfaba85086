"""Process start identity without importing psutil at start-up (it costs tens of milliseconds).

On Linux the start time comes from /proc/PID/stat field 22 (clock ticks since boot) plus ``btime``,
which is exactly how psutil computes ``create_time``; elsewhere psutil is imported lazily.
"""

from __future__ import annotations

import os

_btime: float | None = None


def start_ticks(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat (None off Linux or when the process is gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    # comm may contain spaces and parentheses: split after the last ')'.
    fields = raw[raw.rindex(b")") + 2 :].split()
    return int(fields[19])


def _boot_time() -> float:
    global _btime
    if _btime is None:
        with open("/proc/stat", "rb") as f:
            for line in f:
                if line.startswith(b"btime"):
                    _btime = float(line.split()[1])
                    break
            else:  # pragma: no cover - every Linux /proc/stat has btime
                raise OSError("no btime in /proc/stat")
    return _btime


def identity(pid: int) -> tuple[float | None, int | None]:
    """(start_time as psutil's create_time, start_ticks or None) for a live PID."""
    ticks = start_ticks(pid)
    if ticks is not None:
        return _boot_time() + ticks / os.sysconf("SC_CLK_TCK"), ticks
    try:
        import psutil

        return psutil.Process(pid).create_time(), None
    except Exception:
        return None, None
