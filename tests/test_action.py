"""The GitHub Action (action.yml) run locally as a runner would: the nearest proof it works without GitHub.

action.yml is parsed and its composite steps are executed in order: every ``run:`` step verbatim under
``bash --noprofile --norc -eo pipefail`` (GitHub's ``shell: bash``), with ``${{ ... }}`` expressions
substituted from the inputs and the runner/github contexts, a fresh workspace as the working directory,
``GITHUB_WORKSPACE``/``RUNNER_TEMP``/``GITHUB_OUTPUT``/``GITHUB_ACTION_PATH``/``CI`` set, step outputs
read back from ``$GITHUB_OUTPUT``, and ``if: always()`` honoured. The kit is installed by the Action's
own ``pip install "<action path>[test]"`` from a copy of the tracked files (what a checkout of the
action holds), offline from a wheelhouse built once (``$DK_IMPL_CACHE`` or ``.impl-cache``,
``action-wheels-<hash of pyproject>``; the only network use, PyPI: ~3 min under load, once).
Found on its first run: with the default relative ``report-dir`` the suite's report was written under
the kit's install directory (run_suite ran pytest with cwd=PACKAGE_ROOT), so the Action failed a
conforming dispatcher ("smoke failed: ... 2 passed"); fixed in conformance/suite.py.

What this cannot prove (GitHub-only): ``actions/setup-python`` (emulated: this machine's Python on
PATH as ``python``), ``actions/upload-artifact`` (emulated: the path it would upload must exist and
hold the promised reports), the apt/brew tmux install branch (tmux is present here), GitHub's own
expression engine (an expression this test does not know fails it), the ubuntu-latest image and its
non-root user, and ``uses: ./`` resolution in .github/workflows/conformance-action.yml.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

yaml = pytest.importorskip("yaml")

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
EXPR = re.compile(r"\$\{\{\s*(.+?)\s*\}\}")
# A few fast checks of the reference: the Action's plumbing is under test here, not the suite.
CHECKS = "P03.done-marker or EX.cwd"
STEP_TIMEOUT = 900.0  # the first run builds the wheelhouse from PyPI; later runs install offline


def _tracked_copy(dest: Path) -> Path:
    """The action's checkout: the tracked files as they are in the working tree."""
    if not (ROOT / ".git").exists():  # e.g. the platform containers' source copy (no .git, no PyPI route)
        pytest.skip("not a git checkout: the action's checkout is git's tracked files (git ls-files)")
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout.split(
        b"\0"
    )
    for rel in filter(None, files):
        src = ROOT / os.fsdecode(rel)
        if src.is_file():
            (dest / os.fsdecode(rel)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / os.fsdecode(rel))
    return dest


