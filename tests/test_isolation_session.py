"""The session guard of tests/conftest.py: a run that leaves a file in the real /tmp or HOME fails.

Proven on a real nested pytest run (the kit's own conftest, copied next to a one-line test), so the
guard is shown able to fail, and not failing a clean run.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

CONFTEST = Path(__file__).with_name("conftest.py")


def _nested(tmp_path: Path, body: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    d = tmp_path / "nested"
    d.mkdir()
    shutil.copy(CONFTEST, d / "conftest.py")
    (d / "test_probe.py").write_text(f"def test_probe():\n    {body}\n")
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider", str(d)],
        cwd=d,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _env(home: Path) -> dict[str, str]:
    # DK_TEST_SESSION too: with the outer run's marker, the nested run's leak sweep ended the outer run's
    # xdist workers (they carry it), and CI saw both nodes go down.
    drop = ("DK_TEST_SESSION", "DK_TEST_SESSION_TMP", "DK_TMP_CHECK")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["HOME"] = str(home)
    return env


def test_file_left_in_tmp_fails_the_run(tmp_path: Path) -> None:
    leak = Path("/tmp") / f"dk-leak-probe-{secrets.token_hex(6)}"
    home = tmp_path / "home"
    home.mkdir()
    try:
        r = _nested(tmp_path, f"open({str(leak)!r}, 'w').close()", _env(home))
    finally:
        leak.unlink(missing_ok=True)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "new entries in /tmp or HOME" in r.stdout and str(leak) in r.stdout, r.stdout


def test_file_left_in_home_fails_the_run(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / ".cache").mkdir(parents=True)
    # The test sees the session's private HOME; it writes to the real one by its absolute path.
    r = _nested(tmp_path, f"open({str(home / '.cache' / 'leaked')!r}, 'w').close()", _env(home))
    assert r.returncode == 1, r.stdout + r.stderr
    assert str(home / ".cache" / "leaked") in r.stdout, r.stdout


def test_private_tmpdir_and_home_do_not_fail_the_run(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    body = (
        "import os, tempfile, pathlib; tempfile.mkstemp(); "
        "pathlib.Path(os.environ['HOME'], 'x').write_text('y'); "
        "assert not os.environ['TMPDIR'].startswith(os.environ['HOME'])"
    )
    # warn: on a shared host another run's /tmp files would show up here, and are not this test's point.
    # TMPDIR of its own: the outer session's TMPDIR (which the nested guard watches) gets other workers'
    # scratch at any moment, and under TMPDIR=/tmp its path holds "dk-tests-" (docs/containers.md)
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    r = _nested(tmp_path, body, {**_env(home), "TMPDIR": str(tmpdir), "DK_TMP_CHECK": "warn"})
    assert r.returncode == 0, r.stdout + r.stderr
    assert not any(home.iterdir()), list(home.iterdir())
    assert str(home) not in r.stdout and "dk-tests-" not in r.stdout, r.stdout
