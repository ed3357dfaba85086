"""pytest plugin (entry point ``dispatch_conformance``): run the conformance checks against any dispatcher.

Loaded in every pytest run of the venv, so it stays inert unless conformance checks are collected:
its fixtures are only requested by checks, and the report, the terminal matrix and the exit-status
gate only engage when a result row carries ``@check`` metadata.

Options: ``--dispatch-impl CMD`` (default: the reference runner), ``--dispatch-level must|should``,
``--dispatch-report DIR`` (writes conformance-report.json, conformance-report.md and junit.xml),
``--dispatch-keep-going`` (run every check even when the smoke stage failed).

Outcomes: passed, failed, error, skipped, and ``blocked``: a precondition of the check is unmet
(conformance.context.Blocked), named with the check or capability that covers it.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from conformance.context import Blocked, Ctx
from conformance.harness import (
    TERMINAL,
    Capabilities,
    ContractViolation,
    Impl,
    ImplUnavailable,
    StartRefused,
    WaitFailed,
)
from conformance.isolation import Sandbox
from conformance.registry import MARK, SERIAL_MARK, CheckInfo, info_of, profile_of, result_id
from conformance.report import JUNIT_NAME, CheckResult, Report
from conformance.timing import Knobs

RUN_VAR = "DK_CONFORMANCE_RUN"  # a directory shared by the controller and xdist workers of one run
PROP = "dispatch_"  # prefix of the user_properties this plugin adds
SMOKE_TIMEOUT = 30.0


def default_impl() -> str:
    """The reference runner: the `dispatch` script next to this interpreter, else `python -m runner.cli`."""
    from runner.contract import reference_shell

    return reference_shell()


# ---------------------------------------------------------------------------------------------------
# options and configuration


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("dispatch conformance")
    g.addoption(
        "--dispatch-impl",
        default=None,
        metavar="CMD",
        help="dispatcher command prefix under test (shlex-split, run without a shell); "
        "default: the reference runner",
    )
    g.addoption(
        "--dispatch-level",
        default="must",
        choices=("must", "should"),
        help="which failed checks fail the run: MUST only (default) or MUST and SHOULD",
    )
    g.addoption("--dispatch-report", default=None, metavar="DIR", help="write conformance reports to DIR")
    g.addoption(
        "--dispatch-keep-going",
        action="store_true",
        default=False,
        help="run every check even when the smoke stage failed (checks needing what failed are blocked)",
    )


@dataclass
class _State:
    """Controller-side bookkeeping of one run."""

    impl: str
    level: str
    report_dir: str | None
    started: float = field(default_factory=time.monotonic)
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    other_failed: set[str] = field(default_factory=set)  # failed tests that are not conformance checks
    report: Report | None = None
    own_run_dir: str | None = None


_STATE = pytest.StashKey[_State]()


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{MARK}(info): a dispatch conformance check (conformance.registry.check)"
    )
    config.addinivalue_line(
        "markers", f"{SERIAL_MARK}: a conformance check that runs while no other check runs"
    )
    impl = config.getoption("--dispatch-impl") or default_impl()
    report_dir = config.getoption("--dispatch-report")
    state = _State(impl=impl, level=config.getoption("--dispatch-level"), report_dir=report_dir)
    config.stash[_STATE] = state
    if not _is_worker(config):
        # Workers inherit the environment of the controller, so they share this run directory.
        if not os.environ.get(RUN_VAR):
            os.environ[RUN_VAR] = os.path.join(tempfile.gettempdir(), "dkconf-" + secrets.token_hex(6))
            state.own_run_dir = os.environ[RUN_VAR]
        if report_dir and not getattr(config.option, "xmlpath", None):
            Path(report_dir).mkdir(parents=True, exist_ok=True)
            config.option.xmlpath = os.path.join(report_dir, JUNIT_NAME)
        config.pluginmanager.register(_Controller(config, state), "dispatch_conformance_controller")


def _run_dir() -> Path:
    d = Path(os.environ.get(RUN_VAR) or os.path.join(tempfile.gettempdir(), f"dkconf-pid{os.getpid()}"))
    d.mkdir(parents=True, exist_ok=True)
    return d


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        info = info_of(item)
        if info is not None:
            meta = {
                "check_id": result_id(item, info),
                "level": info.level,
                "pitfall": info.pitfall,
                "reason": info.reason,
                "profile": profile_of(info),
                "needs": list(info.needs),
            }
            item.user_properties.append((PROP + "check", meta))
            item.extra_keyword_matches.add(meta["check_id"])  # so `-k P05.partial-result` selects
    if any(_is_serial(it) for it in items):
        # Serial checks first, in one block: xdist hands consecutive items to a worker, which then runs
        # them back to back holding the exclusive lock in between (_serial_lock), instead of waiting
        # for the other worker's running check before each one (stable: the rest keep their order).
        items.sort(key=lambda it: not _is_serial(it))


def _is_serial(item: pytest.Item | None) -> bool:
    info = info_of(item) if item is not None else None
    return bool(info and info.serial)


# ---------------------------------------------------------------------------------------------------
# the smoke stage


@dataclass
class Smoke:
    ok: bool
    message: str
    capabilities: dict[str, Any] = field(default_factory=dict)
    duration_s: float = 0.0
    stage: str = ""  # what failed: impl | capabilities | start | wait | end ("" when ok)


def run_smoke(impl_cmd: str) -> Smoke:
    """Can the implementation start at all? `capabilities` + one trivial task; one line says what is wrong."""
    t0 = time.monotonic()

    def done(ok: bool, msg: str, caps: dict[str, Any] | None = None, stage: str = "") -> Smoke:
        return Smoke(ok, msg, caps or {}, round(time.monotonic() - t0, 3), stage)

    sb = Sandbox.create(prefix="dkc-smoke-")
    try:
        env = sb.env()
        env.update(Knobs(stale=0, grace=0.6, max_lifetime=SMOKE_TIMEOUT).env())
        try:
            impl = Impl(impl_cmd, env, scratch=sb.root / "inputs", workdir=sb.workdir)
        except ImplUnavailable as e:
            return done(False, f"cannot run the implementation `{impl_cmd}`: {e}", stage="impl")
        try:
            call = impl.run("capabilities", strict=False, timeout=SMOKE_TIMEOUT)
        except ImplUnavailable as e:
            return done(False, f"cannot run the implementation `{impl_cmd}`: {e}", stage="impl")
        if call.timed_out or call.exit_code != 0 or call.problem:
            return done(False, f"capabilities is broken: {call.describe()}", stage="capabilities")
        caps = call.doc
        argv = [sys.executable, "-c", "pass"]
        call = impl.start_call("smoke-1", argv, strict=False, timeout=SMOKE_TIMEOUT)
        if call.timed_out or call.exit_code != 0 or call.problem:
            return done(False, f"a trivial task cannot start: {call.describe()}", caps, "start")
        call = impl.run("wait", "smoke-1", "--timeout", "20", strict=False, timeout=SMOKE_TIMEOUT)
        if call.timed_out or call.problem or call.exit_code not in (0, 124):
            return done(False, f"`wait` on a trivial task is broken: {call.describe()}", caps, "wait")
        state = call.doc.get("state")
        if call.exit_code == 124 or state not in TERMINAL:
            return done(
                False, f"a trivial task (python -c pass) never ended: still {state!r} after 20s", caps, "end"
            )
        if state != "succeeded":  # it can start and end tasks: the checks will say what is wrong
            return done(True, f"a trivial task ended {state!r} (reason {call.doc.get('reason')!r})", caps)
        return done(True, "ok", caps)
    finally:
        _kill_server(sb)
        sb.cleanup()


def _kill_server(sb: Sandbox) -> None:
    if sb.socket.exists() and shutil.which("tmux"):
        from runner.tmux import Tmux, TmuxTimeout

        try:
            Tmux(socket_path=str(sb.socket), timeout=3).run("kill-server", check=False)
        except TmuxTimeout:
            pass  # frozen: cleanup() SIGKILLs it by marker


def _cached_smoke(impl_cmd: str) -> Smoke:
    """Run the smoke stage once per run, shared by xdist workers through the run directory."""
    d = _run_dir()
    with open(d / "smoke.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        cached = _read_smoke(impl_cmd)
        if cached:
            return Smoke(**{k: cached[k] for k in Smoke.__dataclass_fields__ if k in cached})
        smoke = run_smoke(impl_cmd)
        (d / "smoke.json").write_text(json.dumps({"impl": impl_cmd, **smoke.__dict__}))
        return smoke


@pytest.fixture(scope="session")
def dispatch_smoke(pytestconfig: pytest.Config) -> Smoke:
    """The smoke result for the implementation under test (run lazily, once)."""
    return _cached_smoke(pytestconfig.stash[_STATE].impl)


# ---------------------------------------------------------------------------------------------------
# the per-check fixture


# This worker's hold on the run's serial lock: {"file": open lock file, "exclusive": bool}. Kept from
# one serial check to the next when they run back to back; released after any other check.
_HELD: dict[str, Any] = {}


def _serial_lock(exclusive: bool) -> None:
    """Serial checks hold the run's lock exclusively; every other check holds it shared.

    Taken through a gate (held only while acquiring), so the lock is granted in arrival order: a
    serial check waits for the checks already running, never for every check that comes after it
    (flock alone lets shared holders hand the lock on to each other while the serial check's worker
    sits idle; seen as 80 s of waiting for one serial check under load). An exclusive hold is kept
    for the next check when that one is serial too; pytest_runtest_protocol releases it otherwise.
    """
    if _HELD and _HELD["exclusive"] == exclusive:
        return
    _release_serial_lock()
    d = _run_dir()
    f = open(d / "serial.lock", "w")  # held across checks: _release_serial_lock closes it
    with open(d / "serial.gate", "w") as gate:
        fcntl.flock(gate, fcntl.LOCK_EX)
        try:
            fcntl.flock(f, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        except BaseException:
            f.close()
            raise
        finally:
            fcntl.flock(gate, fcntl.LOCK_UN)
    _HELD.update(file=f, exclusive=exclusive)


def _release_serial_lock() -> None:
    f = _HELD.pop("file", None)
    _HELD.clear()
    if f is not None:
        fcntl.flock(f, fcntl.LOCK_UN)
        f.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Any:
    """After a check (teardown included): keep an exclusive hold only for a serial check up next."""
    try:
        return (yield)
    finally:
        if _HELD and not (_HELD["exclusive"] and _is_serial(nextitem)):
            _release_serial_lock()


@pytest.fixture
def dispatch(request: pytest.FixtureRequest, dispatch_smoke: Smoke) -> Iterator[Ctx]:
    """A check's world: sandbox, implementation, fake agents. Skips when the smoke stage failed."""
    item = request.node
    info: CheckInfo | None = info_of(item)
    keep_going = request.config.getoption("--dispatch-keep-going")
    if not dispatch_smoke.ok:
        item.user_properties.append((PROP + "smoke_failed", dispatch_smoke.message))
        if not keep_going:
            pytest.skip(f"smoke failed: {dispatch_smoke.message}")
        if dispatch_smoke.stage == "impl":
            raise Blocked("the implementation must run at all", "the smoke stage", dispatch_smoke.message)
    caps = Capabilities.from_doc(dispatch_smoke.capabilities)
    missing = [c for c in (info.needs if info else ()) if not caps.has(c)]
    if missing and dispatch_smoke.stage == "capabilities":
        raise Blocked("`capabilities --json` must work", "the smoke stage", dispatch_smoke.message)
    if missing:
        raise Blocked(
            f"the implementation does not list capability {', '.join(missing)}",
            f"profile {profile_of(info) if info else '?'}",
        )

    def record(key: str, value: Any) -> None:
        item.user_properties.append((PROP + key, value))

    smoke_blocks = None if dispatch_smoke.ok else dispatch_smoke

    _serial_lock(bool(info and info.serial))  # released after the check (pytest_runtest_protocol)
    sb = Sandbox.create(prefix="dkc-")
    ctx = Ctx(impl_cmd=request.config.stash[_STATE].impl, sandbox=sb, caps=caps, knobs=Knobs(), record=record)
    ctx.smoke_failed = smoke_blocks
    try:
        yield ctx
    finally:
        _kill_server(sb)
        leaked = sb.cleanup()
        if leaked:  # what survived the server's end: noted, judged by the P4/P9 checks
            record("leaks", [str(x) for x in leaked[:5]])


