"""Start latency: the `start` call to the agent really running, next to the bare tmux + spawn floor.

Per run (sequential, nothing else of ours alive): the fake agent journals its `start` event (its own
CLOCK_MONOTONIC stamp, taken once the interpreter is up and the journal open); the bench stamps the call
and its return; the dispatcher's `running` transition comes from `events --json`.

Floors, measured in the same sandbox the same way:
  tmux+spawn  `tmux -S SOCK new-session -d -- fake-agent ...` called -> agent journals `start`
  spawn       `subprocess.Popen([fake-agent, ...])` -> agent journals `start` (no tmux at all)
  tmux        wall time of `tmux -S SOCK new-session -d -- sleep` alone

Rounds are interleaved (floor, ours, seed, floor, ...) so all three see the same background load.
"warm" runs keep one holder session on the socket (a tmux server is up, as in real use); "cold" runs
use a fresh socket each time, so the call also pays for starting the tmux server.

Which `dispatch` is "ours" (`install`): "wheel" (the default) is this tree built as a wheel and installed
in a private venv, bytecode compiled, as a user's `pip install` has it (bench/installed.py); "editable" is
the dev checkout's own `dispatch` (an editable install: `site` starts setuptools' finder first); "both"
measures the wheel as "ours" and the editable one as "editable" in the same rounds. The headline is
"ours". A `before` revision is installed the same way as "ours".
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from typing import Any

from bench.common import FAKE_AGENT, REPO, TMUX, Bench, Target, new_id, ours, seed, wait_journal
from bench.installed import Installed
from bench.stats import summary
from runner.contract import reference_command

INSTALLS = ("wheel", "editable", "both")

JOURNAL_WAIT = 30.0


def _hold(b: Bench, socket: str) -> None:
    subprocess.run(
        [TMUX, "-S", socket, "new-session", "-d", "-s", "bench-hold", "--", "sleep", "86400"],
        env=b.env,
        check=True,
        timeout=10,
        stdin=subprocess.DEVNULL,
        capture_output=True,
    )


def _kill_server(b: Bench, socket: str) -> None:
    subprocess.run(
        [TMUX, "-S", socket, "kill-server"],
        env=b.env,
        timeout=10,
        capture_output=True,
        stdin=subprocess.DEVNULL,
    )


def _floor_step(b: Bench, i: int, warm: bool, out: dict[str, list[float]]) -> None:
    """One round of the three floors (tmux+spawn, spawn alone, the tmux call alone)."""
    sock = str(b.socket if warm else b.sb.root / f"c{i}.sock")
    if warm and i == 0:
        _hold(b, sock)
    # tmux + spawn: the agent as the pane's process, no wrapper, no CLI
    tid = new_id("fl")
    jp = b.journal_path(tid)
    t0 = time.monotonic()
    subprocess.run(
        [TMUX, "-S", sock, "new-session", "-d", "-s", tid, "--", FAKE_AGENT, "--journal", str(jp)],
        env=b.env,
        check=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )
    ev = wait_journal(jp, "start", JOURNAL_WAIT)
    if ev is not None:
        out["tmux_spawn"].append(ev.mono - t0)
    wait_journal(jp, "ending", JOURNAL_WAIT)
    if not warm:
        _kill_server(b, sock)
    # bare spawn
    tid = new_id("sp")
    jp = b.journal_path(tid)
    t0 = time.monotonic()
    p = subprocess.Popen(
        [FAKE_AGENT, "--journal", str(jp)],
        env=b.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    ev = wait_journal(jp, "start", JOURNAL_WAIT)
    if ev is not None:
        out["spawn"].append(ev.mono - t0)
    p.wait(timeout=30)
    # bare tmux call
    sock2 = str(b.socket if warm else b.sb.root / f"d{i}.sock")
    t0 = time.monotonic()
    subprocess.run(
        [TMUX, "-S", sock2, "new-session", "-d", "-s", f"t{i}", "--", "sleep", "30"],
        env=b.env,
        check=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )
    out["tmux_call"].append(time.monotonic() - t0)
    subprocess.run(
        [TMUX, "-S", sock2, "kill-session", "-t", f"=t{i}"], env=b.env, timeout=10, capture_output=True
    )
    if not warm:
        _kill_server(b, sock2)


def _dispatcher_step(b: Bench, i: int, warm: bool, out: dict[str, list[float]]) -> bool:
    """`start` of one `fake-agent --work 0` through the contract; False when it was refused."""
    impl = b.impl
    sock = str(b.socket)
    if warm:
        if i == 0:
            _hold(b, sock)
    else:
        sock = str(b.sb.root / f"c{i}.sock")
        impl = impl.with_env(DISPATCH_TMUX_SOCKET=sock)
    tid = new_id("st")
    t0 = time.monotonic()
    call = impl.start_call(tid, b.agent_argv(tid), strict=False)
    t1 = time.monotonic()
    if call.exit_code != 0:
        return False
    ev = wait_journal(b.journal_path(tid), "start", JOURNAL_WAIT)
    # let it end (and its session close) before the next run, so runs never overlap
    impl.run("wait", tid, "--timeout", "30", timeout=60, strict=False)
    evs = impl.events(tid)
    off = b.target.events_clock_offset
    running = next((e for e in evs if e["state"] == "running"), None)
    starting = next((e for e in evs if e["state"] == "starting"), None)
    out["call_duration"].append(t1 - t0)
    if ev is not None:
        out["call_to_agent"].append(ev.mono - t0)
        out["returned_to_agent"].append(ev.mono - t1)
    if starting is not None:  # the task record exists: the CLI is up and has validated
        out["call_to_starting"].append(float(starting["mono"]) - off - t0)
    if running is not None:
        out["call_to_running"].append(float(running["mono"]) - off - t0)
    if not warm:
        _kill_server(b, sock)
    return True


def wheel_target(name: str, inst: Installed) -> Target:
    """`dispatch` of an installed copy; PYTHONPATH emptied so a caller's cannot put a checkout first."""
    inst.check()
    return Target(name, [str(inst.dispatch)], {"PYTHONPATH": ""})


