"""Filesystem faults really apply (coarse mtimes, ENOSPC, EROFS, private /tmp) and really undo."""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path

import pytest

from faults.fs import (
    coarse_timestamps_dir,
    is_mounted,
    loop_devices_of,
    private_tmp,
    readonly_dir,
    run_in_private_mount_ns,
    small_fs,
)


def _write(p: Path, data: str) -> int:
    p.write_text(data)
    return p.stat().st_mtime_ns


def test_coarse_timestamps(tmp_path) -> None:
    with coarse_timestamps_dir(parent=tmp_path) as d:
        assert is_mounted(d)
        img = d.parent / "fs.img"
        assert loop_devices_of(img)
        deadline = time.monotonic() + 5
        while time.time() % 1 > 0.2 and time.monotonic() < deadline:  # start early in a second
            time.sleep(0.01)
        t0 = time.monotonic()
        a = _write(d / "hb", "1")
        time.sleep(0.2)
        b = _write(d / "hb", "2")
        elapsed = time.monotonic() - t0
        assert a % 1_000_000_000 == 0 and b % 1_000_000_000 == 0
        if elapsed < 0.75:  # both writes in the same wall-clock second
            assert a == b
    assert not d.exists() and not img.exists()
    assert loop_devices_of(img) == []


def test_small_fs_fills(tmp_path) -> None:
    with small_fs(1, parent=tmp_path) as d:
        assert is_mounted(d)
        with pytest.raises(OSError) as e, open(d / "big", "wb") as f:
            for _ in range(64):
                f.write(b"\0" * 65536)
                f.flush()
        assert e.value.errno == errno.ENOSPC
        written = (d / "big").stat().st_size
        assert 512 * 1024 <= written <= 1024 * 1024
    assert not is_mounted(d) and not d.exists()


def test_readonly_dir(tmp_path) -> None:
    target = tmp_path / "ro"
    target.mkdir()
    (target / "old").write_text("x")
    with readonly_dir(target) as d:
        with pytest.raises(OSError) as e:
            (d / "new").write_text("y")
        assert e.value.errno in (errno.EROFS, errno.EACCES)
        if os.geteuid() == 0:
            assert is_mounted(d)
            with pytest.raises(OSError) as e2:
                (d / "old").write_text("z")
            assert e2.value.errno == errno.EROFS
        assert (d / "old").read_text() == "x"
    assert not is_mounted(target)
    (target / "new").write_text("y")
    assert (target / "new").read_text() == "y"


def test_private_tmp_reports_what_was_written(sandbox) -> None:
    env = sandbox.env()
    script = 'echo x > /tmp/leak && mkdir -p /tmp/d/e && echo y > "$TMPDIR/ok" && echo z > "$DISPATCH_STATE_DIR/s" && pwd'
    with private_tmp(env) as pt:
        r = pt.run(["sh", "-c", script], cwd=sandbox.workdir, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        # getcwd() is physical: /private/tmp/... for a cwd under /tmp where /tmp is a symlink (macOS)
        assert r.stdout.strip() == os.path.realpath(sandbox.workdir)
        assert pt.written() == ["d/", "d/e/", "leak"]
        host_dir = pt.host_dir
    assert not host_dir.exists()
    assert not Path("/tmp/leak").exists() or Path("/tmp/leak").read_text() != "x\n"
    assert (sandbox.tmpdir / "ok").read_text() == "y\n"  # kept paths are the real ones
    assert (sandbox.state_dir / "s").read_text() == "z\n"


def test_run_in_private_mount_ns_clean(sandbox) -> None:
    r, written = run_in_private_mount_ns(
        ["sh", "-c", 'ls -A /tmp; echo t > "$TMPDIR/f"'], env=sandbox.env(), text=True, timeout=30
    )
    assert r.returncode == 0, r.stderr
    assert written == []
    # Inside, /tmp holds only the path back to the sandbox (when the sandbox lives under /tmp at all:
    # on the macOS-like profile TMPDIR is under /var/folders), never the host's /tmp content.
    # The command's cwd (the repo, perhaps a CI clone under /tmp) is kept reachable too.
    tmp = Path("/tmp").resolve()
    kept = (sandbox.root.resolve(), Path.cwd().resolve())
    expected = {p.relative_to(tmp).parts[0] for p in kept if p.is_relative_to(tmp)}
    assert set(r.stdout.split()) == expected
