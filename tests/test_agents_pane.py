"""Pure helpers of the TUI delivery and the CLI's progress output."""

from __future__ import annotations

import io

from runner.agents import runs
from runner.agents.cli import Progress, find_terminal
from runner.agents.pane import prompt_probe, shows_prompt
from runner.cli import build_parser


def test_prompt_probe_and_shows_prompt() -> None:
    assert (
        prompt_probe(b"\n\n   Fix   the parser and then run all the tests\nmore")
        == "Fix the parser and then "
    )
    assert prompt_probe(b"\n \n") == ""
    screen = "╭──╮\n│ > Fix the parser and then run│\n╰──╯"
    assert shows_prompt(screen, prompt_probe(b"Fix the parser and then run"))
    assert not shows_prompt("│ >  │", "Fix the parser")
    assert not shows_prompt("anything", "")


def test_progress_plain_lines_only_on_change() -> None:
    out = io.StringIO()
    p = Progress("t1", out)
    for live in ("starting", "running", "running"):
        p.tick(runs.Watch(state=live, live=live))
    p.tick(runs.Watch(state="running", live="needs_input", question="QUESTION: ok?"))
    lines = out.getvalue().splitlines()
    assert lines[:2] == ["t1: starting", "t1: running"] and "needs_input: QUESTION: ok?" in lines[2]
    assert len(lines) == 3


def test_progress_quiet_in_json_mode() -> None:
    out = io.StringIO()
    p = Progress("t1", out, quiet=True)
    p.say("x")
    p.tick(runs.Watch())
    assert out.getvalue() == ""


def test_parser_has_every_verb() -> None:
    ap = build_parser()
    a = ap.parse_args(["run", "--agent", "codex", "--prompt", "p", "--", "--full-auto"])
    assert a.extra == ["--full-auto"] and a.mode is None
    assert ap.parse_args(["run", "--agent", "claude", "--prompt", "p", "--batch"]).mode == "batch"
    assert ap.parse_args(["queue", "add", "--agent", "pi", "--prompt", "p"]).queue_verb == "add"
    assert ap.parse_args(["workers", "--max", "3"]).max_running == 3
    assert ap.parse_args(["logs", "-f", "x"]).follow


def test_find_terminal_needs_a_display() -> None:
    assert find_terminal({"PATH": "/usr/bin:/bin"}) is None or __import__("sys").platform == "darwin"