def before(rev: str, keep: list[Installed] | None = None) -> Target:
    """The reference at an earlier revision (a git worktree). With `keep` (a list the caller closes):
    installed from its wheel, as "ours" is. Without: run as `python -P -m runner.cli` with the worktree
    (bytecode precompiled) on PYTHONPATH: -P keeps the caller's cwd (this checkout) off sys.path, so the
    worktree's code runs, and its wrapper (PYTHONPATH from its own package root) too."""
    from bench.agent_cost import precompile, worktree

    root = worktree(rev)
    if keep is not None:
        keep.append(Installed(root, "before"))
        return wheel_target("before", keep[-1])
    precompile(root)
    cmd = reference_command(installed=False)  # [python, -m, runner.cli]; -P right after the interpreter
    return Target("before", [cmd[0], "-P", *cmd[1:]], {"PYTHONPATH": str(root)})


def interleaved(
    runs: int, warm: bool, seed_poll: float, log: Callable[[str], None], targets: dict[str, Target]
) -> dict[str, Any]:
    """floor, ours, seed, floor, ours, seed, ...: all see the same background load (`targets`: ours,
    seed, and when measured the editable copy and the reference at an earlier revision, "before")."""
    keys = ("call_to_agent", "call_to_running", "call_to_starting", "returned_to_agent", "call_duration")
    who_all = tuple(targets)
    raw: dict[str, dict[str, list[float]]] = {"floor": {"tmux_spawn": [], "spawn": [], "tmux_call": []}}
    raw.update({who: {k: [] for k in keys} for who in who_all})
    refused = dict.fromkeys(who_all, 0)
    benches = {"floor": Bench(ours())}
    benches.update({who: Bench(t) for who, t in targets.items()})
    try:
        for i in range(runs):
            _floor_step(benches["floor"], i, warm, raw["floor"])
            for who in who_all:
                if not _dispatcher_step(benches[who], i, warm, raw[who]):
                    refused[who] += 1
        log(f"  {'warm' if warm else 'cold'}: {runs} interleaved rounds, refused {refused}")
    finally:
        for b in benches.values():
            b.close()
    return {who: {k: {"summary": summary(v), "samples": v} for k, v in d.items()} for who, d in raw.items()}


def run(
    runs: int,
    seed_poll: float,
    log: Callable[[str], None],
    before_rev: str | None = None,
    install: str = "wheel",
) -> dict[str, Any]:
    """All start measurements, warm then cold, summarised (seconds); with before_rev, the reference at
    that revision in the same rounds (its rows are "before", this checkout's "ours"). `install`: which
    copy of this checkout is "ours" (see the module docstring)."""
    if install not in INSTALLS:
        raise ValueError(f"install must be one of {INSTALLS}, not {install!r}")
    res: dict[str, Any] = {"runs": runs, "interleaved": True, "install": install}
    keep: list[Installed] = []
    try:
        targets: dict[str, Target] = {}
        if install == "editable":
            targets["ours"] = ours()
        else:
            log("  building and installing this tree's wheel in a private venv")
            keep.append(Installed(REPO, "ours"))
            targets["ours"] = wheel_target("ours", keep[-1])
            if install == "both":
                targets["editable"] = ours()
        targets["seed"] = seed(seed_poll)
        if before_rev:
            res["before_rev"] = before_rev
            log(f"  the reference at {before_rev}" + ("" if install == "editable" else ", from its wheel"))
            targets["before"] = before(before_rev, None if install == "editable" else keep)
        res["commands"] = {who: t.cmd for who, t in targets.items() if not t.is_seed}
        for mode, warm in (("warm", True), ("cold", False)):
            n = runs if warm else max(1, runs // 2)
            res[mode] = interleaved(n, warm, seed_poll, log, targets)
    finally:
        for inst in keep:
            inst.close()
    return res
