"""`dispatch`: one parser tree for every verb. The contract verbs (start, status, wait, stop, list, reap,
logs, send, events, capabilities) are registered here; the agent verbs (run, resume, attach, queue,
workers, doctor) by runner.agents.commands.register; the suites (conformance, chaos, containers) parse their
own argv. Output goes through runner.output; every failure is a runner.contract.DispatchError, whose
code gives the exit status. `allow_abbrev=False` everywhere: `--text` is never read as `--text-file`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any, NoReturn

from runner import config, output
from runner.contract import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TIMEOUT,
    DispatchError,
    is_terminal,
)

# Suites with their own command line: `dispatch VERB ...` hands them the rest of argv.
DELEGATED = {"conformance": "conformance.cli", "chaos": "chaos.cli", "containers": "containers.cli",
             "mock-model": "mock_model.__main__"}  # fmt: skip
VALUE_OPTS = (
    "--task-id",
    "--cwd",
    "--prompt-file",
    "--label",
    "--model",
    "--timeout",
    "--text-file",
    "--text",
)


class Result:
    """What a verb produced: its document, the exit status, and the human rendering (a plain class: no
    `dataclasses` import on every call)."""

    __slots__ = ("doc", "status", "human")

    def __init__(self, doc: Any, status: int = EXIT_OK, human: str | None = None) -> None:
        self.doc, self.status, self.human = doc, status, human

    def __repr__(self) -> str:
        return f"Result(doc={self.doc!r}, status={self.status!r}, human={self.human!r})"


class Parser(argparse.ArgumentParser):
    """argparse that raises DispatchError(bad_usage) instead of exiting, and never expands prefixes."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        kw.setdefault("allow_abbrev", False)
        super().__init__(*args, **kw)

    def error(self, message: str) -> NoReturn:
        raise DispatchError("bad_usage", f"{self.prog}: {message}")

    def _get_formatter(self) -> argparse.HelpFormatter:
        # argparse builds a formatter for every add_argument (a metavar check), and without a width it
        # imports shutil (with bz2 and lzma) for get_terminal_size: a few ms of every call
        return self.formatter_class(prog=self.prog, width=_columns())


def _columns() -> int:
    """shutil.get_terminal_size().columns: $COLUMNS, else the terminal's width, else 80."""
    try:
        cols = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        cols = 0
    if cols <= 0:
        try:
            cols = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            cols = 0
    return cols if cols > 0 else 80


def add_verb(
    sub: Any, name: str, help: str, handler: Callable[..., Any], aliases: tuple[str, ...] = ()
) -> Parser:
    """One subcommand with --json and its handler; verb groups call this to register theirs."""
    sp = sub.add_parser(name, help=help, aliases=list(aliases))
    sp.add_argument("--json", action="store_true", help="print exactly one JSON document")
    sp.set_defaults(handler=handler, verb=name)
    return sp


def build_parser(verb: str | None = None) -> Parser:
    """The whole tree: contract verbs, then the agent layer's. When VERB is a contract verb, only those:
    importing and building the agent layer's parsers was ~40 ms of every `start` (more under load)."""
    p = Parser(prog="dispatch", description="Run coding-agent CLIs in tmux, supervised.")
    sub = p.add_subparsers(dest="verb", parser_class=Parser, metavar="VERB")
    sub.required = True
    register_contract(sub)
    if verb is not None and verb in sub.choices:
        return p
    from runner.agents import commands as agent_commands

    agent_commands.register(sub, add_verb)
    for name in DELEGATED:
        sub.add_parser(name, help=f"the {name} suite (dispatch {name} --help)", add_help=False)
    return p


# -- contract verbs -------------------------------------------------------------------------------------


