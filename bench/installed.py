"""The reference as a user's `pip install` has it: a wheel in a private venv, bytecode compiled.

The dev checkout's `dispatch` is an editable install: its interpreter runs `site`, whose .pth starts
setuptools' import finder (pathlib, importlib.util, re...), and finds `runner` through it. A user's
`pip install dispatch-kit` has none of that: the package sits in site-packages with its .pyc files.
`start` latency is measured on such a copy (issue 13); the editable one is kept beside it.

The wheel is built from a clean copy of a tree (containers.wheels: `pip wheel --no-deps`), installed
with `pip --python VENV install --no-deps --no-index` (pip compiles the bytecode), and the venv reaches
its dependencies (psutil, libtmux, pyte: none is imported on the start path) through a .pth line naming
this interpreter's site-packages, so nothing is fetched at measurement time but the build backend.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

from containers.wheels import build_kit_wheel, copy_source


class Installed:
    """A private venv holding the kit's wheel built from `root`; `close()` removes it."""

    def __init__(self, root: Path, name: str) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix=f"dkb-wheel-{name}-"))
        try:
            src = copy_source(self.dir / "src", root)
            wheel = build_kit_wheel(self.dir / "wheel", src)
            venv = self.dir / "venv"
            subprocess.run(
                [sys.executable, "-m", "venv", "--without-pip", str(venv)],
                check=True,
                capture_output=True,
                timeout=120,
            )
            self.python = venv / "bin" / "python"
            pip = [sys.executable, "-m", "pip", "--python", str(self.python), "install", "-q"]
            subprocess.run(
                [*pip, "--no-deps", "--no-index", "--disable-pip-version-check", str(wheel)],
                check=True,
                capture_output=True,
                text=True,
                timeout=300,
            )
            shutil.rmtree(src, ignore_errors=True)
            site = Path(
                subprocess.run(
                    [str(self.python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                    check=True,
                    capture_output=True,
                    text=True,
                    timeout=60,
                ).stdout.strip()
            )
            # the dependencies from ours, after the venv's own site-packages (its `runner` comes first)
            (site / "_dk_bench_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
            self.site = site
            self.dispatch = venv / "bin" / "dispatch"
            if not self.dispatch.exists():
                raise RuntimeError(f"the wheel installed no {self.dispatch}")
        except BaseException:
            self.close()
            raise

    def check(self) -> None:
        """The copy runs from the venv's site-packages with bytecode, not from a checkout."""
        out = subprocess.run(
            [str(self.python), "-c", "import runner, sys; print(runner.__file__); print(sys.flags.no_site)"],
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
            cwd=self.dir,
        ).stdout.split()
        if not out or not out[0].startswith(str(self.site)):
            raise RuntimeError(f"the installed copy imports runner from {out[:1]}, not {self.site}")
        if not list((self.site / "runner" / "__pycache__").glob("wrapper.*.pyc")):
            raise RuntimeError("the installed copy has no bytecode (pip did not compile it)")

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
