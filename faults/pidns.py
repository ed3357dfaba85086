"""PID reuse on demand: a private PID namespace where a chosen PID can be given to a chosen process.

``unshare --pid --fork --mount-proc`` (plus ``--user --map-root-user`` when not root) runs
``nsinit.py init`` as PID 1; commands enter with ``nsenter``. Leaving the context SIGKILLs the init
(by PID + start time), which makes the kernel kill everything else in the namespace.

Unprivileged (measured on Linux 6.x with unprivileged user namespaces): the user namespace gives
CAP_SYS_ADMIN over the new PID namespace, so ``ns_last_pid`` writes work. ``unshare --map-root-user``
denies setgroups(2) in that namespace, so nsenter must not call it: it enters with
``--preserve-credentials`` (our uid is already mapped to 0 there). Start-up enters once and raises
:class:`Unsupported` naming what is missing if that fails, so a check never blames the dispatcher
for the injector's own missing privilege.
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import psutil

from faults.errors import Unsupported
from faults.procfault import ProcIdentity

NSINIT = str(Path(__file__).with_name("nsinit.py"))


def _pid_ns(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/pid").st_ino
    except OSError:
        return None


class PidNamespace:
    """A live PID namespace; use as a context manager.

    ``run``/``popen`` execute inside it (PIDs they see are namespace PIDs, ``/proc`` is the
    namespace's); ``spawn_at_pid`` puts a process on an exact namespace PID; ``host_pid`` maps a
    namespace PID to the host's.
    """

    def __init__(self, env: Mapping[str, str] | None = None, start_timeout: float = 10.0) -> None:
        self.env = dict(os.environ if env is None else env)
        self.start_timeout = start_timeout
        self.userns = os.geteuid() != 0
        self.init: ProcIdentity | None = None
        self.ns_inode: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    # -- lifecycle -------------------------------------------------------------------------------
    def __enter__(self) -> PidNamespace:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        if not sys.platform.startswith("linux"):
            raise Unsupported("PID namespaces need Linux")
        for tool in ("unshare", "nsenter"):
            if not shutil.which(tool):
                raise Unsupported(f"{tool} (util-linux) is not installed")
        cmd = ["unshare", "--pid", "--fork", "--mount-proc"]
        if self.userns:
            cmd += ["--user", "--map-root-user"]
        cmd += [sys.executable, "-S", NSINIT, "init"]
        self._proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=self.env
        )
        try:
            self._await_ready()
            self._probe_enter()
        except BaseException:
            self.close()
            raise

    def _probe_enter(self) -> None:
        """Enter once and write nothing: a missing privilege shows here, not in the dispatcher's call."""
        r = subprocess.run(
            [*self._enter(None), sys.executable, "-S", "-c", "import os; print(os.getpid())"],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=max(self.start_timeout, 30.0),
        )
        if r.returncode != 0 or not r.stdout.strip().isdigit():
            err = (r.stderr.strip().splitlines() or ["no output"])[-1]
            who = "an unprivileged user namespace" if self.userns else "root"
            raise Unsupported(f"cannot enter the PID namespace as {who} (nsenter): {err}")

    def _await_ready(self) -> None:
        assert self._proc and self._proc.stdout and self._proc.stderr
        ready, _, _ = select.select([self._proc.stdout], [], [], self.start_timeout)
        line = self._proc.stdout.readline() if ready else b""
        if line.strip() != b"ready":
            self._proc.kill()
            err = self._proc.stderr.read().decode(errors="replace").strip()
            self._proc.wait()
            if "Operation not permitted" in err or "Permission denied" in err or "Invalid argument" in err:
                need = "unprivileged user namespaces (unshare -Urpf)" if self.userns else "CAP_SYS_ADMIN"
                last = (err.splitlines() or [""])[-1]
                raise Unsupported(f"cannot create a PID namespace here (needs {need}): {last}")
            raise RuntimeError(f"PID namespace init did not start: {err or 'timeout'}")
        children = psutil.Process(self._proc.pid).children()
        if len(children) != 1:
            raise RuntimeError(f"expected one init under unshare, found {children}")
        self.init = ProcIdentity.of(children[0].pid)
        self.ns_inode = _pid_ns(self.init.pid)

    def members(self) -> list[int]:
        """Host PIDs of every live process in the namespace."""
        if self.ns_inode is None:
            return []
        return [p for p in psutil.pids() if _pid_ns(p) == self.ns_inode]

    def close(self, timeout: float = 10.0) -> None:
        """Kill the init (so the kernel kills the rest) and wait until no member is left."""
        if self.init is not None:
            self.init.signal(signal.SIGKILL)
        if self._proc is not None:
            if self._proc.stdin:
                self._proc.stdin.close()
            try:
                self._proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            for f in (self._proc.stdout, self._proc.stderr):
                if f:
                    f.close()
            self._proc = None
        deadline = time.monotonic() + timeout
        while self.members() and time.monotonic() < deadline:
            time.sleep(0.01)
        left = self.members()
        if left:
            raise RuntimeError(f"PID namespace members survived its init: {left}")

    # -- running things inside -------------------------------------------------------------------
    def _enter(self, cwd: str | os.PathLike[str] | None) -> list[str]:
        if self.init is None or not self.init.alive():
            raise RuntimeError("PID namespace is not running")
        cmd = ["nsenter", f"--target={self.init.pid}"]
        if self.userns:  # setgroups(2) is denied in a --map-root-user namespace: keep our credentials
            cmd += ["--user", "--preserve-credentials"]
        # Entering the mount namespace resets the cwd to its root: set it again explicitly.
        cmd += ["--pid", "--mount", f"--wd={os.fspath(cwd) if cwd is not None else os.getcwd()}", "--"]
        return cmd

    def command(self, argv: Sequence[str], cwd: str | os.PathLike[str] | None = None) -> list[str]:
        """The argv that runs ARGV inside the namespace (for wrapping another runner's command line)."""
        return [*self._enter(cwd), *argv]

    def run(
        self,
        argv: Sequence[str],
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        timeout: float | None = None,
        input: bytes | str | None = None,
        **kw: Any,
    ) -> subprocess.CompletedProcess[Any]:
        """``subprocess.run`` inside the namespace (output captured unless told otherwise)."""
        kw.setdefault("capture_output", "stdout" not in kw and "stderr" not in kw)
        return subprocess.run(
            [*self._enter(cwd), *argv],
            env=dict(self.env if env is None else env),
            timeout=timeout,
            input=input,
            **kw,
        )

    def popen(
        self,
        argv: Sequence[str],
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        **kw: Any,
    ) -> subprocess.Popen[Any]:
        """``subprocess.Popen`` inside the namespace (its ``.pid`` is nsenter's host PID)."""
        return subprocess.Popen([*self._enter(cwd), *argv], env=dict(self.env if env is None else env), **kw)

    def spawn_at_pid(
        self,
        pid: int,
        argv: Sequence[str],
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        timeout: float = 30.0,
    ) -> int:
        """Start ARGV inside the namespace on namespace PID ``pid``; return its *host* PID.

        The process runs in its own session with stdio on /dev/null, parented to the namespace init.
        Raises ValueError if the PID is taken (or is 1) and RuntimeError if it could not be landed.
        """
        if pid < 2:
            raise ValueError("PID 1 is the namespace init")
        if not argv:
            raise ValueError("empty argv")
        r = self.run(
            [sys.executable, "-S", NSINIT, "spawn", str(pid), "--", *argv],
            env=env,
            cwd=cwd,
            timeout=timeout,
            text=True,
        )
        if r.returncode == 3:
            raise ValueError(r.stderr.strip())
        if r.returncode != 0:
            if "Permission denied" in r.stderr or "Operation not permitted" in r.stderr:
                raise Unsupported(
                    f"cannot write ns_last_pid (needs CAP_SYS_ADMIN over the PID namespace): {r.stderr.strip()}"
                )
            raise RuntimeError(f"spawn at pid {pid} failed ({r.returncode}): {r.stderr.strip()}")
        assert int(r.stdout) == pid
        host = self.host_pid(pid)
        if host is None:
            raise RuntimeError(f"process on namespace pid {pid} vanished at once")
        return host

    def host_pid(self, ns_pid: int) -> int | None:
        """The host PID of namespace PID ``ns_pid``, or None if no such live process."""
        if self.ns_inode is None:
            return None
        for p in self.members():
            try:
                with open(f"/proc/{p}/status") as f:
                    for line in f:
                        if line.startswith("NSpid:"):
                            if int(line.split()[-1]) == ns_pid:
                                return p
                            break
            except (OSError, ValueError):
                continue
        return None
