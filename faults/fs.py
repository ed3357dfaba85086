"""Filesystem faults: 1-second timestamps, a full disk, a read-only directory, a private /tmp.

Each is a context manager that mounts what it needs, yields, and unmounts and removes it on exit;
if any step fails, the steps already done are undone before the error propagates. Mounting needs
root (Linux); without it the injector raises :class:`faults.Unsupported` (``readonly_dir`` falls back
to permissions, ``private_tmp`` to a user namespace).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from faults.errors import Unsupported

PRIVTMP = str(Path(__file__).with_name("privtmp.py"))


# Why root, measured as an ordinary user (Linux 6.x, unprivileged user namespaces on): a user+mount
# namespace may mount tmpfs (nanosecond timestamps, and only visible inside that namespace) but not
# set up a loop device nor mount ext4; a FUSE fs with 1-second time_gran would need /dev/fuse (0600
# root on the CI machine): not implemented.
_WHY_ROOT = {
    "coarse_timestamps_dir": "CAP_SYS_ADMIN in the initial user namespace to attach a loop device and "
    "mount ext4 (not allowed in a user namespace)",
    "small_fs": "CAP_SYS_ADMIN in the initial user namespace to mount a tmpfs the dispatcher can see",
}


def _need(what: str, root: bool = True, tools: Sequence[str] = ()) -> None:
    if not sys.platform.startswith("linux"):
        raise Unsupported(f"{what} needs Linux")
    if root and os.geteuid() != 0:
        raise Unsupported(f"{what} needs root: {_WHY_ROOT.get(what, 'CAP_SYS_ADMIN (mount)')}")
    for t in tools:
        if not shutil.which(t):
            raise Unsupported(f"{what} needs {t}, which is not installed")


def _sh(*cmd: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {(r.stderr or r.stdout).strip()}")
    return r


def is_mounted(path: str | os.PathLike[str]) -> bool:
    """True if PATH is a mount point in our mount namespace (bind mounts included, unlike ismount)."""
    target = os.path.realpath(path)
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                mp = line.split()[4]
                mp = (
                    mp.replace("\\040", " ")
                    .replace("\\011", "\t")
                    .replace("\\012", "\n")
                    .replace("\\134", "\\")
                )
                if mp == target:
                    return True
    except OSError:
        return os.path.ismount(target)
    return False


def _umount(path: Path, timeout: float = 10.0) -> None:
    """Unmount PATH, retrying while busy; lazily detach as a last resort so nothing stays mounted."""
    deadline = time.monotonic() + timeout
    while True:
        r = subprocess.run(["umount", str(path)], capture_output=True, text=True, timeout=30)
        if r.returncode == 0 or not is_mounted(path):
            return
        if time.monotonic() >= deadline:
            subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30)
            return
        time.sleep(0.05)


@contextmanager
def coarse_timestamps_dir(size_mb: int = 16, parent: str | os.PathLike[str] | None = None) -> Iterator[Path]:
    """A fresh, writable directory on a filesystem whose timestamps have 1-second granularity.

    ext4 with 128-byte inodes (no room for nanosecond fields) on a loop device; falls back to ext3.
    """
    _need("coarse_timestamps_dir", tools=("mount", "umount", "losetup"))
    mkfs = next((t for t in ("mkfs.ext4", "mkfs.ext3") if shutil.which(t)), None)
    if mkfs is None:
        raise Unsupported("coarse_timestamps_dir needs mkfs.ext4 or mkfs.ext3")
    work = Path(tempfile.mkdtemp(prefix="dk-coarse-", dir=parent))
    img, mnt = work / "fs.img", work / "mnt"
    try:
        mnt.mkdir()
        with open(img, "wb") as f:
            f.truncate(size_mb * 1024 * 1024)
        _sh(mkfs, "-q", "-F", "-I", "128", "-O", "^has_journal", "-E", "nodiscard", str(img))
        r = subprocess.run(
            ["mount", "-o", "loop,nodev,nosuid", str(img), str(mnt)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if r.returncode != 0:
            raise Unsupported(f"cannot mount a loop device here: {r.stderr.strip()}")
        try:
            mnt.chmod(0o1777)
            yield mnt
        finally:
            _umount(mnt)  # `mount -o loop` set autoclear: unmounting detaches the loop device
    finally:
        shutil.rmtree(work, ignore_errors=True)


def loop_devices_of(image: str | os.PathLike[str]) -> list[str]:
    """Loop devices still backed by IMAGE (for checks that nothing was left attached)."""
    r = subprocess.run(["losetup", "-j", os.fspath(image)], capture_output=True, text=True, timeout=30)
    return [line.split(":", 1)[0] for line in r.stdout.splitlines() if line.strip()]


@contextmanager
def small_fs(size_mb: float = 1, parent: str | os.PathLike[str] | None = None) -> Iterator[Path]:
    """A writable directory on a tmpfs of SIZE_MB megabytes: writes past it fail with ENOSPC."""
    _need("small_fs", tools=("mount", "umount"))
    mnt = Path(tempfile.mkdtemp(prefix="dk-small-", dir=parent))
    try:
        size_k = max(4, int(size_mb * 1024))
        _sh("mount", "-t", "tmpfs", "-o", f"size={size_k}k,mode=1777,nodev,nosuid", "dk-small", str(mnt))
        try:
            yield mnt
        finally:
            _umount(mnt)
    finally:
        shutil.rmtree(mnt, ignore_errors=True)


@contextmanager
def readonly_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Make PATH read-only for the block: writes fail with EROFS (root: a read-only bind mount of PATH
    on itself) or EACCES (non-root: write permission removed from PATH itself, not its files)."""
    p = Path(path)
    if not p.is_dir():
        raise NotADirectoryError(str(p))
    if sys.platform.startswith("linux") and os.geteuid() == 0 and shutil.which("mount"):
        _sh("mount", "--bind", str(p), str(p))
        try:
            _sh("mount", "-o", "remount,bind,ro", str(p))
        except BaseException:
            _umount(p)
            raise
        try:
            yield p
        finally:
            _umount(p)
        return
    if os.geteuid() == 0:
        raise Unsupported("readonly_dir: root ignores permissions and mount is unavailable")
    mode = p.stat().st_mode & 0o7777
    p.chmod(mode & ~0o222)
    try:
        yield p
    finally:
        p.chmod(mode)


