"""Debian root filesystems made with debootstrap and cached as tarballs (no image can be pulled here).

A tarball's name carries a hash of everything that shapes it (suite, variant, package list), so it is
made once and reused until one of those changes. debootstrap takes minutes; everything else is cached.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from containers.paths import cache_dir, cache_lock

ROOTFS_FORMAT = "1"  # bump when the way a tarball is made changes
DEFAULT_MIRROR = "http://deb.debian.org/debian"

# Installed by debootstrap itself (offline Dockerfile layer afterwards): interpreter + venv for the kit,
# tmux under test, ps/kill/lsof, unshare/losetup/mount/mkfs.ext4 for injectors, gcc for the clock shim, zsh for the
# macOS-like profile's login shell.
PACKAGES: tuple[str, ...] = (
    "python3",
    "python3-venv",
    "tmux",
    "procps",
    "util-linux",
    "mount",
    "gcc",
    "libc6-dev",
    "zsh",
    "e2fsprogs",
    "lsof",
)


def host_mirror() -> str:
    """The Debian mirror this machine's apt uses (`DK_DEBIAN_MIRROR` overrides), for debootstrap."""
    env = os.environ.get("DK_DEBIAN_MIRROR")
    if env:
        return env.rstrip("/")
    texts: list[str] = []
    for path in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]:
        if path.suffix in (".list", ".sources") or path.name == "sources.list":
            try:
                texts.append(path.read_text(errors="replace"))
            except OSError:
                continue
    for text in texts:
        for m in re.finditer(r"(?:URIs:\s*|^deb\s+(?:\[[^\]]*\]\s+)?)(\S+)", text, re.M):
            uri = m.group(1).rstrip("/")
            if uri.startswith("http") and uri.endswith("/debian"):
                return uri
    return DEFAULT_MIRROR


def rootfs_key(suite: str, packages: tuple[str, ...] = PACKAGES) -> str:
    """Hash of the inputs that determine a rootfs tarball (mirror excluded: same content)."""
    h = hashlib.sha256(f"{ROOTFS_FORMAT}|{suite}|minbase|{','.join(sorted(packages))}".encode())
    return h.hexdigest()[:16]


def rootfs_path(suite: str, packages: tuple[str, ...] = PACKAGES) -> Path:
    return cache_dir() / "rootfs" / f"{suite}-{rootfs_key(suite, packages)}.tar"


def ensure_rootfs(
    suite: str,
    packages: tuple[str, ...] = PACKAGES,
    mirror: str | None = None,
    log: Callable[[str], None] = lambda s: print(s, file=sys.stderr, flush=True),
) -> Path:
    """Return the cached tarball for `suite`, running debootstrap first if it is missing."""
    out = rootfs_path(suite, packages)
    if out.exists():
        return out
    with cache_lock(f"rootfs-{suite}"):
        if out.exists():  # made by whoever held the lock before us
            return out
        return _debootstrap(suite, packages, mirror, log, out)


def _debootstrap(
    suite: str, packages: tuple[str, ...], mirror: str | None, log: Callable[[str], None], out: Path
) -> Path:
    if shutil.which("debootstrap") is None:
        raise RuntimeError("debootstrap is not installed (apt-get install -y debootstrap)")
    out.parent.mkdir(parents=True, exist_ok=True)
    mirror = mirror or host_mirror()
    work = Path(tempfile.mkdtemp(prefix=f"rootfs-{suite}-", dir=out.parent))
    target = work / "root"
    logfile = out.with_suffix(".log")
    t0 = time.monotonic()
    log(f"[rootfs] debootstrap {suite} from {mirror} (minbase, {len(packages)} extra packages)...")
    try:
        with open(logfile, "w") as lf:
            cmd = [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(packages)}",
                "--components=main",
                suite,
                str(target),
                mirror,
            ]
            rc = subprocess.run(cmd, stdout=lf, stderr=subprocess.STDOUT).returncode
        if rc != 0:
            tail = logfile.read_text(errors="replace").splitlines()[-5:]
            raise RuntimeError(f"debootstrap {suite} failed (exit {rc}): " + " | ".join(tail))
        # Smaller images: no downloaded .debs or package lists (nothing is installed at test time).
        for sub in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for p in (target / sub).glob("*"):
                if p.is_file():
                    p.unlink()
        tmp = out.with_suffix(".tar.part")
        subprocess.run(["tar", "-C", str(target), "--numeric-owner", "-cf", str(tmp), "."], check=True)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log(f"[rootfs] {suite} ready in {time.monotonic() - t0:.0f}s: {out} ({out.stat().st_size >> 20} MiB)")
    return out


if __name__ == "__main__":
    for s in sys.argv[1:]:
        ensure_rootfs(s)
