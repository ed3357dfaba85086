"""Each known-bad really exhibits its one flaw on real tmux, and the reference does not.

Most tests run the same scenario against the reference (`dispatch`) and the known-bad and assert they
disagree in exactly the documented way. Where the flaw IS a leak, the test cleans up by marker
(PID + start time) before the sandbox fixture looks for leaks.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from conformance.isolation import Sandbox, kill_marked
from conformance.known_bad import KNOWN_BAD
from fake_agents import journal
from faults.pidns import PidNamespace
from faults.procfault import ProcIdentity

BIN = Path(sys.executable).parent
REF = [str(BIN / "dispatch")]
FAKE = str(BIN / "fake-agent")
SHELLS = {"bash", "sh", "dash", "zsh", "ksh", "fish", "ash"}


def impl_of(name: str) -> list[str]:
    return REF if name == "reference" else KNOWN_BAD[name].impl


def call(sb: Sandbox, impl: list[str], *args: str, timeout: float = 30, **env: str) -> tuple[int, Any]:
    cp = subprocess.run([*impl, *args], env=sb.env(**env), capture_output=True, timeout=timeout)
    out = cp.stdout.decode(errors="replace").strip()
    try:
        doc = json.loads(out) if out else None
    except ValueError:
        doc = out
    return cp.returncode, doc


def start(
    sb: Sandbox, impl: list[str], tid: str, *argv: str, prompt: bytes = b"hi\n", **env: str
) -> tuple[int, Any]:
    p = sb.root / f"prompt-{tid}"
    p.write_bytes(prompt)
    return call(
        sb,
        impl,
        "start",
        "--json",
        "--task-id",
        tid,
        "--cwd",
        str(sb.workdir),
        "--prompt-file",
        str(p),
        "--",
        *argv,
        **env,
    )


def wait(sb: Sandbox, impl: list[str], tid: str, timeout: float = 15, **env: str) -> dict[str, Any]:
    rc, doc = call(sb, impl, "wait", "--json", tid, "--timeout", str(timeout), timeout=timeout + 15, **env)
    assert rc in (0, 124), doc
    return doc


def stop(sb: Sandbox, impl: list[str], tid: str, **env: str) -> dict[str, Any]:
    rc, doc = call(sb, impl, "stop", "--json", tid, **env)
    assert rc == 0, doc
    return doc


def until(pred: Any, timeout: float, what: str) -> Any:
    dl = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > dl:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def proc_name(pid: int | None) -> str:
    try:
        return psutil.Process(pid).name() if pid else ""
    except psutil.Error:
        return ""


def drain_leaks(sb: Sandbox) -> list[str]:
    """End everything carrying the sandbox marker (the flaw's leftovers); return what was there."""
    leaks = [lk.cmdline for lk in sb.leaks()]
    kill_marked(sb.marker)
    return leaks


# -- every entry runs ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(KNOWN_BAD))
def test_known_bad_speaks_capabilities(sandbox: Sandbox, name: str) -> None:
    kb = KNOWN_BAD[name]
    assert kb.pitfall and kb.description and kb.impl
    if kb.impl[0] != "bash" and kb.pitfall != "crafted":  # crafted ones are scripts, not seam modules
        mod = __import__(f"conformance.known_bad.{name}", fromlist=["main"])
        assert mod.__doc__ and "Caught by" in mod.__doc__ and callable(mod.main)
    rc, doc = call(sandbox, kb.impl, "capabilities", "--json")
    assert rc == 0 and doc["contract"] == "1" and name in doc["implementation"]


@pytest.mark.parametrize("name", ["reference", *sorted(n for n in KNOWN_BAD if n != "seed_polling")])
def test_lifecycle_still_works(sandbox: Sandbox, name: str) -> None:
    """Apart from its flaw, each patched known-bad runs a plain task like the reference (no collateral damage)."""
    impl = impl_of(name)
    rc, doc = start(sandbox, impl, "life", "sh", "-c", "echo ok; exit 0")
    assert rc == 0, doc
    t = wait(sandbox, impl, "life")
    if name == "bare_exec":
        assert (t["state"], t["exit_code"]) == ("crashed", None)  # its flaw: the exit status is lost
    else:
        assert (t["state"], t["exit_code"]) == ("succeeded", 0), t
    stop(sandbox, impl, "life")
    if name == "no_pipe_cleanup" or name == "panepid_own_socket":  # the flaw leaves its server/pipe
        drain_leaks(sandbox)


# -- P1 ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["reference", "shell_pid", "seed_polling"])
def test_shell_pid_records_a_shell(sandbox: Sandbox, name: str) -> None:
    impl = impl_of(name)
    rc, doc = start(sandbox, impl, "p1", "sleep", "30")
    assert rc == 0, doc
    t = call(sandbox, impl, "status", "--json", "p1")[1]
    kind = proc_name(t["agent_pid"])
    try:
        if name == "reference":
            assert kind == "sleep"
        else:
            assert kind in SHELLS, (kind, t["agent_pid"])
    finally:
        stop(sandbox, impl, "p1")
        if name == "seed_polling":
            drain_leaks(sandbox)


# A default shell that starts slowly and then, as a starting shell may, drops what was typed meanwhile
# (bash did so for 3 of 30 lines typed at once under CI's load: those starts hung until their timeout).
FLUSHING_SHELL = """import os, sys, termios, time
time.sleep(1.0)
termios.tcflush(0, termios.TCIFLUSH)
os.write(1, b"ready$ ")
os.execv("/bin/sh", ["/bin/sh", "-c", sys.stdin.readline()])
"""


def test_shell_pid_types_its_line_once_the_shell_shows_its_prompt(sandbox: Sandbox) -> None:
    """The known-bad must work but for its flaw: its typed launch waits for the shell's prompt."""
    sh = sandbox.root / "flushing-shell"
    sh.write_text(f"#!{sys.executable}\n{FLUSHING_SHELL}")
    sh.chmod(0o755)
    impl = impl_of("shell_pid")
    rc, doc = start(sandbox, impl, "p1", "sleep", "30", SHELL=str(sh))
    try:
        assert rc == 0, doc
    finally:
        stop(sandbox, impl, "p1")


# -- P2 ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["reference", "kill0"])
def test_kill0_fooled_by_recycled_pid(sandbox: Sandbox, name: str) -> None:
    """A look-alike on the dead supervisor's exact PID: the reference sees the loss, kill0 is fooled.

    Everything runs in a private PID namespace (faults.pidns): the PID is recycled by that namespace's
    own ns_last_pid, which nothing else forks in, so it lands at once and can never be a PID of
    another test's processes (rewinding the host's ns_last_pid once gave kill0's later `stop` a
    recycled PID whose children were another chaos run's supervisors).
    """
    impl = impl_of(name)
    with PidNamespace(env=sandbox.env()) as ns:  # Unsupported (a skip) names the missing privilege
        inside = ns.command(impl, sandbox.workdir)  # PIDs the implementation sees are namespace PIDs
        assert start(sandbox, inside, "p2", "sleep", "60")[0] == 0
        w = call(sandbox, inside, "status", "--json", "p2")[1]["wrapper_pid"]
        host = ns.host_pid(w)
        assert host, f"wrapper pid {w} is not in the namespace"
        try:
            assert ProcIdentity.of(host).signal(signal.SIGKILL)  # the supervisor dies ...
            until(lambda: ns.host_pid(w) is None, 10, "the wrapper's PID to be free")
            ns.spawn_at_pid(w, ["sleep", "30"], env=sandbox.env())  # ... and its PID goes to a look-alike
            t = call(sandbox, inside, "status", "--json", "p2")[1]
            if name == "reference":
                assert (t["state"], t["reason"]) == ("crashed", "supervisor_lost"), t
            else:
                assert t["state"] == "running", t  # fooled: kill -0 succeeds on the look-alike
        finally:
            call(sandbox, inside, "stop", "--json", "p2")
    drain_leaks(sandbox)


@pytest.mark.parametrize("name", ["reference", "kill0"])
def test_a_stale_pid_never_reaches_another_runs_processes(sandbox: Sandbox, name: str) -> None:
    """The flaw fools liveness only: `stop` must not signal the children of a stranger holding the PID.

    A recycled PID is simulated exactly: the task's logpipe.pid names another run's live tmux server
    with a start time that is not its own. kill0 used to patch `ProcessIdentity.is_alive` globally, so
    `stop`'s tree walk took the stranger for the log pipe and SIGTERMed its children: the other run's
    supervisors and agents (chaos in CI recorded `stopped/stop_requested` and `crashed/signaled` 15 for
    tasks nobody stopped, while test_kill0_fooled_by_recycled_pid still rewound the host's ns_last_pid).
    """
    impl = impl_of(name)
    other = Sandbox.create(prefix="dkv-")
    try:
        assert start(other, REF, "v1", "sleep", "60")[0] == 0
        server = subprocess.run(
            ["tmux", "-S", str(other.socket), "display-message", "-p", "#{pid}"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        assert start(sandbox, impl, "p3", "sleep", "60")[0] == 0
        pidfile = sandbox.state_dir / "tasks" / "p3" / "logpipe.pid"
        until(pidfile.exists, 10, "the log pipe's pid file")
        pidfile.write_text(f"{server} 1\n")  # the log pipe's PID now belongs to the stranger
        assert stop(sandbox, impl, "p3")["state"] == "stopped"
        t = call(other, REF, "status", "--json", "v1")[1]
        assert (t["state"], t["signal"]) == ("running", None), t
    finally:
        call(other, REF, "stop", "--json", "v1")
        other.cleanup()


# -- P3 ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["reference", "done_from_log", "seed_polling"])
def test_done_marker_in_log_is_not_completion(sandbox: Sandbox, name: str) -> None:
    impl = impl_of(name)
    assert start(sandbox, impl, "p3", "sh", "-c", "echo __TASK_DONE__; sleep 30")[0] == 0
    t = wait(sandbox, impl, "p3", timeout=4)
    try:
        if name == "reference":
            assert t["state"] == "running", t
        else:
            assert t["state"] == "succeeded", t  # the agent was still working
    finally:
        stop(sandbox, impl, "p3")
        if name == "seed_polling":
            drain_leaks(sandbox)


# Prints the done marker, waits until its own log (the reference's layout: output.RUN.log beside the result
# file) holds it, then exits 3: the flaw then sees the marker whatever the load (an agent exiting at once
# raced the log pump against done_from_log's 0.5 s settle, and the correct answer won under load).
DONE_THEN_FAIL_AGENT = (
    'echo __TASK_DONE__; d=$(dirname "$DISPATCH_RESULT_FILE"); i=0; '
    'until cat "$d"/output.*.log 2>/dev/null | grep -q "^__TASK_DONE__"; do '
    "i=$((i+1)); [ $i -gt 600 ] && break; sleep 0.05; done; exit 3"
)


def test_done_from_log_overrides_a_failure(sandbox: Sandbox) -> None:
    impl = impl_of("done_from_log")
    assert start(sandbox, impl, "p3b", "sh", "-c", DONE_THEN_FAIL_AGENT)[0] == 0
    t = wait(sandbox, impl, "p3b")
    assert t["state"] == "succeeded", t  # the agent exited 3
    stop(sandbox, impl, "p3b")


# -- P4 ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["reference", "no_pipe_cleanup"])
def test_pipe_process_survives(sandbox: Sandbox, name: str) -> None:
    impl = impl_of(name)
    assert start(sandbox, impl, "p4", "sh", "-c", "echo piped; exit 0")[0] == 0
    assert wait(sandbox, impl, "p4")["state"] == "succeeded"
    stop(sandbox, impl, "p4")
    if name == "reference":
        until(lambda: not sandbox.leaks(), 5, "nothing of the task to remain")
    else:
        leaks = until(
            lambda: [c for c in (lk.cmdline for lk in sandbox.leaks()) if "_logpipe" in c], 5, "leak"
        )
        assert leaks
        time.sleep(0.5)
        assert any("_logpipe" in c for c in drain_leaks(sandbox))  # still there after the session is gone


# -- P5 ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["empty", "truncated"])
@pytest.mark.parametrize("name", ["reference", "nonatomic_read"])
def test_partial_result_accepted(sandbox: Sandbox, name: str, mode: str) -> None:
    impl = impl_of(name)
    assert start(sandbox, impl, "p5", FAKE, "--result-mode", mode, "--result", '{"answer": 42}')[0] == 0
    t = wait(sandbox, impl, "p5")
    if name == "reference":
        assert (t["state"], t["reason"], t["result"]) == ("failed", "invalid_result", None), t
    else:
        assert t["state"] == "succeeded", t
    stop(sandbox, impl, "p5")


# -- P6 ------------------------------------------------------------------------------------------

# Heartbeats by content for 3 s, but the file's mtime is pinned in the past (coarse/odd timestamps).
PINNED_MTIME_AGENT = (
    'i=0; while [ $i -lt 12 ]; do echo "$i" > "$DISPATCH_HEARTBEAT_FILE"; '
    'touch -d @1000000000 "$DISPATCH_HEARTBEAT_FILE"; i=$((i+1)); sleep 0.25; done'
)


@pytest.mark.parametrize("name", ["reference", "mtime_clock"])
def test_mtime_staleness(sandbox: Sandbox, name: str) -> None:
    impl = impl_of(name)
    knobs = {"DISPATCH_STALE_AFTER_S": "1", "DISPATCH_GRACE_S": "0.5"}
    assert start(sandbox, impl, "p6", "sh", "-c", PINNED_MTIME_AGENT, **knobs)[0] == 0
    t = wait(sandbox, impl, "p6", **knobs)
    expected = "succeeded" if name == "reference" else "hung"
    assert t["state"] == expected, t
    stop(sandbox, impl, "p6")


# -- P7 ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["reference", "names_from_input"])
def test_prefix_target_kills_another_task(sandbox: Sandbox, name: str) -> None:
    impl = impl_of(name)
    assert start(sandbox, impl, "pab", "sleep", "30")[0] == 0
    rc, doc = start(sandbox, impl, "pa", "sh", "-c", "exit 0")
    assert rc == 0
    assert wait(sandbox, impl, "pa")["state"] == "succeeded"
    time.sleep(0.3)  # the ended task's session closes
    stop(sandbox, impl, "pa")  # targets its own (gone) session
    t = call(sandbox, impl, "status", "--json", "pab")[1]
    try:
        if name == "reference":
            assert doc["session"] not in ("dk_pa",) and t["state"] == "running", t
        else:
            assert doc["session"] == "dk_pa"
            t = wait(sandbox, impl, "pab", timeout=5)
            assert t["state"] == "crashed", t  # its session was killed through the prefix match
    finally:
        stop(sandbox, impl, "pab")


# -- P8 ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["reference", "inline_send_keys"])
def test_send_interprets_key_names(sandbox: Sandbox, name: str) -> None:
    impl = impl_of(name)
    j = sandbox.root / "p8.journal"
    assert start(sandbox, impl, "p8", FAKE, "--journal", str(j), "--read-paste")[0] == 0
    journal.wait_for(j, "paste_ready", timeout=10)
    text = sandbox.root / "text"
    text.write_bytes(b"Enter")
    rc, doc = call(sandbox, impl, "send", "--json", "p8", "--text-file", str(text))
    assert rc == 0 and doc["bytes"] == 5, doc
    journal.wait_for(j, "input", timeout=10, where=lambda e: e.get("kind") == "enter")
    inputs = journal.all_of(journal.read(j), "input")
    pastes = [base64.b64decode(e["b64"]) for e in inputs if e.get("kind") == "paste"]
    typed = [base64.b64decode(e["typed_b64"]) for e in inputs if e.get("kind") == "enter"]
    if name == "reference":
        assert pastes == [b"Enter"], inputs
    else:
        assert pastes == [] and typed == [b""], inputs  # the word was pressed as a key, never typed
    stop(sandbox, impl, "p8")


# -- P9 ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["reference", "no_reaper"])
def test_stop_leaves_grandchild(sandbox: Sandbox, name: str) -> None:
    impl = impl_of(name)
    j = sandbox.root / "p9.journal"
    assert start(sandbox, impl, "p9", FAKE, "--journal", str(j), "--daemon", "--work", "60")[0] == 0
    ev = journal.wait_for(j, "child", timeout=10, where=lambda e: e.get("kind") == "daemon")
    stop(sandbox, impl, "p9")
    alive = (
        psutil.pid_exists(ev["child_pid"])
        and psutil.Process(ev["child_pid"]).create_time() == ev["start_time"]
    )
    if name == "reference":
        assert not alive
    else:
        assert alive
        drain_leaks(sandbox)


def test_no_reaper_reaps_nothing(sandbox: Sandbox) -> None:
    impl = impl_of("no_reaper")
    assert start(sandbox, impl, "p9b", "sleep", "60")[0] == 0
    w = call(sandbox, impl, "status", "--json", "p9b")[1]["wrapper_pid"]
    os.kill(w, signal.SIGSTOP)  # a supervisor that is stuck, and then ...
    os.kill(w, signal.SIGKILL)  # ... gone; the agent and session must be reaped
    until(lambda: not psutil.pid_exists(w), 5, "the wrapper to be gone")
    assert call(sandbox, impl, "reap", "--json")[1] == {"reaped": []}
    call(sandbox, REF, "reap", "--json")  # the reference cleans up what the known-bad left
    drain_leaks(sandbox)


# -- P10 -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["reference", "bare_exec"])
def test_exit_status_lost(sandbox: Sandbox, name: str) -> None:
    impl = impl_of(name)
    assert start(sandbox, impl, "p10", "sh", "-c", "sleep 0.3; exit 3")[0] == 0
    t = wait(sandbox, impl, "p10")
    if name == "reference":
        assert (t["state"], t["exit_code"]) == ("failed", 3), t
        assert t["agent_pid"] != t["wrapper_pid"]
    else:
        assert (t["state"], t["exit_code"]) == ("crashed", None), t
        assert t["agent_pid"] == t["wrapper_pid"]  # the pane's process is the agent itself
    stop(sandbox, impl, "p10")


# -- P11 -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["reference", "hardcoded_tmp", "seed_polling"])
def test_temp_files_under_hardcoded_tmp(sandbox: Sandbox, name: str) -> None:
    impl = impl_of(name)
    out = sandbox.root / "prompt-path"
    agent = f'echo "$DISPATCH_PROMPT_FILE" > {out}; sleep 30'
    assert start(sandbox, impl, "p11", "sh", "-c", agent)[0] == 0
    path = Path(
        until(lambda: out.exists() and out.read_text().strip(), 10, "the agent to report its prompt path")
    )
    try:
        assert path.read_bytes() == b"hi\n"
        inside = path.is_relative_to(sandbox.state_dir) or path.is_relative_to(sandbox.tmpdir)
        if name == "reference":
            assert inside, path
        else:
            # their flaw is a hard-coded /tmp; under the kit's tests that is DK_HARD_TMP, a dir of the
            # session's own TMPDIR (/var/folders/... on macOS, any TMPDIR: not necessarily under /tmp)
            hard_tmp = Path(os.environ.get("DK_HARD_TMP", "/tmp"))
            assert not inside and path.parent == hard_tmp, path
    finally:
        stop(sandbox, impl, "p11")
        if name == "seed_polling":
            drain_leaks(sandbox)
    if name == "hardcoded_tmp":
        until(lambda: not path.exists(), 5, "the /tmp prompt copy to be removed at the end")


# -- P12 -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["reference", "no_grace"])
def test_no_grace_kills_a_pausing_agent(sandbox: Sandbox, name: str) -> None:
    impl = impl_of(name)
    knobs = {"DISPATCH_STALE_AFTER_S": "0.5", "DISPATCH_GRACE_S": "5"}
    agent = [FAKE, "--heartbeat", "0.1", "--pause-beats", "0.5:1.2", "--work", "3"]
    assert start(sandbox, impl, "p12", *agent, **knobs)[0] == 0
    t = wait(sandbox, impl, "p12", **knobs)
    assert t["state"] == ("succeeded" if name == "reference" else "hung"), t
    stop(sandbox, impl, "p12")


# -- P13 -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["reference", "no_version_check"])
def test_old_or_missing_tmux(sandbox: Sandbox, name: str) -> None:
    impl = impl_of(name)
    fakebin = sandbox.root / "oldtmux"
    fakebin.mkdir()
    (fakebin / "tmux").write_text(
        '#!/bin/sh\nfor a; do [ "$a" = -V ] && { echo "tmux 1.8"; exit 0; }; done\nexec /usr/bin/tmux "$@"\n'
    )
    (fakebin / "tmux").chmod(0o755)
    old = {"PATH": f"{fakebin}:{os.environ['PATH']}"}
    rc, doc = start(sandbox, impl, "p13", "sleep", "30", **old)
    if name == "reference":
        assert (rc, doc["error"]["code"]) == (3, "tmux_too_old"), doc
    else:
        assert rc == 0, doc  # an old tmux is used without a word
        stop(sandbox, impl, "p13", **old)
    nobin = sandbox.root / "empty-bin"
    nobin.mkdir()
    rc, doc = start(sandbox, impl, "p13b", "sleep", "30", PATH=str(nobin))
    assert rc == 3, doc
    db = sandbox.state_dir / "dispatch.sqlite3"
    if name == "reference":
        assert doc["error"]["code"] == "tmux_missing"
        assert call(sandbox, impl, "status", "--json", "p13b")[1]["error"]["code"] == "unknown_task"
    else:
        assert doc["error"]["code"] != "tmux_missing" and db.exists(), doc  # late, and state was created


# -- P14 -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["reference", "tmux_no_timeout"])
def test_status_on_frozen_server(sandbox: Sandbox, name: str) -> None:
    impl = impl_of(name)
    assert start(sandbox, impl, "p14", "sleep", "60")[0] == 0
    server = int(
        subprocess.run(
            ["tmux", "-S", str(sandbox.socket), "display-message", "-p", "#{pid}"],
            capture_output=True,
            text=True,
        ).stdout
    )
    os.kill(server, signal.SIGSTOP)
    try:
        p = subprocess.Popen(
            [*impl, "status", "--json", "p14"],
            env=sandbox.env(),
            stdout=subprocess.PIPE,
            start_new_session=True,
        )
        t0 = time.monotonic()
        try:
            out, _ = p.communicate(timeout=6)
            answered = time.monotonic() - t0
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
            answered = None
        if name == "reference":
            assert answered is not None and answered < 5 and json.loads(out)["state"] == "running"
        else:
            assert answered is None  # still blocked on tmux after 6 s
    finally:
        os.kill(server, signal.SIGCONT)
    stop(sandbox, impl, "p14")


# -- P15 -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["reference", "no_allowlist"])
def test_model_not_checked(sandbox: Sandbox, name: str) -> None:
    impl = impl_of(name)
    p = sandbox.root / "prompt"
    p.write_bytes(b"hi")
    args = ["start", "--json", "--task-id", "p15", "--cwd", str(sandbox.workdir), "--prompt-file", str(p)]
    rc, doc = call(
        sandbox, impl, *args, "--model", "banned-model", "--", "sleep", "30", DISPATCH_MODELS="opus,sonnet"
    )
    if name == "reference":
        assert (rc, doc["error"]["code"]) == (2, "model_not_allowed")
        assert not list(sandbox.state_dir.glob("tasks/p15"))
    else:
        assert rc == 0, doc
        stop(sandbox, impl, "p15")


# -- seed_polling: a few of its many flaws -------------------------------------------------------


def test_seed_polling_names_and_signals(sandbox: Sandbox) -> None:
    impl = impl_of("seed_polling")
    rc, doc = start(sandbox, impl, "seed1", "sh", "-c", "kill -TERM $$")
    assert rc == 0 and doc["session"] == "agent-seed1"  # named from input
    t = wait(sandbox, impl, "seed1")
    assert (t["state"], t["exit_code"]) == ("failed", 143), t  # a signal seen through a shell: "exit 143"
    stop(sandbox, impl, "seed1")
    drain_leaks(sandbox)


def test_panepid_stop_on_an_ended_task_waits_for_its_monitor(sandbox: Sandbox) -> None:
    """The crafted panepid records a natural end before it closes the session and log filter; `stop`
    then returns only once that monitor is gone (the sandbox fails the test on any process left). The
    delay stands in for the load under which its monitor outlived the test in CI's macos-like container."""
    impl = impl_of("panepid_caller_pwd")
    rc, doc = start(sandbox, impl, "late", "sh", "-c", "exit 0", PANEPID_END_DELAY_S="1.5")
    assert rc == 0, doc
    assert wait(sandbox, impl, "late")["state"] == "succeeded"
    stop(sandbox, impl, "late")
