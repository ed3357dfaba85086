"""Detection latency: how long after an agent ends (or hangs) the dispatcher records it.

Injected moment: the fake agent's journal (`ending` for exits, last `heartbeat`, `result`) or the bench's
own CLOCK_MONOTONIC stamp just before it sends SIGKILL / runs `tmux kill-pane`. Detected moment: the
dispatcher's terminal transition in `events --json ID` (its monotonic clock; the seed script stamps
/proc/uptime, converted with the measured CLOCK_BOOTTIME - CLOCK_MONOTONIC offset).

Three measurements per ending:
  ours          the reference runner, one task at a time (heartbeat runs overlap, see HB_PARALLEL)
  seed          seed_polling.sh with its scaled-down poll (SEED_POLL_S, 0.25 s), one at a time
  seed-default  seed_polling.sh at the seed's documented 60 s poll: all tasks started together, each
                ending injected at a random offset, so the poll phase is uniformly sampled
and the floor: a bare pidfd wake-up (runner.procid wait_exit) on a plainly spawned fake agent.
"""

from __future__ import annotations

import random
import signal
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from bench.common import (
    FAKE_AGENT,
    SEED_DEFAULT_POLL_S,
    Bench,
    Target,
    new_id,
    ours,
    seed,
    terminal_event,
    wait_journal,
    wait_terminal,
)
from bench.stats import summary
from conformance.harness import TERMINAL
from fake_agents import journal
from runner.procid import ProcessIdentity

WORK_S = 0.3  # exits happen this long after the agent started (steady state, not during start-up)
HB_STALE, HB_GRACE, HB_EVERY, HB_BEATS = 2.0, 1.0, 0.05, 10
RESULT_GRACE = 0.5
HB_PARALLEL = 8  # heartbeat runs mostly wait out stale+grace: overlap them


@dataclass(frozen=True)
class Ending:
    """One way an agent ends, how it is injected, and the knobs the run needs."""

    name: str
    title: str
    flags: tuple[str, ...]
    inject: str  # journal-ending | sigkill | kill-pane | heartbeat | result
    knobs: dict[str, str] = field(default_factory=dict)
    offset: float = 0.0  # subtracted from the raw latency (stale+grace, result grace): report the overshoot


ENDINGS = [
    Ending("exit0", "exit 0", ("--work", f"{WORK_S}", "--exit", "0"), "journal-ending"),
    Ending("exit_nonzero", "exit 3", ("--work", f"{WORK_S}", "--exit", "3"), "journal-ending"),
    Ending("sigkill", "SIGKILL of the agent", ("--work", "3600"), "sigkill"),
    Ending("pane_killed", "pane killed from outside", ("--work", "3600"), "kill-pane"),
    Ending(
        "heartbeat",
        "heartbeat stopped (beyond stale+grace)",
        ("--work", "3600", "--heartbeat", f"{HB_EVERY}", "--beats", f"{HB_BEATS}"),
        "heartbeat",
        {"DISPATCH_STALE_AFTER_S": f"{HB_STALE:g}", "DISPATCH_GRACE_S": f"{HB_GRACE:g}"},
        offset=HB_STALE + HB_GRACE,
    ),
    Ending(
        "result",
        "result written, agent stays (beyond grace)",
        ("--work", "3600", "--result-mode", "atomic", "--result-at", f"{WORK_S}"),
        "result",
        {"DISPATCH_GRACE_S": f"{RESULT_GRACE:g}"},
        offset=RESULT_GRACE,
    ),
]


def _pane_of(b: Bench, session: str) -> str | None:
    out = b.tmux("list-panes", "-t", f"={session}", "-F", "#{pane_id}").stdout.split()
    return out[0] if out else None


def _inject(b: Bench, e: Ending, jp: Any, start_ev: journal.Event, session: str) -> float | None:
    """Cause the ending (or note when the agent caused it); return the injected monotonic moment."""
    if e.inject == "sigkill":
        ident = ProcessIdentity.of(start_ev.pid)
        if ident is None:
            return None
        t0 = time.monotonic()
        return t0 if ident.signal(signal.SIGKILL) else None
    if e.inject == "kill-pane":
        pane = _pane_of(b, session)
        if pane is None:
            return None
        t0 = time.monotonic()
        b.tmux("kill-pane", "-t", pane)
        return t0
    return None  # the agent does it; the moment comes from its journal afterwards


def _injected_from_journal(e: Ending, jp: Any) -> float | None:
    evs = journal.read(jp)
    if e.inject == "journal-ending":
        ev = next((x for x in evs if x.event == "ending"), None)
    elif e.inject == "heartbeat":
        beats = [x for x in evs if x.event == "heartbeat"]
        ev = beats[-1] if beats else None
    elif e.inject == "result":
        ev = next((x for x in evs if x.event == "result" and x.get("complete", True)), None)
    else:
        ev = None
    return None if ev is None else ev.mono


