"""The agent layer's three cost figures, before and after a change, side by side in one run.

1. A followed `dispatch run`: CPU of the `run` process (and every child it waited for) per second of a
   running agent, in % of one core, over a window after the agent is up (interpreter start excluded).
2. `start` -> agent running (the fake agent journals `start`), p50, against the bare floor
   `tmux new-session -d -- fake-agent` on the same warm server.
3. Supervision memory per idle agent: USS of everything of ours beside the agent in its tmux session
   (the wrapper and the log pipe), per agent.

"before" is a git worktree of another revision (--before REV), "after" this checkout; each figure is
measured for both in the same rounds (interleaved), so they see the same load on a shared machine.
`python -m bench --only agent` runs it and writes docs/bench/agent-cost.json beside the page.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psutil

from bench.common import FAKE_AGENT, TMUX, VENV_BIN, new_id, wait_journal
from conformance.isolation import Sandbox
from runner.contract import reference_command
from runner.procid import ProcessIdentity, descendants

REPO = Path(__file__).resolve().parent.parent
PY = sys.executable
TARGETS = {"follow_cpu_pct": 0.5, "start_ratio": 2.0, "idle_uss_mib": 4.0}
RESULT = REPO / "docs" / "bench" / "agent-cost.json"  # committed: the page section is made from it


def worktree(rev: str) -> Path:
    """A detached worktree of `rev` under the bench's cache (reused when it is already there)."""
    sha = subprocess.run(["git", "-C", str(REPO), "rev-parse", rev], capture_output=True, text=True,
                         check=True).stdout.strip()  # fmt: skip
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"dk-bench-tree-{sha[:12]}"
    if not (path / "runner").is_dir():
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(path), sha],
                       capture_output=True, check=True)  # fmt: skip
    return path


def precompile(root: Path) -> None:
    """Bytecode for a tree's packages, as an installed copy has it: without it (a fresh worktree, or
    sources edited under PYTHONDONTWRITEBYTECODE) every interpreter of that tree compiles its modules
    again, and that version's start looks slower than it is."""
    import compileall

    for pkg in ("runner", "fake_agents", "conformance"):
        if (root / pkg).is_dir():
            compileall.compile_dir(str(root / pkg), quiet=1)


