"""The tmux socket knob: every session on DISPATCH_TMUX_SOCKET (a precondition of every session check)."""

from __future__ import annotations

from conformance.context import Ctx
from conformance.registry import check


@check(
    id="EX.socket.sessions-on-socket",
    level="MUST",
    pitfall="EX",
    reason="pass DISPATCH_TMUX_SOCKET with -S to every tmux call, so the task's session lives on that server",
)
def test_sessions_on_given_socket(dispatch: Ctx) -> None:
    agent = dispatch.agent("--work", "30")
    tid = dispatch.run_agent(agent)
    task = dispatch.wait_running(tid, agent)
    session, sock = task["session"], dispatch.sandbox.socket
    assert sock.exists(), (
        f"no tmux server on DISPATCH_TMUX_SOCKET={sock} while task {tid} runs: its session "
        f"{session!r} is on another server"
    )
    r = dispatch.tmux("has-session", "-t", f"={session}")
    names = sorted(dispatch.sessions())
    assert r.returncode == 0, (
        f"the task's session {session!r} is not on DISPATCH_TMUX_SOCKET={sock} (sessions there: {names[:5]})"
    )
    dispatch.impl.stop(tid)
