"""nonatomic_read (P5, P12): the result file is read once, and whatever is there counts as complete.

What it does wrong: no whole-document check, no retry: an empty file is a valid (null) result, a
truncated or half-written file is accepted as-is (kept as raw text), and the first look at a file being
written in chunks is the one that sticks. An agent that exits 0 with an empty or truncated result is
``succeeded`` instead of ``failed/invalid_result``.
Caught by: the P05 partial/empty/chunked result checks.
"""

from __future__ import annotations

import json
from typing import Any

from conformance.known_bad import _seam


def read_once(path: str) -> tuple[str, Any]:
    from runner import states

    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return states.ABSENT, None
    try:
        return states.VALID, json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return states.VALID, (data.decode("utf-8", errors="replace") if data.strip() else None)


def apply() -> None:
    from runner import wrapper

    wrapper.read_result = read_once
    wrapper.read_result_settled = read_once


def main(argv: list[str]) -> int:
    return _seam.run("nonatomic_read", argv, apply, apply)
