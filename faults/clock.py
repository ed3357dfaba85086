"""Wall-clock jumps and drift for a process tree, without libfaketime.

Debian's libfaketime 0.9.10 breaks Python (``time.sleep`` EINVAL, ``Event.wait`` hangs) because it
interposes sleeps and waits too. ``clockshim.c`` interposes only the wall-clock readers
(``clock_gettime`` for REALTIME/REALTIME_COARSE/TAI, ``gettimeofday``, ``time``, ``timespec_get``);
monotonic and boottime clocks, sleeps and timed waits are the kernel's own.

Limits: statically linked binaries and programs that read the vDSO or issue the syscall directly
(Go binaries) do not see the shift; absolute ``CLOCK_REALTIME`` timed waits (``pthread_cond_timedwait``
on the default clock, ``sem_timedwait``) compare a shifted deadline with the kernel's real clock;
file timestamps set by the kernel (mtime) stay real. Linux/ELF only.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from faults.errors import Unsupported

SOURCE = Path(__file__).with_name("clockshim.c")
CLOCK_FILE_VAR = "DK_CLOCK_FILE"


def _cache_root() -> Path:
    if os.environ.get("DK_CHAOS_CACHE"):
        return Path(os.environ["DK_CHAOS_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "dispatch-kit" / "chaos"


def build_shim() -> Path:
    """Compile clockshim.c once per source hash into the cache dir; concurrent builders are safe."""
    if not sys.platform.startswith("linux"):
        raise Unsupported("clock shim needs Linux (LD_PRELOAD on ELF)")
    src = SOURCE.read_bytes()
    digest = hashlib.sha256(src).hexdigest()[:16]
    out = _cache_root() / f"clockshim-{digest}.so"
    if out.exists():
        return out
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if not cc:
        raise Unsupported("no C compiler (cc) to build the clock shim")
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".clockshim-", suffix=".so", dir=out.parent)
    os.close(fd)
    try:
        r = subprocess.run(
            [cc, "-shared", "-fPIC", "-O2", "-o", tmp, str(SOURCE), "-ldl", "-lpthread"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if r.returncode != 0:
            raise Unsupported(f"building the clock shim failed: {r.stderr.strip()[:400]}")
        os.chmod(tmp, 0o755)
        os.replace(tmp, out)  # atomic: a concurrent builder's identical file may win, same bytes
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


@dataclass
class FakeClock:
    """A controllable wall clock for the processes started with :meth:`env`.

    ``jump(s)`` sets the absolute offset from the real clock; ``drift(rate)`` makes the fake clock
    run ``1 + rate`` times as fast from now on (continuous, no jump); ``reset()`` returns to real
    time. Changes apply live to running processes within a few milliseconds.
    """

    file: Path
    lib: Path
    _offset_ns: int = 0
    _rate_ppb: int = 0
    _anchor_ns: int = 0

    @classmethod
    def create(cls, dir: str | os.PathLike[str]) -> FakeClock:
        """Build (or reuse) the shim and write a zero-offset control file in DIR."""
        lib = build_shim()
        d = Path(dir)
        d.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix="dk-clock-", suffix=".ctl", dir=d)
        os.close(fd)
        clock = cls(file=Path(name), lib=lib)
        clock._write()
        return clock

    def env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """``LD_PRELOAD`` (the shim appended to any existing one) and ``DK_CLOCK_FILE``, to merge in."""
        src = os.environ if base is None else base
        prev = src.get("LD_PRELOAD", "").strip()
        parts = [p for p in prev.replace(" ", ":").split(":") if p and p != str(self.lib)]
        return {"LD_PRELOAD": ":".join([*parts, str(self.lib)]), CLOCK_FILE_VAR: str(self.file)}

    @property
    def offset(self) -> float:
        """The current fake-minus-real offset in seconds (including drift so far)."""
        return self._current_ns() / 1e9

    def jump(self, seconds: float) -> None:
        """Set the wall clock to real time + SECONDS (negative = back in time); drift continues."""
        self._offset_ns = round(seconds * 1e9)
        self._anchor_ns = time.time_ns()
        self._write()

    def drift(self, rate: float) -> None:
        """From now on the fake clock gains RATE seconds per real second (e.g. 0.5 or -0.1)."""
        now = time.time_ns()
        self._offset_ns = self._current_ns(now)
        self._anchor_ns = now
        self._rate_ppb = round(rate * 1e9)
        self._write()

    def reset(self) -> None:
        """Back to the real clock."""
        self._offset_ns = self._rate_ppb = 0
        self._anchor_ns = time.time_ns()
        self._write()

    def close(self) -> None:
        """Reset and remove the control file (processes still running keep the last offset read)."""
        self.reset()
        self.file.unlink(missing_ok=True)

    def __enter__(self) -> FakeClock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _current_ns(self, now: int | None = None) -> int:
        now = time.time_ns() if now is None else now
        return self._offset_ns + int(self._rate_ppb * 1e-9 * (now - self._anchor_ns))

    def _write(self) -> None:
        # Rename a fresh file over the old one: a new inode every time, so the shim sees every change
        # even when two writes land in the same mtime tick.
        data = f"{self._offset_ns} {self._rate_ppb} {self._anchor_ns}\n".encode()
        fd, tmp = tempfile.mkstemp(prefix=".dk-clock-", dir=self.file.parent)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        os.chmod(tmp, 0o644)
        os.replace(tmp, self.file)


@contextmanager
def fake_clock(dir: str | os.PathLike[str]) -> Iterator[FakeClock]:
    """``with fake_clock(d) as clk:`` — same as ``with FakeClock.create(d) as clk:``."""
    with FakeClock.create(dir) as clk:
        yield clk
