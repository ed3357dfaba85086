"""The conformance plugin itself: reports written, MUST/SHOULD gate, smoke stage, inert for other tests.

Each case runs a separate pytest process (pytester) with the plugin loaded from its entry point.
"""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from conformance.report import JSON_NAME, MD_NAME, Report

pytest_plugins = ["pytester"]

CHECKS = textwrap.dedent(
    """
    from conformance.registry import check

    @check(id="P05.demo.must-fails", level="MUST", pitfall="P05", reason="write the result atomically")
    def test_must_fails():
        assert False, "result was partial"

    @check(id="P05.demo.should-fails", level="SHOULD", pitfall="P05", reason="strip ANSI")
    def test_should_fails():
        assert False, "log has ESC"

    @check(id="P10.demo.passes", level="MUST", pitfall="P10", reason="record exit codes")
    def test_passes():
        pass
    """
)

ONLY_SHOULD = textwrap.dedent(
    """
    from conformance.registry import check

    @check(id="P03.demo.should-fails", level="SHOULD", pitfall="P03", reason="strip ANSI")
    def test_should_fails():
        assert False, "log has ESC"

    @check(id="P03.demo.passes", level="MUST", pitfall="P03", reason="ignore done markers")
    def test_passes():
        pass
    """
)

USES_IMPL = textwrap.dedent(
    """
    from conformance.registry import check

    @check(id="P01.demo.one", level="MUST", pitfall="P01", reason="x")
    def test_one(dispatch):
        raise AssertionError("must not run: the smoke stage failed")

    @check(id="P01.demo.two", level="MUST", pitfall="P01", reason="x")
    def test_two(dispatch):
        raise AssertionError("must not run: the smoke stage failed")
    """
)


def _run(pytester: pytest.Pytester, source: str, *args: str) -> tuple[pytest.RunResult, Path]:
    pytester.makepyfile(test_checks=source)
    report = pytester.path / "rep"
    res = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--dispatch-report", str(report), *args)
    return res, report


def test_must_failure_fails_run_and_reports_are_written(pytester: pytest.Pytester) -> None:
    res, rep = _run(pytester, CHECKS)
    assert res.ret == 1
    out = res.stdout.str()
    assert "| P05.demo.must-fails | MUST | FAIL |" in out
    assert "fix: write the result atomically" in out
    report = Report.load(rep / JSON_NAME)
    rows = {r.check_id: r for r in report.results}
    assert rows["P05.demo.must-fails"].outcome == "failed"
    assert rows["P05.demo.must-fails"].message == "result was partial"
    assert rows["P05.demo.should-fails"].outcome == "failed"
    assert rows["P10.demo.passes"].outcome == "passed"
    assert report.summary()["gating_failures"] == ["P05.demo.must-fails"]
    assert not report.ok
    doc = json.loads((rep / JSON_NAME).read_text())
    assert {"check_id", "pitfall", "level", "outcome", "latency_ms", "message", "duration_s"} <= set(
        doc["results"][0]
    )
    assert "summary" in doc and "implementation" in doc
    md = (rep / MD_NAME).read_text()
    assert "**P05**" in md and "P05.demo.must-fails" in md
    assert (rep / "junit.xml").exists()


def test_should_failure_passes_at_must_level_and_fails_at_should(pytester: pytest.Pytester) -> None:
    res, rep = _run(pytester, ONLY_SHOULD)
    assert res.ret == 0, res.stdout.str()
    assert Report.load(rep).by_id()["P03.demo.should-fails"].outcome == "failed"
    res, rep = _run(pytester, ONLY_SHOULD, "--dispatch-level", "should")
    assert res.ret == 1


@pytest.mark.parametrize(
    "impl, expect",
    [
        ("false", "exit 1"),
        (f"{sys.executable} -c \"print('hello, not json')\"", "not JSON"),
        ("/nonexistent/dispatcher", "not an executable"),
    ],
)
def test_smoke_failure_is_one_clear_line(pytester: pytest.Pytester, impl: str, expect: str) -> None:
    res, rep = _run(pytester, USES_IMPL, "--dispatch-impl", impl, "-rs")
    assert res.ret == 1
    out = res.stdout.str()
    smoke_lines = [ln for ln in out.splitlines() if ln.startswith("SMOKE FAILED:")]
    assert len(smoke_lines) == 1 and expect in smoke_lines[0], out
    assert "must not run" not in out
    assert "2 skipped" in out
    report = Report.load(rep)
    assert report.smoke["ok"] is False and expect in report.smoke["message"]
    assert {r.outcome for r in report.results} == {"skipped"}


def test_plugin_is_inert_for_other_tests(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_plain="def test_plain():\n    assert True\n")
    res = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    assert res.ret == 0
    assert "dispatch conformance" not in res.stdout.str()


