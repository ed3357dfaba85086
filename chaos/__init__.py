"""Fault injectors for the conformance suite: each is a context manager that applies one real fault
and undoes it on exit, or raises :class:`Unsupported` (a pytest skip) before touching anything.

Modules: ``clock`` (wall-clock jumps via an LD_PRELOAD shim), ``pidns`` (PID reuse in a PID
namespace), ``tmuxfault`` (frozen/killed tmux, old or missing tmux), ``procfault`` (signals by
identity), ``fs`` (coarse timestamps, ENOSPC, read-only, private /tmp), ``load`` (CPU and fork load).
"""

from __future__ import annotations

from chaos.errors import Unsupported

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
    "FakeClock": "chaos.clock",
    "PidNamespace": "chaos.pidns",
    "ProcIdentity": "chaos.procfault",
    "freeze_server": "chaos.tmuxfault",
    "kill_server": "chaos.tmuxfault",
    "kill_session": "chaos.tmuxfault",
    "kill_pane": "chaos.tmuxfault",
    "old_tmux_dir": "chaos.tmuxfault",
    "path_without_tmux": "chaos.tmuxfault",
    "coarse_timestamps_dir": "chaos.fs",
    "small_fs": "chaos.fs",
    "readonly_dir": "chaos.fs",
    "private_tmp": "chaos.fs",
    "run_in_private_mount_ns": "chaos.fs",
    "cpu_hogs": "chaos.load",
    "fork_burst": "chaos.load",
}


def __getattr__(name: str) -> object:
    # Lazy so `python -m chaos.nsinit` (PID 1 of a namespace) imports nothing it does not need.
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'chaos' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(mod), name)
