"""Exit statuses and error codes for the runner's verbs: re-exported from runner.contract, their one home."""

from __future__ import annotations

from runner.contract import (
    CODES,
    EXIT_BAD_INPUT,
    EXIT_ENV,
    EXIT_INTERNAL,
    EXIT_OK,
    EXIT_TIMEOUT,
    DispatchError,
)

__all__ = ["CODES", "EXIT_BAD_INPUT", "EXIT_ENV", "EXIT_INTERNAL", "EXIT_OK", "EXIT_TIMEOUT", "DispatchError"]