def one_run(b: Bench, e: Ending, timeout: float) -> dict[str, Any]:
    """Start one agent, cause/await its ending, read the dispatcher's terminal transition."""
    tid = new_id(e.name.replace("_", "-"))
    jp = b.journal_path(tid)
    impl = b.impl.with_env(**e.knobs) if e.knobs else b.impl
    call = impl.start_call(tid, b.agent_argv(tid, *e.flags), strict=False)
    if call.exit_code != 0:
        return {"error": f"start refused: {call.describe()}"}
    start_ev = wait_journal(jp, "start", 30.0)
    if start_ev is None:
        return {"error": "agent never journaled start"}
    injected = _inject(b, e, jp, start_ev, call.doc.get("session", ""))
    term = wait_terminal(b, tid, timeout)
    if injected is None:
        injected = _injected_from_journal(e, jp)
    if term is None:
        b.impl.run("stop", tid, timeout=60, strict=False)
        return {"error": f"not detected within {timeout:g}s", "injected": injected}
    if injected is None:
        return {"error": "no injected moment", "state": term["state"]}
    raw = float(term["mono"]) - injected
    return {"latency": raw - e.offset, "raw": raw, "state": term["state"], "reason": term["reason"]}


def sequential(
    target: Target, runs: int, log: Callable[[str], None], endings: list[Ending]
) -> dict[str, Any]:
    """`runs` runs per ending against `target`; heartbeat runs overlap HB_PARALLEL at a time."""
    out: dict[str, Any] = {}
    b = Bench(target)
    try:
        for e in endings:
            timeout = 20.0 + e.offset
            if target.is_seed and e.inject == "result":
                # the seed reads a result only once the agent has exited: show it once, don't wait 50 times
                samples = [one_run(b, e, 5.0)]
            elif e.inject == "heartbeat":
                with ThreadPoolExecutor(HB_PARALLEL) as ex:
                    futs = [ex.submit(one_run, b, e, timeout) for _ in range(runs)]
                    samples = [f.result() for f in futs]
            else:
                samples = [one_run(b, e, timeout) for _ in range(runs)]
            out[e.name] = _pack(samples)
            s = out[e.name]["summary"]
            p50 = "n/a" if s["p50"] is None else f"{s['p50'] * 1000:.1f} ms"
            log(f"  {target.name} {e.name}: n={s['n']} p50={p50} errors={len(out[e.name]['errors'])}")
    finally:
        b.close()
    return out


def _pack(samples: list[dict[str, Any]]) -> dict[str, Any]:
    lat = [s["latency"] for s in samples if "latency" in s]
    states: dict[str, int] = {}
    for s in samples:
        if "state" in s:
            k = f"{s['state']}/{s.get('reason')}"
            states[k] = states.get(k, 0) + 1
    return {
        "summary": summary(lat),
        "samples": lat,
        "states": states,
        "errors": sorted({s["error"] for s in samples if "error" in s}),
        "n_errors": sum(1 for s in samples if "error" in s),
    }


# -- the seed at its documented 60 s poll --------------------------------------------------------


