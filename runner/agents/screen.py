"""A TUI's raw terminal output as the text a person saw: run through a terminal emulator (pyte).

Claude Code positions words with cursor-movement escapes; stripping escapes with a regex glues them
together ("UnabletoconnecttoAnthropicservices"). Replaying the bytes on an emulated screen puts every
character where the terminal would, so a log of a TUI reads as text and screen patterns match it.
"""

from __future__ import annotations

import re

_ESC = re.compile(rb"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")


def render(raw: bytes, columns: int = 200, lines: int = 60) -> str:
    """The final screen (plus what scrolled off, up to `lines` rows of history) as plain text."""
    try:
        import pyte
    except ImportError:  # pragma: no cover - pyte is a dependency; keep logs readable without it
        return _ESC.sub(b"", raw).decode(errors="replace")
    screen = pyte.HistoryScreen(columns, lines, history=10 * lines)
    stream = pyte.ByteStream(screen)
    stream.feed(raw)
    rows = [_row(line, columns) for line in screen.history.top] + [r.rstrip() for r in screen.display]
    text = "\n".join(rows)
    return re.sub(r"\n{3,}", "\n\n", text).strip("\n") + "\n"


def _row(line: object, columns: int) -> str:
    """One history row (a mapping column -> Char) as text."""
    chars = getattr(line, "items", None)
    if chars is None:
        return ""
    return "".join(line[i].data for i in range(columns)).rstrip()  # type: ignore[index]


def tail_of_log(path: str, limit: int = 256 << 10) -> str:
    """The rendered text of the last `limit` bytes of a task's output log ("" when unreadable)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - limit))
            return render(f.read())
    except OSError:
        return ""
