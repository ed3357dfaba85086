"""`fake-claude`: looks and behaves like Claude Code where dispatchers touch it.

Interactive (default): banner after FAKE_CLAUDE_STARTUP_S, an input box in raw mode with bracketed
paste on, Enter (CR) submits, a spinner for FAKE_CLAUDE_WORK_S, an optional y/N permission question
(FAKE_CLAUDE_ASK=1), then back to the input box. ``-p`` reads the prompt from stdin (or argv), prints
one answer and exits; an --ask question there is the turn's final message (nobody can answer it). ``--settings FILE``
hooks (PostToolUse, Stop) run as ``sh -c`` with the hook JSON on stdin, like the real one.
Generic faults come from FAKE_AGENT_FLAGS; everything is journaled (FAKE_AGENT_JOURNAL).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

from fake_agents import lookalike
from fake_agents.core import Agent, InputParser, RawTTY, digest

KIND = "claude"
SPINNER = "·✢✳✶✻✽"
ORANGE, DIM, RESET, BOLD = "\x1b[38;5;174m", "\x1b[2m", "\x1b[0m", "\x1b[1m"


def _env_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="claude", description="Fake Claude Code (tests only).")
    p.add_argument("-p", "--print", dest="print_mode", action="store_true", help="print one answer and exit")
    p.add_argument("--model")
    p.add_argument("-r", "--resume", nargs="?", const="", metavar="SESSION_ID")
    p.add_argument("-c", "--continue", dest="cont", action="store_true")
    p.add_argument("--session-id")
    p.add_argument("--settings", metavar="FILE")
    p.add_argument("--output-format", choices=("text", "json", "stream-json"), default="text")
    p.add_argument("--dangerously-skip-permissions", action="store_true")
    p.add_argument("--permission-mode")
    p.add_argument("--verbose", action="store_true")
    p.add_argument("prompt", nargs="?")
    return p


class Claude:
    """One fake Claude Code session."""

    def __init__(self, args: argparse.Namespace, unknown: list[str]) -> None:
        self.args = args
        self.unknown = unknown
        self.agent: Agent = lookalike.make_agent(KIND, "fake_agents.claude")
        self.model = args.model or os.environ.get("ANTHROPIC_MODEL") or "claude-sonnet-4-5"
        self.resumed = None
        if args.resume:
            self.session_id = args.resume
            self.resumed = "resume"
        elif args.cont and lookalike.last(KIND):
            self.session_id = lookalike.last(KIND) or ""
            self.resumed = "continue"
        else:
            self.session_id = args.session_id or lookalike.new_id()
        self.hooks: dict[str, Any] = {}
        self.turns = 0
        self.max_turns = int(os.environ.get("FAKE_CLAUDE_TURNS", "0") or 0)
        self.work_s = _env_float("FAKE_CLAUDE_WORK_S", self.agent.opts.work or 0.5)
        self.cols = 80
        self.transcript = os.path.join(lookalike.home(KIND), f"{self.session_id}.jsonl")

    # -- plumbing ----------------------------------------------------------------------------------

    def out(self, text: str) -> None:
        self.agent.write(text.encode())

    def load_settings(self) -> None:
        if not self.args.settings:
            return
        try:
            with open(self.args.settings, encoding="utf-8") as f:
                self.hooks = json.load(f).get("hooks", {}) or {}
        except (OSError, ValueError, AttributeError) as e:
            self.agent.journal.write("settings_error", path=self.args.settings, error=str(e))

    def run_hooks(self, event: str, payload: dict[str, Any], tool: str | None = None) -> None:
        """Run every matching command hook: sh -c CMD, hook JSON on stdin, cwd = project dir."""
        import re
        import subprocess

        base = {
            "session_id": self.session_id,
            "transcript_path": self.transcript,
            "cwd": os.getcwd(),
            "hook_event_name": event,
        }
        base.update(payload)
        env = dict(os.environ, CLAUDE_PROJECT_DIR=os.getcwd())
        for group in self.hooks.get(event, []) or []:
            matcher = group.get("matcher", "") or ""
            if tool is not None and matcher not in ("", "*") and not re.fullmatch(matcher, tool):
                continue
            for h in group.get("hooks", []) or []:
                if h.get("type") != "command" or not h.get("command"):
                    continue
                try:
                    cp = subprocess.run(
                        ["/bin/sh", "-c", h["command"]],
                        input=json.dumps(base).encode(),
                        capture_output=True,
                        env=env,
                        timeout=float(h.get("timeout", 60)),
                    )
                    code: int | None = cp.returncode
                except subprocess.TimeoutExpired:
                    code = None
                self.agent.journal.write("hook", hook_event=event, command=h["command"], tool=tool, code=code)

    def log_transcript(self, role: str, text: str) -> None:
        with open(self.transcript, "a", encoding="utf-8") as f:
            f.write(json.dumps({"type": role, "session_id": self.session_id, "text": text}) + "\n")

    def tool_uses(self) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
        n = int(os.environ.get("FAKE_CLAUDE_TOOLS", "1") or 0)
        uses = [
            (
                "Bash",
                {"command": "echo fake", "description": "fake tool use"},
                {"stdout": "fake\n", "stderr": ""},
            )
            for _ in range(n)
        ]
        for name in self.agent.opts.touch:
            path = os.path.abspath(name)
            uses.append(("Write", {"file_path": path, "content": "..."}, {"filePath": path, "success": True}))
        return uses

    # -- one turn ----------------------------------------------------------------------------------

    def turn(self, prompt: bytes, tui: bool, question: str | None = None) -> str:
        """Work on one prompt: spinner, optional permission question, tool uses + hooks, reply, Stop."""
        self.turns += 1
        self.log_transcript("user", prompt.decode("utf-8", "replace"))
        if tui:
            self.spin(self.work_s)
        else:
            time.sleep(self.work_s if "FAKE_CLAUDE_WORK_S" in os.environ else 0)
        if self.turns == 1:
            self.agent.emit_outputs()
        o = self.agent.opts
        if o.hang or o.hang_silent:
            self.agent.work(0)  # never returns
        if self.turns == 1 and o.ask and tui:
            self.ask_line(o.ask)
        allowed = True
        if os.environ.get("FAKE_CLAUDE_ASK") == "1" and tui:
            allowed = self.ask_permission()
        if allowed:
            for tool, tin, tres in self.tool_uses():
                if tui:
                    self.out(
                        f"\r\n{ORANGE}⏺{RESET} {BOLD}{tool}{RESET}({tin.get('command') or tin.get('file_path')})\r\n"
                    )
                    self.out(f"  ⎿  {DIM}done{RESET}\r\n")
                self.agent.journal.write("tool_use", tool=tool, input=tin)
                self.run_hooks(
                    "PostToolUse", {"tool_name": tool, "tool_input": tin, "tool_response": tres}, tool
                )
        text = lookalike.reply(KIND, prompt) if allowed else "Permission denied; I did nothing."
        if question:
            text = question
        self.log_transcript("assistant", text)
        if tui:
            self.out(f"\r\n{ORANGE}⏺{RESET} {text}\r\n\r\n")
        self.run_hooks("Stop", {"stop_hook_active": False, "last_assistant_message": text})
        if self.turns == 1:
            self.agent.write_result()
        self.agent.journal.write("turn", n=self.turns, session_id=self.session_id, reply=text)
        return text

    def spin(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        t0 = time.monotonic()
        i = 0
        self.out("\x1b[?25l")
        while (now := time.monotonic()) < end:
            frame = SPINNER[i % len(SPINNER)]
            self.out(
                f"\r\x1b[2K{ORANGE}{frame} Thinking…{RESET} {DIM}({int(now - t0)}s · esc to interrupt){RESET}"
            )
            i += 1
            time.sleep(min(0.1, max(0.0, end - now)))
        self.out("\r\x1b[2K\x1b[?25h")

    def ask_line(self, question: str) -> None:
        """--ask in the TUI: show the question, take one typed/pasted answer up to Enter."""
        self.out(f"\r\n{ORANGE}⏺{RESET} {question}\r\n\r\n")
        self.draw_box("")
        self.agent.journal.write("question", text=question)
        parser = InputParser()
        got = bytearray()
        while True:
            data = os.read(0, 65536)
            if not data:
                break
            toks = parser.feed(data)
            for kind, tok in toks:
                if kind in ("paste", "text"):
                    got += tok
                elif kind == "enter" and got:
                    break
            else:
                continue
            break
        self.agent.journal.write("input", kind="answer", **digest(bytes(got)))
        self.out("\x1b[2B\r\n")

    def ask_permission(self) -> bool:
        q = "Do you want to proceed? (y/N)"
        self.out(f"\r\n{BOLD}Bash command{RESET}\r\n  echo fake\r\n{q} ")
        self.agent.journal.write("question", text=q)
        while True:
            c = os.read(0, 1)
            if not c or c in b"yYnN\r\n":
                break
        self.agent.journal.write("input", kind="answer", **digest(c))
        self.out(c.decode("latin-1").strip() + "\r\n")
        return c in b"yY"

    # -- the TUI -----------------------------------------------------------------------------------

    def banner(self) -> None:
        w = self.cols
        inner = w - 2
        cwd = os.getcwd()
        rows = [
            f" {ORANGE}✻{RESET} Welcome to {BOLD}Claude Code{RESET} (fake)",
            "",
            "   /help for help, /status for your current setup",
            "",
            f"   cwd: {cwd}",
            f"   model: {self.model}",
            f"   session: {self.session_id}",
        ]
        self.out(f"{ORANGE}╭{'─' * inner}╮{RESET}\r\n")
        for r in rows:
            visible = len(_strip(r))
            pad = max(0, inner - visible)
            self.out(f"{ORANGE}│{RESET}{r}{' ' * pad}{ORANGE}│{RESET}\r\n")
        self.out(f"{ORANGE}╰{'─' * inner}╯{RESET}\r\n\r\n")

    def draw_box(self, shown: str) -> None:
        """Claude 2.1's input: `❯` between two rules; the cursor is left on the `❯` line after the text."""
        text = self._fit(shown)
        self.out(f"{DIM}{'─' * self.cols}{RESET}\r\n")
        self.out(f"❯ {text}\r\n")
        self.out(f"{DIM}{'─' * self.cols}{RESET}\r\n")
        self.out(f"  {DIM}? for shortcuts{RESET}")
        self.out(f"\x1b[2A\r\x1b[{2 + len(text)}C")

    def _fit(self, shown: str) -> str:
        room = self.cols - 4
        return shown[-room:] if len(shown) > room else shown

    def redraw_line(self, shown: str) -> None:
        text = self._fit(shown)
        self.out(f"\r\x1b[2K❯ {text}")

    def interactive(self) -> None:
        try:
            self.cols = max(40, min(os.get_terminal_size(1).columns, 120))
        except OSError:
            self.cols = 80
        time.sleep(max(0.0, _env_float("FAKE_CLAUDE_STARTUP_S", 0.3)))
        parser = InputParser()
        buf = bytearray()
        shown = ""
        pastes = 0
        interrupts = 0
        with RawTTY(0):
            self.out("\x1b[?2004h")
            self.banner()
            if self.args.prompt:
                self.agent.record_prompt(os.fsencode(self.args.prompt), "argv", turn=1)
                self.turn(os.fsencode(self.args.prompt), tui=True)
                if self.max_turns and self.turns >= self.max_turns:
                    return  # like a typed/pasted turn: FAKE_CLAUDE_TURNS counts the initial prompt too
            self.draw_box("")
            self.agent.journal.write("ready", session_id=self.session_id, bracketed_paste=True)
            try:
                while True:
                    data = os.read(0, 65536)
                    if not data:
                        break
                    for kind, tok in parser.feed(data):
                        if kind == "paste":
                            pastes += 1
                            self.agent.journal.write("input", kind="paste", **digest(tok))
                            buf += tok
                            lines = tok.count(b"\n") + tok.count(b"\r")
                            shown += (
                                f"[Pasted text #{pastes} +{lines} lines]"
                                if lines
                                else tok.decode("utf-8", "replace")
                            )
                            self.redraw_line(shown)
                        elif kind == "text":
                            buf += tok
                            shown += tok.decode("utf-8", "replace")
                            self.redraw_line(shown)
                        elif kind == "ctrl" and tok == b"\x7f" and buf:
                            del buf[-1:]
                            shown = shown[:-1]
                            self.redraw_line(shown)
                        elif kind == "ctrl" and tok in (b"\x03", b"\x04"):
                            if buf and tok == b"\x03":
                                buf.clear()
                                shown = ""
                                self.redraw_line(shown)
                                continue
                            interrupts += 1
                            if interrupts >= 2 or tok == b"\x04":
                                return
                            self.out(f"\r\n{DIM}Press Ctrl-C again to exit{RESET}\x1b[1A\r")
                            self.redraw_line(shown)
                        elif kind == "enter" and buf:
                            prompt = bytes(buf)
                            buf.clear()
                            shown = ""
                            self.out("\x1b[2B\r\n")
                            if prompt.strip() == b"/exit":
                                return
                            self.agent.record_prompt(prompt, "tui", turn=self.turns + 1)
                            self.turn(prompt, tui=True)
                            if self.max_turns and self.turns >= self.max_turns:
                                return
                            self.draw_box("")
                            self.agent.journal.write(
                                "ready", session_id=self.session_id, bracketed_paste=True
                            )
            finally:
                self.out("\x1b[?2004l\r\n")

    def print_mode(self) -> None:
        if self.args.prompt is not None:
            prompt, source = os.fsencode(self.args.prompt), "argv"
        else:
            prompt, source = lookalike.read_stdin_prompt(), "stdin"
        self.agent.record_prompt(prompt, source)
        # -p has no one to ask: like the real one, a question ends the turn as its final message
        question = lookalike.ask_or_read(self.agent, source)
        text = self.turn(prompt, tui=False, question=question)
        if self.args.output_format == "text":
            self.agent.line(text)
        else:
            doc = {
                "type": "result",
                "subtype": "success" if self.agent.opts.exit_code == 0 else "error_during_execution",
                "is_error": self.agent.opts.exit_code != 0,
                "result": text,
                "session_id": self.session_id,
                "num_turns": 1,
            }
            self.agent.line(json.dumps(doc))
        self.agent.work()

    def run(self) -> None:
        self.agent.boot(
            session_id=self.session_id,
            model=self.model,
            mode="print" if self.args.print_mode else "interactive",
            resumed=self.resumed,
            unknown_args=self.unknown,
        )
        lookalike.remember(KIND, self.session_id)
        self.load_settings()
        if self.args.print_mode:
            self.print_mode()
        else:
            self.interactive()
        self.agent.finish()


def _strip(s: str) -> str:
    import re

    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", s)


def main(argv: list[str] | None = None) -> int:
    args, unknown = build_parser().parse_known_args(argv)
    Claude(args, unknown).run()
    return 0  # pragma: no cover - run() exits


if __name__ == "__main__":
    raise SystemExit(main())
