"""Machine load: busy CPU hogs and a fork churner, each cleaned up by PID + start time on exit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from faults.procfault import ProcIdentity, kill_tree, tree

_HOG = "while True: pass"

# Keeps N short-lived children alive, replacing each as it exits: PID churn plus scheduler load.
_FORKER = r"""
import os, signal, sys, time
n, hold = int(sys.argv[1]), float(sys.argv[2])
class Stop(Exception):
    pass
def on_term(*_):
    raise Stop  # breaks out of a blocking os.wait(), which PEP 475 would otherwise retry
kids, forks = set(), 0
signal.signal(signal.SIGTERM, on_term)
print("ready", flush=True)
try:
    while True:
        while len(kids) < n:
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})  # fork + record, atomically
            pid = os.fork()
            if pid == 0:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
                if hold:
                    time.sleep(hold)
                os._exit(0)
            kids.add(pid)
            forks += 1
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
        try:
            pid, _ = os.wait()
            kids.discard(pid)
        except ChildProcessError:
            pass
except Stop:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
for pid in kids:  # our own unreaped children: their PIDs cannot have been recycled
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
for pid in kids:
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass
print(forks, flush=True)
"""


def _spawn(argv: list[str], env: Mapping[str, str] | None, **kw: object) -> subprocess.Popen[str]:
    return subprocess.Popen(argv, env=dict(os.environ if env is None else env), text=True, **kw)  # type: ignore[call-overload]


@contextmanager
def cpu_hogs(n: int | None = None, env: Mapping[str, str] | None = None) -> Iterator[list[ProcIdentity]]:
    """N busy-looping processes (default: one per CPU) for the block; killed by identity on exit."""
    count = n if n is not None else (os.cpu_count() or 1)
    procs: list[subprocess.Popen[str]] = []
    idents: list[ProcIdentity] = []
    try:
        for _ in range(count):
            p = _spawn([sys.executable, "-S", "-c", _HOG], env, stdin=subprocess.DEVNULL)
            procs.append(p)
            idents.append(ProcIdentity.of(p.pid))
        yield idents
    finally:
        for ident in idents:
            ident.signal(signal.SIGKILL)
        for p in procs:
            if p.poll() is None:
                p.kill()  # spawned but identity not taken yet
            p.wait(timeout=10)


@dataclass
class ForkBurst:
    """A running fork churner: ``driver`` is its identity; ``forks`` is set on exit."""

    driver: ProcIdentity
    forks: int | None = None


@contextmanager
def fork_burst(n: int = 16, hold: float = 0.0, env: Mapping[str, str] | None = None) -> Iterator[ForkBurst]:
    """Keep N children forking and exiting (each lives HOLD seconds) for the block.

    On exit the driver is asked to stop (SIGTERM), kills and reaps its children, and reports how many
    it forked; anything left after 5 s is killed by identity.
    """
    p = _spawn(
        [sys.executable, "-S", "-c", _FORKER, str(n), str(hold)],
        env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
    )
    burst: ForkBurst | None = None
    try:
        burst = ForkBurst(ProcIdentity.of(p.pid))
        assert p.stdout is not None
        if p.stdout.readline().strip() != "ready":
            raise RuntimeError("fork burst driver did not start")
        yield burst
    finally:
        members = tree(p.pid) if p.poll() is None else []
        if burst is not None:
            burst.driver.signal(signal.SIGTERM)
        try:
            out, _ = p.communicate(timeout=5)
            if burst is not None and out.strip().isdigit():
                burst.forks = int(out)
        except subprocess.TimeoutExpired:
            if burst is not None:
                kill_tree(burst.driver)
            p.kill()
            p.communicate()
        for m in members:
            m.signal(signal.SIGKILL)
            m.wait_gone(5)
