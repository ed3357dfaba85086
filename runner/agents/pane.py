"""Talking to an interactive agent's TUI: wait until ready, paste the prompt, submit, verify it was taken.

Every wait is on an observable condition with a deadline (the banner on screen, the screen changing, the
UserPromptSubmit hook firing or the spinner appearing), polled through the runner's tmux gateway; never a
fixed sleep standing in for an event. Text goes in only as a bracketed paste of a file (P8).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from runner.agents import firstrun
from runner.agents import screen as tui
from runner.agents.profiles import Mode, first_match
from runner.clock import Deadline
from runner.tmux import Tmux, TmuxError

POLL_S = 0.05
POLL_MAX_S = 0.25
# a TUI that echoes the paste shows it at once; one that does not gets this long before Enter
PASTE_SETTLE_S = 1.5


def capture(tmux: Tmux, pane: str, lines: int = 60) -> str:
    """The visible screen plus a little scrollback, wrapped lines joined; "" when the pane is gone."""
    try:
        return tmux.run("capture-pane", "-p", "-J", "-t", pane, "-S", f"-{lines}").stdout
    except TmuxError:
        return ""


def poll(cond: Callable[[], object], deadline: Deadline) -> object:
    """Evaluate `cond` until it is truthy or the deadline passes; the last value either way."""
    delay = POLL_S
    while True:
        v = cond()
        if v or deadline.expired():
            return v
        time.sleep(deadline.cap(delay))
        delay = min(POLL_MAX_S, delay * 1.5)


def logged_screen(prompt_path: Path) -> str:
    """What an agent that already exited last showed: its output log (STATE/tasks/ID/output.*.log, next
    to our STATE/agents/ID/prompt) rendered as text."""
    task_dir = prompt_path.parent.parent.parent / "tasks" / prompt_path.parent.name
    logs = sorted(task_dir.glob("output.*.log"), key=lambda p: p.stat().st_mtime if p.exists() else 0)
    return tui.tail_of_log(str(logs[-1])) if logs else ""


def prompt_probe(prompt: bytes) -> str:
    """A short piece of the prompt that a TUI echoes in its input box (first non-empty line, 24 chars)."""
    for line in prompt.decode(errors="replace").splitlines():
        s = " ".join(line.split())
        if s:
            return s[:24]
    return ""


def shows_prompt(screen: str, probe: str) -> bool:
    """True when the probe text is still on screen (the input box still holds the paste)."""
    return bool(probe) and probe in " ".join(screen.split())


@dataclass
class Delivery:
    """What happened to a pasted prompt; `ok` False means the caller must say so clearly."""

    ok: bool
    step: str  # ready | first_run | pasted | submitted | retried | failed
    message: str
    attempts: int = 0
    seconds: float = 0.0
    log: list[str] = field(default_factory=list)


def deliver_paste(
    tmux: Tmux,
    pane: str,
    prompt_path: Path,
    prompt: bytes,
    mode: Mode,
    submitted_marker: Path | None = None,
    alive: Callable[[], bool] = lambda: True,
    first_run: bool = True,
) -> Delivery:
    """Wait for the TUI, paste `prompt_path` bracketed, press Enter, verify; one retry of the Enter."""
    t0 = time.monotonic()
    log: list[str] = []

    def done(ok: bool, step: str, msg: str, attempts: int = 0) -> Delivery:
        return Delivery(ok, step, msg, attempts, round(time.monotonic() - t0, 3), log)

    ready_at = Deadline(mode.ready_timeout_s)
    blocked: list[firstrun.Screen] = []

    def ready() -> object:
        screen = capture(tmux, pane)
        hit = firstrun.recognise(screen) if first_run else None
        if hit is not None:  # a first-run screen is not the input box: say so at once, with the fix
            blocked.append(hit)
            return "<first-run>"
        return first_match(mode.ready, screen) or (not alive() and "<exited>")

    seen = poll(ready, ready_at)
    if seen == "<first-run>":
        return done(False, "first_run", firstrun.message(blocked[-1]))
    if not seen or seen == "<exited>":
        final = capture(tmux, pane) or logged_screen(prompt_path)
        hit = firstrun.recognise(final) if first_run else None
        if hit is not None:
            return done(False, "first_run", firstrun.message(hit))
        last = final.strip().splitlines()[-3:]
        why = (
            "the agent exited" if seen == "<exited>" else f"no ready banner within {mode.ready_timeout_s:g}s"
        )
        return done(False, "ready", f"{why}; last screen: {' | '.join(last) or '(empty)'}")
    log.append(f"ready: {seen!r} after {time.monotonic() - t0:.2f}s")
    before = capture(tmux, pane)
    probe = prompt_probe(prompt)
    tmux.paste_file(pane, str(prompt_path), buffer="dk-" + secrets.token_hex(6), bracketed=True)
    # the paste is in the TUI once the screen changed (the text or a "[Pasted text]" chip appeared)
    poll(lambda: capture(tmux, pane) != before, Deadline(min(PASTE_SETTLE_S, mode.submit_timeout_s)))
    log.append(f"pasted {len(prompt)} bytes")

    def taken() -> str | None:
        if submitted_marker is not None and submitted_marker.exists():
            return "UserPromptSubmit hook fired"
        screen = capture(tmux, pane)
        hit = first_match(mode.working, screen)
        if hit:
            return f"working: {hit!r}"
        if not alive():
            return "agent ended"
        return None

    for attempt in (1, 2):
        tmux.send_key(pane, "Enter")
        got = poll(taken, Deadline(mode.submit_timeout_s / 2))
        if got:
            log.append(f"submitted ({got}) on attempt {attempt}")
            return done(True, "submitted" if attempt == 1 else "retried", str(got), attempt)
        screen = capture(tmux, pane)
        log.append(f"attempt {attempt}: not taken; prompt still in input box: {shows_prompt(screen, probe)}")
    last = capture(tmux, pane).strip().splitlines()[-3:]
    return done(
        False,
        "failed",
        f"prompt pasted but not taken after Enter and one retry ({mode.submit_timeout_s:g}s); "
        f"last screen: {' | '.join(last) or '(empty)'}",
        2,
    )


def needs_input(tmux: Tmux, pane: str, patterns: Sequence[str], window: int = 8) -> str | None:
    """The screen line that shows the agent waiting for an answer, or None.

    Only the last `window` non-empty lines count: a question that was answered scrolls up behind the
    agent's next output and stops counting (a TUI's input box and hint take about four lines).
    """
    if not patterns:
        return None
    return open_question(capture(tmux, pane, lines=30), patterns, window)


def open_question(screen: str, patterns: Sequence[str], window: int = 8) -> str | None:
    """Pure part of needs_input: match the patterns against the bottom `window` non-empty lines."""
    lines = [ln for ln in screen.splitlines() if ln.strip()]
    hit = first_match(patterns, "\n".join(lines[-window:]))
    if hit is None or hit.rstrip().endswith("?"):
        return hit
    return asked_above(lines, hit) or hit


def asked_above(lines: Sequence[str], hit: str, reach: int = 12) -> str | None:
    """A selector's hint matched ("Enter to select", "❯ 1. Yes"): the question itself is the nearest line
    above it that ends in `?` (Claude's multiple-choice tool draws it over the options)."""
    at = max((i for i, ln in enumerate(lines) if hit.strip() and hit.strip() in ln), default=len(lines))
    for ln in reversed(lines[max(0, at - reach) : at]):
        if ln.strip().endswith("?"):
            return " ".join(ln.split())
    return None
