"""The crafted dispatcher (conformance/known_bad/crafted/panepid.py) is right apart from its one flaw.

A crafted known-bad proves a check only if the same from-scratch dispatcher WITHOUT the flaw passes
that check: then the catch is the flaw's, not the architecture's. Each crafted known-bad's measured
catch (it fails its checks) is tests/test_known_bad_caught.py; here the flawless panepid runs every
check a crafted known-bad is aimed at and must pass them all, on code that shares nothing with runner/.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
from test_known_bad_caught import run_checks, skip_if_unrunnable, unrunnable

from conformance.known_bad import CRAFTED_CAUGHT_BY, KNOWN_BAD, crafted
from conformance.known_bad.crafted.panepid import FLAWS

pytestmark = pytest.mark.slow

AIMED = sorted({c for checks in CRAFTED_CAUGHT_BY.values() for c in checks})


def test_every_flaw_is_a_registered_known_bad() -> None:
    assert set(CRAFTED_CAUGHT_BY) == set(FLAWS)
    for flaw in FLAWS:
        kb = KNOWN_BAD[f"panepid_{flaw}"]
        assert kb.checks and kb.impl == crafted.impl(flaw) and kb.description == FLAWS[flaw]


def test_flawless_panepid_passes_every_aimed_check(tmp_path: Path) -> None:
    report, tail = run_checks(shlex.join(crafted.impl()), AIMED, tmp_path)
    assert report.smoke.get("ok"), report.smoke
    bad = {cid: report.outcome(cid) for cid in AIMED if report.outcome(cid) != "passed"}
    cannot = unrunnable(report, bad)
    bad = {cid: o for cid, o in bad.items() if cid not in cannot}
    assert not bad, f"panepid without a flaw fails checks its flaws are measured by: {bad}\n{tail}"
    skip_if_unrunnable(report, cannot, "panepid without a flaw passed the rest")
