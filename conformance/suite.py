"""Run the conformance suite against a dispatcher from Python and get a :class:`Report` back.

This is how the kit's own tests measure each deliberately broken dispatcher (conformance/known_bad):
``run_suite("python -m conformance.known_bad shell_pid", k="P01")`` runs the checks in a fresh pytest
process (never nested in the caller's session) and loads the JSON report it wrote.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from conformance.report import JSON_NAME, Report

PACKAGE_ROOT = Path(__file__).resolve().parent.parent  # the directory that holds `conformance/`


def pytest_args(
    impl_cmd: str | None = None,
    *,
    level: str = "must",
    report_dir: str | os.PathLike[str] | None = None,
    k: str | None = None,
    workers: int | str | None = 2,
    extra: Sequence[str] = (),
) -> list[str]:
    """The pytest command line (without the interpreter) that runs the suite with these settings."""
    # hypothesis's pytest plugin (installed with the kit's test extra) imports all of hypothesis at the end
    # of every session, and no check uses it: 3 s of each suite run at load 2 (7.7 -> 4.6 s wall)
    args = ["--pyargs", "conformance", "-p", "no:cacheprovider", "-p", "no:hypothesispytest"]
    args += ["--dispatch-level", level, "-rfEs"]
    args += ["--rootdir", str(PACKAGE_ROOT)]
    if impl_cmd:
        args += ["--dispatch-impl", impl_cmd]
    if report_dir is not None:
        args += ["--dispatch-report", os.fspath(report_dir)]
    if k:
        args += ["-k", k]
    if workers not in (None, 0, "0", 1, "1"):
        args += ["-n", str(workers), "--dist", "worksteal"]
    return [*args, *extra]


def run_suite(
    impl_cmd: str | None = None,
    *,
    k: str | None = None,
    report_dir: str | os.PathLike[str] | None = None,
    level: str = "must",
    workers: int | str | None = 2,
    timeout: float = 900.0,
    extra: Sequence[str] = (),
    env: dict[str, str] | None = None,
) -> Report:
    """Run the suite in a subprocess; return its Report with ``exit_code`` set (0 = conforms).

    ``impl_cmd`` None means the reference runner. ``k`` selects checks (pytest ``-k``; check ids work:
    ``k="P05 or P10"``). The pytest output is kept in ``report_dir/pytest.log``.
    """
    own = report_dir is None
    # absolute: pytest runs with cwd=PACKAGE_ROOT, where a relative DIR (the Action's default
    # `dispatch-conformance`) would land in the kit's install directory instead of the caller's
    rdir = Path(tempfile.mkdtemp(prefix="dk-conformance-")) if own else Path(report_dir).absolute()
    rdir.mkdir(parents=True, exist_ok=True)
    # xdist makes pytest create $TMPDIR/pytest-of-USER/pytest-N for its workers, though no check uses
    # tmp_path: a basetemp inside the report dir, removed after, leaves nothing of ours in TMPDIR (as
    # `dispatch conformance` does; CI's bgtmux matrix left an empty /tmp/pytest-of-root/pytest-N each run)
    base = None
    if workers not in (None, 0, "0", 1, "1") and not any(a.startswith("--basetemp") for a in extra):
        base = rdir / "basetemp"
        extra = [*extra, "--basetemp", str(base)]
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        *pytest_args(impl_cmd, level=level, report_dir=rdir, k=k, workers=workers, extra=extra),
    ]
    run_env = dict(os.environ if env is None else env)
    run_env.pop("DK_CONFORMANCE_RUN", None)  # a fresh run directory for the child session
    run_env.pop("PYTEST_XDIST_WORKER", None)
    run_env.pop("PYTEST_CURRENT_TEST", None)
    try:
        with open(rdir / "pytest.log", "wb") as log:
            proc = subprocess.run(
                cmd, stdout=log, stderr=subprocess.STDOUT, cwd=PACKAGE_ROOT, env=run_env, timeout=timeout
            )
    finally:
        if base is not None:
            shutil.rmtree(base, ignore_errors=True)
    path = rdir / JSON_NAME
    if path.exists():
        report = Report.load(path)
    else:  # pytest itself failed (usage error, collection error): no rows
        tail = (rdir / "pytest.log").read_text(errors="replace").strip().splitlines()[-3:]
        report = Report(
            implementation={"command": impl_cmd or "(reference)"},
            smoke={"ok": False, "message": " / ".join(tail)},
        )
    report.exit_code = proc.returncode
    return report