# -- private /tmp --------------------------------------------------------------------------------


def _real_tmp() -> str:
    """/tmp resolved: on macOS (and the macos-like container) /tmp is a symlink to /private/tmp."""
    return os.path.realpath("/tmp")


def _under_tmp(path: str) -> str | None:
    real = os.path.realpath(path)
    return real if real.startswith(_real_tmp() + "/") else None


class PrivateTmp:
    """Commands run in their own mount namespace whose /tmp is ``host_dir`` (initially empty).

    Paths under the real /tmp the command needs (its ``TMPDIR``, ``DISPATCH_STATE_DIR``, the socket's
    dir, the cwd, and ``keep``) are bound back in; ``written()`` lists everything else that ended up in
    that /tmp, i.e. what the command wrote to /tmp itself (P11).
    """

    def __init__(
        self, host_dir: Path, env: Mapping[str, str], keep: Sequence[str | os.PathLike[str]]
    ) -> None:
        self.host_dir = host_dir
        self.env = dict(env)
        self._keep = [os.fspath(k) for k in keep]
        self._kept: list[str] = []

    def keep_paths(self, env: Mapping[str, str], cwd: str | None) -> list[str]:
        cands = [*self._keep, env.get("TMPDIR", ""), env.get("DISPATCH_STATE_DIR", ""), cwd or os.getcwd()]
        sock = env.get("DISPATCH_TMUX_SOCKET")
        if sock:
            cands.append(os.path.dirname(sock))
        paths = sorted({r for c in cands if c and os.path.isdir(c) and (r := _under_tmp(c))})
        out: list[str] = []
        for p in paths:  # drop paths inside another kept path: the outer bind covers them
            if not any(p.startswith(o + "/") for o in out):
                out.append(p)
        self._kept = sorted(set(self._kept) | set(out))
        return out

    def command(self, argv: Sequence[str], env: Mapping[str, str], cwd: str | None) -> list[str]:
        if not argv:
            raise ValueError("empty argv")
        pre = ["unshare", "--mount", "--propagation", "private"]
        if os.geteuid() != 0:
            pre[1:1] = ["--user", "--map-root-user"]
        return [
            *pre,
            sys.executable,
            "-S",
            PRIVTMP,
            str(self.host_dir),
            *self.keep_paths(env, cwd),
            "--",
            *argv,
        ]

    def run(
        self,
        argv: Sequence[str],
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        timeout: float | None = None,
        input: bytes | str | None = None,
        **kw: Any,
    ) -> subprocess.CompletedProcess[Any]:
        """``subprocess.run`` in a fresh private mount namespace with this /tmp (output captured)."""
        e = dict(self.env if env is None else env)
        c = os.fspath(cwd) if cwd is not None else None
        kw.setdefault("capture_output", "stdout" not in kw and "stderr" not in kw)
        return subprocess.run(self.command(argv, e, c), env=e, cwd=c, timeout=timeout, input=input, **kw)

    def popen(
        self,
        argv: Sequence[str],
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        **kw: Any,
    ) -> subprocess.Popen[Any]:
        e = dict(self.env if env is None else env)
        c = os.fspath(cwd) if cwd is not None else None
        return subprocess.Popen(self.command(argv, e, c), env=e, cwd=c, **kw)

    def written(self) -> list[str]:
        """Paths (relative to /tmp) written to this /tmp, excluding the kept directories' mount points."""
        kept = {os.path.relpath(k, _real_tmp()) for k in self._kept}
        ancestors = {str(Path(k).parents[i]) for k in kept for i in range(len(Path(k).parents) - 1)}
        out = []
        for root, dirs, files in os.walk(self.host_dir):
            rel_root = os.path.relpath(root, self.host_dir)
            for d in list(dirs):
                rel = os.path.normpath(os.path.join(rel_root, d))
                if rel in kept:
                    dirs.remove(d)
                elif rel not in ancestors:
                    out.append(rel + "/")
            out += [os.path.normpath(os.path.join(rel_root, f)) for f in files]
        return sorted(out)


