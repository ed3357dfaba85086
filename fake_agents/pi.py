"""`fake-pi`: `pi -p PROMPT [--model M]` prints one answer and exits (pi has no native resume)."""

from __future__ import annotations

import argparse

from fake_agents import lookalike

KIND = "pi"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="pi", description="Fake Pi coding agent (tests only).")
    p.add_argument("-p", "--print", dest="print_mode", action="store_true")
    p.add_argument("--model")
    p.add_argument("--provider")
    p.add_argument("prompt", nargs="*")
    args = p.parse_args(argv)
    session = lookalike.new_id()
    agent = lookalike.make_agent(KIND, "fake_agents.pi")
    agent.boot(session_id=session, model=args.model, mode="print" if args.print_mode else "interactive")
    return lookalike.batch_turn(agent, KIND, session, args.prompt)


if __name__ == "__main__":
    raise SystemExit(main())
