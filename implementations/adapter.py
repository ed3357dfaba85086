"""The contract side every adapter shares: verbs, ``--json`` documents, error codes, the adapter's record.

An adapter is a :class:`PeerDriver` (how to launch, observe, stop, send to and read one task *with the
peer's own API*) plus this module, which turns contract v1 command lines into those calls and the
answers into contract documents. It TRANSLATES ONLY: what the peer does not do stays undone, and what
this module has to supply because the peer has no notion of it is listed in :data:`SUPPLIED` (and in
implementations/README.md) so a report never credits the peer with it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from runner import atomicio
from runner.clock import Deadline, wall
from runner.contract import CONTRACT_VERSION, TERMINAL, DispatchError

TASK_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
POLL_S = 0.1  # how often `wait` asks the peer again (the peer has no event to wait on)

# What this module supplies for every peer (the README repeats it; reports attribute by it).
SUPPLIED = {
    "record": "the task record (argv, label, model, cwd, session, start time) is kept by the adapter "
    "under $DISPATCH_STATE_DIR/adapter/; `list` reads it",
    "task-id": "task-id syntax and duplicate refusal (the record is keyed by the task id)",
    "label": "label checks (1-128 printable characters): the label exists only in the adapter's record",
    "prompt": "the private 0600 prompt copy and the DISPATCH_* variables for the agent",
    "sticky": "a terminal state, once the peer reported it, is kept in the record (peers keep none)",
    "stopped": "`stop` records state `stopped` after the peer's own stop/kill call returned",
}


@dataclass
class Seen:
    """One observation of a task through the peer's own API, already in contract words."""

    state: str  # a contract state
    reason: str | None = None
    exit_code: int | None = None
    signal: int | None = None
    agent_pid: int | None = None


class PeerDriver:
    """What an adapter implements with its peer's API. Every method may raise; errors become `internal`."""

    name = "peer"
    version = "0"
    capabilities: tuple[str, ...] = ()

    def launch(self, rec: dict[str, Any], agent_env: dict[str, str]) -> str:
        """Start ``rec['argv']`` in ``rec['cwd']`` with ``agent_env`` added; return the session name."""
        raise NotImplementedError

    def observe(self, rec: dict[str, Any]) -> Seen:
        raise NotImplementedError

    def stop(self, rec: dict[str, Any]) -> None:
        raise NotImplementedError

    def send(self, rec: dict[str, Any], text: bytes) -> None:
        raise DispatchError("not_supported", f"{self.name} cannot send input to a task")

    def logs(self, rec: dict[str, Any]) -> str:
        raise DispatchError("not_supported", f"{self.name} keeps no output")


# -- the adapter's record -----------------------------------------------------------------------------


def state_dir() -> Path:
    d = os.environ.get("DISPATCH_STATE_DIR") or os.path.join(
        os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state"), "dispatch-kit"
    )
    return Path(d)


def _records() -> Path:
    return state_dir() / "adapter" / "tasks"


def _record_path(task_id: str) -> Path:
    return _records() / f"{task_id}.json"


def load(task_id: str) -> dict[str, Any]:
    if not TASK_ID_RE.match(task_id):
        raise DispatchError("bad_task_id", f"bad task id {task_id!r}")
    try:
        return json.loads(_record_path(task_id).read_text())
    except FileNotFoundError:
        raise DispatchError("unknown_task", f"no task {task_id!r}") from None


def save(rec: dict[str, Any]) -> None:
    atomicio.ensure_dir(_records())
    atomicio.write_json(_record_path(rec["task_id"]), rec)


def task_doc(rec: dict[str, Any], seen: Seen | None) -> dict[str, Any]:
    """The contract task object from the record and (for a live task) the peer's latest answer."""
    s = seen or Seen(rec.get("state", "starting"))
    return {
        "task_id": rec["task_id"],
        "state": s.state,
        "reason": s.reason,
        "exit_code": s.exit_code,
        "signal": s.signal,
        "result": None,  # no peer reads the result file; the adapter does not either
        "session": rec["session"],
        "wrapper_pid": None,
        "agent_pid": s.agent_pid,
        "agent_started_at": None,
        "log_path": rec.get("log_path"),  # only when the peer itself keeps an output file
        "model": rec.get("model"),
        "argv": rec["argv"],
        "label": rec.get("label"),
        "started_at": rec.get("started_at"),
        "ended_at": rec.get("ended_at"),
    }


def current(driver: PeerDriver, rec: dict[str, Any]) -> dict[str, Any]:
    """Ask the peer about a live task; keep a terminal answer in the record (sticky)."""
    if rec.get("state") in TERMINAL:
        return task_doc(rec, Seen(rec["state"], rec.get("reason"), rec.get("exit_code"), rec.get("signal")))
    seen = driver.observe(rec)
    if seen.state in TERMINAL:
        rec.update(state=seen.state, reason=seen.reason, exit_code=seen.exit_code, signal=seen.signal)
        rec["ended_at"] = wall()
        save(rec)
    return task_doc(rec, seen)


