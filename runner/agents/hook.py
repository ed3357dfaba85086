"""Agent hook commands: `python -m runner.agents.hook KIND` (heartbeat|submitted|session|attention|result|failure|codex-notify).

Claude Code runs these from the settings file we generate (--settings) with the hook's JSON on stdin and
the agent's environment (DISPATCH_HEARTBEAT_FILE, DISPATCH_RESULT_FILE); the Codex TUI runs `codex-notify`
as its `notify` program with the turn's JSON as the last argument (plan.notify_toml). They must never break the
agent: every failure is swallowed and the exit status is always 0. Writes are atomic (runner.atomicio).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

from runner.atomicio import write_atomic, write_json

MAX_STDIN = 1 << 20
MAX_TRANSCRIPT_TAIL = 1 << 20


def read_input() -> dict[str, Any]:
    """The hook's JSON input (an empty dict when absent or not JSON)."""
    try:
        data = sys.stdin.buffer.read(MAX_STDIN) if not sys.stdin.isatty() else b""
        obj = json.loads(data or b"{}")
        return obj if isinstance(obj, dict) else {}
    except (OSError, ValueError):
        return {}


def beat() -> None:
    """Write a value that differs from the last one: the runner judges liveness by change of content."""
    path = os.environ.get("DISPATCH_HEARTBEAT_FILE")
    if path:
        write_atomic(path, f"{time.monotonic_ns()} {os.getpid()} {time.time():.3f}\n")


def _tail_entries(transcript: str | None) -> list[dict[str, Any]]:
    """The JSON objects of a transcript's last MAX_TRANSCRIPT_TAIL bytes, newest first ([] if unreadable)."""
    if not transcript:
        return []
    try:
        with open(transcript, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - MAX_TRANSCRIPT_TAIL))
            lines = f.read().splitlines()
    except OSError:
        return []
    out = []
    for raw in reversed(lines):
        try:
            ev = json.loads(raw)
        except ValueError:
            continue
        if isinstance(ev, dict):
            out.append(ev)
    return out


def last_assistant_text(transcript: str | None) -> str | None:
    """The last assistant text in a Claude Code transcript (JSONL), read from its tail; None if unknown."""
    for ev in _tail_entries(transcript):
        if ev.get("type") == "assistant" and isinstance(ev.get("text"), str):
            return ev["text"]  # a flat {"type": "assistant", "text": ...} line
        msg = ev.get("message")
        if not isinstance(msg, dict) or msg.get("role") != "assistant":
            continue
        content = msg.get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            texts = [c.get("text", "") for c in content if isinstance(c, dict) and c.get("type") == "text"]
            if texts:
                return "\n".join(texts)
    return None


def result_doc(inp: dict[str, Any], agent: str = "claude") -> dict[str, Any]:
    """The result document the Stop hook leaves for the runner (and `run`, `--on-done`)."""
    text = inp.get("last_assistant_message")
    if not isinstance(text, str):
        text = last_assistant_text(inp.get("transcript_path"))
    return {
        "agent": agent,
        "event": inp.get("hook_event_name", "Stop"),
        "session_id": inp.get("session_id"),
        "transcript_path": inp.get("transcript_path"),
        "last_message": text,
    }


def asks_user(text: str | None) -> str | None:
    """The question an agent's last message ends with (a `QUESTION:` line, or a last line ending in `?`)."""
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    for ln in lines:
        if re.match(r"^\W*QUESTION:", ln):
            return ln
    return lines[-1] if lines and lines[-1].endswith("?") else None


def failure(agent_dir: Path | None, inp: dict[str, Any], interactive: bool) -> None:
    """Claude's StopFailure: the turn ended on an API error after Claude's own retries (Stop never fires).
    Interactive: the TUI waits for its user (a result file would read as a finished turn, i.e. a
    success), so it is needs_input with the error. Batch: nothing here; `claude -p` exits 1 at once and
    does not wait for this hook (measured on 2.1.332: a hook taking 2 s never finished), so `run` reads
    the error from Claude's transcript instead (api_error)."""
    if not interactive or agent_dir is None:
        return
    text = inp.get("last_assistant_message") or inp.get("error_details") or ""
    cause = " ".join(str(x) for x in (inp.get("error"), text) if x)[:1000] or "API error"
    msg = f"waiting for your input: the turn stopped on an API error: {cause}"  # runs.observe_input's words
    write_json(agent_dir / "attention.json", {"message": msg,
                                              "wall": time.time()})  # fmt: skip


def api_error(transcript: str | None) -> dict[str, Any] | None:
    """The API error a Claude turn ended on, from its transcript: the last assistant entry, when Claude
    wrote it as one (`isApiErrorMessage`, model "<synthetic>": "API Error: 529 Overloaded ..."); None
    when the turn ended otherwise."""
    for ev in _tail_entries(transcript):
        if ev.get("type") != "assistant":
            continue
        if not ev.get("isApiErrorMessage"):
            return None
        text = last_assistant_text_of(ev)
        return {"status": ev.get("apiErrorStatus"), "type": ev.get("apiErrorType") or ev.get("error"),
                "message": (text or "")[:2000]}  # fmt: skip
    return None


def last_assistant_text_of(ev: dict[str, Any]) -> str | None:
    """The text of one assistant transcript entry."""
    msg = ev.get("message")
    content = msg.get("content") if isinstance(msg, dict) else None
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            c.get("text", "") for c in content if isinstance(c, dict) and c.get("type") == "text"
        )
    return None


