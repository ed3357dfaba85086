"""The result checks (P05) judge result reading only: an agent that boots slowly is no P05 failure.

CI under CPU hogs: the crafted panepid (flawless) failed P05.partial-result.* because its positive
control, an agent writing a complete result, ended `hung/heartbeat_stale`: with the suite's default
knobs (stale 0.6 s + grace 3 s) an agent whose first heartbeat comes later than 3.6 s after its start is
hung for any dispatcher, and the check blamed that on the result file not being read. Forced here with
no load: the reference behind a shim that starts every agent with `--slow-start 6` (it sits in `sh`
for 6 s before its first heartbeat, what a starved boot does) must still pass every P05 check.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pytest
from test_known_bad_caught import run_checks

pytestmark = pytest.mark.slow

REFERENCE = str(Path(sys.executable).with_name("dispatch"))
SLOW_BOOT_S = 6.0  # > stale + grace (3.6 s) with a margin a loaded machine cannot close

# The shim: `start ... -- AGENT ARGS` becomes `start ... -- AGENT --slow-start S ARGS` (fake agents only).
SHIM = r"""
import os, sys

REF, SLOW, ARGS = sys.argv[1], sys.argv[2], sys.argv[3:]
if ARGS[:1] == ["start"] and "--" in ARGS:
    i = ARGS.index("--") + 1
    if "fake" in os.path.basename(ARGS[i]) or ARGS[i + 1 : i + 3] == ["-m", "fake_agents.generic"]:
        at = i + 1 if "fake" in os.path.basename(ARGS[i]) else i + 3
        ARGS[at:at] = ["--slow-start", SLOW]
os.execv(REF, [REF, *ARGS])
"""

P05 = ["P05.partial-result.chunked", "P05.partial-result.truncated", "P05.partial-result.empty",
       "P05.result.complete"]  # fmt: skip


def test_result_checks_pass_with_agents_that_boot_slower_than_stale_plus_grace(tmp_path: Path) -> None:
    shim = tmp_path / "slow_boot.py"
    shim.write_text(SHIM)
    impl = shlex.join([sys.executable, str(shim), REFERENCE, f"{SLOW_BOOT_S:g}"])
    report, tail = run_checks(impl, P05, tmp_path / "report")
    assert report.smoke.get("ok"), report.smoke
    bad = {cid: report.outcome(cid) for cid in P05 if report.outcome(cid) != "passed"}
    assert not bad, f"a slow agent boot failed result checks: {bad}\n{tail}"