# -- verbs --------------------------------------------------------------------------------------------


def _read_file(path: str, code: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise DispatchError(code, f"cannot read {path}: {e.strerror}") from None


def verb_start(driver: PeerDriver, o: argparse.Namespace) -> dict[str, Any]:
    if not TASK_ID_RE.match(o.task_id):
        raise DispatchError("bad_task_id", f"bad task id {o.task_id!r}")
    check_label(o.label)
    if _record_path(o.task_id).exists():
        raise DispatchError("duplicate_task_id", f"task {o.task_id!r} already exists")
    prompt = _read_file(o.prompt_file, "bad_prompt_file")
    argv = list(o.argv)
    if argv and argv[0] == "--":
        argv = argv[1:]
    files = state_dir() / "adapter" / "files" / o.task_id
    rec: dict[str, Any] = {
        "task_id": o.task_id,
        "argv": argv,
        "cwd": o.cwd,
        "label": o.label,
        "model": o.model,
        "session": "",
        "state": "starting",
        "started_at": wall(),
    }
    agent_env = {
        "DISPATCH_TASK_ID": o.task_id,
        "DISPATCH_PROMPT_FILE": str(files / "prompt"),
        "DISPATCH_RESULT_FILE": str(files / "result.json"),
        "DISPATCH_HEARTBEAT_FILE": str(files / "heartbeat"),
    }
    if o.model:
        agent_env["DISPATCH_MODEL"] = o.model
    atomicio.ensure_dir(files)
    atomicio.write_atomic(files / "prompt", prompt)
    try:
        rec["session"] = driver.launch(rec, agent_env)
    except BaseException:
        import shutil

        shutil.rmtree(files, ignore_errors=True)  # only the adapter's own files; the peer's stay as left
        raise
    save(rec)
    return {"task_id": o.task_id, "session": rec["session"], "state": current(driver, rec)["state"]}


def verb_wait(driver: PeerDriver, o: argparse.Namespace) -> tuple[dict[str, Any], int]:
    rec = load(o.task_id)
    deadline = Deadline(o.timeout)
    while True:
        doc = current(driver, rec)
        if doc["state"] in TERMINAL:
            return doc, 0
        if deadline.expired():
            return doc, 124
        import time

        time.sleep(deadline.cap(POLL_S))  # no event from the peer to wait on: poll, bounded by the deadline


def verb_stop(driver: PeerDriver, o: argparse.Namespace) -> dict[str, Any]:
    rec = load(o.task_id)
    doc = current(driver, rec)
    if doc["state"] in TERMINAL:
        return doc
    driver.stop(rec)
    rec.update(state="stopped", reason="stop_requested", ended_at=wall())
    save(rec)
    return current(driver, rec)


def verb_list(driver: PeerDriver) -> list[dict[str, Any]]:
    recs = []
    d = _records()
    for p in d.glob("*.json") if d.is_dir() else ():
        try:
            recs.append(json.loads(p.read_text()))
        except (OSError, ValueError):
            continue
    recs.sort(key=lambda r: (r.get("started_at") or 0.0, r["task_id"]))
    return [current(driver, r) for r in recs]


def verb_send(driver: PeerDriver, o: argparse.Namespace) -> dict[str, Any]:
    rec = load(o.task_id)
    text = _read_file(o.text_file, "bad_text_file")
    if current(driver, rec)["state"] in TERMINAL:
        raise DispatchError("not_running", f"task {o.task_id!r} has ended")
    driver.send(rec, text)
    return {"task_id": o.task_id, "delivered": True, "bytes": len(text)}


# -- the command line ---------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise DispatchError("bad_usage", message)


def build_parser(name: str) -> argparse.ArgumentParser:
    p = _Parser(prog=name, add_help=False)
    sub = p.add_subparsers(dest="verb", required=True, parser_class=_Parser)
    s = sub.add_parser("start")
    s.add_argument("--json", action="store_true")
    s.add_argument("--task-id", required=True)
    s.add_argument("--cwd", required=True)
    s.add_argument("--prompt-file", required=True)
    s.add_argument("--label")
    s.add_argument("--model")
    s.add_argument("argv", nargs=argparse.REMAINDER)
    for verb in ("status", "stop", "events"):
        v = sub.add_parser(verb)
        v.add_argument("--json", action="store_true")
        v.add_argument("task_id")
    w = sub.add_parser("wait")
    w.add_argument("--json", action="store_true")
    w.add_argument("task_id")
    w.add_argument("--timeout", type=float, default=None)
    lg = sub.add_parser("logs")
    lg.add_argument("--json", action="store_true")
    lg.add_argument("task_id")
    sd = sub.add_parser("send")
    sd.add_argument("--json", action="store_true")
    sd.add_argument("task_id")
    sd.add_argument("--text-file", required=True)
    for verb in ("list", "reap", "capabilities"):
        sub.add_parser(verb).add_argument("--json", action="store_true")
    return p


VALUE_OPTIONS = ("--task-id", "--cwd", "--prompt-file", "--label", "--model", "--text-file", "--timeout")
LABEL_MAX = 128


def glue_values(args: list[str]) -> list[str]:
    """`--task-id -rf` -> `--task-id=-rf` before the `--`: argparse would read `-rf` as an option."""
    out: list[str] = []
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--":
            return out + args[i:]
        if a in VALUE_OPTIONS and i + 1 < len(args):
            out.append(f"{a}={args[i + 1]}")
            i += 2
            continue
        out.append(a)
        i += 1
    return out


def check_label(label: str | None) -> None:
    """The label lives only in the adapter's record, so the adapter checks it (README: 'record')."""
    if label is None:
        return
    if not 1 <= len(label) <= LABEL_MAX or any(ord(c) < 32 or 127 <= ord(c) < 160 for c in label):
        raise DispatchError("bad_label", f"bad label {label[:40]!r}: 1-128 printable characters")


def dispatch(driver: PeerDriver, o: argparse.Namespace) -> tuple[Any, int]:
    """Run one verb; returns (document, exit status). Raises DispatchError for a contract error."""
    if o.verb == "capabilities":
        doc = {"contract": CONTRACT_VERSION, "implementation": driver.name, "version": driver.version}
        return {**doc, "tmux_min": "3.2a", "capabilities": list(driver.capabilities)}, 0
    if o.verb in ("reap", "events") and o.verb not in driver.capabilities:
        raise DispatchError("not_supported", f"{driver.name} has no {o.verb}")
    if o.verb == "start":
        if not o.argv or o.argv == ["--"]:
            raise DispatchError("bad_argv", "no command given after --")
        return verb_start(driver, o), 0
    if o.verb == "status":
        return current(driver, load(o.task_id)), 0
    if o.verb == "wait":
        return verb_wait(driver, o)
    if o.verb == "stop":
        return verb_stop(driver, o), 0
    if o.verb == "list":
        return verb_list(driver), 0
    if o.verb == "send":
        return verb_send(driver, o), 0
    if o.verb == "logs":
        rec = load(o.task_id)
        return {"task_id": o.task_id, "log_path": rec.get("log_path"), "text": driver.logs(rec)}, 0
    raise DispatchError("not_supported", f"{driver.name} has no {o.verb}")


def main(driver: PeerDriver, argv: Sequence[str] | None = None) -> int:
    """The adapter's entry point: one verb per process, as the contract says."""
    args = list(sys.argv[1:] if argv is None else argv)
    as_json = len(args) > 1 and args[1] == "--json"
    try:
        o = build_parser(driver.name).parse_args(glue_values(args))
        doc, rc = dispatch(driver, o)
    except DispatchError as e:
        return _fail(e, as_json)
    except Exception as e:  # the peer raised: report it as the peer's error, never hide it
        return _fail(DispatchError("internal", f"{driver.name}: {type(e).__name__}: {e}"), as_json)
    if o.verb == "logs" and not o.json:
        sys.stdout.write(doc["text"])
    else:
        sys.stdout.write(json.dumps(doc) + "\n")
    return rc


def _fail(e: DispatchError, as_json: bool) -> int:
    if as_json:
        sys.stdout.write(json.dumps(e.to_json()) + "\n")
    print(f"{e.code}: {e.message}", file=sys.stderr)
    return e.exit_status


# -- helpers for the peer modules ---------------------------------------------------------------------


def import_peer(name: str) -> None:
    """Put the pinned peer's private prefix on sys.path, or fail with exit 3 (`peer_missing`)."""
    from implementations import install, peers

    p = peers.peer(name)
    if not install.installed(p):
        raise DispatchError(
            "peer_missing",
            f"{p.requirement} is not installed: run `python -m implementations.install {name}`",
            exit_status=3,
        )
    sys.path.insert(0, str(install.prefix(p)))


def route_tmux_via_env() -> None:
    """For a peer with no socket option: point its bare `tmux` calls at $DISPATCH_TMUX_SOCKET via $TMUX.

    tmux uses the socket named in $TMUX when no -S/-L is given. This is adapter-supplied (README:
    'socket'): the peer's own calls carry no -S, so a pass of the default-server check is the adapter's.
    """
    sock = os.environ.get("DISPATCH_TMUX_SOCKET")
    if sock:
        os.environ["TMUX"] = f"{sock},0,0"
        os.environ.pop("TMUX_PANE", None)


def run_main(name: str, make_driver: Any) -> int:
    """Import the peer, build its driver and run one verb; a missing peer is one clear line."""
    args = sys.argv[1:]
    try:
        import_peer(name)
        driver = make_driver()
    except DispatchError as e:
        return _fail(e, len(args) > 1 and args[1] == "--json")
    return main(driver, args)
