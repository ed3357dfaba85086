"""macOS backend: psutil (sysctl) start time as the token; kqueue NOTE_EXIT for waiting."""

from __future__ import annotations

import select

from runner.procid._fallback import (  # noqa: F401  (re-exported backend API)
    environ_has,
    parent_map,
    pids,
    ppid,
    send_signal,
    start_token,
    started_at,
)
from runner.procid._fallback import wait_exit as _poll_wait


def wait_exit(pid: int, token: int, timeout: float | None) -> bool:
    if start_token(pid) != token:
        return True
    try:
        kq = select.kqueue()
    except (AttributeError, OSError):
        return _poll_wait(pid, token, timeout)
    try:
        ev = select.kevent(
            pid, filter=select.KQ_FILTER_PROC, flags=select.KQ_EV_ADD, fflags=select.KQ_NOTE_EXIT
        )
        try:
            got = kq.control([ev], 1, timeout)
        except ProcessLookupError:
            return True
        return bool(got) or start_token(pid) != token
    finally:
        kq.close()
