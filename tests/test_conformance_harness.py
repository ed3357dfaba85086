"""The harness's one process runner: a call never outlives its limit, whatever the implementation does."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conformance.harness import Impl
from conformance.isolation import kill_marked
from conformance.reach import install_roots
from conformance.report import Report
from conformance.suite import PACKAGE_ROOT


def test_call_returns_at_its_limit_when_a_daemon_holds_the_output(sandbox):
    """A tmux client hands its stdio to the server; if the server is frozen the pipe never closes.

    Here a daemon in its own session (outside the killed process group) keeps stdout open.
    """
    script = sandbox.workdir / "holder.sh"
    script.write_text("#!/bin/sh\nsetsid sleep 60 &\nsleep 60\n")
    script.chmod(0o755)
    impl = Impl(str(script), env=sandbox.env())
    t0 = time.monotonic()
    call = impl.run("status", json_out=False, timeout=1.0, strict=False)
    took = time.monotonic() - t0
    kill_marked(sandbox.marker)  # the escaped daemon, by identity
    assert call.timed_out
    assert took < 1.0 + 2.0 + 1.5, f"the call took {took:.1f}s with a 1 s limit"


def test_sandbox_home_and_xdg_are_private(sandbox, tmp_path):
    """Each run gets its own HOME and XDG dirs; an agent's shell never reads the user's dotfiles."""
    import subprocess

    from conformance.isolation import PRIVATE_DIRS

    user = tmp_path / "user-home"
    user.mkdir()
    for rc in (".bashrc", ".profile", ".bash_profile"):
        (user / rc).write_text("echo USER-DOTFILE-READ\n")
    base = dict(os.environ, HOME=str(user), BASH_ENV=str(user / ".bashrc"), ENV=str(user / ".profile"))
    env = sandbox.env(base=base)
    assert env["HOME"] == str(sandbox.home) != str(user)
    for var in PRIVATE_DIRS:
        assert env[var].startswith(str(sandbox.root) + "/") and os.path.isdir(env[var]), var
    for argv in (["bash", "-c", "echo ok"], ["bash", "-ic", "echo ok"], ["bash", "-lc", "echo ok"]):
        r = subprocess.run(
            argv, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=20
        )
        assert "USER-DOTFILE-READ" not in r.stdout + r.stderr, argv
    r = subprocess.run(["bash", "-ic", "echo ok"], env=base, capture_output=True, text=True, timeout=20)
    assert "USER-DOTFILE-READ" in r.stdout, "control: the user's .bashrc is read outside the sandbox"


@pytest.fixture
def under_tmp() -> Iterator[Path]:
    """A directory under the real /tmp (what P11.no-tmp-writes hides), removed afterwards."""
    d = Path(tempfile.mkdtemp(prefix="dk-reach-", dir="/tmp"))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _venv_under(root: Path) -> Path:
    """A venv at root/venv whose python is a symlink out of it and which can import the kit."""
    venv = root / "venv"
    (venv / "bin").mkdir(parents=True)
    real = Path(os.path.realpath(sys.executable))
    (venv / "bin" / "python").symlink_to(real)
    (venv / "pyvenv.cfg").write_text(f"home = {real.parent}\ninclude-system-site-packages = false\n")
    ver = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    site = venv / "lib" / ver / "site-packages"
    site.mkdir(parents=True)
    ours = [p for p in sys.path if p.endswith("site-packages") and os.path.isdir(p)]
    (site / "kit.pth").write_text("\n".join([*ours, str(PACKAGE_ROOT)]) + "\n")
    script = venv / "bin" / "dispatch"
    script.write_text(f"#!{venv}/bin/python\nimport sys\nfrom runner.cli import main\nsys.exit(main())\n")
    script.chmod(0o755)
    return venv


def test_install_roots_cover_venv_and_relative_impl(under_tmp: Path) -> None:
    venv = _venv_under(under_tmp)
    # install_roots answers resolved paths (the private /tmp binds them): /private/tmp/... where /tmp is a
    # symlink, as on macOS
    real = str(under_tmp.resolve())
    assert real in install_roots([str(venv / "bin" / "dispatch")], cwd="/")
    checkout = under_tmp / "checkout"
    checkout.mkdir()
    (checkout / "my-dispatcher.sh").write_text("#!/bin/bash\n")
    assert real in install_roots(["bash", "./my-dispatcher.sh"], cwd=str(checkout))
    assert install_roots(["bash", "./absent.sh"], cwd="/") == install_roots([], cwd="/")


def _no_tmp_writes(impl: str, cwd: Path, report: Path) -> Any:
    """`dispatch conformance --impl IMPL -k P11.no-tmp-writes` run from ``cwd``, as a user would."""
    cli = Path(sys.executable).with_name("dispatch")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "DK_CONFORMANCE"))}
    r = subprocess.run(
        [
            str(cli),
            "conformance",
            "--impl",
            impl,
            "-k",
            "P11.no-tmp-writes",
            "-n",
            "0",
            "--report",
            str(report),
        ],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return r, Report.load(report)


@pytest.mark.slow
def test_no_tmp_writes_keeps_a_venv_under_tmp(under_tmp: Path, tmp_path: Path) -> None:
    """An implementation installed in a venv under /tmp (python a symlink out of it) stays runnable."""
    venv = _venv_under(under_tmp)
    r, report = _no_tmp_writes(str(venv / "bin" / "dispatch"), tmp_path, tmp_path / "rep")
    assert report.outcome("P11.no-tmp-writes") == "passed", r.stdout[-3000:]


@pytest.mark.slow
def test_no_tmp_writes_keeps_a_relative_impl_from_a_checkout_under_tmp(
    under_tmp: Path, tmp_path: Path
) -> None:
    """The documented `--impl "bash ./my-dispatcher.sh"` run from a checkout under /tmp."""
    checkout = under_tmp / "checkout"
    (checkout / "bin").mkdir(parents=True)
    (checkout / "bin" / "dispatch").symlink_to(Path(sys.executable).with_name("dispatch"))
    (checkout / "my-dispatcher.sh").write_text('#!/bin/bash\nexec "$(dirname "$0")/bin/dispatch" "$@"\n')
    r, report = _no_tmp_writes("bash ./my-dispatcher.sh", checkout, tmp_path / "rep")
    assert report.outcome("P11.no-tmp-writes") == "passed", r.stdout[-3000:]


@pytest.mark.slow
def test_sessions_elsewhere_fail_one_check_and_block_the_rest(tmp_path: Path) -> None:
    """A dispatcher that ignores DISPATCH_TMUX_SOCKET: one clear failure, session checks blocked."""
    from conformance.suite import run_suite

    wrapper = tmp_path / "elsewhere.sh"
    dispatch = Path(sys.executable).with_name("dispatch")
    wrapper.write_text(
        f'#!/bin/bash\nexport DISPATCH_TMUX_SOCKET="$DISPATCH_STATE_DIR/elsewhere.sock"\nexec {dispatch} "$@"\n'
    )
    wrapper.chmod(0o755)
    report = run_suite(
        str(wrapper), k="EX.socket or P09.stop.kills-tree", report_dir=tmp_path / "rep", workers=0
    )
    rows = report.by_id()
    assert rows["EX.socket.sessions-on-socket"].outcome == "failed"
    assert "DISPATCH_TMUX_SOCKET" in rows["EX.socket.sessions-on-socket"].message
    assert rows["P09.stop.kills-tree"].outcome == "blocked", rows["P09.stop.kills-tree"]
    assert "covered by EX.socket.sessions-on-socket" in rows["P09.stop.kills-tree"].message
    assert report.exit_code == 1
    # the reference passes both
    ref = run_suite(None, k="EX.socket or P09.stop.kills-tree", report_dir=tmp_path / "ref", workers=0)
    assert {r.outcome for r in ref.results} == {"passed"}, [(r.check_id, r.message) for r in ref.results]


def test_messages_lead_with_the_cause_and_keep_it_whole(sandbox):
    """The cause comes first and is never cut by a long command line; the command is kept apart."""
    from conformance.harness import ContractViolation

    impl = Impl("false", env=sandbox.env())
    long_args = [f"--word-{i}-{'x' * 40}" for i in range(20)]
    with pytest.raises(ContractViolation) as e:
        impl.ok("start", *long_args, expect=2, strict=False)
    msg = str(e.value)
    assert msg.startswith("expected exit 2: `start` exit 1"), msg
    assert "\n" not in msg and "--word-" not in msg
    assert long_args[-1] in impl.calls[-1].command


def test_relative_impl_words_are_made_absolute(tmp_path, monkeypatch):
    from conformance.harness import resolve_command

    (tmp_path / "my-dispatcher.sh").write_text("#!/bin/bash\n")
    monkeypatch.chdir(tmp_path)
    argv = resolve_command("bash ./my-dispatcher.sh -m x.y")
    assert argv[1] == str(tmp_path / "my-dispatcher.sh") and argv[2:] == ["-m", "x.y"]