def register_contract(sub: Any) -> None:
    s = add_verb(sub, "start", "launch ARGV (after --) in a new tmux session", _start)
    s.add_argument("--task-id", required=True)
    s.add_argument("--cwd", required=True)
    s.add_argument("--prompt-file", required=True)
    s.add_argument("--label")
    s.add_argument("--model")
    for name, h, fn in (
        ("status", "show a task", _status),
        ("stop", "end a task's whole tree and session", _stop),
        ("events", "list a task's transitions", _events),
    ):
        add_verb(sub, name, h, fn).add_argument("task_id")
    w = add_verb(sub, "wait", "block until a task ends", _wait)
    w.add_argument("task_id")
    w.add_argument("--timeout")
    lg = add_verb(sub, "logs", "print a task's captured output; -f follows it until the task ends", _logs)
    lg.add_argument("task_id")
    lg.add_argument("-f", "--follow", action="store_true")
    se = add_verb(sub, "send", "paste text into a running agent, then Enter", _send)
    se.add_argument("task_id")
    g = se.add_mutually_exclusive_group(required=True)
    g.add_argument("--text", help="the text itself")
    g.add_argument("--text-file", help="a file whose bytes are pasted")
    ls = add_verb(sub, "list", "tasks, oldest first (--live: with agents, needs_input, queued runs)", _list,
                  aliases=("ls",))  # fmt: skip
    ls.add_argument("--live", action="store_true", help="JSON rows with live states and queued runs")
    ls.add_argument(
        "--queue", metavar="URL", help="the fleet view of a shared queue (or $DISPATCH_QUEUE_URL)"
    )
    add_verb(sub, "reap", "end unsupervised tasks and ownerless sessions", _reap)
    add_verb(sub, "capabilities", "what this implementation supports", _capabilities)


def reference() -> Any:
    """The reference implementation (runner.tasks.Runner) for this environment."""
    from runner.tasks import Runner

    return Runner(config.load())


def _start(a: argparse.Namespace) -> Result:
    doc = reference().start(a.task_id, a.cwd, a.prompt_file, a.agent_argv, a.label, a.model)
    return Result(doc, human=f"started {doc['task_id']} in tmux session {doc['session']} ({doc['state']})")


def _status(a: argparse.Namespace) -> Result:
    doc = reference().status(a.task_id)
    return Result(doc, human=_human_task(doc))


def _stop(a: argparse.Namespace) -> Result:
    doc = reference().stop(a.task_id)
    return Result(doc, human=_human_task(doc))


def _wait(a: argparse.Namespace) -> Result:
    from runner.validate import timeout

    doc, ended = reference().wait(a.task_id, timeout(a.timeout))
    if not ended and not a.json:
        output.say("dispatch: wait timed out before the task ended")
    return Result(doc, EXIT_OK if ended else EXIT_TIMEOUT, _human_task(doc))


def _events(a: argparse.Namespace) -> Result:
    doc = reference().events(a.task_id)
    rows = [
        [str(e["seq"]), e["state"], e["reason"] or "-", f"{e['mono']:.3f}", _fmt_time(e["wall"]),
         json.dumps(e["detail"]) if e["detail"] is not None else ""]
        for e in doc
    ]  # fmt: skip
    return Result(doc, human=_table(rows, ["SEQ", "STATE", "REASON", "MONO", "WALL", "DETAIL"]))


def _logs(a: argparse.Namespace) -> Result | int:
    r = reference()
    if a.follow:
        if a.json:
            raise DispatchError("bad_usage", "dispatch logs: -f prints the log as it grows, not JSON")
        return follow_logs(r, a.task_id)
    doc = r.logs(a.task_id)
    if (r.cfg.state_dir / "agents" / a.task_id / "screen.raw").exists():
        from runner.agents import screen  # an agent TUI: its raw output replayed as the screen's text

        doc["text"] = screen.task_log_text(r.cfg.state_dir, a.task_id) or doc["text"]
    if a.json:
        return Result(doc)
    sys.stdout.write(doc["text"])  # the log byte for byte (decoded), no newline added
    sys.stdout.flush()
    return EXIT_OK


def follow_logs(r: Any, task_id: str, poll_s: float = 0.5) -> int:
    """Print the log and what is appended until the task ends (then the rest); waits on the task's end."""
    task = r.status(task_id)
    path, pos = task.get("log_path"), 0
    while True:
        ended = is_terminal(task.get("state"))
        if path and os.path.exists(path):
            with open(path, "rb") as f:
                f.seek(pos)
                chunk = f.read()
            pos += len(chunk)
            if chunk:
                sys.stdout.buffer.write(chunk)
                sys.stdout.flush()
        if ended:
            return EXIT_OK
        task, _ = r.wait(task_id, poll_s)
        path = task.get("log_path") or path


def _send(a: argparse.Namespace) -> Result:
    r = reference()
    if a.text is None:
        doc = r.send(a.task_id, a.text_file)
    else:
        doc = send_text(r, a.task_id, os.fsencode(a.text))
    return Result(doc, human=f"delivered {doc['bytes']} bytes to {doc['task_id']}")


