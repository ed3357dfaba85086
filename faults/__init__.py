"""Fault injectors shared by the conformance suite and the chaos runner: each is a context manager that
applies one real fault and undoes it on exit, or raises :class:`Unsupported` (a pytest skip) before touching anything.

Modules: ``clock`` (wall-clock jumps via an LD_PRELOAD shim), ``pidns`` (PID reuse in a PID
namespace), ``tmuxfault`` (frozen/killed tmux, old or missing tmux), ``procfault`` (signals by
identity), ``fs`` (coarse timestamps, ENOSPC, read-only, private /tmp), ``load`` (CPU and fork load).
"""

from __future__ import annotations

from faults.errors import Unsupported

__all__ = [
    "Unsupported",
    "FakeClock",
    "PidNamespace",
    "ProcIdentity",
    "freeze_server",
    "kill_server",
    "kill_session",
    "kill_pane",
    "old_tmux_dir",
    "path_without_tmux",
    "coarse_timestamps_dir",
    "small_fs",
    "readonly_dir",
    "private_tmp",
    "run_in_private_mount_ns",
    "cpu_hogs",
    "fork_burst",
]

_LAZY = {
    "FakeClock": "faults.clock",
    "PidNamespace": "faults.pidns",
    "ProcIdentity": "faults.procfault",
    "freeze_server": "faults.tmuxfault",
    "kill_server": "faults.tmuxfault",
    "kill_session": "faults.tmuxfault",
    "kill_pane": "faults.tmuxfault",
    "old_tmux_dir": "faults.tmuxfault",
    "path_without_tmux": "faults.tmuxfault",
    "coarse_timestamps_dir": "faults.fs",
    "small_fs": "faults.fs",
    "readonly_dir": "faults.fs",
    "private_tmp": "faults.fs",
    "run_in_private_mount_ns": "faults.fs",
    "cpu_hogs": "faults.load",
    "fork_burst": "faults.load",
}


def __getattr__(name: str) -> object:
    # Lazy so `python -m faults.nsinit` (PID 1 of a namespace) imports nothing it does not need.
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'faults' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(mod), name)
