"""doctor on this machine and on broken ones (PATH without tmux, an old tmux, an unusable state dir)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from runner import doctor


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISPATCH_")}
    env.update(
        HOME=str(tmp_path),
        DISPATCH_STATE_DIR=str(tmp_path / "state"),
        # No DISPATCH_TMUX_SOCKET: under a long TMPDIR (macOS' /var/folders/...) tmp_path/t.sock is past
        # sun_path's 104 bytes; the runner then picks a named socket, kept private by TMUX_TMPDIR.
        TMUX_TMPDIR=str(tmp_path),
        DISPATCH_CONFIG=str(tmp_path / "agents.toml"),
    )
    env.update(extra)
    return env


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "runner.agents", "doctor", *args], env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip


def test_healthy_machine_exits_0_and_creates_nothing(tmp_path: Path) -> None:
    env = _env(tmp_path)
    cp = _cli(env, "--json")
    assert cp.returncode == 0, cp.stdout + cp.stderr
    doc = json.loads(cp.stdout)
    by = {c["name"]: c for c in doc["checks"]}
    assert doc["ok"] and by["tmux"]["status"] == "ok" and by["state dir"]["status"] == "ok"
    assert by["agent claude"]["status"] in ("ok", "warn")
    assert not (tmp_path / "state").exists()


def test_missing_tmux_is_broken_with_a_fix(tmp_path: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    cp = _cli(_env(tmp_path, PATH=str(empty)))
    assert cp.returncode == 3
    assert "[FAIL] tmux" in cp.stdout and "fix: install it with" in cp.stdout


def test_old_tmux_is_broken(tmp_path: Path) -> None:
    fake = tmp_path / "tmux"
    fake.write_text("#!/bin/sh\necho 'tmux 2.9'\n")
    fake.chmod(0o755)
    checks = doctor.run_checks(_env(tmp_path, DISPATCH_TMUX_BIN=str(fake)))
    tm = next(c for c in checks if c.name == "tmux")
    assert tm.status == doctor.BROKEN and "older than" in tm.detail and tm.fix
    assert doctor.exit_status(checks) == 3


def test_state_dir_that_is_a_file_is_broken(tmp_path: Path) -> None:
    (tmp_path / "state").write_text("")
    checks = doctor.run_checks(_env(tmp_path))
    sd = next(c for c in checks if c.name == "state dir")
    assert sd.status == doctor.BROKEN and sd.fix


def test_agents_on_path_and_loose_state_dir(tmp_path: Path) -> None:
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    (bin_ / "codex").write_text("#!/bin/sh\n")
    (bin_ / "codex").chmod(0o755)
    (tmp_path / "state").mkdir(mode=0o755)
    (tmp_path / "state").chmod(0o755)
    checks = doctor.run_checks(_env(tmp_path, PATH=f"{bin_}:{os.environ['PATH']}"))
    by = {c.name: c for c in checks}
    assert by["agent codex"].status == doctor.OK
    assert by["state dir"].status == doctor.WARN and "chmod 700" in by["state dir"].fix
    assert doctor.exit_status(checks) == 0


def test_bad_agent_config_is_broken(tmp_path: Path) -> None:
    (tmp_path / "agents.toml").write_text("[agents.x]\nextends = 'ghost'\n")
    checks = doctor.run_checks(_env(tmp_path))
    assert any(c.name == "agent config" and c.status == doctor.BROKEN for c in checks)
    assert "FAIL" in doctor.render(checks)
