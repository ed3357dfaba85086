"""The conformance suite can fail: each known-bad fails the checks aimed at its flaw; the reference passes them.

Each case runs the real suite (``pytest conformance/checks``) in a subprocess against one implementation,
targeted with ``-k`` to the check ids in ``KNOWN_BAD[name].checks``, and reads the JSON report. The
subprocesses inherit this run's ``DK_CONFORMANCE_RUN`` directory, so serial (timing-sensitive) checks
of parallel cases still never overlap.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conformance.harness import TERMINAL, Impl
from conformance.isolation import Sandbox
from conformance.known_bad import KNOWN_BAD
from conformance.known_bad.crafted import impl as crafted_impl
from conformance.report import Report
from conformance.timing import Knobs
from faults.tmuxfault import freeze_server

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = shlex.quote(str(Path(sys.executable).with_name("dispatch")))
RUN_TIMEOUT = 900.0

pytestmark = pytest.mark.slow


def run_checks(impl: str, ids: list[str], out: Path) -> tuple[Report, str]:
    """Run the checks `ids` against `impl`; return the report and the tail of the output."""
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "conformance/checks",
        "-q",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:xdist",
        "--dispatch-impl",
        impl,
        "--dispatch-report",
        str(out),
        "-k",
        " or ".join(ids),
    ]
    cp = subprocess.run(
        cmd, cwd=ROOT, capture_output=True, text=True, timeout=RUN_TIMEOUT, env=dict(os.environ)
    )
    tail = "\n".join((cp.stdout + cp.stderr).splitlines()[-25:])
    assert (out / "conformance-report.json").exists(), f"no report written:\n{tail}"
    return Report.load(out), tail


AIMED = sorted(n for n, k in KNOWN_BAD.items() if k.checks)


@pytest.mark.parametrize("name", AIMED)
def test_known_bad_is_caught(name: str, tmp_path: Path) -> None:
    kb = KNOWN_BAD[name]
    report, tail = run_checks(kb.impl_str, list(kb.checks), tmp_path)
    assert report.smoke.get("ok"), f"{name}: smoke failed: {report.smoke.get('message')}"
    missed = {cid: report.outcome(cid) for cid in kb.checks if report.outcome(cid) not in ("failed", "error")}
    assert not missed, f"{name} ({kb.pitfall}: {kb.description}) was not caught by {missed}\n{tail}"


AIMED_IDS = sorted({c for k in KNOWN_BAD.values() for c in k.checks})
# the reference runs every aimed check once, split by pitfall group so xdist spreads the groups
REF_GROUPS = {
    "P01-P05": ("P01", "P02", "P03", "P04", "P05"),
    "P06-P10": ("P06", "P07", "P08", "P09", "P10"),
    "P11-P15": ("P11", "P12", "P13", "P14", "P15"),
    "EX": ("EX",),
}


def test_reference_groups_cover_every_aimed_check() -> None:
    grouped = {c for prefixes in REF_GROUPS.values() for c in AIMED_IDS if c.split(".")[0] in prefixes}
    assert grouped == set(AIMED_IDS)


@pytest.mark.parametrize("group", sorted(REF_GROUPS))
def test_reference_passes_the_aimed_checks(group: str, tmp_path: Path) -> None:
    ids = [c for c in AIMED_IDS if c.split(".")[0] in REF_GROUPS[group]]
    report, tail = run_checks(REFERENCE, ids, tmp_path)
    assert report.smoke.get("ok"), report.smoke
    bad = {cid: report.outcome(cid) for cid in ids if report.outcome(cid) != "passed"}
    assert not bad, f"the reference does not pass checks the known-bads are measured by: {bad}\n{tail}"


def test_panepid_kill0_ends_a_task_whose_pane_process_is_an_unreaped_zombie(tmp_path: Path) -> None:
    """kill0's flaw is P02's (no start time) only: an exited agent left a zombie by tmux still ends.

    tmux 3.3a at times never reaps an exited pane process (pane_dead=1, no pane_dead_status; measured
    under load); `kill -0` on that zombie kept the smoke's trivial task running past 20 s, so
    panepid_kill0 failed the smoke instead of P02 (CI). Forced here: the server is SIGSTOPped while the
    agent exits, so the zombie stays unreaped for the whole wait.
    """
    sb = Sandbox.create()
    try:
        env = {**sb.env(), **Knobs(stale=0, grace=0.6, max_lifetime=120).env()}
        impl = Impl(shlex.join(crafted_impl("kill0")), env, scratch=sb.root / "in", workdir=sb.workdir)
        go = tmp_path / "go"
        wait_go = f"import os, time\nwhile not os.path.exists({str(go)!r}): time.sleep(0.02)"
        impl.start("t1", [sys.executable, "-c", wait_go])
        assert impl.wait_for_state("t1", "running", 30).matched
        with freeze_server(sb.socket):
            go.touch()
            poll = impl.wait_for_state("t1", TERMINAL, 30)
        assert (poll.state, poll.task.get("exit_code")) == ("succeeded", 0), poll.task
        end = time.monotonic() + 30  # the monitor ends by itself once its tmux cleanup got through
        while sb.leaks() and time.monotonic() < end:
            time.sleep(0.1)
    finally:
        subprocess.run(["tmux", "-S", str(sb.socket), "kill-server"], capture_output=True, timeout=10)
        leaked = sb.cleanup()
    assert not leaked, leaked
