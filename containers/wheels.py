"""Wheels prepared on the host so containers never fetch anything at test time.

Dependencies: `pip download` for each target interpreter (the suites ship 3.9, 3.11, 3.13), cached per
(python version, requirement list). The kit itself: `pip wheel --no-deps` from a clean copy of the source,
once per run, so the dispatcher under test is always the working tree.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from containers.paths import REPO_ROOT, cache_dir

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

# Copied into every image: what `import runner`/`pytest tests` need. ruff/matplotlib stay on the host.
EXTRAS = ("test",)
HOST_ONLY = {"ruff", "matplotlib"}
# pip evaluates environment markers against the host interpreter, not --python-version: back-ports the
# older interpreters need are named explicitly.
BACKPORTS = {"3.9": ("exceptiongroup", "tomli"), "3.10": ("exceptiongroup", "tomli")}
PLATFORM_TAGS = ("manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux_2_28_x86_64", "linux_x86_64")

SOURCE_EXCLUDES = {
    ".git",
    ".venv",
    "__pycache__",
    ".ruff_cache",
    ".hypothesis",
    ".pytest_cache",
    "reports",
    "build",
    "dist",
    # git-ignored host-only trees: the agent CLIs' node_modules (1.4 GB; no platform image has node),
    # and CI's scratch (TMPDIR of the image build running beside the tests, files come and go).
    # Copied, tarred in memory and put into every container, they made a run cost minutes.
    ".agents",
    ".ci-tmp",
}


def requirements(pyproject: Path = REPO_ROOT / "pyproject.toml") -> list[str]:
    """The kit's runtime dependencies plus its test extras, minus host-only tools."""
    data = tomllib.loads(pyproject.read_text())["project"]
    reqs = list(data.get("dependencies", []))
    for extra in EXTRAS:
        reqs += data.get("optional-dependencies", {}).get(extra, [])
    return [r for r in reqs if _name(r) not in HOST_ONLY]


def _name(req: str) -> str:
    return re.split(r"[<>=!~;\[ ]", req, maxsplit=1)[0].strip().lower()


def deps_dir(python: str, reqs: list[str]) -> Path:
    key = hashlib.sha256(f"{python}|{'|'.join(sorted(reqs))}|{'|'.join(PLATFORM_TAGS)}".encode()).hexdigest()
    return cache_dir() / "wheels" / f"cp{python.replace('.', '')}-{key[:12]}"


def ensure_deps(python: str, log: Callable[[str], None] = print) -> tuple[Path, list[str]]:
    """Download wheels for `python` (e.g. "3.9"); returns (dir, requirement names to install).

    When the pinned requirements cannot be met on an old interpreter, the names alone are retried so
    pip picks the newest versions that still support it (the refusal platform only needs the kit to import).
    """
    reqs = requirements() + list(BACKPORTS.get(python, ()))
    out = deps_dir(python, reqs)
    done = out / ".complete"
    if done.exists():
        return out, [ln for ln in done.read_text().splitlines() if ln.strip()]
    tmp = Path(tempfile.mkdtemp(prefix="wheels-", dir=cache_dir()))
    base = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "-q",
        "--disable-pip-version-check",
        "--only-binary=:all:",
        "--python-version",
        python,
        "--implementation",
        "cp",
        "--dest",
        str(tmp),
    ]
    for tag in PLATFORM_TAGS:
        base += ["--platform", tag]
    log(f"[wheels] pip download for python {python}: {' '.join(reqs)}")
    r = subprocess.run([*base, *reqs], capture_output=True, text=True)
    used = reqs
    if r.returncode != 0:
        used = [_name(x) for x in reqs]
        log(f"[wheels] pinned set not available for python {python}; retrying unpinned")
        r = subprocess.run([*base, *used], capture_output=True, text=True)
    if r.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise RuntimeError(f"pip download for python {python} failed: {r.stderr.strip()[-400:]}")
    # setuptools is not in newer venvs; keep nothing else extra.
    if out.exists():
        shutil.rmtree(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, out)
    (out / ".complete").write_text("\n".join(used) + "\n")  # one per line: markers contain spaces
    return out, used


def copy_source(dest: Path, root: Path = REPO_ROOT) -> Path:
    """A clean copy of the working tree (no venv, VCS, caches) for building and for `pytest tests`."""

    def ignore(_dir: str, names: list[str]) -> set[str]:
        return {n for n in names if n in SOURCE_EXCLUDES or n.endswith((".egg-info", ".pyc"))}

    shutil.copytree(root, dest, ignore=ignore, symlinks=True)
    return dest


def build_kit_wheel(out_dir: Path, source: Path) -> Path:
    """`pip wheel --no-deps` of the source copy: with build isolation (setuptools + wheel from the index
    or pip's cache), falling back to the venv's own setuptools when no index answers."""
    out_dir.mkdir(parents=True, exist_ok=True)
    base = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--disable-pip-version-check"]
    errors = []
    for extra in ([], ["--no-build-isolation"]):
        r = subprocess.run(
            [*base, *extra, "-w", str(out_dir), str(source)], capture_output=True, text=True, cwd=source
        )
        if r.returncode == 0:
            break
        errors.append(r.stderr.strip()[-300:])
    else:
        raise RuntimeError("building the kit wheel failed: " + " | ".join(errors))
    wheels = sorted(out_dir.glob("dispatch_kit-*.whl"))
    if not wheels:
        raise RuntimeError("building the kit wheel produced no dispatch_kit-*.whl")
    # the build leaves build/ and *.egg-info in the copy; they must not reach the container's tests
    shutil.rmtree(source / "build", ignore_errors=True)
    for egg in source.glob("*.egg-info"):
        shutil.rmtree(egg, ignore_errors=True)
    return wheels[-1]