# ---------------------------------------------------------------------------------------------------
# reporting


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    rep = yield
    info = info_of(item)
    if info is None:
        return rep
    ctx = item.funcargs.get("dispatch") if hasattr(item, "funcargs") else None
    if rep.failed and call.excinfo is not None:
        blocked = _smoke_blocked(ctx, call.excinfo)
        if blocked is not None:  # keep-going after a failed smoke: what the smoke lacked, not this pitfall
            rep.outcome = "skipped"
            rep.longrepr = (str(item.path), item.location[1] or 0, str(blocked))
            rep.user_properties.append((PROP + "blocked", str(blocked)))
            return rep
    if rep.skipped and call.excinfo is not None and isinstance(call.excinfo.value, Blocked):
        rep.user_properties.append((PROP + "blocked", str(call.excinfo.value)))
        _add_details(rep, ctx, call.excinfo)
        return rep
    if rep.failed and call.excinfo is not None:
        msg = _one_line(call.excinfo)
        rep.user_properties.append((PROP + "message", msg))
        _add_details(rep, ctx, call.excinfo)
        rep.sections.append(
            (
                "dispatch conformance",
                f"{result_id(item, info)} [{info.level}] {info.pitfall}: fix: {info.reason}",
            )
        )
        if (
            rep.when == "call"
            and info.level == "SHOULD"
            and item.config.getoption("--dispatch-level") == "must"
        ):
            # A SHOULD not met does not fail a MUST-level run: reported as xfail, recorded as failed.
            rep.user_properties.append((PROP + "should_failed", msg))
            rep.outcome = "skipped"
            rep.wasxfail = f"SHOULD not met: {msg}"
    return rep


