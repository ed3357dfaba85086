"""`python -m runner.agents.tee --kind K --events F --id-file T -- ARGV`: run a JSON-event agent.

Codex (`exec --json`), OpenCode (`run --format json`) and Pi (`--mode json`) print one JSON event per line.
Each line is copied to our stdout (the pane, so the log keeps it) and appended to F; each event beats the
heartbeat ($DISPATCH_HEARTBEAT_FILE gets a new value). The agent's own session id (Codex `thread_id`,
OpenCode `sessionID`, Pi's session header `id`) is written atomically to T: that is what resume needs.
At the end the agent's last message and its own failure signals (Codex `error`/`turn.failed` events and
failed commands, OpenCode/Pi error events) go to $DISPATCH_RESULT_FILE, and an agent that reported a failed
turn but exited 0 exits 1 here: the task says failed, not a bare success. Otherwise we end exactly like the
agent (same code, or the same signal), and pass TERM/HUP/INT on to it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner import clock
from runner.atomicio import write_atomic, write_json

FORWARD = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)
KINDS = ("codex", "opencode", "pi")


def thread_id_of(event: Any, kind: str = "codex") -> str | None:
    """The agent's session id carried by this event, if it is the event that announces it."""
    if not isinstance(event, dict):
        return None
    if kind == "codex" and event.get("type") in ("thread.started", "session.created", "session_configured"):
        tid = event.get("thread_id") or event.get("session_id")
    elif kind == "opencode":
        tid = event.get("sessionID") or (event.get("part") or {}).get("sessionID")
    elif kind == "pi" and event.get("type") == "session":
        tid = event.get("id")
    else:
        tid = None
    return tid if isinstance(tid, str) and tid else None


@dataclass
class Outcome:
    """What the events said: the last message, failure signals, and whether a turn failed outright."""

    last_message: str | None = None
    signals: list[str] = field(default_factory=list)
    failed: bool = False
    retrying: str | None = None  # the agent is retrying an API error right now (its own words)
    retries: list[str] = field(default_factory=list)  # every retry it announced (recovered or not)

    def retry(self, what: str | None) -> None:
        self.retrying = what
        if what:
            self.retries.append(what)


def _pi_text(msg: Any) -> str | None:
    if not isinstance(msg, dict) or msg.get("role") != "assistant":
        return None
    parts = [
        c.get("text", "") for c in msg.get("content") or [] if isinstance(c, dict) and c.get("type") == "text"
    ]
    return "".join(parts) or None


def observe(event: Any, kind: str, out: Outcome) -> None:
    """Fold one event into the outcome (last message, failure signals)."""
    if not isinstance(event, dict):
        return
    t = event.get("type")
    if kind == "codex" and t == "error" and str(event.get("message", "")).startswith("Reconnecting"):
        out.retry(str(event["message"])[:300])  # "Reconnecting... 2/5 (unexpected status 529 ...)"
        return
    if kind == "pi" and t in ("auto_retry_start", "auto_retry_end"):
        _pi_retry(event, out)
        return
    if out.retrying and t not in ("error",):
        out.retrying = None  # any other event: the agent got past the retry
    if kind == "codex":
        item = event.get("item") or {}
        if t == "item.completed" and item.get("type") == "agent_message":
            out.last_message = item.get("text")
        elif (
            t == "item.completed"
            and item.get("type") == "command_execution"
            and item.get("status") == "failed"
        ):
            out.signals.append(
                f"command failed ({item.get('exit_code')}): {str(item.get('aggregated_output'))[:300]}"
            )
        elif t in ("turn.failed", "error"):
            err = event.get("error")
            msg = err.get("message") if isinstance(err, dict) else event.get("message")
            out.signals.append(f"{t}: {msg}")
            out.failed = True
    elif kind == "opencode":
        part = event.get("part") or {}
        if t == "text" and isinstance(part.get("text"), str):
            out.last_message = part["text"]
        elif t == "tool_use" and (part.get("state") or {}).get("status") == "error":
            out.signals.append(
                f"tool {part.get('tool')} failed: {str((part.get('state') or {}).get('error'))[:300]}"
            )
        elif t == "error":
            out.signals.append(f"error: {json.dumps(event.get('error'))[:300]}")
            out.failed = True
    elif kind == "pi":
        if t in ("message_end", "turn_end"):
            msg = event.get("message")
            text = _pi_text(msg)
            if text:
                out.last_message = text
            if isinstance(msg, dict) and msg.get("stopReason") == "error":
                out.signals.append(f"error: {str(msg.get('errorMessage'))[:300]}")
                out.failed = True
        elif t == "tool_execution_end" and event.get("isError"):
            out.signals.append(f"tool {event.get('toolName')} failed")


