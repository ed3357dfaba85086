"""The agent verbs' command lines (run, resume, attach, queue, workers, doctor), registered into
`dispatch`'s one parser tree. Parsing only: the handlers (runner.agents.cli) are imported when one of
these verbs runs, so `dispatch start`/`status` never pay for the agent layer's imports.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any


def _lazy(name: str, backend: bool = True) -> Callable[[argparse.Namespace], int]:
    """The handler `runner.agents.cli.NAME`, imported on use (with the backend opened for it)."""

    def handle(args: argparse.Namespace) -> int:
        from runner.agents import cli

        fn = getattr(cli, name)
        return cli._handler(fn)(args) if backend else fn(args)

    return handle


def _run_options(p: argparse.ArgumentParser, queue: bool = False) -> None:
    p.add_argument("--agent", required=True, help="claude, codex, opencode, pi, aider, gemini, cmd, or yours")
    p.add_argument("--model")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--prompt-file", help="the prompt, byte for byte")
    g.add_argument("--prompt", help="the prompt text")
    p.add_argument("--cwd", default=".", help="the agent's working directory (default: here)")
    p.add_argument("--label")
    p.add_argument("--task-id", help="default: AGENT-<random>")
    m = p.add_mutually_exclusive_group()
    m.add_argument("--mode", choices=["batch", "interactive"])
    m.add_argument("--batch", dest="mode", action="store_const", const="batch")
    m.add_argument("--interactive", dest="mode", action="store_const", const="interactive")
    p.add_argument(
        "--on-done", metavar="CMD", help="shell command run at the end with the task JSON on stdin"
    )
    p.add_argument("--notify", metavar="CMD", help="shell command run when the agent waits for input")
    if queue:
        p.add_argument("--priority", type=int, default=0)
        p.add_argument("--max-attempts", type=int, default=1)
    else:
        p.add_argument(
            "--timeout", type=float, help="stop waiting after S seconds (exit 124; the task goes on)"
        )
        p.add_argument("--detach", action="store_true", help="start (and deliver the prompt), do not wait")
    p.add_argument(
        "extra", nargs="*", help="after --: extra agent arguments (the command itself for --agent cmd)"
    )


def register(subparsers: Any, add_verb: Callable[..., Any]) -> None:
    """Add run, resume, attach, queue, workers, doctor to `dispatch`'s tree (add_verb adds --json)."""
    p = add_verb(
        subparsers, "run", "run a coding agent on a prompt and follow it to the end", _lazy("cmd_run")
    )
    _run_options(p)

    p = add_verb(
        subparsers, "resume", "continue an ended run in the agent's own session", _lazy("cmd_resume")
    )
    p.add_argument("task_id")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--prompt-file")
    g.add_argument("--prompt")
    p.add_argument("--model")
    p.add_argument(
        "--retries", type=int, default=0, help="resume again up to N times while it does not succeed"
    )
    p.add_argument(
        "--backoff", type=float, default=2.0, help="seconds before the first retry, doubled each time"
    )
    p.add_argument("--timeout", type=float)
    p.add_argument("--detach", action="store_true")

    p = add_verb(subparsers, "attach", "attach your terminal to a task's tmux session (--json: the command)",
                 _lazy("cmd_attach"))  # fmt: skip
    p.add_argument("task_id")
    p.add_argument("--new-window", action="store_true", help="open a new terminal window for it")

    q = add_verb(subparsers, "queue", "queue runs for `workers`", _lazy("cmd_queue"))
    qs = q.add_subparsers(dest="queue_verb", required=True, parser_class=type(q))
    _run_options(qa := _json(qs.add_parser("add", help="queue a run (same options as run)")), queue=True)
    _queue_url(qa)
    _queue_url(_json(qs.add_parser("ls", help="queued, running and finished items", aliases=["list"])))
    for verb in ("cancel", "retry"):
        qp = _json(qs.add_parser(verb, help=f"{verb} a queue item"))
        qp.add_argument("key")
        _queue_url(qp)

    p = add_verb(subparsers, "workers", "run queued tasks, at most --max at a time", _lazy("cmd_workers"))
    p.add_argument("--max", type=int, default=2, dest="max_running")
    p.add_argument("--until-empty", action="store_true", help="return when nothing is queued or running")
    p.add_argument("--retention", type=float, default=7 * 24 * 3600.0, help="seconds finished items are kept")
    p.add_argument("--poll", type=float, default=0.5)
    _queue_url(p)

    add_verb(
        subparsers,
        "doctor",
        "check tmux, state dir, socket and agent CLIs; say how to fix",
        _lazy("cmd_doctor", backend=False),
    )


def _json(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """--json on a nested verb (queue add/ls/...); `dispatch queue --json ls` works too."""
    p.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print one JSON document")
    return p


def _queue_url(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--queue", metavar="URL", help="postgresql://... queue shared by hosts (or $DISPATCH_QUEUE_URL)"
    )