def _smoke_blocked(ctx: Any, excinfo: pytest.ExceptionInfo[BaseException]) -> Blocked | None:
    """With --dispatch-keep-going after a failed smoke: a start refused (or a wait that never ends)
    is what the smoke already showed, so the check is blocked by it rather than failed."""
    smoke = getattr(ctx, "smoke_failed", None)
    if smoke is None:
        return None
    calls = getattr(ctx, "calls", None) or []
    last = calls[-1] if calls else None
    start_failed = isinstance(excinfo.value, StartRefused) or (
        isinstance(excinfo.value, ContractViolation)
        and last is not None
        and last.verb == "start"
        and (last.exit_code != 0 or last.problem is not None)
    )
    if start_failed and smoke.stage in ("capabilities", "start"):
        return Blocked("a task must start", "the smoke stage", smoke.message)
    if isinstance(excinfo.value, (StartRefused, WaitFailed)) and smoke.stage in ("wait", "end"):
        return Blocked("a task must end and be waited on", "the smoke stage", smoke.message)
    return None


def _one_line(excinfo: pytest.ExceptionInfo[BaseException]) -> str:
    """The cause: the exception's first line, whole (the rest goes to the details)."""
    text = str(excinfo.value).strip() or excinfo.typename
    first = text.splitlines()[0] if text else excinfo.typename
    if not isinstance(excinfo.value, (AssertionError, pytest.fail.Exception)):
        first = f"{excinfo.typename}: {first}"
    return first


