"""Reading the agent's result file (P5): one look, and the settled read that retries a torn write.

Shared by the supervisor (runner.wrapper) and the reaper that records a lost supervisor's outcome, so
neither imports the other.
"""

from __future__ import annotations

import time

from runner import states

RESULT_RETRIES = (0.025, 0.05, 0.1, 0.2)  # P5: a torn read is retried before it counts as invalid


def read_result(path: str) -> tuple[str, object]:
    """One look at the result file: (absent|valid|invalid, value). Only a whole JSON document is valid."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return states.ABSENT, None
    except OSError:
        return states.INVALID, None
    if not data.strip():
        return states.INVALID, None
    import json  # here, not above: an idle supervisor (no result yet) never loads it

    try:
        return states.VALID, json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return states.INVALID, None


def read_result_settled(path: str) -> tuple[str, object]:
    """Read with backoff retries so a writer caught mid-write is not judged invalid too early (P5)."""
    kind, value = read_result(path)
    for delay in RESULT_RETRIES:
        if kind != states.INVALID:
            break
        time.sleep(delay)
        kind, value = read_result(path)
    return kind, value
