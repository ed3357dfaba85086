"""Cost of the conformance suite itself: wall time of `python -m conformance` with -n 1 and -n 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

from conformance.isolation import Sandbox

SUITE_TIMEOUT = 3600.0


def one(workers: int, log: Callable[[str], None]) -> dict[str, Any]:
    """Run the whole suite against the reference runner once; wall time, exit status and outcome counts."""
    sb = Sandbox.create(prefix="dkb-suite-")
    try:
        report = tempfile.mkdtemp(prefix="report-", dir=sb.root)
        env = sb.env()
        env.pop("DK_CONFORMANCE_RUN", None)
        t0 = time.monotonic()
        p = subprocess.run(
            [sys.executable, "-m", "conformance", "-n", str(workers), "--report", report],
            env=env,
            cwd=os.getcwd(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=SUITE_TIMEOUT,
        )
        wall = time.monotonic() - t0
        summary: dict[str, Any] = {}
        try:
            with open(os.path.join(report, "conformance-report.json")) as f:
                summary = json.load(f).get("summary", {})
        except (OSError, ValueError):
            pass
        tail = [ln for ln in p.stdout.splitlines() if ln.strip()][-1:]
        log(f"  suite -n {workers}: {wall:.0f}s, exit {p.returncode}, {tail[0] if tail else ''}")
        return {
            "workers": workers,
            "wall_s": wall,
            "exit_code": p.returncode,
            "summary": summary,
            "last_line": tail[0] if tail else "",
        }
    finally:
        sb.cleanup()


def run(workers: list[int], log: Callable[[str], None]) -> dict[str, Any]:
    return {"runs": [one(w, log) for w in workers]}