def _add_details(rep: pytest.TestReport, ctx: Any, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
    """What a one-line message leaves out: the rest of the text and the last calls' command lines."""
    rest = str(excinfo.value).strip().splitlines()[1:]
    calls = list(getattr(ctx, "calls", []) or [])[-5:]
    lines = [*rest]
    if calls:
        lines.append("last calls of the implementation (newest last):")
        lines += [f"  {c.describe()}: {c.command}" for c in calls]
    if lines:
        rep.user_properties.append((PROP + "details", "\n".join(lines)))
        rep.sections.append(("dispatch conformance: details", "\n".join(lines)))


@pytest.hookimpl(tryfirst=True)
def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config) -> Any:
    """A blocked check shows as `b`/BLOCKED and counts as "blocked" in pytest's own summary line."""
    if report.skipped and any(k == PROP + "blocked" for k, _ in report.user_properties):
        return "blocked", "b", ("BLOCKED", {"yellow": True})
    return None


def _phase_outcome(report: pytest.TestReport, props: dict[str, Any]) -> str | None:
    if PROP + "blocked" in props and report.skipped:
        return "blocked"
    if PROP + "should_failed" in props and report.when == "call":
        return "failed"
    if report.when == "call":
        return "passed" if report.passed else ("skipped" if report.skipped else "failed")
    if report.failed:
        return "error"
    if report.skipped:
        return "skipped"
    return None if report.when == "teardown" else None


def _message(report: pytest.TestReport, props: dict[str, Any], outcome: str) -> str:
    if outcome == "passed":
        return ""
    if PROP + "blocked" in props and outcome == "blocked":
        return str(props[PROP + "blocked"])
    if PROP + "message" in props:
        return str(props[PROP + "message"])
    if outcome == "skipped" and isinstance(report.longrepr, tuple) and len(report.longrepr) == 3:
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    text = getattr(report, "longreprtext", "") or ""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else outcome


