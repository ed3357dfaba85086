"""The TUI delivery on a real tmux server that does not answer in time (frozen: SIGSTOP, as under load),
and for an agent that ended before the delivery looked (judged on what it printed)."""

from __future__ import annotations

import concurrent.futures
import shlex
import sys
from pathlib import Path

from faults.tmuxfault import freeze_server, stop_server
from runner.agents import firstrun, screen
from runner.agents import pane as panes
from runner.agents.profiles import Mode, load
from runner.clock import Deadline
from runner.tmux import Tmux

CONNECTIVITY = "Unable to connect to Anthropic services"
REPO = Path(__file__).resolve().parent.parent


def test_a_server_that_does_not_answer_is_not_an_ended_agent(sandbox) -> None:
    """CI under load: Claude's connectivity screen was on the pane, but the tmux calls timed out, the
    delivery took that for "the agent ended" (its log not yet filed) and `run` reported a started task
    instead of the first-run screen. With the server frozen, the delivery must wait, not conclude."""
    tmux = Tmux(socket_path=sandbox.socket, timeout=0.3, env=sandbox.env())
    tmux.run("new-session", "-d", "-s", "s1", f"printf '{CONNECTIVITY}\\n'; exec sleep 60")
    pane = tmux.run("list-panes", "-t", "=s1", "-F", "#{pane_id}").stdout.strip()
    assert panes.poll(lambda: CONNECTIVITY in panes.capture(tmux, pane), Deadline(10))
    prompt = sandbox.root / "agents" / "t1" / "prompt"  # no log beside it: nothing filed yet
    mode = Mode(argv=(), prompt="tui-argv", ready=("NEVER-SHOWN",), ready_timeout_s=20, submit_timeout_s=2)
    try:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            with freeze_server(sandbox.socket):
                fut = pool.submit(
                    panes.deliver_initial,
                    tmux,
                    pane,
                    prompt,
                    mode,
                    alive=lambda: panes.session_alive(tmux, "s1"),
                )
                # every call times out while frozen: a delivery that returns now concluded from silence
                done, _ = concurrent.futures.wait([fut], timeout=3.0)
                assert not done, f"concluded while tmux could not be asked: {fut.result()}"
            d = fut.result(timeout=30)
        assert not d.ok and d.step == "first_run", d
        assert "connectivity" in d.message, d.message
        assert panes.wait_pane(lambda: None, lambda: panes.session_alive(tmux, "gone"), 5) is None
    finally:
        stop_server(sandbox.socket)


# Claude Code 2.1.332's connectivity screen as its pty got it (screen.raw of a real run, the logo cut):
# a background-colour query wrapped for tmux (DCS passthrough, ESCs doubled), then every word placed with
# a cursor move, the terminal queries, and the exit's mode resets. Claude exits ~0.4 s after drawing it.
CLAUDE_CONNECTIVITY_RAW = (
    b"\x1b7\x1b[r\x1b8\x1b[?25h\x1b[?25l\x1b[?2004h\x1b[?2031h\x1b[?1004h\x1b[<u\x1b[>5u\x1b[>4;2m"
    b"\x1b[31mWelcome\x1b[9Gto\x1b[12GClaude\x1b[19GCode\x1b[24G\x1b[37m\x1b[2mv2.1.332\x1b[22m\x1b[39m\r\r\n"
    b"\r\r\n\x1bPtmux;\x1b\x1b]11;?\x07\x1b\\\x1b[>0q\x1b[?u\x1b[c"
    b"\x1b[2G\x1b[95mUnable\x1b[9Gto\x1b[12Gconnect\x1b[20Gto\x1b[23GAnthropic\x1b[33Gservices\x1b[39m\r\r\n\r\r\n"
    b"\x1b[2G\x1b[95mFailed\x1b[9Gto\x1b[12Gconnect\x1b[20Gto\x1b[23Gapi.anthropic.com:\x1b[42GENOTFOUND"
    b"\x1b[39m\r\r\n\r\r\n"
    b"\x1b[c\x1b]11;?\x07\x1b[c\x1b[?2026$p\x1b[c\x1b[?25h\x1b[?1004l\x1b[>4m\x1b[<u\x1b[?2031l\x1b[?2004l"
    b"\x1b(B\x0f\x1b[?1016l\x1b[?1006l\x1b[?1003l\x1b[?1002l\x1b[?1000l\x1b[?7h\x1b[?25h\x1b7\x1b[r\x1b8\x1b[?25h"
)


