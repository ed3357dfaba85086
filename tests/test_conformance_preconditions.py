"""A check fails only on its own pitfall: lacking another check's precondition, it blocks (or passes).

Each case runs the real suite against a tiny crafted dispatcher: the reference behind a filter that
changes exactly one thing in its JSON answers (drops `agent_pid`, `log_path`, `signal` or `result`, or
loses every task's outcome as a peer that reads no exit status does). Found wrong on real third-party
dispatchers (docs/implementations.md): P10.exit-recorded failed on a null agent_pid (P01's),
P03.done-marker on a null signal (P10's), P04.* on a null log_path (allowed by task.json), P03.log.* and
P11.long-state-dir on a lost outcome (P10's). That the same checks still fail their own known-bads and
pass the reference is tests/test_known_bad_caught.py.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pytest
from test_known_bad_caught import run_checks, unrunnable

pytestmark = pytest.mark.slow

REFERENCE = str(Path(sys.executable).with_name("dispatch"))

# The filter: run the reference, rewrite every task object (a dict with "task_id") in its JSON stdout.
FILTER = r"""
import json, subprocess, sys

MODE, REF, ARGS = sys.argv[1], sys.argv[2], sys.argv[3:]


def fix(o):
    if isinstance(o, list):
        return [fix(x) for x in o]
    if not isinstance(o, dict):
        return o
    o = {k: fix(v) for k, v in o.items()}
    if "task_id" not in o:
        return o
    if MODE in ("agent_pid", "log_path", "signal", "result") and MODE in o:
        o[MODE] = None
    if MODE == "lost_outcome" and o.get("state") == "succeeded":
        o.update(state="crashed", reason="exit_unknown", exit_code=None, result=None)
    return o


cp = subprocess.run([REF, *ARGS], stdout=subprocess.PIPE)
out = cp.stdout
try:
    out = (json.dumps(fix(json.loads(out))) + "\n").encode()
except ValueError:
    pass
sys.stdout.buffer.write(out)
sys.exit(cp.returncode)
"""


def filtered(tmp_path: Path, mode: str) -> str:
    """The command prefix of the reference whose JSON answers lack exactly `mode`."""
    script = tmp_path / "filter.py"
    script.write_text(FILTER)
    return shlex.join([sys.executable, str(script), mode, REFERENCE])


CASES = {
    # mode: ({check id: expected outcome}, precondition)
    "agent_pid": (
        {
            "P10.exit-recorded.exit0": "passed",
            "P10.exit-recorded.exit3": "passed",
            "P01.agent-pid.journaled": "failed",
        },
        "agent_pid is P01's",
    ),
    "signal": ({"P03.done-marker.ignored": "passed", "P10.exit-recorded.sigkill": "failed"}, "P10's"),
    "log_path": (
        {
            "P04.stop.releases-log": "blocked",
            "P04.session-killed.releases-log": "blocked",
            "P04.label-reuse.fresh-log": "blocked",
        },
        "log_path may be null",
    ),
    "lost_outcome": (
        {
            "P03.log.plain-utf8": "blocked",
            "P03.log.burst-kept": "blocked",
            "P11.long-state-dir.default-socket": "blocked",
            "P10.exit-recorded.exit0": "failed",
        },
        "the outcome is P10's",
    ),
}


@pytest.mark.parametrize("mode", sorted(CASES))
def test_check_judges_its_own_pitfall_only(mode: str, tmp_path: Path) -> None:
    expected, why = CASES[mode]
    report, tail = run_checks(filtered(tmp_path, mode), sorted(expected), tmp_path)
    # A check this environment cannot run (e.g. no room for a socket under a long TMPDIR) judges nothing.
    cannot = unrunnable(report, expected)
    expected = {cid: o for cid, o in expected.items() if cid not in cannot}
    got = {cid: report.outcome(cid) for cid in expected}
    assert got == expected, f"without {mode} ({why}): {got}\n{tail}"
    for row in report.results:
        if row.outcome == "blocked":
            assert "blocked" in row.message and "covered by" in row.message, row.message


def test_no_result_is_worded_as_such(tmp_path: Path) -> None:
    report, tail = run_checks(filtered(tmp_path, "result"), ["P05.result.complete"], tmp_path)
    assert report.outcome("P05.result.complete") == "failed", tail
    (row,) = [r for r in report.results if r.check_id == "P05.result.complete"]
    assert "no result returned" in row.message and "partial" not in row.message, row.message


def test_hung_while_the_agent_beat_all_along_is_a_failure_not_a_slow_boot() -> None:
    """Pure rule of conformance.checks._boot: `hung` needs a silence of stale+grace before it."""
    from types import SimpleNamespace

    from conformance.checks._boot import _assert_a_silence_allowed_it

    def agent(*beats: float) -> SimpleNamespace:
        return SimpleNamespace(all=lambda name: [SimpleNamespace(mono=b) for b in beats])

    with pytest.raises(AssertionError, match="beat all along"):
        _assert_a_silence_allowed_it(agent(1.0, 2.0, 3.0, 4.0, 5.0), 0.0, 5.5, 5.0)
    _assert_a_silence_allowed_it(agent(), 0.0, 9.3, 5.0)  # never beat: a slow boot (blocked)
    _assert_a_silence_allowed_it(agent(6.0, 6.1), 0.0, 9.3, 5.0)  # booted after stale+grace
    _assert_a_silence_allowed_it(agent(1.0, 1.1), 0.0, 9.3, 5.0)  # then fell silent for 8.2 s