def send_text(r: Any, task_id: str, text: bytes) -> dict[str, Any]:
    """`send --text`: the text goes through a private file in our tmp dir, removed afterwards."""
    import tempfile

    from runner.atomicio import ensure_dir

    d = ensure_dir(r.cfg.tmpdir)
    fd, tmp = tempfile.mkstemp(prefix=".send-", dir=d)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(text)
        return r.send(task_id, tmp)
    finally:
        os.unlink(tmp)


def _list(a: argparse.Namespace) -> Result | int:
    """--json alone: the contract's list document; else the agent layer's live view."""
    if a.live or a.queue or not a.json:
        from runner.agents import cli as agents_cli

        return agents_cli.list_live(a)
    return Result(reference().list())


def _reap(a: argparse.Namespace) -> Result:
    doc = reference().reap()
    if not doc["reaped"]:
        return Result(doc, human="nothing to reap")
    rows = [[r["task_id"] or "-", r["session"] or "-", r["reason"]] for r in doc["reaped"]]
    return Result(doc, human=_table(rows, ["TASK ID", "SESSION", "REASON"]))


def _capabilities(a: argparse.Namespace) -> Result:
    doc = reference().capabilities()
    return Result(
        doc, human="\n".join(f"{k}: {', '.join(v) if isinstance(v, list) else v}" for k, v in doc.items())
    )


# -- human rendering ------------------------------------------------------------------------------------


def _fmt_time(t: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if t else "-"


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join(
        "  ".join(str(c).ljust(widths[i]) for i, c in enumerate(r)).rstrip() for r in [header, *rows]
    )


def _human_task(t: dict[str, Any]) -> str:
    keys = ("task_id", "state", "reason", "exit_code", "signal", "session", "agent_pid", "wrapper_pid",
            "model", "label", "log_path")  # fmt: skip
    lines = [f"{k:>13}: {'-' if t.get(k) is None else t.get(k)}" for k in keys]
    lines.append(f"{'argv':>13}: {json.dumps(t.get('argv'))}")
    lines.append(f"{'started':>13}: {_fmt_time(t.get('started_at'))}")
    lines.append(f"{'ended':>13}: {_fmt_time(t.get('ended_at'))}")
    if t.get("result") is not None:
        lines.append(f"{'result':>13}: {json.dumps(t['result'])[:200]}")
    return "\n".join(lines)


# -- entry point ----------------------------------------------------------------------------------------


def _glue_values(argv: list[str]) -> list[str]:
    """`--label -x` -> `--label=-x`: a value that starts with "-" is still that option's value."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--":
            return out + argv[i:]
        if a in VALUE_OPTS and i + 1 < len(argv):
            out.append(f"{a}={argv[i + 1]}")
            i += 2
        else:
            out.append(a)
            i += 1
    return out


def _wants_json(argv: list[str]) -> bool:
    return "--json" in argv[: argv.index("--") if "--" in argv else None]


def parse(argv: list[str]) -> argparse.Namespace:
    """`start`'s agent argv is everything after the first `--`, taken before argparse sees it."""
    agent_argv: list[str] = []
    if argv[:1] == ["start"] and "--" in argv:
        i = argv.index("--")
        argv, agent_argv = argv[:i], argv[i + 1 :]
    args = build_parser(argv[0] if argv else None).parse_args(_glue_values(argv))
    args.agent_argv = agent_argv
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in DELEGATED:
        import importlib

        return int(importlib.import_module(DELEGATED[argv[0]]).main(argv[1:]) or 0)
    if not argv or argv[0] in ("-h", "--help"):
        build_parser().print_help()
        return EXIT_OK if argv else 2
    as_json = _wants_json(argv)
    try:
        args = parse(argv)
        res = args.handler(args)
    except DispatchError as e:
        return output.error(e, as_json)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except SystemExit as e:  # --help inside a verb
        return int(e.code or 0)
    except Exception as e:  # a bug: still one line and the contract's shape
        return output.error(DispatchError("internal", f"internal error: {type(e).__name__}: {e}"), as_json)
    if isinstance(res, int):
        return res
    output.emit(res.doc, as_json, res.human)
    return res.status


if __name__ == "__main__":
    sys.exit(main())
