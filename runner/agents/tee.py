"""`python -m runner.agents.tee --events F --thread-file T -- ARGV`: run a JSONL-emitting agent (Codex).

Each line the agent prints is copied to our stdout (the pane, so the log keeps it) and, when it is a JSON
event, appended to F and turned into a heartbeat ($DISPATCH_HEARTBEAT_FILE gets a new value). The first
`thread.started` event's `thread_id` is written atomically to T: that is what `codex exec resume` needs.
We end the way the agent ended (same exit code, or the same signal), and pass TERM/HUP/INT on to it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from runner.atomicio import write_atomic

FORWARD = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)


def thread_id_of(event: Any) -> str | None:
    """The Codex thread/session id carried by a `thread.started` (or older `session.created`) event."""
    if not isinstance(event, dict):
        return None
    if event.get("type") in ("thread.started", "session.created", "session_configured"):
        tid = event.get("thread_id") or event.get("session_id")
        if isinstance(tid, str) and tid:
            return tid
    return None


def pump(proc: subprocess.Popen[bytes], events: Path, thread_file: Path) -> None:
    """Copy the agent's stdout through, recording events and heartbeats, until it closes."""
    hb = os.environ.get("DISPATCH_HEARTBEAT_FILE")
    out = sys.stdout.buffer
    n = 0
    have_tid = thread_file.exists()
    assert proc.stdout is not None
    with open(events, "ab") as ev:
        for line in iter(proc.stdout.readline, b""):
            out.write(line)
            out.flush()
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
            if not have_tid:
                tid = thread_id_of(obj)
                if tid:
                    write_atomic(thread_file, tid)
                    have_tid = True


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m runner.agents.tee")
    ap.add_argument("--events", type=Path, required=True)
    ap.add_argument("--thread-file", type=Path, required=True)
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
    pump(proc, args.events, args.thread_file)
    rc = proc.wait()
    sys.stdout.flush()
    if rc < 0:  # the agent died by a signal: die by the same one so the runner sees a crash, not an exit
        sig = -rc
        if sig not in (signal.SIGKILL, signal.SIGSTOP):  # those cannot have handlers (nor need resetting)
            signal.signal(sig, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, [sig])
        os.kill(os.getpid(), sig)
    return rc


if __name__ == "__main__":
    sys.exit(main())
