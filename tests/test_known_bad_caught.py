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
from collections.abc import Iterable
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
        # No check uses hypothesis or libtmux's fixtures, but their plugins cost every run: hypothesis is
        # imported at the session's end (3-4 s at load 12), libtmux's plugin ~0.6 s; paid by each of this
        # file's ~52 runs and the crafted ones (measured in the commits).
        "-p",
        "no:hypothesispytest",
        "-p",
        "no:libtmux",
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


def unrunnable(report: Report, ids: Iterable[str]) -> dict[str, str]:
    """Checks of `ids` skipped because this environment cannot apply their fault (an injector's
    Unsupported: a missing privilege or tool, e.g. no PID namespace as an ordinary user in a container),
    with the reason: what they would prove cannot be measured here, which is neither a catch nor a miss."""
    out = {}
    for cid in ids:
        rows = [r for r in report.results if r.check_id == cid or r.check_id.startswith(cid + ".")]
        why = [r.message for r in rows if "Unsupported" in r.message]
        if report.outcome(cid) == "skipped" and why:
            out[cid] = why[0]
    return out


def skip_if_unrunnable(report: Report, left: Iterable[str], what: str) -> None:
    """Skip, naming the missing precondition, when every check in `left` (those without the awaited
    outcome) is one this environment cannot run; anything else is left to the caller's assert."""
    left = set(left)
    cannot = unrunnable(report, left)
    if left and left <= set(cannot):
        pytest.skip(f"{what}: {', '.join(sorted(left))} cannot run here: {next(iter(cannot.values()))}")


def test_only_an_unsupported_injector_makes_a_check_unmeasurable() -> None:
    """A check skipped for a missing privilege is not a miss; one that passed or was skipped for any other
    reason (a capability the implementation does not list) still is."""
    from conformance.report import CheckResult

    def row(cid: str, outcome: str, msg: str = "") -> CheckResult:
        return CheckResult(cid, cid.split(".")[0], "MUST", outcome, message=msg)

    why = "faults.errors.Unsupported: cannot create a PID namespace here"
    report = Report(results=[row("P02.a", "skipped", why), row("P06.b.x", "skipped", why),
                             row("P06.b.y", "passed"), row("P07.c", "skipped", "capability send not listed"),
                             row("P08.d", "passed")])  # fmt: skip
    assert unrunnable(report, ["P02.a", "P06.b", "P07.c", "P08.d"]) == {"P02.a": why}
    with pytest.raises(pytest.skip.Exception, match="P02.a cannot run here: faults.errors.Unsupported"):
        skip_if_unrunnable(report, {"P02.a": "skipped"}, "kb")
    for left in ({"P02.a": "skipped", "P07.c": "skipped"}, {"P02.a": "skipped", "P08.d": "passed"}, {}):
        skip_if_unrunnable(report, left, "kb")  # returns: the caller's assert judges these


AIMED = sorted(n for n, k in KNOWN_BAD.items() if k.checks)


@pytest.mark.parametrize("name", AIMED)
def test_known_bad_is_caught(name: str, tmp_path: Path) -> None:
    kb = KNOWN_BAD[name]
    report, tail = run_checks(kb.impl_str, list(kb.checks), tmp_path)
    assert report.smoke.get("ok"), f"{name}: smoke failed: {report.smoke.get('message')}"
    missed = {cid: report.outcome(cid) for cid in kb.checks if report.outcome(cid) not in ("failed", "error")}
    skip_if_unrunnable(report, missed, f"{name} is not measurable here")
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
    cannot = unrunnable(report, bad)
    bad = {cid: o for cid, o in bad.items() if cid not in cannot}
    assert not bad, f"the reference does not pass checks the known-bads are measured by: {bad}\n{tail}"
    skip_if_unrunnable(report, cannot, f"the reference passed the rest of {group}")


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
