"""The pytest fixture: `mock_model` is a started MockModel, closed after the test.

Use it with `pytest_plugins = ["mock_model.fixture"]` (or import the fixture) and set `mock_model.script`.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mock_model.server import MockModel


@pytest.fixture
def mock_model() -> Iterator[MockModel]:
    """A mock model server on an ephemeral 127.0.0.1 port, for this test only."""
    with MockModel() as m:
        yield m
