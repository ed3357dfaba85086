"""fake-agent, for real: each fault flag runs the executable and is checked in its journal and its effect."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import pty
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fake_agents import journal, shims
from fake_agents.journal import wait_for
from fake_agents.procinfo import identity
from fake_agents.testing import alive, kill_identity, pids_with_env

T = 15.0  # deadline for any one event on a loaded 2-core machine


class Run:
    """One fake-agent process in a sandbox, with its journal, stdout file and DISPATCH_* files."""

    def __init__(self, sb, *flags: str, stdin=subprocess.DEVNULL, env: dict | None = None) -> None:
        self.sb = sb
        self.j = sb.root / f"j{os.urandom(3).hex()}.jsonl"
        self.out = sb.root / f"out{os.urandom(3).hex()}"
        self.hb = sb.workdir / "heartbeat"
        self.res = sb.workdir / "result.json"
        e = sb.env(
            DISPATCH_HEARTBEAT_FILE=str(self.hb),
            DISPATCH_RESULT_FILE=str(self.res),
            **(env or {}),
        )
        exe = shims.bin_dir(sb.root / "bin") / "fake-agent"
        with open(self.out, "wb") as f:
            self.p = subprocess.Popen(
                [str(exe), "--journal", str(self.j), *flags], cwd=sb.workdir, env=e, stdin=stdin, stdout=f
            )

    def events(self) -> list[journal.Event]:
        return journal.read(self.j)

    def wait(self, timeout: float = T) -> int:
        return self.p.wait(timeout)

    def stdout(self) -> bytes:
        return self.out.read_bytes()

    def kill(self) -> None:
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait(T)


@pytest.fixture
def run(sandbox) -> Iterator:
    runs: list[Run] = []

    def make(*flags: str, **kw) -> Run:
        r = Run(sandbox, *flags, **kw)
        runs.append(r)
        return r

    yield make
    for r in runs:
        r.kill()
        for c in journal.all_of(r.events(), "child"):
            kill_identity(c["child_pid"], c["start_ticks"])


def test_start_event_identity_and_env_prompt_byte_for_byte(run, sandbox):
    prompt = bytes(range(256)) + "\n'$(touch pwned)' ünï\r\n".encode()
    pf = sandbox.root / "prompt"
    pf.write_bytes(prompt)
    saved = sandbox.root / "saved"
    r = run("--save-prompt", str(saved), env={"DISPATCH_PROMPT_FILE": str(pf), "DISPATCH_MODEL": "m1"})
    assert r.wait() == 0
    ev = r.events()
    st = journal.first(ev, "start")
    assert st.pid == r.p.pid and st["ppid"] == os.getpid()
    assert st["env"]["DISPATCH_MODEL"] == "m1" and st["cwd"] == os.path.realpath(sandbox.workdir)
    import psutil  # the reference for start_time; never imported by the fake itself at start

    assert st["start_ticks"] > 0 and abs(st["start_time"] - psutil.Process().create_time()) < 3600
    pr = journal.first(ev, "prompt")
    assert pr["source"] == "env" and pr["length"] == len(prompt)
    assert pr["sha256"] == hashlib.sha256(prompt).hexdigest()
    assert base64.b64decode(pr["b64"]) == prompt and saved.read_bytes() == prompt
    assert not (sandbox.workdir / "pwned").exists()
    end = journal.first(ev, "ending")
    assert end["how"] == "exit" and end["code"] == 0 and ev[-1].event == "ending"
    assert [e.mono for e in ev] == sorted(e.mono for e in ev)


def test_prompt_from_argv_and_stdin(run):
    r = run("--prompt-from", "argv", "hello argv")
    assert r.wait() == 0
    assert journal.first(r.events(), "prompt")["sha256"] == hashlib.sha256(b"hello argv").hexdigest()
    r2 = run("--prompt-from", "stdin", stdin=subprocess.PIPE)
    r2.p.communicate(b"from\x00stdin", timeout=T)
    pr = journal.first(r2.events(), "prompt")
    assert pr["source"] == "stdin" and pr["length"] == 10


def test_exit_code(run):
    r = run("--exit", "7")
    assert r.wait() == 7
    assert journal.first(r.events(), "ending")["code"] == 7


@pytest.mark.parametrize(("sig", "num"), [("KILL", 9), ("SEGV", 11), ("TERM", 15)])
def test_die_by_signal(run, sig, num):
    r = run("--die", sig, "--ignore", "TERM")
    assert r.wait() == -num
    end = journal.first(r.events(), "ending")
    assert end["how"] == "signal" and end["signal"] == num


def test_heartbeat_rate_and_stop_after_n_beats(run):
    r = run("--heartbeat", "0.05", "--beats", "4", "--work", "30")
    wait_for(r.j, "beats_stopped", T)
    beats = journal.all_of(r.events(), "heartbeat")
    assert [b["n"] for b in beats] == [1, 2, 3, 4]
    assert r.hb.read_text().split()[0] == "4"
    with pytest.raises(TimeoutError):  # a hang: alive, working, no fifth beat
        wait_for(r.j, "heartbeat", 0.4, count=5)
    assert r.p.poll() is None


def test_heartbeat_pause_then_resume(run):
    r = run("--heartbeat", "0.05", "--pause-beats", "0.2:0.5", "--work", "30")
    resumed = wait_for(r.j, "beats_resumed", T)
    paused = journal.first(r.events(), "beats_paused")
    after = wait_for(r.j, "heartbeat", T, where=lambda e: e.mono > resumed.mono)
    beats = journal.all_of(r.events(), "heartbeat")
    assert not [b for b in beats if paused.mono < b.mono < resumed.mono]
    # the pause is planned on the beat loop's clock (0.2 to 0.7 s); under load the loop may notice its
    # start late (0.28 s in CI's trixie container), so the silence is judged from beat to beat
    before = [b for b in beats if b.mono < resumed.mono]
    assert resumed.data["at"] >= 0.7 - 0.005, resumed
    assert after.mono - before[-1].mono >= 0.5 - 0.005 and after["n"] > beats[0]["n"]


def test_hang_stops_heartbeat_stays_alive(run):
    r = run("--heartbeat", "0.05", "--hang", "--work", "0")
    wait_for(r.j, "hang", T)
    n = len(journal.all_of(r.events(), "heartbeat"))
    assert n >= 1 and r.hb.exists()
    with pytest.raises(TimeoutError):
        wait_for(r.j, "heartbeat", 0.4, count=n + 1)
    assert r.p.poll() is None and journal.first(r.events(), "ending") is None


def test_hang_silent_never_beats(run):
    r = run("--heartbeat", "0.05", "--hang-silent")
    assert wait_for(r.j, "hang", T)["silent"] is True
    with pytest.raises(TimeoutError):
        wait_for(r.j, "heartbeat", 0.3)
    assert not r.hb.exists() and r.p.poll() is None


def test_slow_start_is_a_shell_then_itself_same_pid(run):
    r = run("--slow-start", "1.5", "--work", "0")
    wait_for(r.j, "slow_start", T)
    comm = Path(f"/proc/{r.p.pid}/comm")
    deadline = time.monotonic() + T
    while comm.read_text().strip() != "sh":
        assert time.monotonic() < deadline, comm.read_text()
        time.sleep(0.005)
    st = wait_for(r.j, "start", T)
    assert st.pid == r.p.pid and st["slow_start"] == 1.5
    assert r.wait() == 0


@pytest.mark.parametrize(
    ("mode", "content", "complete"),
    [("atomic", b'{"a": 1}', True), ("empty", b"", False), ("truncated", b'{"a"', False)],
)
def test_result_modes(run, mode, content, complete):
    r = run("--result-mode", mode, "--result", '{"a": 1}')
    assert r.wait() == 0
    res = journal.first(r.events(), "result")
    assert res["mode"] == mode and res["complete"] is complete and r.res.read_bytes() == content


def test_result_chunked_is_half_written_at_the_pause(run):
    doc = json.dumps({"text": "x" * 100})
    r = run("--result-mode", "chunked", "--result", doc, "--result-chunks", "4", "--result-pause", "2")
    half = wait_for(r.j, "result_chunk", T, where=lambda e: e["i"] == 2)
    seen = r.res.read_bytes()  # inside a 2 s pause
    assert seen == doc.encode()[: half["written"]] and half["written"] == len(doc) // 2
    with pytest.raises(ValueError):
        json.loads(seen)
    assert r.wait() == 0 and json.loads(r.res.read_text()) == {"text": "x" * 100}
    assert journal.first(r.events(), "result")["complete"] is True


def test_result_at_and_finish_inside_a_window(run):
    r = run("--result-mode", "atomic", "--result-at", "0.2", "--finish-window", "0.8:1.2", "--seed", "3")
    assert r.wait() == 0
    ev = r.events()
    st, res, end = journal.first(ev, "start"), journal.first(ev, "result"), journal.first(ev, "ending")
    plan = journal.first(ev, "plan")["finish_at"]
    assert 0.8 <= plan <= 1.2
    # --result-at counts from the agent's own t0, before the start-up that precedes journaled `start`
    # (under load in CI's trixie container that start-up took 0.07 s: the result came 0.128 s after it)
    t0 = st.data["t0"]
    assert 0.2 - 0.005 <= res.mono - t0 < end.mono - t0
    # start event comes after interpreter start-up, so measure from the process's own start ticks
    assert end.mono - st.mono <= 1.2 + 0.5


def test_output_faults_ansi_split_utf8_crlf_burst(run):
    r = run(
        "--print", "hello", "--ansi-flood", "3000", "--split-utf8", "--crlf", "--burst-before-exit", "50000"
    )
    assert r.wait() == 0
    out = r.stdout()
    ev = journal.all_of(r.events(), "output")
    kinds = {e["kind"]: e for e in ev}
    assert out.startswith(b"hello\r\n") and b"\x1b[" in out and b"\x1b]0;" in out
    assert kinds["ansi_flood"]["bytes"] == 3000
    assert kinds["split_utf8"]["writes"] > len(kinds["split_utf8"]["text"])
    assert kinds["split_utf8"]["text"].encode() + b"\r\n" in out
    burst = kinds["burst"]
    assert out.endswith(f"BURST-END {burst['nonce']}\r\n".encode()) and burst["bytes"] == 50000
    assert out.decode("utf-8")  # whole stream is valid UTF-8 once reassembled


def test_fake_done_markers_while_still_working(run):
    r = run("--fake-done", "--work", "60")
    wait_for(r.j, "output", T, where=lambda e: e["kind"] == "fake_done")
    out = r.stdout()
    assert b"__TASK_DONE__\n" in out and b"exit code 0\n" in out and out.endswith(b"user@host:~$ ")
    assert r.p.poll() is None


def test_ignores_term_and_hup(run):
    r = run("--ignore", "TERM", "--ignore", "HUP", "--work", "60")
    wait_for(r.j, "work", T)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        r.p.send_signal(sig)
        wait_for(r.j, "signal", T, where=lambda e, s=sig: e["signal"] == s)
    assert r.p.poll() is None
    r.p.kill()
    assert r.wait() == -9


def test_children_and_daemon_grandchild_outlive_it(run, sandbox):
    marker = "fam" + os.urandom(6).hex()
    r = run("--children", "2", "--daemon", "--marker", marker)
    assert r.wait() == 0
    kids = journal.all_of(r.events(), "child")
    assert sorted(k["kind"] for k in kids) == ["child", "child", "daemon"]
    found = set(pids_with_env("FAKE_AGENT_MARKER", marker))
    assert {k["child_pid"] for k in kids} <= found
    daemon = next(k for k in kids if k["kind"] == "daemon")
    dpid = daemon["child_pid"]
    assert alive(dpid, daemon["start_ticks"]) and identity(dpid)[1] == daemon["start_ticks"]
    stat = Path(f"/proc/{dpid}/stat").read_text().rsplit(")", 1)[1].split()
    ppid, sid = int(stat[1]), int(stat[3])
    assert ppid != r.p.pid and sid != os.getsid(0)  # re-parented, own session
    environ = Path(f"/proc/{dpid}/environ").read_bytes().split(b"\0")
    assert f"FAKE_AGENT_MARKER={marker}".encode() in environ
    assert f"DK_TEST_RUN={sandbox.marker}".encode() in environ
    for k in kids:
        kill_identity(k["child_pid"], k["start_ticks"])
        assert not alive(k["child_pid"], k["start_ticks"])


def test_marker_is_in_the_agents_own_exec_environment(run):
    marker = "fam" + os.urandom(6).hex()
    r = run("--marker", marker, "--work", "60")
    st = wait_for(r.j, "start", T)
    assert st.pid in pids_with_env("FAKE_AGENT_MARKER", marker)


def test_ask_waits_for_one_line(run):
    r = run("--ask", "Proceed?", stdin=subprocess.PIPE)
    wait_for(r.j, "question", T)
    assert r.p.poll() is None
    r.p.stdin.write(b"yes please\n")
    r.p.stdin.close()
    assert r.wait() == 0
    ans = journal.first(r.events(), "input")
    assert ans["kind"] == "answer" and base64.b64decode(ans["b64"]) == b"yes please"
    assert b"Proceed?\n" in r.stdout()


def test_read_paste_in_raw_mode_on_a_real_tty(run, sandbox):
    master, slave = pty.openpty()
    try:
        r = run("--read-paste", stdin=slave)
        assert wait_for(r.j, "paste_ready", T)["tty"] is True
        payload = b"line 1\nline 2\r\n\t'\"$(x)`y` \\ \xc3\xbc\x00 \x1b[31mred\x1b[0m end"
        os.write(master, b"\x1b[200~" + payload + b"\x1b[201~")
        os.write(master, b"typed\r")
        assert r.wait() == 0
        ev = [e for e in journal.all_of(r.events(), "input")]
        assert ev[0]["kind"] == "paste" and base64.b64decode(ev[0]["b64"]) == payload
        assert ev[0]["sha256"] == hashlib.sha256(payload).hexdigest() and ev[0]["length"] == len(payload)
        assert ev[1]["kind"] == "enter" and base64.b64decode(ev[1]["typed_b64"]) == b"typed"
        assert b"\x1b[?2004h" in r.stdout() and b"\x1b[?2004l" in r.stdout()
    finally:
        os.close(master)
        os.close(slave)


def test_touch_writes_files_in_cwd(run, sandbox):
    r = run("--touch", "a.txt", "--touch", "sub.md")
    assert r.wait() == 0
    assert (sandbox.workdir / "a.txt").exists() and (sandbox.workdir / "sub.md").exists()
    assert [e["path"] for e in journal.all_of(r.events(), "touch")] == [  # physical, like getcwd()
        os.path.realpath(sandbox.workdir / "a.txt"),
        os.path.realpath(sandbox.workdir / "sub.md"),
    ]


def test_start_is_fast(run):
    """Median time from spawn to the start event; the bound is loose for a loaded CI box (docs: numbers)."""
    ds = []
    for _ in range(7):
        t = time.monotonic()
        r = run()
        st = wait_for(r.j, "start", T)
        ds.append(st.mono - t)
        r.wait()
    ds.sort()
    # 1.0 s held on an idle box; at load avg 25-45 (8 engineers on 2 cores) the median measured 1.4 s
    assert ds[len(ds) // 2] < 2.5, ds


def test_bad_flag_is_refused(run):
    r = run("--result-mode", "bogus")
    assert r.wait() == 2 and journal.read(r.j) == []
