"""The real third-party dispatchers the kit gates, each pinned to one PyPI release.

One row per peer: which distribution, at which exact version, what it needs importable from the kit's
venv (installed with ``--no-deps`` so the kit's libtmux/psutil are the ones used), and the adapter module
that speaks contract v1 for it. Bumping a pin is a one-line change followed by a matrix run.
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass

COMMON_DECIDES = (
    ("P07.label.control-refused", "labels live only in the adapter's record; the adapter checks them"),
    (
        "EX.refusals.nothing-created",
        "task-id, prompt-file and empty-argv refusals are the adapter's; bad cwd the peer's",
    ),
)


@dataclass(frozen=True)
class Peer:
    """A third-party dispatcher: where it comes from and which adapter drives it."""

    name: str  # the short name used by --impl and in reports
    dist: str  # the PyPI distribution
    version: str  # the pinned release
    module: str  # the adapter module under implementations/
    homepage: str
    summary: str
    needs: tuple[str, ...] = ()  # modules the peer imports that come from the kit's venv
    # checks whose outcome the adapter decides (README: adapter-supplied), check id -> what it supplies
    adapter_decides: tuple[tuple[str, str], ...] = ()

    @property
    def requirement(self) -> str:
        return f"{self.dist}=={self.version}"

    @property
    def command(self) -> str:
        """The contract command prefix (IMPL) for this peer's adapter."""
        return f"{shlex.quote(sys.executable)} -m implementations.{self.module}"


PEERS: dict[str, Peer] = {
    p.name: p
    for p in (
        Peer(
            name="bgtmux",
            dist="bgtmux",
            version="0.1.1",
            module="bgtmux_adapter",
            homepage="https://pypi.org/project/bgtmux/",
            summary="tmux-backed background terminal sessions with scrollback capture",
            adapter_decides=COMMON_DECIDES
            + (
                ("EX.tmux.default-server-untouched", "socket routed via $TMUX by the adapter"),
                ("EX.socket.sessions-on-socket", "socket routed via $TMUX by the adapter"),
            ),
        ),
        Peer(
            name="tmux-kit",
            dist="tmux-kit",
            version="0.8.0",
            module="tmux_kit_adapter",
            homepage="https://pypi.org/project/tmux-kit/",
            summary="async, argv-exec tmux session-management primitives (spawn, observe, stop)",
            adapter_decides=COMMON_DECIDES
            + (
                (
                    "EX.socket.sessions-on-socket",
                    "the adapter links $DISPATCH_TMUX_SOCKET to the peer's socket",
                ),
            ),
        ),
        Peer(
            name="libtmux-easy",
            dist="libtmux-easy",
            version="0.2.0",
            module="libtmux_easy_adapter",
            homepage="https://pypi.org/project/libtmux-easy/",
            summary="tmux sessions from Python with exact pane exit status",
            needs=("libtmux", "psutil", "packaging"),
            adapter_decides=COMMON_DECIDES
            + (
                ("EX.tmux.default-server-untouched", "socket routed via $TMUX by the adapter"),
                ("EX.socket.sessions-on-socket", "socket routed via $TMUX by the adapter"),
            ),
        ),
    )
}


def peer(name: str) -> Peer:
    """The peer called ``name``; KeyError lists the known ones."""
    try:
        return PEERS[name]
    except KeyError:
        raise KeyError(f"unknown implementation {name!r}; known: {', '.join(sorted(PEERS))}") from None
