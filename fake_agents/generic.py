"""`fake-agent`: a batch coding agent that does exactly the faults its flags ask for (docs/fake-agents.md)."""

from __future__ import annotations

from fake_agents.core import Agent, build_parser


def main(argv: list[str] | None = None) -> int:
    """Boot, record the prompt, print, interact, work, finish (exit or die); never returns normally."""
    opts = build_parser().parse_args(argv)
    agent = Agent(opts, kind="generic", module="fake_agents.generic")
    agent.boot()
    agent.read_prompt()
    agent.emit_outputs()
    agent.interact()
    agent.work()
    agent.finish()
    return 0  # pragma: no cover - finish() exits


if __name__ == "__main__":
    raise SystemExit(main())