def _pi_retry(event: dict[str, Any], out: Outcome) -> None:
    """Pi's auto-retry: the error that started it is not the turn's outcome; a failed end of it is."""
    if event.get("type") == "auto_retry_start":
        err = str(event.get("errorMessage"))[:300]
        while out.signals and out.signals[-1] == f"error: {err}":
            out.signals.pop()  # the failed attempt's error (message_end and turn_end), now being retried
        out.failed = False
        out.retry(
            f"attempt {event.get('attempt')} of {event.get('maxAttempts')} in {event.get('delayMs')} ms: {err}"
        )
    else:
        out.retrying = None
        if event.get("success") is False:
            out.failed = True
            out.signals.append(f"retries exhausted after attempt {event.get('attempt')}")


def pump(proc: subprocess.Popen[bytes], events: Path, id_file: Path, kind: str) -> Outcome:
    """Copy the agent's stdout through, recording events and heartbeats, until it closes."""
    hb = os.environ.get("DISPATCH_HEARTBEAT_FILE")
    stdout = sys.stdout.buffer
    n = 0
    have_id = id_file.exists()
    outcome = Outcome()
    assert proc.stdout is not None
    with open(events, "ab") as ev:
        for line in iter(proc.stdout.readline, b""):
            stdout.write(line)
            stdout.flush()
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            ev.write(line if line.endswith(b"\n") else line + b"\n")
            ev.flush()
            n += 1
            if hb:
                try:
                    write_atomic(hb, f"{n} {time.monotonic_ns()}\n")
                except OSError:
                    pass
            was = outcome.retrying
            observe(obj, kind, outcome)
            if outcome.retrying != was:
                show_retry(events.parent / RETRYING, outcome.retrying)
            if not have_id:
                tid = thread_id_of(obj, kind)
                if tid:
                    write_atomic(id_file, tid)
                    have_id = True
    return outcome


_EXITED = re.compile(r"Process exited with code (-?\d+)")


def codex_rollout_failures(thread_id: str | None, since: float, home: str | None = None) -> list[str]:
    """Failed commands from codex's own session record ($CODEX_HOME/sessions/Y/M/D/rollout-*-ID.jsonl).

    Codex 0.171's unified `exec_command` reports its command_execution item under `exec --json` only
    some of the time (measured: 3 runs of 7 had it; the others went from turn.started to the agent's
    message), so a read-only sandbox refusing a write was invisible. The rollout always has the
    function_call_output ("Process exited with code 1 ... Output: ... Read-only file system"): the
    outputs of this run (since `since`, wall clock) with a non-zero exit are failure signals."""
    if not thread_id or not re.fullmatch(r"[0-9A-Za-z-]{8,80}", thread_id):
        return []
    root = Path(home or os.environ.get("CODEX_HOME") or Path.home() / ".codex") / "sessions"
    out: list[str] = []
    for f in sorted(root.glob(f"*/*/*/rollout-*{thread_id}.jsonl")):
        try:
            lines = f.read_text(errors="replace").splitlines()
        except OSError:
            continue
        for line in lines:
            sig = _rollout_failure(line, since)
            if sig:
                out.append(sig)
    return out


