"""A small ext4 with 128-byte inodes (whole-second timestamps) for the macOS-like profile's TMPDIR.

HFS+ and some network filesystems store 1-second mtimes; a dispatcher that judges staleness by mtime
breaks there (P6). The filesystem is made and loop-mounted on the host (needs root and a loop device),
then bind-mounted into the container, so the container itself needs no extra privilege.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from containers.paths import cache_dir

SIZE = 64 << 20


def _root() -> Path:
    d = cache_dir() / "mnt"
    d.mkdir(parents=True, exist_ok=True)
    return d


def available() -> str | None:
    """None if we can make one here, else why not."""
    if os.geteuid() != 0:
        return "needs root on the host"
    for tool in ("mkfs.ext4", "mount", "umount"):
        if shutil.which(tool) is None:
            return f"{tool} missing on the host"
    return None


def make(name: str, uid: int, gid: int, subdir: str) -> Path:
    """Create, mount and return the mountpoint; `subdir` inside it is made 0700 for uid:gid."""
    img = _root() / f"{name}.img"
    mp = _root() / name
    mp.mkdir(exist_ok=True)
    with open(img, "wb") as f:
        f.truncate(SIZE)
    try:
        subprocess.run(["mkfs.ext4", "-q", "-F", "-I", "128", str(img)], check=True, capture_output=True)
        subprocess.run(["mount", "-o", "loop", str(img), str(mp)], check=True, capture_output=True)
    except subprocess.CalledProcessError as e:
        release(mp)
        raise RuntimeError(f"coarse-timestamp filesystem: {e.stderr.decode().strip()[-200:]}") from e
    os.chmod(mp, 0o755)
    path = mp
    for part in Path(subdir).parts:
        path = path / part
        path.mkdir(exist_ok=True)
        os.chown(path, uid, gid)
    os.chmod(path, 0o700)
    return mp


def release(mp: Path) -> None:
    """Unmount (lazily: a container may still hold it while being removed) and delete the image."""
    if os.path.ismount(mp):
        subprocess.run(["umount", "-l", str(mp)], capture_output=True)
    try:
        mp.rmdir()
    except OSError:
        pass
    Path(f"{mp}.img").unlink(missing_ok=True)


def leftovers(prefix: str = "") -> list[str]:
    """Coarse filesystems (image or mountpoint) still present for a run id prefix: empty when clean."""
    return sorted({p.name.removesuffix(".img") for p in _root().glob(f"{prefix}*")})


def sweep(prefix: str = "") -> int:
    """Release every coarse filesystem (of one run when `prefix` is its id) left by an interrupted run."""
    n = 0
    for img in sorted(_root().glob(f"{prefix}*.img")):
        release(img.with_suffix(""))
        n += 1
    return n
