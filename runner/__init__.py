"""dispatch: the reference runner of Dispatch Kit (a tmux dispatcher for coding-agent CLIs)."""

__version__ = "0.1.0"
