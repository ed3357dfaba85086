"""Contract v1 adapter for tmux-kit (PyPI `tmux-kit`, pinned in implementations/peers.py).

tmux-kit's facade (``tmux_kit.api``) is async and name-based: ``start(name, command, cwd=)`` runs a
shell command string in a new session on tmux-kit's own socket directory, ``status(name)`` says
missing/running/finished, ``exit_code(name)`` reads the dead pane's status, ``read(name)`` captures it,
``kill(name)`` kills the session. The facade takes no environment and no argv, and a caller picks the
session name: the adapter supplies a name (``tk_`` + 12 random hex digits), quotes the argv into the
one command string the facade takes, and prefixes the DISPATCH_* variables with ``env`` (README).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shlex
from pathlib import Path
from typing import Any

from implementations.adapter import PeerDriver, Seen, run_main, state_dir
from runner.contract import DispatchError

HISTORY_LINES = 100_000


class TmuxKitDriver(PeerDriver):
    name = "tmux-kit"
    version = "0.8.0"
    capabilities = ("logs",)

    def __init__(self) -> None:
        import tmux_kit
        from tmux_kit import api

        self.api = api
        self.sockdir = state_dir() / "tks"
        if os.environ.get("DISPATCH_TMUX_SOCKET"):  # unset: the peer's own default socket directory
            tmux_kit.configure(socket_dir=self.sockdir)  # the peer's own socket option: a directory

    def _link_socket(self) -> None:
        """Make $DISPATCH_TMUX_SOCKET reach the peer's server (adapter-supplied, README 'socket')."""
        want = os.environ.get("DISPATCH_TMUX_SOCKET")
        real = self.sockdir / f"tmux-{os.getuid()}" / "default"
        if want and real.exists() and not os.path.lexists(want):
            Path(want).symlink_to(real)

    def launch(self, rec: dict[str, Any], agent_env: dict[str, str]) -> str:
        name = "tk_" + secrets.token_hex(6)
        command = shlex.join(["env", *(f"{k}={v}" for k, v in agent_env.items()), *rec["argv"]])
        ok, err = asyncio.run(self.api.start(name, command, cwd=rec["cwd"]))
        if not ok:
            if err and "Command not found: tmux" in err:  # the peer's own tmux-missing refusal
                raise DispatchError("tmux_missing", f"tmux-kit: {err}")
            raise RuntimeError(f"start refused: {err}")
        self._link_socket()
        return name

    def observe(self, rec: dict[str, Any]) -> Seen:
        st = asyncio.run(self.api.status(rec["session"]))
        if st == "running":
            return Seen("running")
        if st == "missing":  # the peer lost the session (its default tears a finished pane down)
            return Seen("crashed", "session_lost")
        code = asyncio.run(self.api.exit_code(rec["session"]))
        if code is None:
            return Seen("crashed", "signaled")
        return Seen("succeeded" if code == 0 else "failed", "exited", code)

    def stop(self, rec: dict[str, Any]) -> None:
        asyncio.run(self.api.kill(rec["session"]))

    def logs(self, rec: dict[str, Any]) -> str:
        return asyncio.run(self.api.read(rec["session"], HISTORY_LINES))


def main() -> int:
    return run_main("tmux-kit", TmuxKitDriver)


if __name__ == "__main__":
    raise SystemExit(main())
