"""Signals by identity (PID + start time), so a recycled PID is never hit, and tree sampling.

Linux reads ``/proc/PID/stat`` field 22 (start ticks); elsewhere psutil's create time stands in.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import sys
import time
from collections.abc import Iterator

import psutil

from runner.procid import ProcessIdentity


class ProcIdentity(ProcessIdentity):
    """The kit's process identity (runner.procid) with what fault injection adds: state, wait-gone.

    Signals go through the base class, which checks PID + start (race-free via pidfd on Linux). No
    fields of its own: the base's (immutable, compared by value) carry over.
    """

    @classmethod
    def of(cls, pid: int) -> ProcIdentity:  # type: ignore[override]
        """Identity of the live process PID; ProcessLookupError if there is none."""
        ident = ProcessIdentity.of(pid)
        if ident is None:
            raise ProcessLookupError(pid)
        return cls(ident.pid, ident.start)

    def alive(self) -> bool:
        """True while the same process (not a zombie, not a PID successor) exists."""
        return self.is_alive()

    def state(self) -> str | None:
        """The kernel's one-letter state (R, S, T, Z, ...) or None when gone or recycled."""
        if not sys.platform.startswith("linux"):
            try:
                return psutil.Process(self.pid).status()[:1].upper() if self.alive() else None
            except psutil.Error:
                return None
        try:
            with open(f"/proc/{self.pid}/stat", "rb") as f:
                data = f.read()
            fields = data[data.rindex(b")") + 2 :].split()
        except (OSError, ValueError):
            return None
        if int(fields[19]) != self.start:
            return None
        return fields[0].decode()

    def wait_gone(self, timeout: float) -> bool:
        """Wait (reaping it if it is our child) until the process is gone; True if it went."""
        deadline = time.monotonic() + timeout
        delay = 0.002
        while True:
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(self.pid, os.WNOHANG)
            if not self.alive():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    def __str__(self) -> str:
        return f"pid {self.pid} (start {self.start})"


def stop(ident: ProcIdentity) -> bool:
    """SIGSTOP the process if it is still the same one."""
    return ident.signal(signal.SIGSTOP)


def cont(ident: ProcIdentity) -> bool:
    """SIGCONT the process if it is still the same one."""
    return ident.signal(signal.SIGCONT)


def kill(ident: ProcIdentity, sig: int = signal.SIGKILL, wait: float | None = 5.0) -> bool:
    """Send SIG (default SIGKILL) by identity; with ``wait``, also wait until it is gone."""
    sent = ident.signal(sig)
    if sent and wait is not None:
        ident.wait_gone(wait)
    return sent


def wait_stopped(ident: ProcIdentity, timeout: float = 5.0) -> bool:
    """Wait until the kernel reports the process stopped (state T)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ident.state() in ("T", "t"):
            return True
        time.sleep(0.002)
    return False


@contextlib.contextmanager
def stopped(ident: ProcIdentity, timeout: float = 5.0) -> Iterator[ProcIdentity]:
    """SIGSTOP a process for the block, SIGCONT it on the way out (even on error)."""
    if not stop(ident):
        raise ProcessLookupError(f"{ident} is gone")
    try:
        if not wait_stopped(ident, timeout):
            raise TimeoutError(f"{ident} did not stop within {timeout}s")
        yield ident
    finally:
        cont(ident)


def tree(root: int, include_root: bool = True) -> list[ProcIdentity]:
    """Identities of ROOT and all its live descendants (a snapshot)."""
    out: list[ProcIdentity] = []
    try:
        proc = psutil.Process(root)
        procs = ([proc] if include_root else []) + proc.children(recursive=True)
    except psutil.Error:
        return out
    for p in procs:
        with contextlib.suppress(ProcessLookupError, ValueError):
            ident = ProcIdentity.of(p.pid)
            if ident.alive():
                out.append(ident)
    return out


def random_member(root: int, rng: random.Random | None = None, include_root: bool = False) -> ProcIdentity:
    """A random live member of ROOT's process tree (descendants only unless include_root)."""
    members = tree(root, include_root=include_root)
    if not members:
        raise ProcessLookupError(f"process tree of {root} has no live member to pick")
    return (rng or random).choice(members)


def kill_tree(root: ProcIdentity, sig: int = signal.SIGKILL, timeout: float = 5.0) -> list[ProcIdentity]:
    """Stop the tree first (so nothing forks away), then SIG every member by identity."""
    if not root.alive():
        return []
    members = [root] + [m for m in tree(root.pid, include_root=False)]
    for m in members:
        m.signal(signal.SIGSTOP)
    members += [m for m in tree(root.pid, include_root=False) if m not in members]
    for m in members:
        m.signal(sig)
        if sig != signal.SIGKILL:
            m.signal(signal.SIGCONT)
    for m in members:
        m.wait_gone(timeout)
    return members
