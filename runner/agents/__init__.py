"""The agent layer: profiles for each coding-agent CLI, `run`/`resume`/`attach`/`ls`, the queue and its
workers, and `doctor`, all on top of the runner's contract verbs (see docs/agents.md)."""