def _rollout_failure(line: str, since: float) -> str | None:
    try:
        rec = json.loads(line)
        payload = rec["payload"]
        if payload.get("type") != "function_call_output" or _wall(rec.get("timestamp")) < since:
            return None
        text = str(payload.get("output") or "")
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    m = _EXITED.search(text)
    if not m or m.group(1) == "0":
        return None
    body = text.split("Output:\n", 1)[-1]
    return f"command failed ({m.group(1)}): {body[:300]}"


def _wall(stamp: Any) -> float:
    """An ISO-8601 UTC timestamp ("2026-11-30T21:07:30.340Z") as epoch seconds (0 when unreadable)."""
    from datetime import datetime

    try:
        return datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


RETRYING = "retrying.json"  # beside events.jsonl: read by `run`/`ls` for the live state `retrying`


def show_retry(path: Path, what: str | None) -> None:
    """Say (or stop saying) that the agent is retrying; a failure to write never stops the agent."""
    try:
        if what:
            write_json(path, {"message": what, "wall": time.time()})
        else:
            path.unlink(missing_ok=True)
    except OSError:
        pass


def add_rollout_failures(outcome: Outcome, id_file: Path, since: float) -> None:
    """Codex's failed commands its JSON events did not report (codex_rollout_failures), once each."""
    try:
        tid = id_file.read_text().strip()
    except OSError:
        return
    for sig in codex_rollout_failures(tid, since):
        body = sig.split(": ", 1)[-1].strip()
        if not any(body and body in known for known in outcome.signals):
            outcome.signals.append(sig)


def write_result(kind: str, id_file: Path, outcome: Outcome, rc: int) -> None:
    """The result document (same shape as Claude's Stop hook writes), when the runner gave us a path."""
    path = os.environ.get("DISPATCH_RESULT_FILE")
    if not path or (outcome.last_message is None and not outcome.signals):
        return
    try:
        sid = id_file.read_text().strip() or None
    except OSError:
        sid = None
    doc = {"agent": kind, "session_id": sid, "last_message": outcome.last_message, "exit_code": rc,
           "failure_signals": outcome.signals, "retries": outcome.retries}  # fmt: skip
    try:
        write_json(path, doc)
    except OSError:
        pass


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m runner.agents.tee")
    ap.add_argument("--kind", choices=KINDS, default="codex")
    ap.add_argument("--events", type=Path, required=True)
    ap.add_argument("--id-file", "--thread-file", dest="id_file", type=Path, required=True)
    ap.add_argument("argv", nargs=argparse.REMAINDER)
    args = ap.parse_args(argv)
    target = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    if not target:
        ap.error("no command after --")
    try:
        proc = subprocess.Popen(target, stdout=subprocess.PIPE)  # stdin/stderr stay the pane's terminal
    except OSError as e:
        print(f"runner.agents.tee: cannot run {target[0]!r}: {e.strerror}", file=sys.stderr)
        return 127

    def forward(signum: int, _frame: object) -> None:
        try:
            proc.send_signal(signum)
        except OSError:
            pass

    for s in FORWARD:
        signal.signal(s, forward)
    since = clock.wall() - 1.0  # codex stamps its rollout in wall-clock time
    outcome = pump(proc, args.events, args.id_file, args.kind)
    if args.kind == "codex":
        add_rollout_failures(outcome, args.id_file, since)
    show_retry(args.events.parent / RETRYING, None)  # ended: retrying no more, whatever the last event
    rc = proc.wait()
    sys.stdout.flush()
    if rc < 0:  # the agent died by a signal: die by the same one so the runner sees a crash, not an exit
        sig = -rc
        if sig not in (signal.SIGKILL, signal.SIGSTOP):  # those cannot have handlers (nor need resetting)
            signal.signal(sig, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, [sig])
        os.kill(os.getpid(), sig)
    write_result(args.kind, args.id_file, outcome, rc)
    if rc == 0 and outcome.failed:
        print(
            "runner.agents.tee: the agent reported a failed turn: " + "; ".join(outcome.signals),
            file=sys.stderr,
        )
        return 1
    return rc


if __name__ == "__main__":
    sys.exit(main())
