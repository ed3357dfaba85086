"""Portable backend on psutil: start token = create_time in microseconds; waiting by polling."""

from __future__ import annotations

import os
import time

import psutil


def start_token(pid: int) -> int | None:
    try:
        p = psutil.Process(pid)
        if p.status() == psutil.STATUS_ZOMBIE:
            return None
        return int(round(p.create_time() * 1e6))
    except psutil.Error:
        return None


def ppid(pid: int) -> int | None:
    try:
        return psutil.Process(pid).ppid()
    except psutil.Error:
        return None


def started_at(token: int) -> float | None:
    return token / 1e6


def pids() -> list[int]:
    return psutil.pids()


def parent_map() -> dict[int, int]:
    out: dict[int, int] = {}
    for p in psutil.process_iter(["ppid", "status"]):
        if p.info["status"] != psutil.STATUS_ZOMBIE and p.info["ppid"] is not None:
            out[p.pid] = p.info["ppid"]
    return out


def environ_has(pid: int, needle: bytes) -> bool:
    var, _, value = needle.decode(errors="replace").partition("=")
    try:
        return psutil.Process(pid).environ().get(var) == value
    except psutil.Error:
        return False


def wait_exit(pid: int, token: int, timeout: float | None) -> bool:
    end = None if timeout is None else time.monotonic() + timeout
    delay = 0.005
    while start_token(pid) == token:
        if end is not None and time.monotonic() >= end:
            return False
        time.sleep(delay if end is None else max(0.0, min(delay, end - time.monotonic())))
        delay = min(0.05, delay * 2)
    return True


def send_signal(pid: int, token: int, sig: int) -> bool:
    if start_token(pid) != token:
        return False
    try:
        os.kill(pid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False
