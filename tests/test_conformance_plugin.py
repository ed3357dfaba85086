"""The conformance plugin itself: reports written, MUST/SHOULD gate, smoke stage, inert for other tests.

Each case runs a separate pytest process (pytester) with the plugin loaded from its entry point.
"""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

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
