"""A TUI's raw terminal output as the text a person saw: run through a terminal emulator (pyte).

Claude Code positions words with cursor-movement escapes; stripping escapes with a regex glues them
together ("UnabletoconnecttoAnthropicservices"). Replaying the bytes on an emulated screen puts every
character where the terminal would, so a log of a TUI reads as text and screen patterns match it.
"""

from __future__ import annotations

import re
from pathlib import Path

# CSI sequences pyte does not know and would print the final byte of (kitty keyboard `CSI > 5 u`,
# `CSI < u`, XTVERSION `CSI > 0 q`, DECRQM `CSI ? 2026 $ p`): terminal plumbing, no text
_UNKNOWN_CSI = re.compile(rb"\x1b\[[<=>][0-9;]*[ -/]*[@-~]|\x1b\[\?[0-9;]*[ -/]+[@-~]")
# string sequences (DCS, SOS, PM, APC) are terminal plumbing too, and pyte prints their payload: Claude's
# background-colour query wrapped for tmux (`ESC P tmux; ESC ESC ] 11;? BEL ESC \`, ESCs doubled inside)
# came out as "tUnable1to connect", over the first-run screen's words. Up to ST; a lone ESC ends a cut one.
_STRING_SEQ = re.compile(rb"\x1b[PX^_](?:[^\x1b]|\x1b\x1b)*(?:\x1b\\)?")
_ESC = re.compile(rb"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")


def render(raw: bytes, columns: int = 200, lines: int = 60, history: int = 0) -> str:
    """The final screen plus what scrolled off (`history` rows, default 10 screens) as plain text."""
    try:
        import pyte
    except ImportError:  # pragma: no cover - pyte is a dependency; keep logs readable without it
        return _ESC.sub(b"", _STRING_SEQ.sub(b"", raw)).decode(errors="replace")
    screen = pyte.HistoryScreen(columns, lines, history=history or 10 * lines)
    stream = pyte.ByteStream(screen)
    stream.feed(_UNKNOWN_CSI.sub(b"", _STRING_SEQ.sub(b"", raw)))
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


RECORDING = "screen.raw"  # runner.agents.plan.AgentPaths.screen
RECORDING_TAIL = 4 << 20  # replaying more costs seconds of pure-Python emulation for little gain


def recording_text(raw_path: Path, limit: int = RECORDING_TAIL) -> str | None:
    """What a TUI showed, replayed from its raw recording (runner.agents.ptyrec) on a screen of the
    pane's size; None when there is no recording. Only the last `limit` bytes (over the rotated part
    and the current one) are replayed: a TUI redraws its screen often, so the tail holds the end state."""
    parts = []
    for p in (Path(str(raw_path) + ".1"), raw_path):
        try:
            parts.append(p.read_bytes())
        except OSError:
            pass
    if not parts:
        return None
    raw = b"".join(parts)[-limit:]
    cols, rows = 200, 50
    try:
        c, r = (int(x) for x in Path(str(raw_path) + ".size").read_text().split())
        cols, rows = max(20, c), max(5, r)
    except (OSError, ValueError):
        pass
    return render(raw, cols, rows, history=20000)


def task_log_text(state_dir: Path, task_id: str) -> str | None:
    """`dispatch logs` of an agent task that ran a TUI: its screen as text (None: use the plain log)."""
    if "/" in task_id or task_id in ("", ".", ".."):
        return None
    return recording_text(Path(state_dir) / "agents" / task_id / RECORDING)
