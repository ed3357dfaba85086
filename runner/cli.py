"""`dispatch` command line: human output by default, the contract's JSON with --json, exit codes from errors.py."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, NoReturn

from runner import config
from runner.errors import EXIT_OK, EXIT_TIMEOUT, DispatchError

VERBS = ("start", "status", "wait", "stop", "list", "reap", "logs", "send", "events", "capabilities")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise DispatchError("bad_usage", f"{self.prog}: {message}")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="dispatch", description="Run coding-agent CLIs in tmux, supervised.")
    sub = p.add_subparsers(dest="verb", parser_class=_Parser)
    sub.required = True

    def add(name: str, help: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help)
        sp.add_argument("--json", action="store_true", help="print the contract's JSON document")
        return sp

    s = add("start", "launch ARGV (after --) in a new tmux session")
    s.add_argument("--task-id", required=True)
    s.add_argument("--cwd", required=True)
    s.add_argument("--prompt-file", required=True)
    s.add_argument("--label")
    s.add_argument("--model")
    for name, h in (
        ("status", "show a task"),
        ("stop", "end a task's whole tree and session"),
        ("logs", "print a task's captured output"),
        ("events", "list a task's transitions"),
    ):
        add(name, h).add_argument("task_id")
    w = add("wait", "block until a task ends")
    w.add_argument("task_id")
    w.add_argument("--timeout")
    se = add("send", "paste a file's bytes into a running agent, then Enter")
    se.add_argument("task_id")
    se.add_argument("--text-file", required=True)
    add("list", "list tasks, oldest first")
    add("reap", "end unsupervised tasks and ownerless sessions")
    add("capabilities", "what this implementation supports")
    return p


def _fmt_time(t: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if t else "-"


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(widths[i]) for i, c in enumerate(r)).rstrip() for r in [header, *rows]]
    return "\n".join(lines)


def _human_task(t: dict[str, Any]) -> str:
    keys = (
        "task_id",
        "state",
        "reason",
        "exit_code",
        "signal",
        "session",
        "agent_pid",
        "wrapper_pid",
        "model",
        "label",
        "log_path",
    )
    lines = [f"{k:>13}: {'-' if t.get(k) is None else t.get(k)}" for k in keys]
    lines.append(f"{'argv':>13}: {json.dumps(t.get('argv'))}")
    lines.append(f"{'started':>13}: {_fmt_time(t.get('started_at'))}")
    lines.append(f"{'ended':>13}: {_fmt_time(t.get('ended_at'))}")
    if t.get("result") is not None:
        lines.append(f"{'result':>13}: {json.dumps(t['result'])[:200]}")
    return "\n".join(lines)


def _human(verb: str, doc: Any) -> str:
    if verb == "start":
        return f"started {doc['task_id']} in tmux session {doc['session']} ({doc['state']})"
    if verb in ("status", "wait", "stop"):
        return _human_task(doc)
    if verb == "list":
        if not doc:
            return "no tasks"
        now = time.time()
        rows = []
        for t in doc:
            age = f"{int(now - t['started_at'])}s ago" if t.get("started_at") else "-"
            cmd = " ".join(t["argv"])
            rows.append(
                [
                    t["task_id"],
                    t["state"],
                    t["reason"] or "-",
                    t["session"],
                    age,
                    t["model"] or "-",
                    (cmd[:40] + "...") if len(cmd) > 43 else cmd,
                ]
            )
        return _table(rows, ["TASK ID", "STATE", "REASON", "SESSION", "STARTED", "MODEL", "COMMAND"])
    if verb == "reap":
        if not doc["reaped"]:
            return "nothing to reap"
        return _table(
            [[r["task_id"] or "-", r["session"] or "-", r["reason"]] for r in doc["reaped"]],
            ["TASK ID", "SESSION", "REASON"],
        )
    if verb == "events":
        return _table(
            [
                [
                    str(e["seq"]),
                    e["state"],
                    e["reason"] or "-",
                    f"{e['mono']:.3f}",
                    _fmt_time(e["wall"]),
                    json.dumps(e["detail"]) if e["detail"] is not None else "",
                ]
                for e in doc
            ],
            ["SEQ", "STATE", "REASON", "MONO", "WALL", "DETAIL"],
        )
    if verb == "send":
        return f"delivered {doc['bytes']} bytes to {doc['task_id']}"
    if verb == "capabilities":
        return "\n".join(f"{k}: {', '.join(v) if isinstance(v, list) else v}" for k, v in doc.items())
    return json.dumps(doc, indent=2)


VALUE_OPTS = ("--task-id", "--cwd", "--prompt-file", "--label", "--model", "--timeout", "--text-file")


def _glue_values(argv: list[str]) -> list[str]:
    """`--label -x` -> `--label=-x`: a value that starts with "-" is still that option's value."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in VALUE_OPTS and i + 1 < len(argv):
            out.append(f"{a}={argv[i + 1]}")
            i += 2
        else:
            out.append(a)
            i += 1
    return out


