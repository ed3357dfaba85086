"""Contract v1 adapter for libtmux-easy (PyPI `libtmux-easy`, pinned in implementations/peers.py).

libtmux-easy supervises panes from a live Python object: ``TmuxSession.create(name, env=, mode=exec,
status_file=)`` then ``new_pane(name, command)``; its watcher records the exact exit status and the
agent's pid and rewrites ``status_file`` (JSON, atomically) on every pane transition "so an external
process can monitor pane state". A contract verb is one short process, so the adapter runs that
object in a detached supervisor process (adapter-supplied, README) and answers `status` from the
peer's own status file. `stop` asks the supervisor (SIGTERM) to call the peer's ``stop_pane()``.
"""

from __future__ import annotations

import json
import os
import secrets
import select
import shlex
import signal
import subprocess
import sys
import threading
from dataclasses import asdict
from pathlib import Path
from typing import Any

from implementations.adapter import PeerDriver, Seen, import_peer, route_tmux_via_env, run_main, state_dir
from runner import atomicio
from runner.clock import Deadline
from runner.contract import DispatchError
from runner.procid import ProcessIdentity

READY_S = 8.0  # how long `start` waits for the peer's own refusal; the suite's per-call limit is 20 s
STOP_WAIT_S = 30.0  # the peer escalates SIGINT 10 s -> SIGTERM 5 s -> SIGKILL 2 s by default


def _files(task_id: str) -> Path:
    return state_dir() / "adapter" / "files" / task_id


class LibtmuxEasyDriver(PeerDriver):
    name = "libtmux-easy"
    version = "0.2.0"
    capabilities = ("logs",)

    def launch(self, rec: dict[str, Any], agent_env: dict[str, str]) -> str:
        name = "le_" + secrets.token_hex(6)
        spec = _files(rec["task_id"]) / "supervisor.json"
        env = {**os.environ, **agent_env}
        rec["log_path"] = str(_files(rec["task_id"]) / "output.log")  # the peer's own capture file
        atomicio.write_json(spec, {"session": name, "rec": rec, "env": env})  # 0600: it holds the env
        proc = subprocess.Popen(
            [sys.executable, "-m", "implementations.libtmux_easy_adapter", "_supervise", str(spec)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=open(spec.with_name("supervisor.log"), "wb"),
            start_new_session=True,
        )
        ident = ProcessIdentity.of(proc.pid)
        rec["supervisor"] = ident.to_json() if ident else None
        # `start` waits up to READY_S for the peer to create the pane or refuse (one line on the pipe);
        # a slower peer goes on in the background and `status` says `starting` meanwhile
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], READY_S)
        line = proc.stdout.readline().decode("utf-8", "replace").strip() if ready else "ok"
        proc.stdout.close()
        if line != "ok":
            if line.startswith("TmuxCommandNotFound"):  # the peer's (libtmux's) own typed refusal
                raise DispatchError("tmux_missing", f"libtmux-easy: {line}")
            log = spec.with_name("supervisor.log").read_text(errors="replace").strip().splitlines()
            raise RuntimeError(line or (log[-1] if log else "the supervisor exited before creating the pane"))
        return name

    def _status(self, rec: dict[str, Any]) -> dict[str, Any] | None:
        docs = {}
        for name in ("final.json", "status.json"):  # the peer's final answer first, else its live file
            try:
                panes = json.loads((_files(rec["task_id"]) / name).read_text())
            except (OSError, ValueError):
                continue
            if panes:
                docs[name] = panes[0]
        final, live = docs.get("final.json"), docs.get("status.json")
        if final and live and not final.get("target_pids"):  # the peer drops the pid once the pane died
            final["target_pids"] = live.get("target_pids")
        return final or live

    def _supervisor_alive(self, rec: dict[str, Any]) -> bool:
        sup = rec.get("supervisor")
        return bool(sup) and ProcessIdentity(*sup).is_alive()

    def observe(self, rec: dict[str, Any]) -> Seen:
        st = self._status(rec)
        if st is None or st.get("running"):
            if self._supervisor_alive(rec):
                pid = (st or {}).get("target_pids") or [None]
                return Seen("running" if st else "starting", agent_pid=pid[0])
            return Seen("crashed", "supervisor_lost")
        ex = st.get("exit_status") or {}
        pid = (st.get("target_pids") or [None])[0]
        if ex.get("code") is not None:
            code = ex["code"]
            return Seen("succeeded" if code == 0 else "failed", "exited", code, agent_pid=pid)
        if ex.get("signal") is not None:
            return Seen("crashed", "signaled", None, ex["signal"], agent_pid=pid)
        return Seen("crashed", "exit_unknown", agent_pid=pid)

    def stop(self, rec: dict[str, Any]) -> None:
        sup = rec.get("supervisor")
        if not sup:
            return
        ident = ProcessIdentity(*sup)
        if ident.signal(signal.SIGTERM):
            ident.wait_exit(Deadline(STOP_WAIT_S))

    def logs(self, rec: dict[str, Any]) -> str:
        from libtmux_easy import wrap

        try:
            data = Path(rec["log_path"]).read_bytes()  # the peer's capture of the pane (raw)
        except OSError:
            return ""
        return wrap.plain_text(data).decode("utf-8", "replace")  # the peer's own ANSI stripping


def _tell(line: str) -> None:
    """One line to `start`, which may have stopped listening (a slow peer): then nobody needs it."""
    try:
        os.write(1, line.encode() + b"\n")
    except OSError:
        pass


def supervise(spec_path: str) -> int:
    """The supervisor: holds the peer's TmuxSession for one task until the agent ends or stop asks."""
    spec = json.loads(Path(spec_path).read_text())
    rec, files = spec["rec"], Path(spec_path).parent
    wake = threading.Event()
    stopping = threading.Event()

    def on_term(signum: int, frame: object) -> None:
        stopping.set()
        wake.set()

    signal.signal(signal.SIGTERM, on_term)
    sock = os.environ.get("DISPATCH_TMUX_SOCKET")
    # set_server() is the peer's socket option, but its stdlib helpers (dash/keys, close) run bare
    # `tmux` on $TMUX's server: the adapter routes those too (README, 'socket').
    route_tmux_via_env()
    try:
        import_peer("libtmux-easy")
        from libtmux_easy import tmux_lib

        tmux_lib.set_server(**({"socket_path": sock} if sock else {}))
        s = tmux_lib.TmuxSession.create(
            spec["session"],
            kill_existing=False,
            env=spec["env"],
            mode=tmux_lib.PANE_MODE_EXEC,
            status_file=str(files / "status.json"),
        )
        s.new_window("agent")  # new_pane() goes in the window new_window() made last
        pane = s.new_pane(
            "agent", shlex.join(rec["argv"]), capture=rec["log_path"], start_directory=rec["cwd"]
        )
        s.watch_pane(pane, lambda status: wake.set())
    except Exception as e:  # the peer's own refusal: `start` reports it as the peer's error
        _tell(f"{type(e).__name__}: {' '.join(str(e).split())}"[:400])
        raise
    _tell("ok")
    wake.wait()
    if stopping.is_set():
        s.stop_pane(pane)
    s.exit_status(pane)
    # the peer's final answer, kept by the adapter before the peer's teardown rewrites its status file
    atomicio.write_json(files / "final.json", [asdict(s.pane_status(pane))])
    s.kill()  # the peer's own teardown, as a script using it ends
    return 0


def main() -> int:
    if sys.argv[1:2] == ["_supervise"]:
        return supervise(sys.argv[2])
    return run_main("libtmux-easy", LibtmuxEasyDriver)


if __name__ == "__main__":
    raise SystemExit(main())
