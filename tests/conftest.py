"""Shared fixtures for the kit's own tests: a sandbox per test, and a run that fails on leaks."""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from conformance.isolation import PRIVATE_DIRS, SESSION_VAR, Sandbox, find_marked, kill_marked

# The session's own TMPDIR (under the real one, removed at the end) and what /tmp and HOME held before.
SESSION_TMP_VAR = "DK_TEST_SESSION_TMP"
# Where HOME's new files usually land: watched one level deeper than HOME itself.
HOME_SUBDIRS = (".cache", ".config", ".local", ".local/share", ".local/state")
_before: dict[str, set[str]] = {}


def _watched() -> list[Path]:
    roots = [Path("/tmp"), Path(os.environ.get("TMPDIR") or "/tmp"), Path.home()]
    home = Path.home()
    roots += [home / sub for sub in HOME_SUBDIRS]
    out: list[Path] = []
    for r in roots:
        if r.is_dir() and r.resolve() not in {o.resolve() for o in out}:
            out.append(r)
    return out


def _entries(root: Path) -> set[str]:
    """Entries of ROOT owned by us (another user's files cannot be ours: less noise on shared hosts)."""
    out = set()
    try:
        for e in os.scandir(root):
            try:
                if e.stat(follow_symlinks=False).st_uid == os.getuid():
                    out.add(e.path)
            except OSError:
                continue
    except OSError:
        pass
    return out


def _start_session_guard(config: pytest.Config) -> None:
    """Snapshot /tmp and HOME, then give the whole run (and every child) a private TMPDIR and HOME."""
    # The container image cache is shared on purpose (a rootfs takes minutes to debootstrap): resolve it
    # under the real HOME before HOME goes private (the sweep below lets a docker test create it).
    os.environ.setdefault("DK_CACHE", str(Path.home() / ".cache" / "dispatch-kit" / "containers"))
    for root in _watched():
        _before[str(root)] = _entries(root)
    tmp = Path(tempfile.mkdtemp(prefix="dk-tests-"))
    os.environ[SESSION_TMP_VAR] = str(tmp)
    os.environ["TMPDIR"] = str(tmp)
    tempfile.tempdir = None  # every mkdtemp now lands in the session dir
    if config.option.basetemp is None:  # short: tests put unix sockets under tmp_path (108 bytes)
        config.option.basetemp = str(tmp / "p")
    for var, sub in PRIVATE_DIRS.items():
        (tmp / sub).mkdir(mode=0o700, parents=True, exist_ok=True)
        os.environ[var] = str(tmp / sub)
    # Known-bads that write under a hard-coded /tmp (their flaw) write here instead: still /tmp.
    os.environ["DK_HARD_TMP"] = str(tmp / "hard-tmp")


def _finish_session_guard() -> list[str]:
    """Remove the session dir; return what appeared in /tmp or HOME during the run."""
    mine = os.environ.get(SESSION_TMP_VAR, "/nonexistent")
    shutil.rmtree(mine, ignore_errors=True)
    new: set[str] = set()
    for root, before in _before.items():
        new |= _entries(Path(root)) - before
    # Another concurrent session's own dir is removed by that session (ours was checked by rmtree).
    new = {p for p in new if p == mine or not os.path.basename(p).startswith("dk-tests-")}
    cache = os.environ.get("DK_CACHE", "")
    return sorted(p for p in new if not (cache + os.sep).startswith(p + os.sep))


def pytest_configure(config: pytest.Config) -> None:
    # Set once in the controller; xdist workers inherit it, so the session-end sweep sees everything.
    os.environ.setdefault(SESSION_VAR, "dks" + secrets.token_hex(8))
    if not hasattr(config, "workerinput") and SESSION_TMP_VAR not in os.environ:
        _start_session_guard(config)


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    """A private state dir, TMPDIR and tmux socket; the test fails if any process of it outlives it."""
    sb = Sandbox.create()
    yield sb
    leaked = sb.cleanup()
    if leaked:
        pytest.fail("processes outlived the test:\n  " + "\n  ".join(map(str, leaked)), pytrace=False)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if hasattr(session.config, "workerinput"):
        return  # only the controller (or a non-xdist run) sweeps
    marker = os.environ.get(SESSION_VAR, "")
    leaked = find_marked(marker, SESSION_VAR) if marker else []
    tr = session.config.pluginmanager.get_plugin("terminalreporter")
    if leaked:
        kill_marked(marker, var=SESSION_VAR)
        tr.write_line(
            "LEAK: processes outlived the test session:\n  " + "\n  ".join(map(str, leaked)), red=True
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    written = _finish_session_guard() if _before else []
    if written:
        # DK_TMP_CHECK=warn: on a host shared with other runs their files are indistinguishable from ours.
        warn = os.environ.get("DK_TMP_CHECK") == "warn"
        tr.write_line(
            f"LEAK: {len(written)} new entries in /tmp or HOME during the run"
            f"{' (DK_TMP_CHECK=warn: not failing)' if warn else ''}:\n  " + "\n  ".join(written[:20]),
            red=True,
        )
        if not warn:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