def _requirements(pyproject: Path) -> list[str]:
    """What `pip install "<action path>[test]"` resolves, read from pyproject.toml: the build backend,
    the kit's dependencies and its test extra."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # the kit's own dependency below 3.11
        import tomli as tomllib

    doc = tomllib.loads(pyproject.read_text())
    proj = doc["project"]
    return [*doc["build-system"]["requires"], *proj["dependencies"], *proj["optional-dependencies"]["test"]]


def _wheelhouse(python: str, src: Path) -> Path:
    """Wheels of everything `pip install "<src>[test]"` needs (plus pip and the build backend), once.

    From the requirements, not from `<src>[test]`: building the kit's own wheel here (an isolated build
    env, then the wheel thrown away: the Action's install step builds it from the action path) cost
    ~10 s of the ~27 s cold build at load 4, paid by every fresh-clone CI run."""
    from implementations.install import cache_dir

    key = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()[:12]
    house = cache_dir() / f"action-wheels-{key}"  # beside the pinned peers ($DK_IMPL_CACHE)
    if (house / ".complete").exists():
        return house
    house.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [python, "-m", "pip", "wheel", "-q", "-w", str(house), "pip", *_requirements(src / "pyproject.toml")],
        check=True,
        timeout=STEP_TIMEOUT,
        capture_output=True,
    )
    (house / ".complete").write_text("")
    return house


def _substitute(text: str, ctx: dict[str, str]) -> str:
    def one(m: re.Match[str]) -> str:
        expr = m.group(1)
        if expr not in ctx:
            raise AssertionError(f"action.yml uses an expression this runner emulation does not know: {expr}")
        return ctx[expr]

    return EXPR.sub(one, text)


def run_action(action: dict[str, Any], inputs: dict[str, str], tmp: Path, base_env: dict[str, str]) -> dict:
    """Execute the composite action's steps; returns {"outputs", "uploads", "failed"} as a runner would."""
    spec = action["inputs"]
    given = {k: inputs.get(k, str(v.get("default", ""))) for k, v in spec.items()}
    ws, temp = tmp / "workspace", tmp / "runner-temp"
    ws.mkdir()
    temp.mkdir()
    ctx = {f"inputs.{k}": v for k, v in given.items()}
    ctx |= {
        "github.action_path": base_env["GITHUB_ACTION_PATH"],
        "github.job": "action-test",
        "runner.temp": str(temp),
    }
    outputs: dict[str, dict[str, str]] = {}
    uploads: list[Path] = []
    failed: str | None = None
    timings: list[tuple[str, float]] = []
    for i, step in enumerate(action["runs"]["steps"]):
        if failed and "always()" not in str(step.get("if", "")):
            continue
        uses = step.get("uses", "")
        if uses.startswith("actions/setup-python@"):
            assert _substitute(str(step["with"]["python-version"]), ctx)
            continue  # emulated: base_env's PATH already starts with this machine's python
        if uses.startswith("actions/upload-artifact@"):
            uploads.append(ws / _substitute(step["with"]["path"], ctx))
            continue
        assert not uses, f"step {i} uses {uses}: not emulated by this test"
        assert step.get("shell") == "bash", f"step {i}: only shell: bash is emulated"
        out_file = temp / f"output-{i}"
        out_file.touch()
        env = dict(base_env, RUNNER_TEMP=str(temp), GITHUB_WORKSPACE=str(ws), GITHUB_OUTPUT=str(out_file))
        env |= {k: _substitute(str(v), ctx) for k, v in (step.get("env") or {}).items()}
        script = temp / f"step-{i}.sh"
        script.write_text(_substitute(step["run"], ctx))
        t0 = time.monotonic()
        cp = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
            cwd=ws,
            env=env,
            capture_output=True,
            text=True,
            timeout=STEP_TIMEOUT,
        )
        timings.append((step.get("name", f"step {i}"), time.monotonic() - t0))
        (temp / f"step-{i}.log").write_text(cp.stdout + cp.stderr)
        sid = step.get("id")
        if sid:
            lines = out_file.read_text().splitlines()
            outputs[sid] = dict(line.split("=", 1) for line in lines if "=" in line)
            for k, v in outputs[sid].items():
                ctx[f"steps.{sid}.outputs.{k}"] = v
        if cp.returncode != 0:
            failed = f"step {i} ({step.get('name', uses)}) exit {cp.returncode}:\n{(cp.stdout + cp.stderr)[-2000:]}"
    declared = {k: _substitute(str(v["value"]), ctx) for k, v in (action.get("outputs") or {}).items()}
    return {"outputs": declared, "uploads": uploads, "failed": failed, "workspace": ws, "timings": timings}


def test_action_runs_on_the_reference_and_uploads_its_reports(tmp_path: Path) -> None:
    action = yaml.safe_load((ROOT / "action.yml").read_text())
    assert action["runs"]["using"] == "composite"
    src = _tracked_copy(tmp_path / "action")
    bin_dir = tmp_path / "hostedtoolcache" / "bin"
    bin_dir.mkdir(parents=True)
    base_python = Path(sys.base_prefix) / "bin" / "python3"
    (bin_dir / "python").symlink_to(base_python)
    (bin_dir / "python3").symlink_to(base_python)
    house = _wheelhouse(str(base_python), src)
    home, tmpdir = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    tmpdir.mkdir()
    path = [bin_dir, *(p for p in os.environ["PATH"].split(os.pathsep) if ".venv" not in p)]
    base_env = {
        "PATH": os.pathsep.join(map(str, path)),
        "HOME": str(home),
        "TMPDIR": str(tmpdir),
        "CI": "true",
        "GITHUB_ACTIONS": "true",
        "GITHUB_ACTION_PATH": str(src),
        "PIP_NO_INDEX": "1",  # offline: everything from the wheelhouse built above
        "PIP_FIND_LINKS": str(house),
        "LANG": "C.UTF-8",
    }
    inputs = {"impl": "reference", "checks": CHECKS, "workers": "1"}
    result = run_action(action, inputs, tmp_path, base_env)
    print("step durations:", ", ".join(f"{n} {t:.0f} s" for n, t in result["timings"]))
    assert result["failed"] is None, result["failed"]
    assert result["outputs"]["verdict"] == "conforms", result["outputs"]
    (upload,) = result["uploads"]
    assert upload == result["workspace"] / "dispatch-conformance"
    promised = [
        "smoke.json",
        "reference/smoke.json",
        "reference/conformance-report.json",
        "reference/conformance-report.md",
        "reference/junit.xml",
        "badges/reference.json",
        "badges/reference-core.json",
    ]
    missing = [p for p in promised if not (upload / p).is_file()]
    assert not missing, f"not in the uploaded directory: {missing}; it holds {sorted(upload.rglob('*'))}"
