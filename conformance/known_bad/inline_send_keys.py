"""inline_send_keys (P8): `send` types the text with inline ``send-keys``, key names interpreted.

What it does wrong: instead of load-buffer + paste-buffer (bracketed paste), each line of the text file
goes out as ``tmux send-keys -t PANE LINE`` followed by ``Enter``: a line that is a key name (``C-c``,
``Enter``, ``Escape``, ``Up``) is pressed rather than typed, embedded newlines become early Enters, the
agent never sees a bracketed paste, and non-UTF-8 bytes are mangled.
Caught by: the P08 send byte-for-byte / key-name checks.
"""

from __future__ import annotations

from conformance.known_bad import _seam


def apply() -> None:
    from runner.tmux import Tmux

    def paste_file(self: Tmux, pane: str, path: str, buffer: str, bracketed: bool = True) -> None:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8", errors="replace")
        lines = text.split("\n")
        for i, line in enumerate(lines):
            if line:
                self.run("send-keys", "-t", pane, line)  # no -l: key names are interpreted
            if i < len(lines) - 1:
                self.run("send-keys", "-t", pane, "Enter")

    Tmux.paste_file = paste_file  # type: ignore[method-assign]


def main(argv: list[str]) -> int:
    return _seam.run("inline_send_keys", argv, apply)
