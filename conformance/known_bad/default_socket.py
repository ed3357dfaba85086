"""default_socket (EX): one tmux call forgets the socket and asks the user's default tmux server.

What it does wrong: reap's session sweep runs ``tmux list-sessions`` without ``-S`` (the ``tmux ls``
habit), so it contacts the *default* server -- the user's own -- on every `start` and `reap`. Every
other tmux call still uses ``DISPATCH_TMUX_SOCKET``.

Safety: the misrouted call is read-only, and it is only ever made to the default socket under an
explicitly set ``TMUX_TMPDIR`` (``$TMUX_TMPDIR/tmux-UID/default``, with ``$TMUX`` removed from its
environment); the conformance check points ``TMUX_TMPDIR`` at a sandbox. Without ``TMUX_TMPDIR`` (or
with it at the system default ``/tmp``) this known-bad behaves like the reference, so running it can
never touch a real user's server.
Caught by: EX.tmux.default-server-untouched.
"""

from __future__ import annotations

import os
from typing import Any

from conformance.known_bad import _seam


def default_socket(env: dict[str, str]) -> str | None:
    """The default server's socket under an explicit, non-system TMUX_TMPDIR; None otherwise."""
    base = env.get("TMUX_TMPDIR")
    if not base or os.path.realpath(base) in ("/tmp", "/private/tmp", os.path.realpath("/tmp")):
        return None
    return os.path.join(base, f"tmux-{os.getuid()}", "default")


def apply() -> None:
    from runner.tmux import Tmux

    def list_sessions(orig: Any, self: Tmux) -> Any:
        env = dict(self.env if self.env is not None else os.environ)
        sock = default_socket(env)
        if sock is None:
            return orig(self)
        env.pop("TMUX", None)
        env.pop("TMUX_PANE", None)
        # `tmux ls` with no -S: the default server (pinned here to the sandbox's TMUX_TMPDIR)
        wrong = Tmux(socket_path=sock, timeout=self.timeout, binary=self.binary, env=env)
        return orig(wrong)

    _seam.wrap(Tmux, "list_sessions", list_sessions)


def main(argv: list[str]) -> int:
    return _seam.run("default_socket", argv, apply)
