"""P11 (temporary directories) and P13 (tmux missing or too old): the environment, refused cleanly."""

from __future__ import annotations

import os
import re
import shutil

import pytest

from conformance.context import Ctx
from conformance.registry import check
from runner.config import SUN_PATH_MAX  # sun_path with its NUL (104 on macOS/BSD)

MACOS_LIKE = "var/folders/zz/zyxvpxvq6csfxvn_n0000000000000/T"
# the room a dispatcher's own -L socket name may need in sun_path
SOCKET_NAME_ROOM = 24


def _under(path: str, *roots: str) -> bool:
    real = os.path.realpath(path)
    return any(real == r or real.startswith(r.rstrip("/") + "/") for r in map(os.path.realpath, roots))


def _lifecycle(dispatch: Ctx, impl, probe=None) -> None:
    """start, status, wait, logs, list; a second task stopped; reap: everything a day uses.

    While the first agent runs, its DISPATCH_* files must live under the state dir or $TMPDIR, and
    ``probe()`` (if given) looks at the system.
    """
    a = dispatch.agent("--print", "hello", "--work", "1.0", "--result-mode", "atomic")
    tid = dispatch.task_id()
    impl.start(tid, a.argv, prompt=b"do it")
    env = a.wait_for("start", 20)["env"]
    roots = (impl.env["DISPATCH_STATE_DIR"], impl.env["TMPDIR"])
    for var in ("DISPATCH_PROMPT_FILE", "DISPATCH_RESULT_FILE", "DISPATCH_HEARTBEAT_FILE"):
        if env.get(var):
            assert _under(env[var], *roots), f"{var}={env[var]} is outside the state dir and $TMPDIR"
    if probe is not None:
        probe()
    impl.status(tid)
    task = impl.wait(tid, 20)
    dispatch.require_succeeded(task)
    dispatch.require(task["result"] == {"ok": True}, "the result must come back", "P05.result.complete")
    if dispatch.caps.has("logs"):
        assert "hello" in impl.logs(tid)["text"], "the agent's output is missing from the log"
        if task.get("log_path"):
            assert _under(task["log_path"], *roots), (
                f"log_path {task['log_path']} is outside the state dir and $TMPDIR"
            )
    b = dispatch.task_id()
    impl.start(b, dispatch.agent("--work", "30").argv)
    impl.stop(b)
    if dispatch.caps.has("reap"):
        impl.reap()
    impl.list()


@pytest.mark.parametrize("kind", ["spaces", "macos-like"])
@check(
    id="P11.tmpdir.odd-paths",
    level="MUST",
    pitfall="P11",
    reason="quote nothing into shell strings and hard-code no /tmp: TMPDIR and the state dir may contain "
    "spaces and be long /var/folders/... paths",
)
def test_odd_tmpdir_and_state_dir(dispatch: Ctx, kind: str) -> None:
    base = dispatch.sandbox.root / ("dir with spaces 'q'" if kind == "spaces" else MACOS_LIKE)
    tmp, state = base / "tmp dir", base / "state dir"
    tmp.mkdir(parents=True, mode=0o700)
    impl = dispatch.make_impl(TMPDIR=str(tmp), DISPATCH_STATE_DIR=str(state))
    dispatch.impl = impl
    _lifecycle(dispatch, impl)


@check(
    id="P11.long-state-dir.default-socket",
    level="SHOULD",
    pitfall="P11",
    reason="when the state dir is too long for a socket path (sun_path is 104 bytes on macOS), choose a "
    "socket that fits (-L NAME or a short path) instead of failing",
)
def test_long_state_dir_without_socket_knob(dispatch: Ctx) -> None:
    state = dispatch.sandbox.root / MACOS_LIKE / ("com.example.dispatch-kit-state." + "x" * 40)
    env = dispatch.env(DISPATCH_STATE_DIR=str(state))
    env.pop("DISPATCH_TMUX_SOCKET")
    _require_room_for_a_named_socket(env)
    impl = dispatch.make_impl(env=env)
    dispatch.impl = impl
    assert len(str(state)) > 110
    tid = dispatch.task_id()
    agent = dispatch.agent("--work", "0.2", heartbeat=None)
    impl.start(tid, agent.argv)
    task = impl.wait(tid, 20)
    if task["state"] != "succeeded" and agent.names():
        # the agent ran, so the socket worked: the lost outcome is another check's (P10), not P11's
        dispatch.require_succeeded(task)
    assert task["state"] == "succeeded", (
        f"with a {len(str(state))}-byte state dir and no DISPATCH_TMUX_SOCKET the agent never ran: state "
        f"{task['state']!r} (reason {task['reason']!r})"
    )


