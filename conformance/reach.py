"""What an implementation needs reachable when a check replaces /tmp (P11.no-tmp-writes).

A dispatcher may be installed under /tmp (a CI checkout, a venv whose python is a symlink out of it)
and given in any form (`dispatch`, `/tmp/v/bin/dispatch`, `bash ./my-dispatcher.sh` run from a checkout
under /tmp). Hiding its install tree would measure a missing binary, not a /tmp write, so every tree
the command line, its interpreter and this suite's own venv live in is kept: the top directory under
/tmp that holds each of them.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

TMP = "/tmp"


def _top_under_tmp(path: str) -> str | None:
    """``/tmp/a`` for ``/tmp/a/b/c`` (a directory), None when ``path`` is not under /tmp."""
    real = os.path.realpath(path)
    root = os.path.realpath(TMP)
    if not real.startswith(root + "/"):
        return None
    top = os.path.join(root, real[len(root) + 1 :].split("/", 1)[0])
    return top if os.path.isdir(top) else None


def _shebang(path: str) -> list[str]:
    """The interpreter words of a script's ``#!`` line (empty for binaries and unreadable files)."""
    try:
        with open(path, "rb") as f:
            head = f.readline(512)
    except OSError:
        return []
    if not head.startswith(b"#!"):
        return []
    return head[2:].decode("utf-8", "replace").split()


def _paths_of(words: Iterable[str], cwd: str) -> list[str]:
    """Every word that names an existing file or directory (relative words against ``cwd``)."""
    out = []
    for w in words:
        p = w if os.path.isabs(w) else os.path.join(cwd, w)
        if w and not w.startswith("-") and os.path.exists(p):
            out.append(p)
    return out


def install_roots(prefix: Sequence[str], cwd: str | None = None) -> list[str]:
    """Directories under /tmp to keep reachable for the command ``prefix`` run from ``cwd``.

    Covers: each path word (and where its symlinks lead), each script's ``#!`` interpreter, the cwd
    (a relative ``./my-dispatcher.sh``), and this interpreter's venv and package tree (fake agents).
    """
    cwd = cwd or os.getcwd()
    paths = _paths_of(prefix, cwd)
    for p in list(paths):
        if os.path.isfile(p):
            paths += [w for w in _shebang(p) if os.path.isabs(w)]
    paths += [os.path.realpath(p) for p in paths]
    paths += [cwd, sys.prefix, sys.executable, str(Path(__file__).resolve().parent.parent)]
    roots = {top for p in paths if (top := _top_under_tmp(p))}
    return sorted(roots)
