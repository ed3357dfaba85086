"""Crafted dispatchers written from scratch in another architecture than the reference runner.

The seam known-bads (conformance/known_bad/*.py) are the reference with one seam replaced, so the checks
they prove only learned the reference's own failure modes. ``panepid.py`` here shares no code with
runner/: the agent *is* the pane's process (exec'd in place by a small gate, ``remain-on-exit`` keeps
its exit status in tmux), one detached monitor per task supervises it from outside tmux by PID + start
time, and every state change is one JSON file per task. With no flaw switched on it passes the suite;
``--flaw NAME`` turns on exactly one flaw (see ``panepid.FLAWS``), and each such command line is
registered as a known-bad in conformance/known_bad/__init__.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

PANEPID = Path(__file__).resolve().parent / "panepid.py"


def impl(flaw: str | None = None) -> list[str]:
    """The command prefix that runs panepid, with one flaw switched on (None: the correct one)."""
    return [sys.executable, str(PANEPID), *([f"--flaw={flaw}"] if flaw else [])]