def test_check_ids_select_with_k(pytester: pytest.Pytester) -> None:
    res, rep = _run(pytester, CHECKS, "-k", "P10.demo")
    assert res.ret == 0
    assert [r.check_id for r in Report.load(rep).results] == ["P10.demo.passes"]


@pytest.mark.slow
def test_run_suite_against_reference(tmp_path: Path) -> None:
    """A real check against the reference runner through the public API the kit's tests use."""
    from conformance.suite import run_suite

    report = run_suite(None, k="P10.exit-recorded", report_dir=tmp_path, workers=0)
    assert report.exit_code == 0, (tmp_path / "pytest.log").read_text()[-2000:]
    assert report.ok and report.outcome("P10.exit-recorded") == "passed"
    assert report.implementation.get("implementation") == "dispatch"


@pytest.mark.slow
def test_run_suite_with_workers_leaves_nothing_in_tmpdir(tmp_path: Path) -> None:
    """xdist workers make pytest create $TMPDIR/pytest-of-USER/pytest-N; run_suite (the matrix's path,
    as `dispatch conformance` already did) gives them a basetemp in the report dir and removes it."""
    import os
    import shutil
    import tempfile

    from conformance.suite import run_suite

    tmp = Path(tempfile.mkdtemp(prefix="rs-"))  # short: the checks' tmux sockets live under it (108 bytes)
    try:
        rdir = tmp_path / "report"
        env = dict(os.environ, TMPDIR=str(tmp))
        report = run_suite(None, k="P10.exit-recorded.exit0", report_dir=rdir, workers=2, env=env)
        assert report.exit_code == 0, (rdir / "pytest.log").read_text()[-2000:]
        assert not [p.name for p in tmp.iterdir() if p.name.startswith("pytest-of-")]
        assert not (rdir / "basetemp").exists()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


BLOCKED = textwrap.dedent(
    """
    from conformance.context import Blocked
    from conformance.registry import check

    @check(id="P09.demo.needs-success", level="MUST", pitfall="P09", reason="end the whole tree")
    def test_needs_success():
        raise Blocked("task t1 must succeed first", "P10.exit-recorded.exit0", "it ended 'failed'")

    @check(id="P10.demo.passes", level="MUST", pitfall="P10", reason="record exit codes")
    def test_passes():
        pass
    """
)


def test_blocked_precondition_is_blocked_not_failed(pytester: pytest.Pytester) -> None:
    """An unmet precondition is its own outcome in the terminal, the reports and the exit status."""
    res, rep = _run(pytester, BLOCKED)
    out = res.stdout.str()
    assert "| P09.demo.needs-success | MUST | BLOCKED |" in out, out
    assert "covered by P10.exit-recorded.exit0" in out
    assert "fix: end the whole tree" not in out, "a blocked check must not point at a fix of its pitfall"
    assert "1 blocked" in out and "failed" not in out.splitlines()[-1]
    report = Report.load(rep)
    row = report.by_id()["P09.demo.needs-success"]
    assert row.outcome == "blocked" and not row.bad
    assert row.message.startswith("blocked: task t1 must succeed first")
    assert report.summary()["gating_failures"] == []
    assert report.summary()["blocked"] == {"P09.demo.needs-success": row.message}
    # not shown to conform either: the profile is incomplete, the run says so and exits 1
    assert [p.verdict for p in report.profiles()] == ["INCOMPLETE"]
    assert res.ret == 1
    assert "NOT TESTED: core: INCOMPLETE" in out
    md = (rep / MD_NAME).read_text()
    assert "| P09.demo.needs-success | MUST | BLOCKED |" in md and "| core | INCOMPLETE |" in md


KEEP_GOING = textwrap.dedent(
    """
    from conformance.registry import check

    @check(id="P01.demo.starts", level="MUST", pitfall="P01", reason="x")
    def test_starts(dispatch):
        dispatch.impl.start("t1", ["true"])

    @check(id="P08.demo.sends", level="MUST", pitfall="P08", reason="x", needs=("send",))
    def test_sends(dispatch):
        raise AssertionError("must not run: capabilities are unknown")

    @check(id="P10.demo.own-failure", level="MUST", pitfall="P10", reason="record exit codes")
    def test_own_failure(dispatch):
        assert False, "its own pitfall"
    """
)


