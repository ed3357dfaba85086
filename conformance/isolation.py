"""Per-test sandboxes and leak detection.

Every process a test starts (the implementation, its tmux server, the agents and their descendants)
inherits ``DK_TEST_RUN=<marker>`` from the sandbox environment, so leaks are found by that marker in
the process environment, never by a name pattern, and ended by PID + start time.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from runner.procid import ProcessIdentity

MARKER_VAR = "DK_TEST_RUN"
SESSION_VAR = "DK_TEST_SESSION"

# A private HOME and XDG base dirs per sandbox: the implementation, its tmux server and the agents'
# shells never read the user's dotfiles (~/.bashrc, ~/.tmux.conf, ~/.config/...) nor write there.
PRIVATE_DIRS = {
    "HOME": "home",
    "XDG_CONFIG_HOME": "home/.config",
    "XDG_CACHE_HOME": "home/.cache",
    "XDG_DATA_HOME": "home/.local/share",
    "XDG_STATE_HOME": "home/.local/state",
    "XDG_RUNTIME_DIR": "run",
}
# Variables that make a shell source a file of the user's before it runs anything.
SHELL_STARTUP_VARS = ("BASH_ENV", "ENV", "ZDOTDIR", "PROMPT_COMMAND")


@dataclass(frozen=True)
class Leak:
    """A process that outlived the test that made it."""

    pid: int
    create_time: float
    cmdline: str
    identity: ProcessIdentity | None = None  # PID + start token, taken when the marker was seen

    def __str__(self) -> str:
        return f"pid {self.pid}: {self.cmdline[:160]}"


@dataclass
class Sandbox:
    """A private state dir, TMPDIR, tmux socket, HOME and XDG dirs; its environment marks every child."""

    root: Path
    marker: str = field(default_factory=lambda: "dk" + secrets.token_hex(8))

    @classmethod
    def create(cls, parent: str | os.PathLike[str] | None = None, prefix: str = "dk-") -> Sandbox:
        root = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
        sb = cls(root=root)
        for sub in ("state", "tmp", "work", *PRIVATE_DIRS.values()):
            (root / sub).mkdir(mode=0o700, parents=True)
        return sb

    @property
    def state_dir(self) -> Path:
        return self.root / "state"

    @property
    def tmpdir(self) -> Path:
        return self.root / "tmp"

    @property
    def workdir(self) -> Path:
        return self.root / "work"

    @property
    def home(self) -> Path:
        return self.root / PRIVATE_DIRS["HOME"]

    @property
    def socket(self) -> Path:
        # Kept short: sun_path is 108 bytes on Linux, 104 on macOS.
        return self.root / "tmux.sock"

    def env(self, base: dict[str, str] | None = None, **extra: str) -> dict[str, str]:
        env = dict(os.environ if base is None else base)
        env.pop("TMUX", None)
        env.pop("TMUX_PANE", None)
        for var in SHELL_STARTUP_VARS:
            env.pop(var, None)
        env.update({var: str(self.root / sub) for var, sub in PRIVATE_DIRS.items()})
        env.update(
            {
                MARKER_VAR: self.marker,
                "DISPATCH_STATE_DIR": str(self.state_dir),
                "DISPATCH_TMUX_SOCKET": str(self.socket),
                "TMPDIR": str(self.tmpdir),
                "TMUX_TMPDIR": str(self.tmpdir),
            }
        )
        if os.environ.get(SESSION_VAR):
            env[SESSION_VAR] = os.environ[SESSION_VAR]
        env.update(extra)
        return env

    def leaks(self) -> list[Leak]:
        return find_marked(self.marker)

    def cleanup(self, timeout: float = 5.0) -> list[Leak]:
        """End every process carrying our marker; return what had leaked. Removes the root dir."""
        leaked = self.leaks()
        kill_marked(self.marker, timeout=timeout)
        shutil.rmtree(self.root, ignore_errors=True)
        return leaked


def _marked(marker: str, var: str = MARKER_VAR) -> Iterator[psutil.Process]:
    needle = f"{var}={marker}".encode()
    me = os.getpid()
    for pid in psutil.pids():
        if pid == me:
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                data = f.read()
        except FileNotFoundError:
            continue
        except (PermissionError, ProcessLookupError, OSError):
            continue
        if needle + b"\0" in data or data.endswith(needle):
            try:
                p = psutil.Process(pid)
                if p.status() == psutil.STATUS_ZOMBIE:
                    continue
                yield p
            except psutil.Error:
                continue


def _marked_portable(marker: str, var: str = MARKER_VAR) -> Iterator[psutil.Process]:
    for p in psutil.process_iter(["pid"]):
        if p.pid == os.getpid():
            continue
        try:
            if p.environ().get(var) == marker and p.status() != psutil.STATUS_ZOMBIE:
                yield p
        except psutil.Error:
            continue


def find_marked(marker: str, var: str = MARKER_VAR) -> list[Leak]:
    it = _marked(marker, var) if os.path.isdir("/proc/self") else _marked_portable(marker, var)
    out = []
    for p in it:
        try:
            out.append(
                Leak(p.pid, p.create_time(), " ".join(p.cmdline()) or p.name(), ProcessIdentity.of(p.pid))
            )
        except psutil.Error:
            continue
    return out


def kill_marked(marker: str, timeout: float = 5.0, var: str = MARKER_VAR) -> None:
    """SIGKILL every marked process, checking PID + start time so a recycled PID is never hit."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        leaks = find_marked(marker, var)
        if not leaks:
            return
        for leak in leaks:
            if leak.identity is not None:
                leak.identity.signal(signal.SIGKILL)  # only if still that very process
        time.sleep(0.02)