class Tree:
    """One version of the code: its CLI runs with PYTHONPATH at the tree, in one sandbox."""

    def __init__(self, name: str, root: Path) -> None:
        self.name, self.root = name, root
        precompile(root)
        self.sb = Sandbox.create(prefix=f"dkac-{name}-")
        env = self.sb.env(DISPATCH_STALE_AFTER_S="60", DISPATCH_GRACE_S="30")
        env["PYTHONPATH"] = str(root)
        env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
        self.env = env
        self.tmux("new-session", "-d", "-s", "holder", "sleep", "86400")  # a warm server, as in real use

    def cli(self, *args: str) -> list[str]:
        """The code at PYTHONPATH, not the installed one; run it with cwd=the sandbox's workdir, since
        `python -m` puts the cwd first on sys.path (from this checkout, the before tree ran our code)."""
        return [*reference_command(installed=False), *args]

    def tmux(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([TMUX, "-S", str(self.sb.socket), *args], env=self.env, capture_output=True,
                              text=True, timeout=30, stdin=subprocess.DEVNULL)  # fmt: skip

    def journal(self, tid: str) -> Path:
        return self.sb.root / f"{tid}.jsonl"

    def agent(self, tid: str, *flags: str) -> list[str]:
        return [FAKE_AGENT, "--journal", str(self.journal(tid)), *flags]

    def prompt(self) -> str:
        p = self.sb.workdir / "prompt.txt"
        p.write_text("bench\n")
        return str(p)

    def close(self) -> None:
        self.tmux("kill-server")
        self.sb.cleanup()


# -- 1. a followed run ---------------------------------------------------------------------------------


def _cpu_s(p: psutil.Process) -> float:
    """The process's CPU seconds plus those of every child it has waited for."""
    t = p.cpu_times()
    return t.user + t.system + t.children_user + t.children_system


def follow_cpu(tree: Tree, window_s: float, log: Callable[[str], None]) -> dict[str, Any]:
    """CPU of `dispatch run` (following) per second while the agent works, in % of one core."""
    tid = new_id("follow")
    argv = tree.cli("run", "--json", "--agent", "cmd", "--task-id", tid, "--prompt", "p", "--",
                    *tree.agent(tid, "--work", f"{window_s + 6:g}", "--heartbeat", "1"))  # fmt: skip
    p = subprocess.Popen(argv, env=tree.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         cwd=tree.sb.workdir, stdin=subprocess.DEVNULL)  # fmt: skip
    try:
        if wait_journal(tree.journal(tid), "start", 60.0) is None:
            raise RuntimeError(f"{tree.name}: the followed agent never started")
        time.sleep(1.5)  # let the run reach its steady follow loop (a measurement window, not an event)
        proc = psutil.Process(p.pid)
        c0, t0 = _cpu_s(proc), time.monotonic()
        time.sleep(window_s)  # the measurement window itself
        c1, t1 = _cpu_s(proc), time.monotonic()
        p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    pct = 100.0 * (c1 - c0) / (t1 - t0)
    log(f"  {tree.name}: followed run {pct:.2f} % of a core ({c1 - c0:.2f} CPU-s in {t1 - t0:.1f} s)")
    return {"cpu_s": c1 - c0, "window_s": t1 - t0, "pct_core": pct, "exit": p.returncode}


# -- 2. start -> agent running -------------------------------------------------------------------------


def _floor_once(tree: Tree) -> float:
    tid = new_id("floor")
    t0 = time.monotonic()
    tree.tmux("new-session", "-d", "-s", tid, "--", *tree.agent(tid, "--work", "1"))
    ev = wait_journal(tree.journal(tid), "start", 60.0)
    if ev is None:
        raise RuntimeError("floor agent never started")
    return ev.mono - t0


def _interpreter_once(*flags: str) -> float:
    """One bare interpreter start to exit (`python [-S] -c pass`): the unit every start pays in."""
    t0 = time.monotonic()
    subprocess.run([PY, *flags, "-c", "pass"], check=True, stdin=subprocess.DEVNULL)
    return time.monotonic() - t0


def _start_once(tree: Tree) -> dict[str, float]:
    """call -> agent up, and its phases from the task's events (the reference stamps CLOCK_MONOTONIC):
    cli = call -> `starting` (the CLI up, inputs checked, the row in), launch = `starting` -> `running`
    (session, wrapper up and acked, log pipe, "go", exec), agent = `running` -> the agent's first line."""
    tid = new_id("start")
    t0 = time.monotonic()
    cp = subprocess.run(tree.cli("start", "--json", "--task-id", tid, "--cwd", str(tree.sb.workdir),
                                 "--prompt-file", tree.prompt(), "--", *tree.agent(tid, "--work", "1")),
                        env=tree.env, cwd=tree.sb.workdir, capture_output=True, text=True, timeout=120)  # fmt: skip
    if cp.returncode != 0:
        raise RuntimeError(f"{tree.name}: start failed: {cp.stderr.strip()}")
    ev = wait_journal(tree.journal(tid), "start", 60.0)
    if ev is None:
        raise RuntimeError(f"{tree.name}: started agent never journaled")
    out = {"total": ev.mono - t0}
    evs = subprocess.run(tree.cli("events", "--json", tid), env=tree.env, cwd=tree.sb.workdir, capture_output=True, text=True,
                         timeout=60)  # fmt: skip
    try:
        doc = json.loads(evs.stdout)
        rows = doc["events"] if isinstance(doc, dict) else doc
        mono = {e["state"]: float(e["mono"]) for e in rows if e.get("mono") is not None}
    except (ValueError, KeyError, TypeError):
        mono = {}
    if "starting" in mono and "running" in mono:
        out["cli"] = mono["starting"] - t0
        out["launch"] = mono["running"] - mono["starting"]
        out["agent"] = ev.mono - mono["running"]
    return out


def start_latency(trees: list[Tree], runs: int, log: Callable[[str], None]) -> dict[str, Any]:
    """Interleaved rounds: floor, then each tree's `start`, on each tree's own warm server; bare
    interpreter starts (with and without `site`) in the same rounds, to say what the gap is made of."""
    floor: list[float] = []
    interp: dict[str, list[float]] = {"python": [], "python_S": []}
    ours: dict[str, list[dict[str, float]]] = {t.name: [] for t in trees}
    for _ in range(runs):
        interp["python"].append(_interpreter_once())
        interp["python_S"].append(_interpreter_once("-S"))
        for t in trees:
            floor.append(_floor_once(t))
            ours[t.name].append(_start_once(t))
    f50 = statistics.median(floor)
    out: dict[str, Any] = {"floor_p50_s": f50, "floor_s": floor}
    out["interpreter_p50_s"] = {k: statistics.median(v) for k, v in interp.items()}
    for name, runs_ in ours.items():
        xs = [r["total"] for r in runs_]
        m = statistics.median(xs)
        phases = {k: statistics.median([r[k] for r in runs_ if k in r]) for k in ("cli", "launch", "agent")
                  if any(k in r for r in runs_)}  # fmt: skip
        out[name] = {"p50_s": m, "ratio": m / f50, "samples_s": xs, "phases_p50_s": phases}
        split = ", ".join(f"{k} {v * 1000:.1f}" for k, v in phases.items())
        log(
            f"  {name}: start -> running p50 {m * 1000:.1f} ms = {m / f50:.2f}x floor {f50 * 1000:.1f} ms ({split})"
        )
    return out


# -- 3. supervision memory per idle agent --------------------------------------------------------------


def idle_memory(tree: Tree, n: int, log: Callable[[str], None]) -> dict[str, Any]:
    """USS of our processes in the agents' sessions (everything but the agents and the holder), per agent."""
    ids = [new_id("idle") for _ in range(n)]
    for tid in ids:
        subprocess.run(tree.cli("start", "--json", "--task-id", tid, "--cwd", str(tree.sb.workdir),
                                "--prompt-file", tree.prompt(), "--", *tree.agent(tid, "--work", "600",
                                "--heartbeat", "1")), env=tree.env, cwd=tree.sb.workdir, capture_output=True, timeout=120)  # fmt: skip
    for tid in ids:
        if wait_journal(tree.journal(tid), "start", 60.0) is None:
            raise RuntimeError(f"{tree.name}: idle agent {tid} never started")
    time.sleep(2.0)  # idle: past start-up allocations (a measurement settle, not an event)
    pid = tree.tmux("display-message", "-p", "-t", "holder", "#{pid}").stdout.strip()
    server = ProcessIdentity.of(int(pid)) if pid.isdigit() else None
    if server is None:
        raise RuntimeError(f"{tree.name}: no tmux server")
    agents = {ev.pid for tid in ids for ev in [wait_journal(tree.journal(tid), "start", 1.0)] if ev}
    ours_uss = 0.0
    roles: dict[str, float] = {}
    for ident in descendants(server):
        try:
            p = psutil.Process(ident.pid)
            cmd = " ".join(p.cmdline())
            if ident.pid in agents or "sleep 86400" in cmd or p.ppid() in agents:
                continue
            uss = p.memory_full_info().uss / 2**20
        except psutil.Error:
            continue
        role = "wrapper" if "runner.wrapper" in cmd else "logpipe" if "runner.logpipe" in cmd else "other"
        roles[role] = roles.get(role, 0.0) + uss / n
        ours_uss += uss
    per = ours_uss / n
    log(
        f"  {tree.name}: supervision {per:.1f} MiB USS per idle agent { ({k: round(v, 1) for k, v in roles.items()}) }"
    )
    return {"n": n, "uss_mib_per_agent": per, "by_role_mib_per_agent": roles}


# -- the run -------------------------------------------------------------------------------------------


def run(before: str, runs: int, window_s: float, n_idle: int, log: Callable[[str], None]) -> dict[str, Any]:
    roots = {"before": worktree(before), "after": REPO}
    res: dict[str, Any] = {
        "before_rev": before,
        "after_rev": subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip(),  # fmt: skip
        "started": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "loadavg_start": list(os.getloadavg()),
        "cores": psutil.cpu_count(),
        "targets": TARGETS,
    }
    trees = [Tree(name, root) for name, root in roots.items()]
    try:
        log("agent layer: start -> running vs floor")
        res["start"] = start_latency(trees, runs, log)
        # memory before following: the old agent layer's `run` drives the *installed* `dispatch` (this
        # checkout), whose tasks on the before tree's server were then counted as the before tree's
        log("agent layer: supervision memory per idle agent")
        res["memory"] = {t.name: idle_memory(t, n_idle, log) for t in trees}
        log("agent layer: a followed run's CPU")
        res["follow"] = {t.name: follow_cpu(t, window_s, log) for t in trees}
    finally:
        for t in trees:
            t.close()
    res["loadavg_end"] = list(os.getloadavg())
    return res


def markdown(res: dict[str, Any]) -> str:
    """The page section: one table, before and after, against the targets."""

    prev = res.get("previous")

    def row(name: str, unit: str, b: float, a: float, target: float, key: str = "") -> str:
        ok = "**met**" if a <= target else "**missed**"
        mid = f" {prev[key]:.2f}{unit} |" if prev else ""
        return f"| {name} | {b:.2f}{unit} |{mid} {a:.2f}{unit} | ≤ {target:g}{unit} | {ok} |"

    st, fo, me = res["start"], res["follow"], res["memory"]
    head = "| figure | before | previous | after | target | after vs target |" if prev else \
        "| figure | before | after | target | after vs target |"  # fmt: skip
    lines = [
        f"Measured {res['started']} (`python -m bench --only agent`, before = `{res['before_rev']}`, after = "
        f"`{res['after_rev']}`), load average {res['loadavg_start'][0]:.1f} on {res['cores']} cores; "
        "both versions interleaved in the same rounds. JSON: `docs/bench/agent-cost.json`.",
        "",
        head,
        "|---" * head.count(" | ") + "|---|",
        row("followed `dispatch run`, % of one core", " %", fo["before"]["pct_core"], fo["after"]["pct_core"],
            TARGETS["follow_cpu_pct"], "follow_cpu_pct"),
        row("`start` → agent running, × the tmux+spawn floor (p50)", "×", st["before"]["ratio"],
            st["after"]["ratio"], TARGETS["start_ratio"], "start_ratio"),
        row("supervision memory per idle agent, MiB USS", " MiB", me["before"]["uss_mib_per_agent"],
            me["after"]["uss_mib_per_agent"], TARGETS["idle_uss_mib"], "idle_uss_mib"),
        *([f"\nprevious = the page's last run (`{prev['rev']}`, {prev['started']}, load average "
           f"{prev['loadavg']:.1f}), before the change that ends in `{res['after_rev']}`."] if prev else []),
        "",
        "What moved the followed run: `run` calls the reference in-process (it used to start a Python process "
        "per verb, including every 0.5 s `wait`), the follow step sleeps on the supervisor's pidfd, and the "
        "screen is captured only when the pane's log or Claude's attention file changed.",
        "",
        "What moved supervision: the log filter runs inside the wrapper. `pipe-pane` starts a short "
        "`python -S -m runner.logpipe` that records its identity (logpipe.pid) and execs `cat -u` into a FIFO "
        "the wrapper reads in its poll loop, so each agent has one Python process beside it instead of two "
        "(the pipe left is `cat`). The wrapper runs as `python -S -c BOOT runner.wrapper` (no `site`, no "
        "runpy) and imports 44 modules instead of 112: its store calls (task files, claim, update, "
        "transition) are made by a forked child (runner/recorder.py) that imports sqlite3 and json and "
        "answers in `marshal`, held through start-up and forked again per record after it, so none is left "
        "beside an idle agent; runner.contract makes its schema-derived words, dataclasses and client on "
        "first use; states and procid have no `dataclasses`; `_signal` stands in for `signal` (its enums). "
        "A contract verb builds only the contract verbs' parsers, and `start` no longer loads OpenSSL "
        "(`secrets`, `hashlib`).",
        "",
        *_start_split(st),
        "",
        *_memory_split(me),
    ]  # fmt: skip
    return "\n".join(lines) + "\n"


def _ms(x: float | None) -> str:
    return "–" if x is None else f"{x * 1000:.1f} ms"


def _start_split(st: dict[str, Any]) -> list[str]:
    """Where start's time goes (p50s of the phases, both versions), and what the gap to 2x is."""
    if "phases_p50_s" not in st.get("after", {}):
        return []
    rows = ["| start phase (p50) | before | after |", "|---|---|---|"]
    for key, name in (
        ("cli", "call → `starting`: the CLI up, inputs checked, the task row in"),
        ("launch", '`starting` → `running`: session, wrapper up + ack, log pipe, "go", exec'),
        ("agent", "`running` → the agent's first line (its own interpreter)"),
    ):
        rows.append(
            f"| {name} | {_ms(st['before'].get('phases_p50_s', {}).get(key))} | "
            f"{_ms(st['after']['phases_p50_s'].get(key))} |"
        )
    rows.append(f"| total (call → agent) | {_ms(st['before']['p50_s'])} | {_ms(st['after']['p50_s'])} |")
    rows.append(f"| floor: `tmux new-session -d -- fake-agent` | {_ms(st['floor_p50_s'])} | |")
    ip = st.get("interpreter_p50_s", {})
    allowance = 2 * st["floor_p50_s"]
    ph = st["after"]["phases_p50_s"]
    gap = st["after"]["p50_s"] - allowance
    over = gap > 0
    rows += ["", (
        f"Start is {'not ' if over else ''}within 2× the floor ({_ms(allowance)})"
        + (f": {_ms(gap)} over. " if over else ". ")
        + f"The agent's own start ({_ms(ph.get('agent'))}) is what the floor pays; before it, ours runs two "
        f"more interpreters in sequence: the CLI ({_ms(ph.get('cli'))} until its row exists; a bare `python` "
        f"with `site` is {_ms(ip.get('python'))} here in the same rounds, and `dispatch`/`python -m "
        "runner.cli` also pay the editable install's import hook and the CLI's own imports) and the "
        f"in-pane wrapper (within launch, {_ms(ph.get('launch'))}: a `python -S` start is "
        f"{_ms(ip.get('python_S'))}, plus the recorder child's sqlite3/json imports before the claim), with "
        "four tmux round trips on the path (`-V` for the version floor, `list-sessions` for the reap every "
        "start runs, `new-session`, `pipe-pane`) and the FIFO handshake (ack, then \"go\"), which is "
        "event-driven: no poll interval on the path. What is left is interpreter starts and imports; the "
        "cheapest import left is the CLI's `dataclasses` (with inspect) and `typing`, for four small "
        "classes (cli.Result, config.Config, tmux.Session/Pane) and annotations: ≈25 ms at load 9, a few "
        "per cent of `start`. Next "
        "step: a long-lived per-server supervisor that forks a per-task supervisor (its pages shared), with "
        "`start` talking to it over a socket: only the CLI's own interpreter and the agent's remain on the "
        "path. Not done in this round: it changes who owns the pane's process, and every recovery path "
        "(reap, lost supervisor, duplicate wrapper) with it. (This describes the code as measured here; "
        "the start cuts made after it, and their before/after, are in the start section above.)"
    )]  # fmt: skip
    return rows


def _memory_split(me: dict[str, Any]) -> list[str]:
    """What an idle agent's supervision is made of, and what stands between it and the target."""
    roles = me["after"].get("by_role_mib_per_agent", {})
    parts = ", ".join(f"{k} {v:.2f} MiB" for k, v in sorted(roles.items()))
    after = me["after"]["uss_mib_per_agent"]
    return [(
        f"Memory per idle agent after: {parts} (before: "
        + ", ".join(f"{k} {v:.2f} MiB" for k, v in sorted(me["before"].get("by_role_mib_per_agent", {}).items()))
        + f"). {'Within' if after <= TARGETS['idle_uss_mib'] else 'Not within'} {TARGETS['idle_uss_mib']:g} MiB. "
        "The wrapper is one `python -S` interpreter (a bare one idles at ≈2.5 MiB USS on this machine, "
        "most of it libpython's private pages and the interpreter's own objects) plus its 44 modules "
        "(os, select, codecs, marshal, _signal and ours: runner.wrapper, states, contract, procid, logpipe, "
        "recorder, resultfile, clock, faultpoint) and ctypes for the one prctl that makes it a subreaper "
        "(≈0.3 MiB). sqlite3, json, re, enum, dataclasses, pathlib, typing and subprocess load only in the "
        "recorder child, or in the wrapper once the run ends (exit.json, the result)."
    )]  # fmt: skip


BEGIN, END = "<!-- agent-cost:begin -->", "<!-- agent-cost:end -->"


def write_page(res: dict[str, Any], page: Path) -> None:
    """Replace (or append) the agent-layer section of docs/benchmarks.md."""
    text = page.read_text() if page.exists() else ""
    section = f"{BEGIN}\n## The agent layer: before and after\n\n{markdown(res)}{END}\n"
    if BEGIN in text and END in text:
        text = text[: text.index(BEGIN)] + section + text[text.index(END) + len(END) + 1 :]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    page.write_text(text)


def save(res: dict[str, Any], out: Path | None = None) -> Path:
    """The JSON (docs/bench/agent-cost.json, or OUT/agent-cost.json) and the page section."""
    jp = (out / "agent-cost.json") if out else RESULT
    jp.parent.mkdir(parents=True, exist_ok=True)
    jp.write_text(json.dumps(res, indent=1) + "\n")
    write_page(res, (out / "benchmarks.md") if out else REPO / "docs" / "benchmarks.md")
    return jp


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.agent_cost", description=__doc__.splitlines()[0])
    ap.add_argument("--before", required=True, metavar="REV", help="the revision to compare against")
    ap.add_argument("--runs", type=int, default=9, help="start rounds per version")
    ap.add_argument("--window", type=float, default=10.0, help="seconds of following measured")
    ap.add_argument("--idle", type=int, default=3, help="idle agents for the memory figure")
    ap.add_argument("--out", default=str(RESULT), help="results JSON")
    ap.add_argument("--page", default=str(REPO / "docs" / "benchmarks.md"))
    a = ap.parse_args(argv)
    res = run(a.before, a.runs, a.window, a.idle, lambda s: print(s, flush=True))
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(res, indent=1) + "\n")
    write_page(res, Path(a.page))
    print(markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
