"""Input checks for every verb: pure functions that return the clean value or raise DispatchError."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

from runner.errors import DispatchError

TASK_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
MODEL_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,127}")


def task_id(value: str) -> str:
    if not isinstance(value, str) or not TASK_ID_RE.fullmatch(value):
        raise DispatchError("bad_task_id", f"bad task id {value!r}: must match {TASK_ID_RE.pattern}")
    return value


def label(value: str | None) -> str | None:
    """1-128 printable characters; no C0/C1 controls, DEL, or line/paragraph separators."""
    if value is None:
        return None
    if not (1 <= len(value) <= 128):
        raise DispatchError("bad_label", f"label must be 1-128 characters (got {len(value)})")
    for ch in value:
        o = ord(ch)
        if o < 0x20 or 0x7F <= o <= 0x9F or ch in "\u2028\u2029" or 0xD800 <= o <= 0xDFFF:
            raise DispatchError("bad_label", f"label contains a control character (U+{o:04X})")
    return value


def model(value: str | None, allowlist: Sequence[str] | None) -> str | None:
    """A plain token, and in the allowlist when one is set (P15)."""
    if value is None:
        return None
    if not MODEL_RE.fullmatch(value):
        raise DispatchError("model_not_allowed", f"bad model name {value!r}: must be a plain token")
    if allowlist is not None and value not in allowlist:
        raise DispatchError("model_not_allowed", f"model {value!r} is not in DISPATCH_MODELS")
    return value


def argv(values: Sequence[str]) -> list[str]:
    out = list(values)
    if not out or out[0] == "":
        raise DispatchError("bad_argv", "empty argv: give the agent command after --")
    for a in out:
        if "\0" in a:
            raise DispatchError("bad_argv", "argv contains a NUL byte")
    return out


def cwd(value: str) -> str:
    if not value:
        raise DispatchError("bad_cwd", "empty --cwd")
    path = os.path.abspath(value)
    if not os.path.isdir(path):
        raise DispatchError("bad_cwd", f"--cwd {value!r} is not a directory")
    if not os.access(path, os.X_OK):
        raise DispatchError("bad_cwd", f"--cwd {value!r} is not accessible")
    return path


def readable_file(value: str, code: str, what: str) -> str:
    """An existing regular file we can open for reading (read errors surface as `code`)."""
    path = os.path.abspath(value) if value else ""
    if not path or not os.path.isfile(path):
        raise DispatchError(code, f"{what} {value!r} is not a regular file")
    try:
        with open(path, "rb"):
            pass
    except OSError as e:
        raise DispatchError(code, f"{what} {value!r} is unreadable: {e.strerror}") from None
    return path


def timeout(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        v = float(value)
    except ValueError:
        raise DispatchError("bad_usage", f"--timeout {value!r} is not a number of seconds") from None
    if v != v or v < 0 or v == float("inf"):
        raise DispatchError("bad_usage", f"--timeout {value!r} must be a finite number >= 0")
    return v