def _require_room_for_a_named_socket(env: dict[str, str]) -> None:
    """A -L socket lives in $TMUX_TMPDIR/tmux-UID/. On a real Mac TMUX_TMPDIR is unset (/private/tmp), but
    the sandbox points it into its own dir: under a long TMPDIR (the macos-like container's /var/folders/...)
    no socket name of a usual length fits there, which no dispatcher could fix, so it is not measured."""
    from faults.errors import Unsupported

    base = os.path.join(env.get("TMUX_TMPDIR") or "/tmp", f"tmux-{os.getuid()}", "")
    room = SUN_PATH_MAX - 1 - len(os.fsencode(base))
    if room < SOCKET_NAME_ROOM:
        raise Unsupported(
            f"the sandbox's tmux socket dir {base} ({len(os.fsencode(base))} bytes) leaves {room} bytes of "
            f"sun_path for a -L socket name ({SOCKET_NAME_ROOM} needed): TMPDIR is too long here"
        )


@check(
    id="P11.no-tmp-writes",
    level="MUST",
    pitfall="P11",
    reason="put temporary files under the state dir or $TMPDIR, never a hard-coded /tmp",
)
def test_nothing_written_to_tmp(dispatch: Ctx) -> None:
    from faults.fs import private_tmp

    env = dispatch.impl.env
    # The implementation itself (and this interpreter's venv) may live under /tmp, e.g. a CI clone:
    # keep those reachable, or the check would measure a missing binary instead of /tmp writes.
    keep = [dispatch.sandbox.root, *dispatch.reachable_paths()]
    with private_tmp(env, keep=keep, parent=dispatch.sandbox.root) as pt:
        impl = dispatch.impl.wrapped(lambda argv: pt.command(argv, env, str(dispatch.sandbox.workdir)))
        dispatch.impl = impl
        seen: list[str] = []
        _lifecycle(dispatch, impl, probe=lambda: seen.extend(pt.written()))  # while a task runs
        dispatch.tmux("kill-server")
        seen.extend(pt.written())  # and after everything
    written = sorted(set(seen))
    assert not written, f"the implementation wrote to /tmp itself: {written[:5]}"


def _assert_nothing_created(dispatch: Ctx, tid: str, agent) -> None:
    assert not agent.journal.exists(), "the agent was started although the start was refused"
    assert not dispatch.sandbox.socket.exists(), "a refused start created the tmux socket/server"
    tasks = dispatch.impl.list()
    assert not any(t["task_id"] == tid for t in tasks), "a refused start left a task in `list`"
    state = dispatch.sandbox.state_dir
    leftovers = [str(p) for p in state.rglob("*") if tid in p.name] if state.exists() else []
    assert not leftovers, f"a refused start left files: {leftovers[:3]}"


@check(
    id="P13.tmux-missing.refused",
    level="MUST",
    pitfall="P13",
    reason="check for tmux before creating anything; refuse with exit 3, error.code tmux_missing and one line",
)
def test_tmux_missing_refused(dispatch: Ctx) -> None:
    from faults.tmuxfault import path_without_tmux

    env = path_without_tmux(dispatch.impl.env, dest=dispatch.sandbox.root / "notmux")
    assert shutil.which("tmux", path=env["PATH"]) is None
    agent = dispatch.agent()
    tid = dispatch.task_id()
    call = dispatch.impl.start_call(tid, agent.argv, env=env, strict=False)
    assert call.problem is None, call.describe()
    assert call.exit_code == 3, f"no tmux on PATH: {call.describe()}, expected exit 3"
    assert call.error_code == "tmux_missing", f"error.code {call.error_code!r}, expected tmux_missing"
    assert call.stderr.strip() and "\n" not in call.stderr.strip(), f"stderr is not one line: {call.stderr!r}"
    _assert_nothing_created(dispatch, tid, agent)