def _build_report(config: pytest.Config, state: _State) -> Report | None:
    """Rows collected from every phase report -> the run's Report (None when no check ran)."""
    if not state.rows:
        return None
    results = []
    for nodeid, row in state.rows.items():
        meta = row["meta"]
        lat = row["latencies"]
        results.append(
            CheckResult(
                check_id=meta["check_id"],
                pitfall=meta["pitfall"],
                level=meta["level"],
                outcome=row["outcome"] or "error",
                latency_ms=max(lat.values()) if lat else None,
                message=row["message"],
                duration_s=round(row["duration_s"], 3),
                reason=meta["reason"],
                latencies=lat,
                nodeid=nodeid,
                profile=meta.get("profile", "core"),
                needs=list(meta.get("needs", [])),
                details=row.get("details", ""),
            )
        )
    smoke = _read_smoke(state.impl)
    implementation = {"command": state.impl, **{k: v for k, v in smoke.get("capabilities", {}).items()}}
    return Report(
        implementation=implementation,
        level=state.level,
        results=results,
        smoke={k: smoke.get(k) for k in ("ok", "message", "duration_s", "stage")}
        if smoke
        else {"ok": True, "message": ""},
        duration_s=time.monotonic() - state.started,
    )


def _read_smoke(impl: str) -> dict[str, Any]:
    p = _run_dir() / "smoke.json"
    try:
        d = json.loads(p.read_text())
    except (OSError, ValueError):
        return {}
    return d if d.get("impl") == impl else {}


class _Controller:
    """Hooks that only the controller (or a run without xdist) has: collect rows, report, gate."""

    def __init__(self, config: pytest.Config, state: _State) -> None:
        self.config = config
        self.state = state

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self.state.started = time.monotonic()

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        props = {k: v for k, v in report.user_properties if isinstance(k, str)}
        meta = props.get(PROP + "check")
        if meta is None:
            if report.failed:
                self.state.other_failed.add(report.nodeid)
            return
        row = self.state.rows.setdefault(
            report.nodeid,
            {"meta": meta, "outcome": None, "message": "", "duration_s": 0.0, "latencies": {}},
        )
        row["duration_s"] += getattr(report, "duration", 0.0)
        for k, v in report.user_properties:
            if k == PROP + "latency" and isinstance(v, dict):
                row["latencies"][v["name"]] = v["ms"]
        outcome = _phase_outcome(report, props)
        if outcome is None:
            return
        if props.get(PROP + "details") and not row.get("details"):
            row["details"] = str(props[PROP + "details"])
        # the first bad phase decides; a later phase only turns a pass (or skip) into an error
        if row["outcome"] in (None, "passed") or (
            row["outcome"] in ("skipped", "blocked") and outcome in ("failed", "error")
        ):
            row["outcome"] = outcome
            row["message"] = _message(report, props, outcome)

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        state = self.state
        report = _build_report(self.config, state)
        state.report = report
        if report is not None:
            if state.report_dir:
                report.write(state.report_dir)
            if session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
                if not report.ok:
                    session.exitstatus = pytest.ExitCode.TESTS_FAILED
                elif not state.other_failed:
                    session.exitstatus = pytest.ExitCode.OK
        if state.own_run_dir:
            shutil.rmtree(state.own_run_dir, ignore_errors=True)
            if os.environ.get(RUN_VAR) == state.own_run_dir:
                del os.environ[RUN_VAR]

    def pytest_terminal_summary(self, terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
        report = self.state.report
        if report is None:
            return
        tr = terminalreporter
        tr.section("dispatch conformance")
        keep_going = config.getoption("--dispatch-keep-going")
        if not report.smoke.get("ok", True):
            tr.write_line(f"SMOKE FAILED: {report.smoke.get('message')}", red=True, bold=True)
        if report.smoke.get("ok", True) or keep_going:
            for line in report.matrix_lines():
                tr.write_line(line)
            for p in report.profiles():
                tr.write_line(f"profile {p.line()}", green=p.verdict == "CONFORMS", red=not p.ok)
        tr.write_line(report.headline(), green=report.ok, red=not report.ok, bold=True)
        if self.state.report_dir:
            tr.write_line(f"reports written to {self.state.report_dir}")
