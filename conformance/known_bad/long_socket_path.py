"""long_socket_path (P11): the default socket is always STATE_DIR/tmux.sock, however long that path is.

What it does wrong: without ``DISPATCH_TMUX_SOCKET`` the socket is ``$STATE_DIR/tmux.sock`` even when
that path does not fit in ``sun_path`` (104 bytes on macOS, 108 on Linux), where the reference falls
back to a short ``-L`` name. With a long state dir (macOS ``/var/folders/...``) tmux cannot create or
reach the socket and every `start` fails.
Caught by: P11.long-state-dir.default-socket.
"""

from __future__ import annotations

from conformance.known_bad import _seam


def apply() -> None:
    from runner import config

    config.socket_fits = lambda path: True  # type: ignore[assignment]


def main(argv: list[str]) -> int:
    return _seam.run("long_socket_path", argv, apply)
