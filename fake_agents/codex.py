"""`fake-codex`: `codex exec [--json] [--model M] PROMPT` and `codex exec resume THREAD_ID PROMPT`.

With --json it prints Codex's JSONL events (thread.started with thread_id, turn.started,
item.completed with an agent_message, turn.completed or turn.failed) on stdout; without it, progress on
stderr and the final message on stdout, as the real one does. The prompt is `-` (or no words): stdin.
An --ask question cannot be answered in `exec`: it becomes the agent_message, as with the real one.
Generic faults from FAKE_AGENT_FLAGS.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from fake_agents import lookalike

KIND = "codex"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="codex exec", description="Fake Codex CLI exec (tests only).")
    p.add_argument("--json", "--experimental-json", dest="json", action="store_true")
    p.add_argument("-m", "--model")
    p.add_argument("--full-auto", action="store_true")
    p.add_argument("--dangerously-bypass-approvals-and-sandbox", "--yolo", action="store_true")
    p.add_argument("--skip-git-repo-check", action="store_true")
    p.add_argument("-s", "--sandbox")
    p.add_argument("-C", "--cd")
    p.add_argument("-c", "--config", action="append", default=[])
    p.add_argument("-o", "--output-last-message")
    p.add_argument("--color")
    p.add_argument("--last", action="store_true", help="with resume: the last thread in this cwd")
    p.add_argument("words", nargs="*")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in ("exec", "e"):
        print("fake-codex: only `codex exec ...` is simulated", file=sys.stderr)
        return 2
    args = build_parser().parse_args(argv[1:])
    if args.cd:
        os.chdir(args.cd)
    words = list(args.words)
    resumed = None
    thread_id = lookalike.new_id()
    if words and words[0] == "resume":
        words.pop(0)
        if args.last:
            thread_id = lookalike.last(KIND) or thread_id
        elif words:
            thread_id = words.pop(0)
        else:
            print("fake-codex: exec resume needs THREAD_ID or --last", file=sys.stderr)
            return 2
        resumed = thread_id
    model = args.model or os.environ.get("OPENAI_MODEL") or "gpt-5-codex"
    agent = lookalike.make_agent(KIND, "fake_agents.codex")
    agent.boot(session_id=thread_id, thread_id=thread_id, model=model, resumed=resumed, json=args.json)
    lookalike.remember(KIND, thread_id)
    if not words or words == ["-"]:
        prompt, source = lookalike.read_stdin_prompt(), "stdin"
    else:
        prompt, source = os.fsencode(" ".join(words)), "argv"
    agent.record_prompt(prompt, source)

    def event(doc: dict) -> None:
        if args.json:
            agent.write(json.dumps(doc, separators=(",", ":")).encode() + agent.nl)

    def info(text: str) -> None:
        if not args.json:
            sys.stderr.write(text + "\n")
            sys.stderr.flush()

    event({"type": "thread.started", "thread_id": thread_id})
    info(
        f"OpenAI Codex (fake)\n--------\nworkdir: {os.getcwd()}\nmodel: {model}\nsession id: {thread_id}\n--------"
    )
    info(f"user\n{prompt.decode('utf-8', 'replace')}\n")
    event({"type": "turn.started"})
    agent.emit_outputs()
    question = lookalike.ask_or_read(agent, source)
    event(
        {"type": "item.completed", "item": {"id": "item_0", "type": "reasoning", "text": "**Working on it**"}}
    )
    agent.work()
    text = question or lookalike.reply(KIND, prompt)
    agent.write_result()
    event({"type": "item.completed", "item": {"id": "item_1", "type": "agent_message", "text": text}})
    if agent.opts.exit_code == 0:
        usage = {"input_tokens": len(prompt), "cached_input_tokens": 0, "output_tokens": len(text)}
        event({"type": "turn.completed", "usage": usage})
    else:
        event({"type": "turn.failed", "error": {"message": f"fake failure (exit {agent.opts.exit_code})"}})
    if not args.json:
        info("codex")
        agent.line(text)
        info(f"tokens used: {len(prompt) + len(text)}")
    if args.output_last_message:
        with open(args.output_last_message, "w", encoding="utf-8") as f:
            f.write(text)
    agent.journal.write("turn", n=1, session_id=thread_id, reply=text)
    agent.finish()
    return 0  # pragma: no cover - finish() exits


if __name__ == "__main__":
    raise SystemExit(main())
