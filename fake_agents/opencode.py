"""`fake-opencode`: `opencode run [--model M] MESSAGE...` prints one answer and exits."""

from __future__ import annotations

import argparse
import sys

from fake_agents import lookalike

KIND = "opencode"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] != "run":
        print("fake-opencode: only `opencode run ...` is simulated", file=sys.stderr)
        return 2
    p = argparse.ArgumentParser(prog="opencode run", description="Fake OpenCode (tests only).")
    p.add_argument("-m", "--model")
    p.add_argument("-c", "--continue", dest="cont", action="store_true")
    p.add_argument("-s", "--session")
    p.add_argument("message", nargs="*")
    args = p.parse_args(argv[1:])
    session = args.session or (lookalike.last(KIND) if args.cont else None) or lookalike.new_id()
    agent = lookalike.make_agent(KIND, "fake_agents.opencode")
    agent.boot(session_id=session, model=args.model or "anthropic/claude-sonnet-4-5")
    lookalike.remember(KIND, session)
    return lookalike.batch_turn(agent, KIND, session, args.message)


if __name__ == "__main__":
    raise SystemExit(main())