def seed_default_batch(
    per_ending: int,
    log: Callable[[str], None],
    poll: float = SEED_DEFAULT_POLL_S,
    spread: float | None = None,
) -> dict[str, Any]:
    """All tasks at once; each ending injected at a uniform random offset in [0, poll) after its start."""
    spread = poll if spread is None else spread
    rng = random.Random(8)
    target = seed(poll)
    endings = [e for e in ENDINGS if e.inject != "result"]
    b = Bench(target, {"DISPATCH_STALE_AFTER_S": f"{HB_STALE:g}", "DISPATCH_GRACE_S": f"{HB_GRACE:g}"})
    plan: list[dict[str, Any]] = []
    try:
        for e in endings:
            for _ in range(per_ending):
                off = 1.0 + rng.random() * spread
                flags = list(e.flags)
                if e.inject == "journal-ending":
                    flags[1] = f"{off:.3f}"  # --work
                elif e.inject == "heartbeat":  # beats every 0.25 s, stop after ~off seconds
                    flags = [
                        "--work",
                        "3600",
                        "--heartbeat",
                        "0.25",
                        "--beats",
                        str(max(1, round(off / 0.25))),
                    ]
                tid = new_id("sd" + e.name.replace("_", "")[:6])
                call = b.impl.start_call(tid, b.agent_argv(tid, *flags), strict=False)
                plan.append(
                    {
                        "tid": tid,
                        "e": e,
                        "at": time.monotonic() + off,
                        "ok": call.exit_code == 0,
                        "doc": call.doc,
                    }
                )
        log(f"  seed-default: {len(plan)} tasks started, poll {poll:g}s")
        # inject the bench-side endings on schedule
        for p in sorted(
            (p for p in plan if p["e"].inject in ("sigkill", "kill-pane")), key=lambda p: p["at"]
        ):
            time.sleep(max(0.0, p["at"] - time.monotonic()))
            ev = wait_journal(b.journal_path(p["tid"]), "start", 10.0)
            if ev is not None:
                p["injected"] = _inject(b, p["e"], None, ev, p["doc"].get("session", ""))
        deadline = max(p["at"] for p in plan) + poll + HB_STALE + HB_GRACE + 30.0
        pending = {p["tid"] for p in plan if p["ok"]}
        while pending and time.monotonic() < deadline:
            for t in b.impl.list():
                if t["task_id"] in pending and t["state"] in TERMINAL:
                    pending.discard(t["task_id"])
            time.sleep(1.0)
        by: dict[str, list[dict[str, Any]]] = {e.name: [] for e in endings}
        for p in plan:
            e = p["e"]
            if not p["ok"]:
                by[e.name].append({"error": "start refused"})
                continue
            term = terminal_event(b.events(p["tid"]))
            inj = p.get("injected") or _injected_from_journal(e, b.journal_path(p["tid"]))
            if term is None or inj is None:
                by[e.name].append({"error": f"not detected within {deadline - p['at']:.0f}s"})
                continue
            raw = float(term["mono"]) - inj
            by[e.name].append({"latency": raw - e.offset, "state": term["state"], "reason": term["reason"]})
        out = {name: _pack(s) for name, s in by.items()}
        for name, r in out.items():
            s = r["summary"]
            p50 = "n/a" if s["p50"] is None else f"{s['p50']:.1f} s"
            log(f"  seed-default {name}: n={s['n']} p50={p50} errors={r['n_errors']}")
        return {"poll_s": poll, "per_ending": per_ending, "endings": out}
    finally:
        b.close()


# -- the physical floor: a bare pidfd wake-up ----------------------------------------------------


def pidfd_floor(runs: int, log: Callable[[str], None]) -> dict[str, Any]:
    """Plain child fake agent; runner.procid wait_exit (pidfd poll) wakes when it exits or is killed."""
    res: dict[str, list[float]] = {"exit": [], "sigkill": []}
    b = Bench(ours())
    try:
        for kind in ("exit", "sigkill"):
            for _ in range(runs):
                tid = new_id("pf")
                jp = b.journal_path(tid)
                flags = ["--work", f"{WORK_S}"] if kind == "exit" else ["--work", "3600"]
                p = subprocess.Popen(
                    [FAKE_AGENT, "--journal", str(jp), *flags],
                    env=b.env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                ident = ProcessIdentity.of(p.pid)
                if ident is None or wait_journal(jp, "start", 30.0) is None:
                    p.kill()
                    p.wait()
                    continue
                t0 = None
                if kind == "sigkill":
                    t0 = time.monotonic()
                    ident.signal(signal.SIGKILL)
                ident.wait_exit(60.0)
                t1 = time.monotonic()
                p.wait()
                if t0 is None:
                    ev = wait_journal(jp, "ending", 1.0)
                    t0 = ev.mono if ev else None
                if t0 is not None:
                    res[kind].append(t1 - t0)
        log(f"  floor pidfd: {runs} runs each")
    finally:
        b.close()
    return {k: {"summary": summary(v), "samples": v} for k, v in res.items()}


def run(
    runs: int, seed_poll: float, seed_default_n: int, log: Callable[[str], None], seed_default_poll: float
) -> dict[str, Any]:
    """Everything for the detection table."""
    out: dict[str, Any] = {
        "knobs": {
            "work_s": WORK_S,
            "heartbeat": {"stale": HB_STALE, "grace": HB_GRACE, "every": HB_EVERY, "beats": HB_BEATS},
            "result_grace": RESULT_GRACE,
            "hb_parallel": HB_PARALLEL,
        },
        "endings": {e.name: e.title for e in ENDINGS},
        "floor": pidfd_floor(runs, log),
        "ours": sequential(ours(), runs, log, ENDINGS),
        "seed": sequential(seed(seed_poll), max(1, runs // 2), log, ENDINGS),
    }
    out["seed_scaled_poll_s"] = seed_poll
    if seed_default_n > 0:
        out["seed_default"] = seed_default_batch(seed_default_n, log, poll=seed_default_poll)
    return out
