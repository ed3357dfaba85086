"""Shared fixtures for the kit's own tests: a sandbox per test, and a run that fails on leaks."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest

from conformance.isolation import SESSION_VAR, Sandbox, find_marked, kill_marked


def pytest_configure(config: pytest.Config) -> None:
    # Set once in the controller; xdist workers inherit it, so the session-end sweep sees everything.
    os.environ.setdefault(SESSION_VAR, "dks" + secrets.token_hex(8))


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
    if leaked:
        kill_marked(marker, var=SESSION_VAR)
        session.config.pluginmanager.get_plugin("terminalreporter").write_line(
            "LEAK: processes outlived the test session:\n  " + "\n  ".join(map(str, leaked)), red=True
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
