"""faults.Unsupported is pytest's skip outcome, so an injector that cannot apply skips the test."""

from __future__ import annotations

import pytest

import faults


def test_unsupported_is_a_skip() -> None:
    e = faults.Unsupported("no loop devices")
    assert isinstance(e, pytest.skip.Exception)
    assert e.reason == str(e) == e.msg == "no loop devices"


def test_lazy_exports() -> None:
    for name in faults.__all__:
        assert getattr(faults, name) is not None
