"""Talking to an interactive agent's TUI: wait until ready, paste the prompt, submit, verify it was taken
(or, for a TUI that got the prompt as its initial argument, wait until it took it).

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
from runner.tmux import Tmux, TmuxError, TmuxTimeout

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


def session_alive(tmux: Tmux, session: str) -> bool:
    """False only when the session is known gone. A tmux call that timed out (a loaded or frozen server)
    says nothing about the agent: taken for "ended", it once made `run` skip a first-run screen that was
    still on the pane (the pane unreadable, the log not yet filed) and report the run as started."""
    try:
        return tmux.has_session(session)
    except TmuxTimeout:
        return True


def wait_pane(find: Callable[[], str | None], alive: Callable[[], bool], within: float) -> str | None:
    """The pane `find` names; None only once the session is known gone (`alive` False): a loaded server
    that does not answer in time is asked again, up to `within` seconds."""
    found = poll(lambda: find() or (not alive() and "<gone>"), Deadline(within))
    return found if isinstance(found, str) and found != "<gone>" else None


def poll(cond: Callable[[], object], deadline: Deadline) -> object:
    """Evaluate `cond` until it is truthy or the deadline passes; the last value either way."""
    delay = POLL_S
    while True:
        v = cond()
        if v or deadline.expired():
            return v
        time.sleep(deadline.cap(delay))
        delay = min(POLL_MAX_S, delay * 1.5)


def final_screen(tmux: Tmux, pane: str, prompt_path: Path, settled: Callable[[], object]) -> str:
    """Everything an agent that ended showed, read once its supervisor filed the end (`settled`): the
    pane if still there, the raw recording of all it printed replayed as text, and the rendered log.
    A screen drawn just before the exit (Claude's connectivity check, ~0.4 s) is easily missed by the
    live looks under load; the recording holds it whatever the timing."""
    settled()
    recorded = tui.recording_text(prompt_path.parent / tui.RECORDING) or ""
    # the recording last: it is the most faithful, and callers quote the last lines
    return f"{logged_screen(prompt_path)}\n{capture(tmux, pane) if pane else ''}\n{recorded}"


def logged_screen(prompt_path: Path) -> str:
    """What an agent that already exited last showed: its output log (STATE/tasks/ID/output.*.log, next
    to our STATE/agents/ID/prompt) rendered as text."""
    task_dir = prompt_path.parent.parent.parent / "tasks" / prompt_path.parent.name
    logs = sorted(task_dir.glob("output.*.log"), key=lambda p: p.stat().st_mtime if p.exists() else 0)
    return tui.tail_of_log(str(logs[-1])) if logs else ""


def judge_ended(
    tmux: Tmux,
    pane: str,
    prompt_path: Path,
    mode: Mode,
    submitted_marker: Path | None,
    settled: Callable[[], object],
    seen_ready: bool = False,
) -> tuple[bool, str, str]:
    """(ok, step, message) for an agent that ended before its prompt was seen taken, from what it left:
    the UserPromptSubmit marker (its hook ran before the exit), a first-run screen in all it printed
    (reported with the fix), or a sign that it had its input box or worked (its input box seen live,
    or the ready/working patterns in its recording). Anything else is no proof it took the prompt:
    not delivered (step `exited`), never `submitted`."""
    final = final_screen(tmux, pane, prompt_path, settled)
    if submitted_marker is not None and submitted_marker.exists():
        return True, "submitted", "UserPromptSubmit hook fired (the agent has ended since)"
    hit = firstrun.recognise(final)
    if hit is not None:
        return False, "first_run", firstrun.message(hit)
    sign = "input box seen" if seen_ready else first_match((*mode.working, *mode.ready), final)
    if sign:
        return True, "submitted", f"agent ended after it showed {sign!r}"
    last = " | ".join([ln.strip() for ln in final.splitlines() if ln.strip()][-3:]) or "(empty)"
    why = "the agent exited before it took the prompt (no submit hook, input box or working sign)"
    return False, "exited", f"{why}; last screen: {last}"


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
    step: str  # ready | first_run | exited | pasted | submitted | retried | failed
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
    settled: Callable[[], object] = lambda: None,
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
        final = final_screen(tmux, pane, prompt_path, settled) if seen else capture(tmux, pane)
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


def deliver_initial(
    tmux: Tmux,
    pane: str,
    prompt_path: Path,
    mode: Mode,
    submitted_marker: Path | None = None,
    alive: Callable[[], bool] = lambda: True,
    asking: Sequence[str] = (),
    settled: Callable[[], object] = lambda: None,
) -> Delivery:
    """The prompt went in as the TUI's initial argument (`tui-argv`): wait until it is taken, reporting a
    first-run screen that holds it at once; one Enter if the TUI still holds it `submit_timeout_s` after
    its input box showed (the paste's retry). Taken: the UserPromptSubmit hook (or a finished turn's, which
    writes the same marker), the spinner, or a question on screen. An agent that ended before any of
    these was seen is judged on everything it printed (judge_ended): its exit alone proves nothing."""
    t0 = time.monotonic()
    log: list[str] = []
    blocked: list[firstrun.Screen] = []
    ready_since: list[float] = []

    def done(ok: bool, step: str, msg: str, attempts: int = 0) -> Delivery:
        return Delivery(ok, step, msg, attempts, round(time.monotonic() - t0, 3), log)

    def taken(screen: str) -> str | None:
        if submitted_marker is not None and submitted_marker.exists():
            return "UserPromptSubmit hook fired"
        hit = first_match(mode.working, screen)
        if hit:
            return f"working: {hit!r}"
        asked = open_question(screen, asking) if asking else None
        return f"asking: {asked!r}" if asked else None

    def state() -> object:
        if submitted_marker is not None and submitted_marker.exists():
            return "UserPromptSubmit hook fired"
        screen = capture(tmux, pane)
        hit = firstrun.recognise(screen)
        if hit is not None:  # a first-run screen holds the prompt: say so at once, with the fix
            blocked.append(hit)
            return "<first-run>"
        got = taken(screen) or (not alive() and "<exited>")
        if got or not first_match(mode.ready, screen):
            return got
        if not ready_since:  # the input box showed: from now on it has submit_timeout_s to take it
            ready_since.append(time.monotonic())
        return "<held>" if time.monotonic() - ready_since[0] > mode.submit_timeout_s else None

    seen = poll(state, Deadline(mode.ready_timeout_s + mode.submit_timeout_s))
    if seen == "<first-run>":
        return done(False, "first_run", firstrun.message(blocked[-1]))
    if seen == "<exited>":  # judged on all it printed, after it was filed; an exit alone proves nothing
        ok, step, msg = judge_ended(tmux, pane, prompt_path, mode, submitted_marker, settled,
                                    seen_ready=bool(ready_since))  # fmt: skip
        log.append(f"ended before it was seen taking the prompt: {step}: {msg}")
        return done(ok, step, msg, 1)
    if seen and seen != "<held>":
        log.append(f"taken ({seen}) after {time.monotonic() - t0:.2f}s")
        return done(True, "submitted", str(seen), 1)
    if seen == "<held>":  # the input box shows and nothing took the prompt: it may hold it for review
        tmux.send_key(pane, "Enter")
        got = poll(lambda: taken(capture(tmux, pane)) or (not alive() and "agent ended"),
                   Deadline(mode.submit_timeout_s / 2))  # fmt: skip
        if got:
            log.append(f"taken ({got}) after one Enter")
            return done(True, "retried", str(got), 2)
    last = capture(tmux, pane).strip().splitlines()[-3:]
    return done(
        False,
        "failed",
        f"the initial prompt was not taken within {mode.ready_timeout_s + mode.submit_timeout_s:g}s"
        f"{' and one Enter' if seen == '<held>' else ''}; last screen: {' | '.join(last) or '(empty)'}",
        2 if seen == "<held>" else 1,
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