def _check_private_ns() -> None:
    _need("private_tmp", root=False, tools=("unshare",))
    r = subprocess.run(
        ["unshare", "--mount", *(["--user", "--map-root-user"] if os.geteuid() else []), "true"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if r.returncode != 0:
        raise Unsupported(f"cannot create a mount namespace here: {r.stderr.strip()}")


@contextmanager
def private_tmp(
    env: Mapping[str, str] | None = None,
    keep: Sequence[str | os.PathLike[str]] = (),
    parent: str | os.PathLike[str] | None = None,
) -> Iterator[PrivateTmp]:
    """Yield a :class:`PrivateTmp`; its /tmp dir is removed on exit (stop your processes first)."""
    _check_private_ns()
    e = dict(os.environ if env is None else env)
    d = Path(tempfile.mkdtemp(prefix="dk-privtmp-", dir=parent or e.get("TMPDIR")))
    d.chmod(0o1777)
    try:
        yield PrivateTmp(d, e, keep)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def run_in_private_mount_ns(
    argv: Sequence[str],
    env: Mapping[str, str] | None = None,
    keep: Sequence[str | os.PathLike[str]] = (),
    **kw: Any,
) -> tuple[subprocess.CompletedProcess[Any], list[str]]:
    """One command with a private /tmp: its result and what it wrote to /tmp itself."""
    with private_tmp(env, keep) as pt:
        r = pt.run(argv, **kw)
        return r, pt.written()
