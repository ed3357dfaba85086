"""The machine a run happened on: cpu, cores, memory, kernel, tmux and python versions, load."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from typing import Any

import psutil

from bench.common import TMUX


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _tmux_version() -> str:
    try:
        return subprocess.run([TMUX, "-V"], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def describe() -> dict[str, Any]:
    """A JSON-able description of this machine, right now."""
    vm = psutil.virtual_memory()
    return {
        "cpu": _cpu_model(),
        "cores_logical": psutil.cpu_count(logical=True),
        "cores_physical": psutil.cpu_count(logical=False),
        "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_total_mb": round(vm.total / 2**20),
        "memory_available_mb": round(vm.available / 2**20),
        "kernel": f"{platform.system()} {platform.release()}",
        "tmux": _tmux_version(),
        "python": sys.version.split()[0],
        "psutil": psutil.__version__,
        "loadavg_at_start": list(os.getloadavg()),
        "pid_max": _read_int("/proc/sys/kernel/pid_max"),
        "pty_max": _read_int("/proc/sys/kernel/pty/max"),
    }


def _read_int(path: str) -> int | None:
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None
