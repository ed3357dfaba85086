"""Process identity: a PID plus its start token, so a recycled PID is never mistaken for ours (P2, P9).

One public API over per-platform backends (Linux: /proc + pidfd; macOS: kqueue + psutil; else psutil).
"""

from __future__ import annotations

import _signal as signal  # not `signal`: its enums cost a supervisor 0.8 MiB
import os
import sys

from runner.clock import Deadline

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

if sys.platform.startswith("linux") and hasattr(os, "pidfd_open") and os.path.isdir("/proc/self"):
    from runner.procid import _linux as _backend
elif sys.platform == "darwin":
    from runner.procid import _macos as _backend  # type: ignore[no-redef]
else:
    from runner.procid import _fallback as _backend  # type: ignore[no-redef]

BACKEND = _backend.__name__.rsplit(".", 1)[-1].lstrip("_")


class ProcessIdentity:
    """A process as (pid, start token). Zombies and recycled PIDs are never alive.

    Immutable, hashable and compared by value like a frozen dataclass, written out by hand: importing
    `dataclasses` (inspect, ast, dis, re...) was ~2.7 MiB of every idle supervisor (docs/benchmarks.md).
    """

    __slots__ = ("pid", "start")
    pid: int
    start: int

    def __init__(self, pid: int, start: int) -> None:
        object.__setattr__(self, "pid", pid)
        object.__setattr__(self, "start", start)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r}")

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return (self.pid, self.start) == (other.pid, other.start)  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((self.pid, self.start))

    def __repr__(self) -> str:
        return f"{type(self).__qualname__}(pid={self.pid!r}, start={self.start!r})"

    def __reduce__(self) -> tuple[type, tuple[int, int]]:
        return (type(self), (self.pid, self.start))

    @classmethod
    def of(cls, pid: int) -> ProcessIdentity | None:
        """The identity of live process `pid` now, or None."""
        t = _backend.start_token(pid)
        return None if t is None else cls(pid, t)

    @classmethod
    def me(cls) -> ProcessIdentity:
        ident = cls.of(os.getpid())
        assert ident is not None
        return ident

    def is_alive(self) -> bool:
        return _backend.start_token(self.pid) == self.start

    def started_at(self) -> float | None:
        """Epoch seconds the process started (display only)."""
        return _backend.started_at(self.start)

    def wait_exit(self, deadline: Deadline | float | None = None) -> bool:
        """Sleep until the process exits (pidfd/kqueue, no busy polling) or the deadline; True if gone."""
        t = deadline.remaining() if isinstance(deadline, Deadline) else deadline
        return _backend.wait_exit(self.pid, self.start, t)

    def signal(self, sig: int) -> bool:
        """Send `sig` only if this is still the same live process; True if sent."""
        return _backend.send_signal(self.pid, self.start, sig)

    def to_json(self) -> list[int]:
        return [self.pid, self.start]


def children_map() -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for pid, pp in _backend.parent_map().items():
        out.setdefault(pp, []).append(pid)
    return out


def descendants(root: ProcessIdentity) -> list[ProcessIdentity]:
    """Live descendants of `root` (by parent links, at this instant)."""
    if not root.is_alive():
        return []
    kids = children_map()
    out: list[ProcessIdentity] = []
    stack = list(kids.get(root.pid, []))
    seen = {root.pid}
    while stack:
        pid = stack.pop()
        if pid in seen:
            continue
        seen.add(pid)
        ident = ProcessIdentity.of(pid)
        if ident is not None:
            out.append(ident)
            stack.extend(kids.get(pid, []))
    return out


def find_by_env(var: str, value: str) -> list[ProcessIdentity]:
    """Every live process whose environment has VAR=value (finds double-forked, re-parented descendants)."""
    needle = f"{var}={value}".encode()
    me = os.getpid()
    out = []
    for pid in _backend.pids():
        if pid == me:
            continue
        if _backend.environ_has(pid, needle):
            ident = ProcessIdentity.of(pid)
            if ident is not None:
                out.append(ident)
    return out


def tree(roots: Iterable[ProcessIdentity], marker: tuple[str, str] | None = None) -> list[ProcessIdentity]:
    """The roots that are alive, their descendants, and every process carrying `marker`."""
    found: dict[int, ProcessIdentity] = {}
    for r in roots:
        if r.is_alive():
            found[r.pid] = r
            for d in descendants(r):
                found.setdefault(d.pid, d)
    if marker is not None:
        for m in find_by_env(*marker):
            found.setdefault(m.pid, m)
            for d in descendants(m):
                found.setdefault(d.pid, d)
    found.pop(os.getpid(), None)
    return list(found.values())


def kill_tree(
    roots: Iterable[ProcessIdentity],
    marker: tuple[str, str] | None = None,
    term_timeout: float = 1.0,
    kill_timeout: float = 2.0,
    reap: Callable[[int, int], None] | None = None,
) -> list[ProcessIdentity]:
    """SIGTERM the whole tree, SIGKILL whatever is left after `term_timeout`; return what was signalled.

    The tree is re-scanned between rounds so processes forked meanwhile are caught too. With `reap`,
    our own exited children are collected and passed to `reap(pid, status)` (the wrapper is a
    subreaper: it must not leave zombies, and must not lose the agent's status).
    """
    roots = list(roots)
    signalled: dict[int, ProcessIdentity] = {}
    for sig, timeout in ((signal.SIGTERM, term_timeout), (signal.SIGKILL, kill_timeout)):
        dl = Deadline(timeout)
        rounds = 0
        while True:
            procs = tree(roots + list(signalled.values()), marker)
            if not procs:
                return list(signalled.values())
            if rounds == 0 or sig == signal.SIGKILL:
                for p in procs:
                    if p.signal(sig):
                        signalled.setdefault(p.pid, p)
                    if sig == signal.SIGTERM:
                        p.signal(signal.SIGCONT)
            rounds += 1
            if reap:
                reap_children(reap)
            if dl.expired():
                break
            # sleep on one of them (pidfd) a short while, then rescan
            procs[0].wait_exit(dl.cap(0.05))
            if reap:
                reap_children(reap)
    return list(signalled.values())


def reap_children(on_reaped: Callable[[int, int], None] | None = None) -> None:
    """Collect every exited child of ours without blocking; report each (pid, wait status)."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        if on_reaped is not None:
            on_reaped(pid, status)


__all__ = [
    "BACKEND",
    "ProcessIdentity",
    "descendants",
    "find_by_env",
    "kill_tree",
    "tree",
    "children_map",
    "reap_children",
]
