"""Real third-party tmux dispatchers, each behind a thin contract-v1 adapter (see README.md)."""
