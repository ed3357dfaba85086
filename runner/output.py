"""Every verb's output, one way: with --json exactly one JSON document on stdout, else human text; errors
are one `dispatch: CODE: message` line on stderr (and the contract's error document under --json)."""

from __future__ import annotations

import json
import sys
from typing import Any

from runner.contract import DispatchError


def document(doc: Any) -> None:
    """One JSON document, one line, flushed (a follower may read it before we exit)."""
    sys.stdout.write(json.dumps(doc) + "\n")
    sys.stdout.flush()


def emit(doc: Any, as_json: bool, human: str | None) -> None:
    """The document under --json, else the human rendering (nothing when it is empty)."""
    if as_json:
        document(doc)
    elif human:
        sys.stdout.write(human if human.endswith("\n") else human + "\n")
        sys.stdout.flush()


def say(line: str) -> None:
    """A progress or warning line for the person watching: stderr, so --json stdout stays one document."""
    print(line, file=sys.stderr, flush=True)


def error(err: DispatchError, as_json: bool) -> int:
    """Report a refusal or failure; returns its exit status."""
    if as_json:
        document(err.to_json())
    say(f"dispatch: {err.code}: {err.message}")
    return err.exit_status
