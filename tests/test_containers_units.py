"""Pure parts of the container tooling, no engine needed: version order, matrix merge, the offline
Dockerfile, the privileges asked for, the macOS-like wrappers run on the host, and the CI workflow."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from containers import images, platforms, report
from containers.run import RunOptions, host_config_kwargs

REPO = Path(__file__).resolve().parent.parent
BIN = REPO / "containers" / "macos" / "bin"
WORKFLOW = REPO / ".github" / "workflows" / "ci.yml"


def test_tmux_version_order():
    key = platforms.version_key
    assert key("3.1c") < key("3.2") < key("3.2a") < key("3.3a") < key("3.5a") < key("3.10")
    assert [p.name for p in platforms.PLATFORMS.values() if not p.tmux_supported] == ["bullseye"]


def test_select_rejects_unknown_platform():
    assert [p.name for p in platforms.select(["trixie,bookworm"])] == ["trixie", "bookworm"]
    with pytest.raises(ValueError, match="choose from"):
        platforms.select(["solaris"])


def test_merge_and_markdown():
    rows = [
        {
            "check_id": "platform.tmux_version",
            "pitfall": "PLATFORM",
            "level": "PLATFORM",
            "outcome": "passed",
        },
        {
            "check_id": "P13.too_old",
            "pitfall": "P13",
            "level": "MUST",
            "outcome": "failed",
            "message": "exit 1",
        },
    ]
    m = report.merge(
        "r1",
        {
            "bookworm": {"results": rows[:1], "exit_code": 0, "error": None, "image": "i", "duration_s": 1.0},
            "trixie": {"results": rows, "exit_code": 1, "error": None, "image": "j", "duration_s": 2.0},
            "bullseye": {"results": [], "exit_code": None, "error": "boom", "image": "k", "duration_s": 0.1},
        },
    )
    assert not m["ok"]
    assert m["checks"]["P13.too_old"]["cells"] == {
        "trixie": {"outcome": "failed", "latency_ms": None, "message": "exit 1"}
    }
    assert m["failures"] == ["trixie: P13.too_old", "bullseye: boom"]
    md = report.markdown(m)
    assert "| check | bookworm | trixie | bullseye |" in md
    assert "| P13.too_old | - | FAIL exit 1 | - |" in md
    json.dumps(m)  # serialisable


def test_dockerfile_is_offline():
    for p in platforms.PLATFORMS.values():
        text = images.dockerfile(p, "base:tag", ["libtmux>=0.62", "psutil"])
        assert "apt-get" not in text and "curl" not in text
        assert "--no-index" in text and "-r /opt/dk/requirements.txt" in text
        assert ("TMPDIR=/var/folders/" in text) == (p.profile == "macos-like")


def test_least_privilege_by_default():
    kw = host_config_kwargs(RunOptions(platforms=[]))
    assert kw["cap_add"] == ["SYS_ADMIN"] and "privileged" not in kw and kw["init"] is True
    assert host_config_kwargs(RunOptions(platforms=[], privileged=True))["privileged"] is True


def test_incontainer_driver_parses_on_python39():
    ast.parse((REPO / "containers" / "incontainer.py").read_text(), feature_version=(3, 9))


def _w(tool: str, *args: str, tmp: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "TMPDIR": str(tmp) + "/", "TZ": "UTC"}
    return subprocess.run(
        [sys.executable, str(BIN / tool), *args], capture_output=True, text=True, env=env, cwd=tmp
    )


@pytest.mark.parametrize(
    "argv",
    [
        ("stat", "-c", "%s", "f"),
        ("stat", "--format=%s", "f"),
        ("stat", "--printf=%s", "f"),
        ("date", "-d", "@0"),
        ("date", "--date=now"),
        ("date", "--iso-8601"),
        ("sed", "-i", "s/a/b/", "f"),  # BSD: the script became the suffix, no script left for the file
        ("sed", "-r", "s/a/b/", "f"),
        ("sed", "--in-place", "s/a/b/", "f"),
        ("mktemp", "--suffix=.x"),
        ("mktemp", "--tmpdir"),
    ],
)
def test_macos_wrappers_reject_gnu_only(tmp_path, argv):
    (tmp_path / "f").write_text("abc\n")
    r = _w(argv[0], *argv[1:], tmp=tmp_path)
    assert r.returncode != 0, r.stdout
    assert r.stderr.strip(), "a refusal says why"
    assert (tmp_path / "f").read_text() == "abc\n"


def test_macos_wrappers_bsd_syntax(tmp_path):
    f = tmp_path / "f"
    f.write_text("hello\n")
    os.utime(f, (1_700_000_000.75, 1_700_000_000.75))
    assert (
        _w("stat", "-f", "%z %m %Lp", "f", tmp=tmp_path).stdout.strip()
        == f"6 1700000000 {f.stat().st_mode & 0o777:o}"
    )
    assert _w("date", "-u", "-r", "0", "+%Y-%m-%d", tmp=tmp_path).stdout.strip() == "1970-01-01"
    assert _w("date", "-u", "-r", "0", "-v+1d", "+%d", tmp=tmp_path).stdout.strip() == "02"
    assert _w("date", "+%s%N", tmp=tmp_path).stdout.strip().endswith("N")
    made = _w("mktemp", "-t", "dk", tmp=tmp_path).stdout.strip()
    assert made.startswith(f"{tmp_path}/dk.") and len(made) == len(f"{tmp_path}/dk.") + 8
    assert Path(made).is_file()
    d = _w("mktemp", "-d", tmp=tmp_path).stdout.strip()
    assert Path(d).is_dir() and Path(d).name.startswith("tmp.")


def _load_workflow() -> dict:
    try:
        import yaml
    except ImportError:
        py = shutil.which("python3")
        probe = [
            py,
            "-c",
            "import json,sys,yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1])), default=str))",
        ]
        r = subprocess.run([*probe, str(WORKFLOW)], capture_output=True, text=True) if py else None
        if r is None or r.returncode != 0:
            pytest.skip("no YAML parser available (pip install pyyaml)")
        doc = json.loads(r.stdout)
        return {("on" if k in ("true", "True") else k): v for k, v in doc.items()}
    doc = yaml.safe_load(WORKFLOW.read_text())
    return {("on" if k is True else k): v for k, v in doc.items()}  # YAML 1.1 reads `on` as true


def test_ci_workflow_structure():
    wf = _load_workflow()
    assert {"name", "on", "jobs"} <= set(wf)
    jobs = wf["jobs"]
    assert jobs["macos"]["runs-on"] == "macos-latest"
    assert jobs["linux-containers"]["runs-on"].startswith("ubuntu")
    for name, job in jobs.items():
        # the whole kit suite in one platform took 22-47 min under load on 2 cores (docs/containers.md)
        assert job["timeout-minutes"] <= (90 if name == "kit-suite-in-platform" else 30), name
        for step in job["steps"]:
            assert ("uses" in step) != ("run" in step), step
    mac = " ".join(s.get("run", "") for s in jobs["macos"]["steps"])
    assert "brew install tmux" in mac and "pytest" in mac and "dispatch conformance" in mac
    linux = " ".join(s.get("run", "") for s in jobs["linux-containers"]["steps"])
    assert "-m containers build" in linux and "-m containers run" in linux and "-m containers sweep" in linux


def test_ci_workflow_runs_the_whole_kit_suite_in_each_platform():
    """One parallel job per platform runs tests/ whole (not a subset), macos-like also with TMPDIR=/tmp."""
    job = _load_workflow()["jobs"]["kit-suite-in-platform"]
    matrix = job["strategy"]["matrix"]
    assert matrix["platform"] == ["bookworm", "trixie", "macos-like", "macos-like-tmp"]
    extra = {i["platform"]: (i["image"], i["tmpdir"]) for i in matrix["include"]}
    assert extra["macos-like-tmp"] == ("macos-like", "--tmpdir /tmp") and extra["trixie"] == ("trixie", "")
    steps = " ".join(s.get("run", "") for s in job["steps"])
    assert "-m containers build --platform ${{ matrix.image }}" in steps
    assert "--platform ${{ matrix.image }} ${{ matrix.tmpdir }}" in steps and "--conformance ''" in steps
    assert '--pytest "tests -q' in steps and "-m containers sweep" in steps
    assert any(s.get("uses", "").startswith("actions/upload-artifact") for s in job["steps"])


@pytest.mark.parametrize(
    ("args", "runs"),
    [
        ("tests -q -n 2", [["tests/test_chaos_stateful.py::test_random_programs_pass_against_the_reference",
                            "-q", "-n", "2"], ["tests", "-q", "-n", "2", "--deselect",
                            "tests/test_chaos_stateful.py::test_random_programs_pass_against_the_reference"]]),
        ("tests/test_doctor.py -q", [["tests/test_doctor.py", "-q"]]),
        ("-k tests tests/test_cli.py", [["-k", "tests", "tests/test_cli.py"]]),
    ],
)  # fmt: skip
def test_whole_suite_runs_the_chaos_programs_apart(args: str, runs: list[list[str]]) -> None:
    """Inside a platform, as in .ci/test: the chaos programs (under their CPU hogs) alone, then the rest."""
    from containers import incontainer

    assert [w for _, w in incontainer.split_programs(args.split())] == runs
