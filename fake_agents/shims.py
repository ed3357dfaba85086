"""Shim directories: put fakes on PATH under the real agents' names, for one test only.

Each shim is a Python script whose shebang is the current interpreter (no shell hop, so the PID a
dispatcher sees is the fake's own from the first instruction) and which imports this checkout's
``fake_agents`` even from an interpreter where the package is not installed.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

MODULES = {
    "fake-agent": "fake_agents.generic",
    "fake-claude": "fake_agents.claude",
    "fake-codex": "fake_agents.codex",
    "fake-opencode": "fake_agents.opencode",
    "fake-pi": "fake_agents.pi",
    "claude": "fake_agents.claude",
    "codex": "fake_agents.codex",
    "opencode": "fake_agents.opencode",
    "pi": "fake_agents.pi",
}

_TEMPLATE = """#!{python}
# Shim written by fake_agents.shims.bin_dir: a FAKE {name} for tests. Never install globally.
import sys
sys.path.insert(0, {root!r})
from {module} import main
sys.exit(main())
"""


def bin_dir(dest: str | os.PathLike[str]) -> Path:
    """Write the executable shims into ``dest`` (created if needed) and return it as a Path."""
    d = Path(dest)
    d.mkdir(parents=True, exist_ok=True)
    root = str(Path(__file__).resolve().parent.parent)
    for name, module in MODULES.items():
        p = d / name
        tmp = d / f".{name}.tmp"
        tmp.write_text(_TEMPLATE.format(python=sys.executable, name=name, root=root, module=module))
        tmp.chmod(0o755)
        os.replace(tmp, p)
    return d
