"""Contract v1 adapter for bgtmux (PyPI `bgtmux`, pinned in implementations/peers.py).

bgtmux is a stateless function API over bare `tmux` calls: ``start(cmd, cwd=, env=)`` runs an argv in a
new detached session with remain-on-exit, ``info(sid)`` reports running/exit_code from tmux's pane
fields, ``send()`` pastes through a buffer, ``display()`` captures the pane, ``close()`` kills the
session. Each verb maps to one of those calls; nothing is added to what they do.
"""

from __future__ import annotations

import os
from typing import Any

from implementations.adapter import PeerDriver, Seen, route_tmux_via_env, run_main

HISTORY_LINES = 100_000  # `logs` asks bgtmux for the whole scrollback it keeps


class BgtmuxDriver(PeerDriver):
    name = "bgtmux"
    capabilities = ("send", "logs")

    def __init__(self) -> None:
        import bgtmux
        from bgtmux import session

        self.bg = session
        self.TmuxError = session.TmuxError
        self.version = getattr(bgtmux, "__version__", "0.1.1")

    def launch(self, rec: dict[str, Any], agent_env: dict[str, str]) -> str:
        env = {**os.environ, **agent_env}  # bgtmux's env= is how a caller gives the pane its environment
        env.pop("TMUX", None)
        return self.bg.start(rec["argv"], cwd=rec["cwd"], env=env)

    def observe(self, rec: dict[str, Any]) -> Seen:
        try:
            info = self.bg.info(rec["session"])
        except self.TmuxError:
            return Seen("crashed", "session_lost")  # bgtmux cannot find the session any more
        if info.running:
            return Seen("running")
        if info.exit_code is None:  # dead pane without an exit status: tmux records none for a signal
            return Seen("crashed", "signaled")
        return Seen("succeeded" if info.exit_code == 0 else "failed", "exited", info.exit_code)

    def stop(self, rec: dict[str, Any]) -> None:
        self.bg.close(rec["session"])

    def send(self, rec: dict[str, Any], text: bytes) -> None:
        self.bg.send(rec["session"], text.decode("utf-8", "surrogateescape"))
        self.bg.send_keys(rec["session"], "Enter")

    def logs(self, rec: dict[str, Any]) -> str:
        return self.bg.display(rec["session"], HISTORY_LINES).text


def main() -> int:
    route_tmux_via_env()
    return run_main("bgtmux", BgtmuxDriver)


if __name__ == "__main__":
    raise SystemExit(main())
