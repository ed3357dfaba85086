"""`fake-opencode`: `opencode run [--format json] [--auto] [-m M] [-s ID | -c] [MESSAGE...]`, one turn.

Like OpenCode 1.18: the message comes from argv words or, with none, from stdin (the channel that keeps
it byte for byte); it works in $PWD; `--format json` prints one JSON event per line (step_start, text,
step_finish, or error on a failed turn), each carrying the `sessionID` (`ses_...`) that `-s` resumes.
An --ask question cannot be answered in `run`: it becomes the turn's text. Faults from FAKE_AGENT_FLAGS.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from fake_agents import lookalike
from fake_agents.core import Agent

KIND = "opencode"


def new_session_id() -> str:
    """OpenCode's shape: `ses_` and 26 characters."""
    return "ses_" + os.urandom(13).hex()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="opencode run", description="Fake OpenCode (tests only).")
    p.add_argument("-m", "--model")
    p.add_argument("-c", "--continue", dest="cont", action="store_true")
    p.add_argument("-s", "--session")
    p.add_argument("--format", choices=("default", "json"), default="default")
    p.add_argument("--auto", action="store_true", help="allow tools that need permission")
    p.add_argument("--agent")
    # opencode's logging flags (the shipped profile passes them: its ERROR lines show retries, docs/agents.md)
    p.add_argument("--print-logs", action="store_true")
    p.add_argument("--log-level", choices=("DEBUG", "INFO", "WARN", "ERROR"))
    p.add_argument("message", nargs="*")
    return p


class Events:
    """OpenCode's `--format json` lines: {type, timestamp, sessionID, part|error}."""

    def __init__(self, agent: Agent, session: str, on: bool) -> None:
        self.agent, self.session, self.on = agent, session, on
        self.message_id = "msg_" + os.urandom(13).hex()

    def emit(self, etype: str, **body: object) -> None:
        if not self.on:
            return
        doc = {"type": etype, "timestamp": int(time.time() * 1000), "sessionID": self.session, **body}
        self.agent.write(json.dumps(doc, separators=(",", ":")).encode() + self.agent.nl)

    def part(self, etype: str, ptype: str, **fields: object) -> None:
        part = {"id": "prt_" + os.urandom(13).hex(), "sessionID": self.session,
                "messageID": self.message_id, "type": ptype, **fields}  # fmt: skip
        self.emit(etype, part=part)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] != "run":
        print("fake-opencode: only `opencode run ...` is simulated", file=sys.stderr)
        return 2
    args = build_parser().parse_args(argv[1:])
    session = args.session or (lookalike.last(KIND) if args.cont else None) or new_session_id()
    agent = lookalike.make_agent(KIND, "fake_agents.opencode")
    agent.boot(session_id=session, model=args.model or "anthropic/claude-sonnet-4-5",
               resumed=session if (args.session or args.cont) else None, auto=args.auto,
               pwd=os.environ.get("PWD"), format=args.format)  # fmt: skip
    lookalike.remember(KIND, session)
    if args.message:
        prompt, source = os.fsencode(" ".join(args.message)), "argv"
    else:
        prompt, source = lookalike.read_stdin_prompt(), "stdin"
    agent.record_prompt(prompt, source)
    ev = Events(agent, session, args.format == "json")
    ev.part("step_start", "step-start")
    agent.emit_outputs()
    question = lookalike.ask_or_read(agent, source)
    agent.work()
    text = question or lookalike.reply(KIND, prompt)
    agent.write_result()
    if agent.opts.exit_code:
        ev.emit(
            "error",
            error={
                "name": "UnknownError",
                "data": {"message": f"fake failure (exit {agent.opts.exit_code})"},
            },
        )
    else:
        ev.part(
            "text", "text", text=text, time={"start": int(time.time() * 1000), "end": int(time.time() * 1000)}
        )
        ev.part(
            "step_finish",
            "step-finish",
            reason="stop",
            cost=0,
            tokens={"input": len(prompt), "output": len(text)},
        )
    if not ev.on:
        agent.line(text)
    agent.journal.write("turn", n=1, session_id=session, reply=text)
    agent.finish()
    return 0  # pragma: no cover - finish() exits


if __name__ == "__main__":
    raise SystemExit(main())