@check(
    id="P13.tmux-too-old.refused",
    level="MUST",
    pitfall="P13",
    reason="probe `tmux -V` and refuse versions below the tmux_min you declare (exit 3, tmux_too_old, naming "
    "both, nothing created); accept the declared minimum itself",
)
def test_old_tmux_refused(dispatch: Ctx) -> None:
    from faults.tmuxfault import old_tmux_dir

    minimum = dispatch.caps.tmux_min
    below = version_below(minimum)
    dispatch.require(
        below,
        "capabilities must declare a tmux_min like 3.2a",
        "the smoke stage (capabilities --json)",
        repr(minimum),
    )
    # refused just below the implementation's OWN declared minimum (a shim can claim any version)
    old = old_tmux_dir(dispatch.sandbox.root / "oldtmux", below)
    env = dict(dispatch.impl.env, PATH=f"{old}{os.pathsep}{dispatch.impl.env['PATH']}")
    agent = dispatch.agent()
    tid = dispatch.task_id()
    call = dispatch.impl.start_call(tid, agent.argv, env=env, strict=False)
    assert call.problem is None, call.describe()
    assert call.exit_code == 3, (
        f"tmux {below} is below the declared tmux_min {minimum} but was not refused with exit 3: "
        f"{call.describe()}"
    )
    assert call.error_code == "tmux_too_old", f"error.code {call.error_code!r}, expected tmux_too_old"
    msg = call.doc["error"]["message"]
    assert below in msg and minimum in msg, f"message should name {below} and the minimum {minimum}: {msg!r}"
    _assert_nothing_created(dispatch, tid, agent)
    # and accepted AT the declared minimum, when the real tmux is at least that recent
    if _real_version() is not None and _vkey(_real_version()) >= _vkey(minimum):
        at = old_tmux_dir(dispatch.sandbox.root / "mintmux", minimum)
        env = dict(dispatch.impl.env, PATH=f"{at}{os.pathsep}{dispatch.impl.env['PATH']}")
        tid = dispatch.task_id()
        call = dispatch.impl.start_call(
            tid, dispatch.agent("--work", "0.2", heartbeat=None).argv, env=env, strict=False
        )
        assert call.exit_code == 0, (
            f"tmux {minimum} is the declared tmux_min but start refused it: {call.describe()}"
        )
        dispatch.impl.run("wait", tid, "--timeout", "20", env=env, timeout=40, strict=False)


def _vkey(v: str) -> tuple[int, int, str]:
    m = re.match(r"^(?:tmux )?(?:next-)?(\d+)\.(\d+)([a-z]?)", v.strip())
    return (int(m.group(1)), int(m.group(2)), m.group(3)) if m else (0, 0, "")


def version_below(v: str) -> str | None:
    """A tmux version string just below ``v`` (3.2a -> 3.2, 3.2 -> 3.1c, 3.0 -> 2.9a)."""
    m = re.match(r"^(\d+)\.(\d+)([a-z]?)$", v.strip())
    if not m:
        return None
    major, minor, letter = int(m.group(1)), int(m.group(2)), m.group(3)
    if letter:
        return f"{major}.{minor}" if letter == "a" else f"{major}.{minor}{chr(ord(letter) - 1)}"
    return f"{major}.{minor - 1}c" if minor > 0 else f"{major - 1}.9a"


def _real_version() -> str | None:
    tmux = shutil.which("tmux")
    if not tmux:
        return None
    import subprocess

    out = subprocess.run([tmux, "-V"], capture_output=True, text=True, timeout=10).stdout
    return out.split(" ", 1)[-1].strip() or None
