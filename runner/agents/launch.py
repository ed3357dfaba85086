"""`python -m runner.agents.launch --stdin-prompt -- ARGV`: put the prompt on stdin, then exec ARGV.

Exec keeps our PID, so the runner's agent PID and start time stay the agent's own (P1, P2). The prompt
is the runner's private copy ($DISPATCH_PROMPT_FILE), so it reaches the agent byte for byte (P8).
"""

from __future__ import annotations

import os
import sys


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 3 or args[0] != "--stdin-prompt" or args[1] != "--":
        print("usage: python -m runner.agents.launch --stdin-prompt -- ARGV...", file=sys.stderr)
        return 2
    target = args[2:]
    path = os.environ.get("DISPATCH_PROMPT_FILE")
    if not path:
        print("runner.agents.launch: DISPATCH_PROMPT_FILE is not set", file=sys.stderr)
        return 2
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as e:
        print(f"runner.agents.launch: cannot open the prompt: {e.strerror}", file=sys.stderr)
        return 2
    os.dup2(fd, 0)
    os.close(fd)
    try:
        os.execvp(target[0], target)
    except OSError as e:
        print(f"runner.agents.launch: cannot run {target[0]!r}: {e.strerror}", file=sys.stderr)
        return 127
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
