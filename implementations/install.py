"""Install a peer at its pinned version into a private prefix (never vendored, never the kit's venv).

``ensure(peer)`` runs ``pip install --no-deps --target <cache>/<dist>-<version> <dist>==<version>``
once; later calls find the stamp and return at once. The cache is ``$DK_IMPL_CACHE`` or
``<checkout>/.impl-cache`` (git-ignored). ``python -m implementations.install [NAME...]`` does it by hand.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from implementations.peers import PEERS, Peer

ROOT = Path(__file__).resolve().parent.parent
STAMP = ".dk-installed"


class InstallError(RuntimeError):
    """pip could not install the pinned peer (no network, release gone, ...)."""


def cache_dir() -> Path:
    return Path(os.environ.get("DK_IMPL_CACHE") or ROOT / ".impl-cache")


def prefix(p: Peer) -> Path:
    """Where the peer's pinned release lives (a ``--target`` directory put on sys.path)."""
    return cache_dir() / f"{p.dist}-{p.version}"


def installed(p: Peer) -> bool:
    return (prefix(p) / STAMP).is_file()


def ensure(p: Peer, timeout: float = 300.0) -> Path:
    """Install ``p`` once (idempotent, safe to call from parallel processes); return its prefix."""
    target = prefix(p)
    if installed(p):
        return target
    staging = target.with_name(f".{target.name}.{os.getpid()}")
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--disable-pip-version-check"]
    cmd += ["--no-compile", "--target", str(staging), p.requirement]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        tail = (r.stderr or r.stdout).strip().splitlines()[-1:] or ["pip failed"]
        raise InstallError(f"cannot install {p.requirement}: {tail[0]}")
    (staging / STAMP).write_text(p.requirement + "\n")
    try:
        os.replace(staging, target)  # atomic: a racing installer's copy wins or ours does
    except OSError:
        import shutil

        shutil.rmtree(staging, ignore_errors=True)
    return target


def main(argv: list[str] | None = None) -> int:
    """Install the named peers (default: all); print each prefix."""
    names = list(sys.argv[1:] if argv is None else argv) or sorted(PEERS)
    for name in names:
        p = PEERS.get(name)
        if p is None:
            print(f"unknown implementation {name!r}; known: {', '.join(sorted(PEERS))}", file=sys.stderr)
            return 2
        try:
            print(ensure(p))
        except InstallError as e:
            print(str(e), file=sys.stderr)
            return 3
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


REFERENCE = "reference"


def resolve(impl: str | None) -> tuple[str, str]:
    """``(label, command)`` for --impl: a peer name (installed on demand), `reference`, or a command."""
    from runner.contract import reference_command

    if impl in (None, "", REFERENCE):
        import shlex

        return REFERENCE, shlex.join(reference_command())
    p = PEERS.get(impl)
    if p is None:
        return impl, impl
    ensure(p)
    return p.name, p.command