def test_keep_going_reports_every_check(pytester: pytest.Pytester) -> None:
    """The smoke gate stays the default; --dispatch-keep-going runs every check, blocking what needs
    the behaviour the smoke showed missing, and still failing a check on its own pitfall."""
    res, rep = _run(pytester, KEEP_GOING, "--dispatch-impl", "false")
    assert res.ret == 1 and {r.outcome for r in Report.load(rep).results} == {"skipped"}
    res, rep = _run(pytester, KEEP_GOING, "--dispatch-impl", "false", "--dispatch-keep-going")
    out = res.stdout.str()
    assert res.ret == 1
    assert any(ln.startswith("SMOKE FAILED: capabilities is broken") for ln in out.splitlines()), out
    rows = Report.load(rep).by_id()
    assert rows["P01.demo.starts"].outcome == "blocked", rows["P01.demo.starts"]
    assert "covered by the smoke stage" in rows["P01.demo.starts"].message
    assert rows["P08.demo.sends"].outcome == "blocked"
    assert rows["P10.demo.own-failure"].outcome == "failed"
    assert "must not run" not in out
    assert "| P01.demo.starts | MUST | BLOCKED |" in out


def _row(check_id: str, outcome: str, profile: str, message: str = "") -> Any:
    from conformance.report import CheckResult

    return CheckResult(check_id, check_id.split(".")[0], "MUST", outcome, message=message, profile=profile)


def test_no_capabilities_never_conforms_plainly() -> None:
    """A dispatcher that lists no capability gets a verdict on what was tested and says what was not."""
    from conformance.report import Report as R

    rows = [
        _row("P10.exit-recorded.exit0", "passed", "core"),
        _row("P05.result.complete", "passed", "results"),
        *(
            _row(f"P12.demo.c{i}", "blocked", "supervision", "blocked: capability heartbeat not listed")
            for i in range(3)
        ),
        _row("EX.send.demo", "blocked", "interactive", "blocked: capability send not listed"),
    ]
    report = R(implementation={"implementation": "nocaps", "capabilities": []}, results=rows)
    head = report.headline()
    assert report.ok
    assert "CONFORMS at level MUST to core, results only" in head
    assert "NOT TESTED: supervision: NOT TESTED (capability heartbeat, max_lifetime, reap not listed" in head
    assert "interactive: NOT TESTED (capability send not listed" in head
    full = R(
        implementation={
            "implementation": "all",
            "capabilities": ["heartbeat", "max_lifetime", "reap", "send"],
        },
        results=[r for r in rows if r.outcome == "passed"],
    )
    assert "CONFORMS at level MUST (profiles core, results)" in full.headline()
    assert "NOT TESTED" not in full.headline()


NOCAPS_CHECKS = textwrap.dedent(
    """
    from conformance.registry import check

    @check(id="P10.demo.core", level="MUST", pitfall="P10", reason="x")
    def test_core(dispatch):
        pass

    @check(id="P07.demo.needs-success", level="MUST", pitfall="P07", reason="name sessions uniquely")
    def test_needs_success(dispatch):
        dispatch.require_succeeded({"task_id": "t1", "state": "failed", "reason": "exit_nonzero"})
        raise AssertionError("must not run on")

    @check(id="P08.demo.send", level="MUST", pitfall="P08", reason="x", needs=("send",))
    def test_send(dispatch):
        raise AssertionError("must not run: send is not listed")
    """
)


def test_real_fixture_blocks_and_a_capability_less_dispatcher_is_not_tested(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    """Through the real `dispatch` fixture and smoke stage: require_succeeded blocks; a dispatcher
    listing no capability conforms to what was tested only, and the summary line says what was not."""
    wrapper = tmp_path / "nocaps.sh"
    ref = Path(sys.executable).with_name("dispatch")
    caps = '{"contract": "1", "implementation": "nocaps", "version": "0", "tmux_min": "3.2a", "capabilities": []}'
    wrapper.write_text(
        f'#!/bin/bash\nif [ "$1" = capabilities ]; then echo \'{caps}\'; exit 0; fi\nexec {ref} "$@"\n'
    )
    wrapper.chmod(0o755)
    res, rep = _run(pytester, NOCAPS_CHECKS, "--dispatch-impl", str(wrapper))
    out = res.stdout.str()
    report = Report.load(rep)
    rows = report.by_id()
    assert rows["P10.demo.core"].outcome == "passed", out
    assert rows["P07.demo.needs-success"].outcome == "blocked"
    assert "covered by P10.exit-recorded.exit0" in rows["P07.demo.needs-success"].message
    assert rows["P08.demo.send"].outcome == "blocked"
    assert "capability send" in rows["P08.demo.send"].message
    verdicts = {p.name: p.verdict for p in report.profiles()}
    assert verdicts == {"core": "INCOMPLETE", "interactive": "NOT TESTED"}
    assert "must not run" not in out
    head = [ln for ln in out.splitlines() if ln.startswith("nocaps:")]
    assert (
        head
        and "NOT TESTED: " in head[0]
        and "interactive: NOT TESTED (capability send not listed" in head[0]
    )
    assert res.ret == 1  # core is incomplete (a blocked MUST): not shown to conform