def handle(
    kind: str, agent_dir: Path | None, inp: dict[str, Any], interactive: bool = False, agent: str = "claude"
) -> None:
    """Do what one hook event means; see the module docstring."""
    if agent_dir is not None and inp.get("session_id"):
        # every event carries the session id, which changes on /clear and forks: keep the latest (resume)
        sid = agent_dir / "session_id"
        try:
            known = sid.read_text()
        except OSError:
            known = None
        if known != str(inp["session_id"]):
            write_atomic(sid, str(inp["session_id"]))
    if agent_dir is not None and isinstance(inp.get("transcript_path"), str):
        tp = agent_dir / "transcript_path"  # where `run` reads the agent's own error after a failed end
        if not tp.exists() or tp.read_text() != inp["transcript_path"]:
            write_atomic(tp, inp["transcript_path"])
    if kind in ("heartbeat", "submitted", "session"):
        beat()
    if kind in ("heartbeat", "submitted") and agent_dir is not None:
        # the agent works again (the user answered, a permitted tool ran): it no longer waits for input
        (agent_dir / "attention.json").unlink(missing_ok=True)
    if agent_dir is not None and (
        kind == "submitted" or (kind in ("result", "failure") and not (agent_dir / "submitted.json").exists())
    ):  # a finished turn took a prompt too (a TUI's initial-argument prompt is waited on with this)
        write_json(agent_dir / "submitted.json", {"mono": time.monotonic(), "wall": time.time()})
    if kind == "attention" and agent_dir is not None:
        write_json(agent_dir / "attention.json", {"message": inp.get("message"), "wall": time.time()})
    elif kind == "failure":
        failure(agent_dir, inp, interactive)
    elif kind == "result":
        beat()
        doc = result_doc(inp, agent)
        ask = asks_user(doc["last_message"]) if interactive else None
        if ask and agent_dir is not None:
            # an interactive turn that ends asking its user is waiting, not done: no result yet
            write_json(agent_dir / "attention.json", {"message": f"waiting for your input: {ask}",
                                                      "wall": time.time()})  # fmt: skip
            return
        path = os.environ.get("DISPATCH_RESULT_FILE")
        if path:
            write_json(path, doc)
        if agent_dir is not None:
            (agent_dir / "attention.json").unlink(missing_ok=True)


def codex_saved_thread(thread_id: Any, home: str | None = None) -> bool:
    """True when Codex keeps a session record ($CODEX_HOME/sessions/Y/M/D/rollout-*-ID.jsonl) for the
    thread. Measured on the 0.171 TUI: after the user's first turn it runs a second, unsaved thread that
    writes the task's title, and `notify` fires for both; only the user's thread is saved."""
    if not isinstance(thread_id, str) or not re.fullmatch(r"[0-9A-Za-z-]{8,80}", thread_id):
        return False
    root = Path(home or os.environ.get("CODEX_HOME") or Path.home() / ".codex") / "sessions"
    return any(root.glob(f"*/*/*/rollout-*{thread_id}.jsonl"))


def codex_turn(payload: str | None) -> tuple[str, dict[str, Any]] | None:
    """Codex's `agent-turn-complete` notification as (kind, Claude-shaped hook input); None otherwise.

    Codex sends {"type", "thread-id", "turn-id", "input-messages", "last-assistant-message"}: a finished
    turn means the prompt was taken and the turn's answer is the result, exactly like Claude's Stop."""
    try:
        doc = json.loads(payload or "")
    except ValueError:
        return None
    if not isinstance(doc, dict) or doc.get("type") != "agent-turn-complete":
        return None
    if not codex_saved_thread(doc.get("thread-id")):
        return None  # the TUI's side thread naming the task (its prompt embeds ours): not the user's turn
    return "result", {
        "hook_event_name": "agent-turn-complete",
        "session_id": doc.get("thread-id"),
        "last_assistant_message": doc.get("last-assistant-message") or "",
    }


def codex_notify(agent_dir: Path | None, payload: str | None, interactive: bool) -> None:
    """A Codex turn ended: mark the prompt taken, keep the thread id (resume), write the result."""
    turn = codex_turn(payload)
    if turn is None:
        return
    kind, inp = turn
    if agent_dir is not None:
        write_json(agent_dir / "submitted.json", {"mono": time.monotonic(), "wall": time.time()})
        if inp.get("session_id"):
            write_atomic(agent_dir / "thread_id", str(inp["session_id"]))
    handle(kind, agent_dir, inp, interactive, agent="codex")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m runner.agents.hook")
    ap.add_argument(
        "kind",
        choices=["heartbeat", "submitted", "session", "attention", "result", "failure", "codex-notify"],
    )
    ap.add_argument("--agent-dir", type=Path)
    ap.add_argument(
        "--interactive", action="store_true", help="a turn ending in a question waits for the user"
    )
    ap.add_argument("payload", nargs="?", help="codex-notify: the JSON Codex appends")
    try:
        args = ap.parse_intermixed_args(argv)  # the payload comes after the options
        if args.kind == "codex-notify":
            codex_notify(args.agent_dir, args.payload, args.interactive)
        else:
            handle(args.kind, args.agent_dir, read_input(), args.interactive)
    except BaseException as e:  # a hook must never fail the agent
        if isinstance(e, SystemExit):
            return 0
        print(f"dispatch hook: {e}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
