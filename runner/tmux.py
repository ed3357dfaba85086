"""The tmux gateway: every tmux call in the runner goes through `Tmux.run` (P7, P13, P14).

Each call gets the socket (`-S PATH` or `-L NAME`), a timeout, and a typed error; targets are exact
(`=NAME` for sessions, `%ID` for panes) and commands are passed as separate argv words, never a shell string.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from runner.contract import TMUX_MIN_VERSION

DEFAULT_TIMEOUT = 3.0
FALLBACK_MIN_VERSION = TMUX_MIN_VERSION  # runner.contract holds the floor


def min_version() -> str:
    """The supported floor: 3.2a (we use `new-session -e`, added in 3.2; libtmux 0.62's floor too).

    A constant, not read from libtmux at run time: importing libtmux costs 30-180 ms on every CLI call,
    and an old libtmux (resolved on Python 3.9, floor 1.8) must never lower it. A unit test pins it to
    be at least the installed libtmux's TMUX_MIN_VERSION.
    """
    return FALLBACK_MIN_VERSION


class TmuxError(Exception):
    """tmux ran and failed (non-zero exit); `stderr` holds its one-line complaint."""

    def __init__(self, args: Sequence[str], returncode: int, stderr: str) -> None:
        self.argv = list(args)
        self.returncode = returncode
        self.stderr = stderr.strip()
        super().__init__(f"tmux {' '.join(self.argv[1:])!s} failed ({returncode}): {self.stderr}")

    @property
    def no_server(self) -> bool:
        """True when the failure just means no server listens on our socket."""
        s = self.stderr.lower()
        return "no server running" in s or "error connecting to" in s or "no such file or directory" in s


class TmuxMissing(TmuxError):
    """No tmux executable was found."""

    def __init__(self, message: str) -> None:
        Exception.__init__(self, message)
        self.argv, self.returncode, self.stderr = [], 127, message


class TmuxTooOld(TmuxError):
    """tmux is older than the supported minimum."""

    def __init__(self, found: str, minimum: str) -> None:
        Exception.__init__(self, f"tmux {found} is older than the minimum supported {minimum}")
        self.argv, self.returncode, self.stderr = [], 0, str(self)
        self.found, self.minimum = found, minimum


class TmuxTimeout(TmuxError):
    """A tmux call did not finish within its timeout (frozen or overloaded server)."""

    def __init__(self, args: Sequence[str], timeout: float) -> None:
        Exception.__init__(self, f"tmux {' '.join(list(args)[1:])} timed out after {timeout:g}s")
        self.argv, self.returncode, self.stderr = list(args), -1, str(self)
        self.timeout = timeout


# -- versions --------------------------------------------------------------------------------------

_VER_RE = re.compile(r"(\d+)\.(\d+)([a-z]?)")


def parse_version(text: str) -> tuple[int, int, str] | None:
    """Parse `tmux -V` output: "tmux 3.3a" -> (3, 3, "a"); "tmux next-3.5" -> (3, 5, "");
    "tmux openbsd-7.4" / "tmux master" -> None (a base-system or development build: treated as new)."""
    word = text.strip().split()[-1] if text.strip() else ""
    word = word.removeprefix("tmux")
    if word.startswith("openbsd-") or word in ("master", ""):
        return None
    word = word.removeprefix("next-")
    m = _VER_RE.match(word)
    if not m:
        return None
    return int(m.group(1)), int(m.group(2)), m.group(3)


def version_at_least(found: str, minimum: str) -> bool:
    f, m = parse_version(found), parse_version(minimum)
    if f is None or m is None:
        return True
    return f >= m


def install_hint() -> str:
    """A platform-appropriate one-line install hint for tmux (P13)."""
    if sys.platform == "darwin":
        return "install it with: brew install tmux"
    try:
        with open("/etc/os-release") as f:
            osr = f.read().lower()
    except OSError:
        osr = ""
    if "alpine" in osr:
        return "install it with: apk add tmux"
    if any(k in osr for k in ("fedora", "rhel", "centos", "rocky", "almalinux")):
        return "install it with: dnf install tmux"
    if any(k in osr for k in ("debian", "ubuntu")):
        return "install it with: apt-get install tmux"
    return "install it with your package manager (apt-get/dnf/apk install tmux, or brew install tmux)"


def _which(name: str, path: str) -> str | None:
    """shutil.which for a bare name on POSIX, without importing shutil (and its bz2/lzma) on every call."""
    for d in path.split(os.pathsep):
        cand = os.path.join(d, name)
        if os.access(cand, os.F_OK | os.X_OK) and not os.path.isdir(cand):
            return cand
    return None


def _cache_path(state_dir: str | os.PathLike[str] | None) -> str | None:
    """Where a state dir keeps the tmux version it has seen (None: no state dir, no cache)."""
    return os.path.join(os.fspath(state_dir), "tmux.version") if state_dir is not None else None


# -- typed objects -----------------------------------------------------------------------------------


# NamedTuples, not dataclasses: frozen and equal by value all the same, without importing `dataclasses`
# (inspect, ast, dis, tokenize: 10-20 ms of every `dispatch` call on a loaded machine)


class Session(NamedTuple):
    """A tmux session, addressed exactly as `=NAME`."""

    name: str
    id: str = ""

    @property
    def target(self) -> str:
        return f"={self.name}"


class Pane(NamedTuple):
    """A tmux pane, addressed by its unique `%N` id."""

    id: str
    session: Session | None = None
    pid: int | None = None  # the pane's process (#{pane_pid}) when tmux reported it

    @property
    def target(self) -> str:
        return self.id


# -- the gateway -------------------------------------------------------------------------------------


class Tmux:
    """One tmux server (socket). `run` is the only place a tmux process is started."""

    def __init__(
        self,
        socket_path: str | os.PathLike[str] | None = None,
        socket_name: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        binary: str | None = None,
        env: Mapping[str, str] | None = None,
        config_file: str | None = os.devnull,
        version_cache: str | os.PathLike[str] | None = None,
    ) -> None:
        if (socket_path is None) == (socket_name is None):
            raise ValueError("give exactly one of socket_path / socket_name")
        self.socket_args = (
            ["-S", os.fspath(socket_path)] if socket_path is not None else ["-L", str(socket_name)]
        )
        # our private server never reads the user's ~/.tmux.conf (remain-on-exit, hooks... would change
        # how panes close); -f only matters when a call starts the server
        self.config_args = ["-f", config_file] if config_file else []
        self.timeout = timeout
        self._binary = binary
        self.env = dict(env) if env is not None else None
        self._version: str | None = None
        # `tmux -V`'s answer, kept in the state dir and keyed by the binary's identity: one tmux process
        # fewer on every `start` (a process spawn is tens of ms on a loaded machine)
        self.version_cache = os.fspath(version_cache) if version_cache is not None else None
        self._unsaved_key: str | None = None  # the binary `tmux -V` ran for, until save_version

    @classmethod
    def from_config(cls, cfg: object, env: Mapping[str, str] | None = None) -> Tmux:
        return cls(
            socket_path=getattr(cfg, "socket_path", None),
            socket_name=getattr(cfg, "socket_name", None),
            timeout=getattr(cfg, "tmux_timeout", DEFAULT_TIMEOUT),
            binary=getattr(cfg, "tmux_bin", None),
            env=env,
            version_cache=_cache_path(getattr(cfg, "state_dir", None)),
        )

    @property
    def binary(self) -> str:
        if self._binary is None or os.sep not in self._binary:
            path = (self.env or os.environ).get("PATH", os.defpath)
            found = _which(self._binary or "tmux", path)
            if not found:
                raise TmuxMissing("tmux not found on PATH; " + install_hint())
            self._binary = found
        return self._binary

    def run(
        self, *args: str, timeout: float | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run `tmux SOCKET ARGS...` with a timeout; raise TmuxTimeout / TmuxError / TmuxMissing."""
        argv = [self.binary, *self.socket_args, *self.config_args, *args]
        t = self.timeout if timeout is None else timeout
        try:
            cp = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                errors="replace",
                timeout=t,
                env=self.env,
                close_fds=True,
            )
        except subprocess.TimeoutExpired:
            raise TmuxTimeout(argv, t) from None
        except FileNotFoundError:
            raise TmuxMissing(f"tmux not runnable at {self.binary}; " + install_hint()) from None
        if check and cp.returncode != 0:
            raise TmuxError(argv, cp.returncode, cp.stderr)
        return cp

    # -- version -----------------------------------------------------------------------------------

    def version(self) -> str:
        """The version word of `tmux -V` ("3.3a", "next-3.5", "openbsd-7.4").

        With a version cache, a binary seen before (same path, inode, size, mtime and ctime) is not run
        again: replacing or upgrading tmux changes that key, so the floor (P13) is always checked on the
        binary that will run.
        """
        if self._version is None:
            key = self._binary_key()
            cached = self._cached_version(key)
            if cached is not None:
                self._version = cached
            else:
                out = self.run("-V").stdout.strip()
                self._version = out.split()[-1] if out else ""
                self._unsaved_key = key
        return self._version

    def _binary_key(self) -> str | None:
        if self.version_cache is None:
            return None
        try:
            st = os.stat(self.binary)
        except (OSError, TmuxError):
            return None
        return f"{self.binary}\0{st.st_ino}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ctime_ns}"

    def _cached_version(self, key: str | None) -> str | None:
        if key is None or self.version_cache is None:
            return None
        try:
            with open(self.version_cache, encoding="utf-8", errors="replace") as f:
                got_key, sep, version = f.read().rpartition("\n")
        except OSError:
            return None
        return version if sep and got_key == key and version else None

    def save_version(self) -> None:
        """Keep the version `tmux -V` just gave in the cache. Called by `start` once it has accepted the
        task (a refused start leaves nothing behind, P13); best effort: a failed write only costs the next
        call one `tmux -V`."""
        key, version, self._unsaved_key = self._unsaved_key, self._version, None
        if key is None or self.version_cache is None or not version or "\n" in version:
            return
        if not os.path.isdir(os.path.dirname(self.version_cache)):
            return
        try:
            from runner.atomicio import write_atomic

            write_atomic(self.version_cache, f"{key}\n{version}")
        except OSError:
            pass

    def require(self, minimum: str | None = None) -> str:
        """Refuse a missing or too-old tmux (P13); return the version found."""
        minimum = minimum or min_version()
        v = self.version()
        if not version_at_least(v, minimum):
            raise TmuxTooOld(v, minimum)
        return v

    # -- sessions and panes --------------------------------------------------------------------------

    def new_session(
        self,
        name: str,
        argv: Sequence[str],
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        width: int = 200,
        height: int = 50,
    ) -> tuple[Session, Pane]:
        """Create a detached session running `argv` (exec'd by tmux, no `sh -c`) and return its pane
        (with the pane's process id: `start` records it as the task's supervisor)."""
        fmt = "#{session_name} #{session_id} #{pane_id} #{pane_pid}"
        args = ["new-session", "-d", "-P", "-F", fmt, "-s", name]
        args += ["-x", str(width), "-y", str(height)]
        if cwd:
            args += ["-c", cwd]
        for k, v in (env or {}).items():
            args += ["-e", f"{k}={v}"]
        args += ["--", *argv]
        out = self.run(*args).stdout.split()
        if len(out) != 4 or out[0] != name or not out[2].startswith("%") or not out[3].isdigit():
            raise TmuxError(args, 0, f"unexpected new-session output: {' '.join(out)!r}")
        s = Session(out[0], out[1])
        return s, Pane(out[2], s, int(out[3]))

    def list_sessions(self) -> list[Session]:
        """Sessions on our server; [] when no server is running."""
        try:
            cp = self.run("list-sessions", "-F", "#{session_name} #{session_id}")
        except TmuxError as e:
            if isinstance(e, (TmuxTimeout, TmuxMissing)) or not e.no_server:
                raise
            return []
        out = []
        for line in cp.stdout.splitlines():
            parts = line.split()
            if len(parts) == 2:
                out.append(Session(parts[0], parts[1]))
        return out

    def has_session(self, name: str) -> bool:
        cp = self.run("has-session", "-t", f"={name}", check=False)
        return cp.returncode == 0

    def kill_session(self, name: str) -> bool:
        """Kill session `name` exactly; False if it was not there (or no server)."""
        cp = self.run("kill-session", "-t", f"={name}", check=False)
        return cp.returncode == 0

    def pipe_pane(self, pane: str, command: str | None) -> None:
        """Start (`command`) or stop (None) output piping for a pane; -o only toggles on when off."""
        if command is None:
            self.run("pipe-pane", "-t", pane)
        else:
            self.run("pipe-pane", "-o", "-t", pane, command)

    def pane_pid(self, pane: str) -> int | None:
        cp = self.run("display-message", "-p", "-t", pane, "#{pane_pid}", check=False)
        try:
            return int(cp.stdout.strip())
        except ValueError:
            return None

    def paste_file(self, pane: str, path: str, buffer: str, bracketed: bool = True) -> None:
        """Load FILE into a named buffer and paste it into `pane` (no key names interpreted, P8)."""
        self.run("load-buffer", "-b", buffer, path)
        args = ["paste-buffer", "-d", "-r", "-b", buffer, "-t", pane]
        if bracketed:
            args.insert(1, "-p")
        try:
            self.run(*args)
        except TmuxError:
            self.run("delete-buffer", "-b", buffer, check=False)
            raise

    def send_key(self, pane: str, key: str) -> None:
        """Send one named key (e.g. "Enter"); never user text."""
        self.run("send-keys", "-t", pane, key)
