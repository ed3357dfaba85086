"""server_env (EX): the agent inherits the tmux server's global environment, not the caller's.

What it does wrong: the in-pane supervisor builds the agent's environment from its own (the pane's)
environment -- which tmux derives from the *server's* global environment, i.e. whoever started the
server first -- instead of the environment saved from the `start` call. A variable the caller set (or
changed) since the server started is not seen by the agent; one only the server had leaks in.
Caught by: EX.env.caller-not-server (see KNOWN_BAD["server_env"].checks).
"""

from __future__ import annotations

import os
from typing import Any

from conformance.known_bad import _seam


def pane_apply() -> None:
    from runner.wrapper import Wrapper

    def agent_env(orig: Any, self: Wrapper) -> dict[str, str]:
        ours = orig(self)
        env = dict(os.environ)  # the pane's env: the tmux server's global environment (the flaw)
        env.update({k: v for k, v in ours.items() if k.startswith("DISPATCH_")})
        return env

    _seam.wrap(Wrapper, "agent_env", agent_env)


def main(argv: list[str]) -> int:
    return _seam.run("server_env", argv, None, pane_apply)
