"""`fake-pi`: `pi -p [--mode json] [--session ID] [--model M] [PROMPT...]`, one turn.

Like pi 0.73 in print mode: the prompt comes from argv words or, with none, from stdin; `--mode json`
prints one JSON event per line, first the session header `{"type": "session", "id": ...}` whose id
`--session` continues, then agent/turn/message events; a failed turn is an assistant message with
`stopReason: "error"`. An --ask question cannot be answered in print mode: it becomes the turn's text.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

from fake_agents import lookalike
from fake_agents.core import Agent

KIND = "pi"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pi", description="Fake Pi coding agent (tests only).")
    p.add_argument("-p", "--print", dest="print_mode", action="store_true")
    p.add_argument("--mode", choices=("text", "json", "rpc"), default="text")
    p.add_argument("--session", help="a session id or session file to continue")
    p.add_argument("--session-dir")
    p.add_argument("-c", "--continue", dest="cont", action="store_true")
    p.add_argument("--model")
    p.add_argument("--provider")
    p.add_argument("prompt", nargs="*")
    return p


def session_of(arg: str) -> str:
    """`--session` takes an id or a session file (`.../<timestamp>_<id>.jsonl`): the id either way."""
    base = os.path.basename(arg)
    if base.endswith(".jsonl"):
        base = base[: -len(".jsonl")].rpartition("_")[2]
    return base


def assistant(text: str, stop: str = "stop", error: str | None = None) -> dict[str, Any]:
    msg: dict[str, Any] = {"role": "assistant", "content": [{"type": "text", "text": text}],
                           "stopReason": stop, "timestamp": int(time.time() * 1000)}  # fmt: skip
    if error:
        msg["errorMessage"] = error
    return msg


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    resumed = session_of(args.session) if args.session else (lookalike.last(KIND) if args.cont else None)
    session = resumed or lookalike.new_id()
    agent: Agent = lookalike.make_agent(KIND, "fake_agents.pi")
    agent.boot(session_id=session, model=args.model, resumed=resumed,
               mode="print" if args.print_mode else "interactive", output=args.mode)  # fmt: skip
    lookalike.remember(KIND, session)
    json_mode = args.mode == "json"

    def event(doc: dict[str, Any]) -> None:
        if json_mode:
            agent.write(json.dumps(doc, separators=(",", ":")).encode() + agent.nl)

    if args.prompt:
        prompt, source = os.fsencode(" ".join(args.prompt)), "argv"
    else:
        prompt, source = lookalike.read_stdin_prompt(), "stdin"
    agent.record_prompt(prompt, source)
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    event({"type": "session", "version": 3, "id": session, "timestamp": now, "cwd": os.getcwd()})
    event({"type": "agent_start"})
    event({"type": "turn_start"})
    user = {"role": "user", "content": [{"type": "text", "text": prompt.decode("utf-8", "replace")}]}
    event({"type": "message_start", "message": user})
    event({"type": "message_end", "message": user})
    agent.emit_outputs()
    question = lookalike.ask_or_read(agent, source)
    agent.work()
    text = question or lookalike.reply(KIND, prompt)
    agent.write_result()
    code = agent.opts.exit_code
    msg = assistant(text) if not code else assistant("", "error", f"fake failure (exit {code})")
    event({"type": "message_start", "message": msg})
    event({"type": "message_end", "message": msg})
    event({"type": "turn_end", "message": msg, "toolResults": []})
    event({"type": "agent_end", "messages": [user, msg]})
    if not json_mode:
        agent.line(text)
    agent.journal.write("turn", n=1, session_id=session, reply=text)
    agent.finish()
    return 0  # pragma: no cover - finish() exits


if __name__ == "__main__":
    raise SystemExit(main())