def run(argv: list[str]) -> tuple[str, Any, int]:
    """Parse and execute; returns (verb, document, exit status). Raises DispatchError."""
    agent_argv: list[str] | None = None
    if argv[:1] == ["start"]:
        if "--" in argv:
            i = argv.index("--")
            argv, agent_argv = argv[:i], argv[i + 1 :]
        else:
            agent_argv = []
    args = _parser().parse_args(_glue_values(argv))
    cfg = config.load()
    from runner.tasks import Runner

    r = Runner(cfg)
    v = args.verb
    if v == "start":
        return (
            v,
            r.start(args.task_id, args.cwd, args.prompt_file, agent_argv or [], args.label, args.model),
            EXIT_OK,
        )
    if v == "status":
        return v, r.status(args.task_id), EXIT_OK
    if v == "wait":
        from runner.validate import timeout

        doc, ended = r.wait(args.task_id, timeout(args.timeout))
        return v, doc, EXIT_OK if ended else EXIT_TIMEOUT
    if v == "stop":
        return v, r.stop(args.task_id), EXIT_OK
    if v == "list":
        return v, r.list(), EXIT_OK
    if v == "reap":
        return v, r.reap(), EXIT_OK
    if v == "logs":
        return v, r.logs(args.task_id), EXIT_OK
    if v == "send":
        return v, r.send(args.task_id, args.text_file), EXIT_OK
    if v == "events":
        return v, r.events(args.task_id), EXIT_OK
    if v == "capabilities":
        return v, r.capabilities(), EXIT_OK
    raise DispatchError("bad_usage", f"unknown verb {v!r}")


# Verbs whose implementation lives in its own package; `dispatch VERB ...` hands the rest of argv over.
DELEGATED = {
    "conformance": "conformance.cli",
    "chaos": "chaos.cli",
    "containers": "containers.cli",
}
AGENT_VERBS = ("run", "resume", "attach", "ls", "queue", "workers", "doctor")


def _delegate(argv: list[str]) -> int | None:
    """Hand suites and the agent front end their own argv; None when the verb is a contract verb."""
    if not argv:
        return None
    verb = argv[0]
    if verb in DELEGATED:
        import importlib

        return int(importlib.import_module(DELEGATED[verb]).main(argv[1:]) or 0)
    if verb in AGENT_VERBS or (verb == "logs" and ("-f" in argv or "--follow" in argv)):
        from runner.agents import cli as agents_cli

        return int(agents_cli.main(argv) or 0)
    return None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    delegated = _delegate(argv)
    if delegated is not None:
        return delegated
    as_json = (
        len(argv) >= 2
        and argv[1] == "--json"
        or "--json" in argv[: argv.index("--") if "--" in argv else None]
    )
    if not argv or argv[0] in ("-h", "--help"):
        _parser().print_help()
        print("\nmore verbs: " + ", ".join((*AGENT_VERBS, *DELEGATED)) + " (dispatch VERB --help for each)")
        return EXIT_OK if argv else 2
    try:
        verb, doc, status = run(argv)
    except DispatchError as e:
        if as_json:
            print(json.dumps(e.to_json()))
        print(f"dispatch: {e.code}: {e.message}", file=sys.stderr)
        return e.exit_status
    except KeyboardInterrupt:
        return 130
    except SystemExit as e:  # --help inside a verb
        return int(e.code or 0)
    except Exception as e:  # a bug: still one line and the contract's shape
        err = DispatchError("internal", f"internal error: {type(e).__name__}: {e}")
        if as_json:
            print(json.dumps(err.to_json()))
        print(f"dispatch: internal: {err.message}", file=sys.stderr)
        return err.exit_status
    if as_json:
        print(json.dumps(doc))
    elif verb == "logs":
        sys.stdout.write(doc["text"])
    else:
        print(_human(verb, doc))
    if status == EXIT_TIMEOUT and not as_json:
        print("dispatch: wait timed out before the task ended", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
