"""`python -m runner.agents.launch [--stdin-prompt] [--set K=V]... [--claude-preanswer] [--record F] -- ARGV`.

Every agent starts through this: it makes `PWD` the real working directory (the runner chdirs to --cwd,
but the caller's `PWD` was inherited, and opencode trusts `$PWD`), sets the profile's extra variables
(e.g. IS_SANDBOX=1 so Claude accepts its permission bypass as root), optionally puts the prompt on stdin,
and execs: our PID becomes the agent's, so the runner's agent PID and start time stay right (P1, P2).
The prompt is the runner's private copy ($DISPATCH_PROMPT_FILE), so it reaches the agent byte for byte.
`--claude-preanswer` is the explicit opt-in of a profile (`first_run = "preanswer"`): it marks Claude's
first-run screens as answered in the agent's own config (runner.agents.firstrun) before the exec.
`--record F` (interactive TUIs) does not exec: it runs the agent on a pty of ours and keeps its raw output
in F (runner.agents.ptyrec), so `dispatch logs` can show the screen as text; we then end like the agent.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

USAGE = (
    "usage: python -m runner.agents.launch [--stdin-prompt] [--set K=V]... [--claude-preanswer] "
    "[--record FILE] -- ARGV..."
)


@dataclass
class Launch:
    """What the command line asked for."""

    stdin: bool
    env: dict[str, str]
    preanswer: bool
    target: list[str]
    record: str | None = None


def parse(args: list[str]) -> Launch | None:
    """The parsed command line, or None on bad usage."""
    stdin = pre = False
    record: str | None = None
    env: dict[str, str] = {}
    i = 0
    while i < len(args) and args[i] != "--":
        a = args[i]
        if a == "--stdin-prompt":
            stdin = True
        elif a == "--claude-preanswer":
            pre = True
        elif a == "--set" and i + 1 < len(args) and "=" in args[i + 1]:
            k, v = args[i + 1].split("=", 1)
            env[k] = v
            i += 1
        elif a == "--record" and i + 1 < len(args):
            record = args[i + 1]
            i += 1
        else:
            return None
        i += 1
    target = args[i + 1 :]
    return Launch(stdin, env, pre, target, record) if target else None


def main(argv: list[str] | None = None) -> int:
    parsed = parse(list(sys.argv[1:] if argv is None else argv))
    if parsed is None:
        print(USAGE, file=sys.stderr)
        return 2
    stdin, env, pre, target = parsed.stdin, parsed.env, parsed.preanswer, parsed.target
    os.environ["PWD"] = os.getcwd()
    os.environ.update(env)
    if pre:
        from runner.agents import firstrun

        firstrun.preanswer(os.environ, os.getcwd())
    if stdin:
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
    if parsed.record:
        from runner.agents import ptyrec

        return ptyrec.run(target, parsed.record)
    try:
        os.execvp(target[0], target)
    except OSError as e:
        print(f"runner.agents.launch: cannot run {target[0]!r}: {e.strerror}", file=sys.stderr)
        return 127
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
