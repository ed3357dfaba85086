"""no_submit (EX): `send` pastes the text but never presses Enter.

What it does wrong: ``send`` loads the file into a buffer and pastes it (bracketed, byte for byte, as
the reference does) but skips the final Enter, so an interactive agent (Claude Code's input box) shows
the text and never submits it; `send` still reports ``delivered: true``.
Caught by: EX.send.interactive-submitted.
"""

from __future__ import annotations

from typing import Any

from conformance.known_bad import _seam


def apply() -> None:
    from runner.tmux import Tmux

    def send_key(orig: Any, self: Tmux, pane: str, key: str) -> None:
        if key == "Enter":
            return  # pasted, never submitted (the flaw)
        orig(self, pane, key)

    _seam.wrap(Tmux, "send_key", send_key)


def main(argv: list[str]) -> int:
    return _seam.run("no_submit", argv, apply)