def test_claudes_recorded_connectivity_screen_reads_as_text() -> None:
    """pyte printed the DCS passthrough's payload over the screen: "tUnable1to connect", which no
    first-run pattern matches, so an agent that exited was judged without its last screen."""
    text = screen.render(CLAUDE_CONNECTIVITY_RAW)
    assert " Unable to connect to Anthropic services" in text.splitlines(), text
    hit = firstrun.recognise(text)
    assert hit is not None and hit.key == "connectivity", text
    # a DCS whose payload holds a doubled ESC before `\` ends at the real ST; a cut one at a lone ESC
    raw = b"a\x1bPtmux;\x1b\x1b]11;?\x1b\x1b\\\x1b\\b\x1b_Gx=1\x1b\\c\x1bPq#0;1\x1b[1md"
    assert screen.render(raw).strip() == "abcd"


def ended_agent(sandbox, tmux: Tmux, program: str) -> tuple[str, Path]:
    """A pane whose agent runs under the recording pty relay (as every TUI does), prints and exits;
    returned once its session is gone: (pane, prompt path beside the recording)."""
    agent_dir = sandbox.root / "agents" / "t1"
    agent_dir.mkdir(parents=True)
    prompt = agent_dir / "prompt"
    prompt.write_bytes(b"hello\n")
    argv = [sys.executable, "-m", "runner.agents.launch", "--record", str(agent_dir / screen.RECORDING),
            "--", sys.executable, "-c", program]  # fmt: skip
    cmd = f"cd {shlex.quote(str(REPO))} && exec {shlex.join(argv)}"
    tmux.run("new-session", "-d", "-s", "s1", "-x", "200", "-y", "50", cmd)
    pane = tmux.run("list-panes", "-t", "=s1", "-F", "#{pane_id}", check=False).stdout.strip()
    assert panes.poll(lambda: not panes.session_alive(tmux, "s1"), Deadline(30)), "the agent did not end"
    return pane, prompt


def deliver_to_ended(sandbox, tmux: Tmux, pane: str, prompt: Path) -> panes.Delivery:
    """The delivery of Claude's interactive mode (its ready/working patterns) to the ended agent."""
    _, mode = load("claude", sandbox.env()).mode("interactive")
    return panes.deliver_initial(tmux, pane, prompt, mode, submitted_marker=prompt.parent / "submitted.json",
                                 alive=lambda: panes.session_alive(tmux, "s1"))  # fmt: skip


def test_a_first_run_screen_drawn_before_the_first_look_is_reported(sandbox) -> None:
    """CI under load: Claude drew its connectivity screen and exited between two looks of the delivery.
    Forced: the agent has ended before the delivery looks at all. Judged on what it printed."""
    tmux = Tmux(socket_path=sandbox.socket, timeout=10, env=sandbox.env())
    program = f"import os; os.write(1, {CLAUDE_CONNECTIVITY_RAW!r}); raise SystemExit(1)"
    try:
        pane, prompt = ended_agent(sandbox, tmux, program)
        d = deliver_to_ended(sandbox, tmux, pane, prompt)
        assert not d.ok and d.step == "first_run" and "connectivity" in d.message, d
    finally:
        stop_server(sandbox.socket)


def test_an_agent_that_exits_before_taking_its_prompt_is_not_submitted(sandbox) -> None:
    """An exit with no submit hook, no input box and no working sign proves nothing about the prompt:
    not delivered (step `exited`, its last screen quoted), never `submitted`."""
    tmux = Tmux(socket_path=sandbox.socket, timeout=10, env=sandbox.env())
    program = "print('starting up'); print('fatal: cannot load config'); raise SystemExit(3)"
    try:
        pane, prompt = ended_agent(sandbox, tmux, program)
        d = deliver_to_ended(sandbox, tmux, pane, prompt)
        assert not d.ok and d.step == "exited", d
        assert "fatal: cannot load config" in d.message, d.message
        (prompt.parent / "submitted.json").write_text("{}")  # its UserPromptSubmit hook ran before the end
        d = deliver_to_ended(sandbox, tmux, pane, prompt)
        assert d.ok and d.step == "submitted", d
    finally:
        stop_server(sandbox.socket)
