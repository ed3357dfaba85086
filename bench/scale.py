"""Scale: N concurrent long-running heartbeating fake agents under one dispatcher and one tmux server.

Per N: time to start all N (`start` calls, START_PARALLEL at a time), supervision CPU and memory over an
idle window (wrapper + logpipe processes, found as descendants of the tmux server through runner.procid,
measured with psutil cpu_times / memory_full_info().uss), the tmux server's memory, detection latency at
that load (SIGKILL one agent -> `crashed` in events), and time to stop all N.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psutil

from bench.common import Bench, new_id, ours, raise_fd_limit, terminal_event
from bench.stats import summary
from runner.procid import ProcessIdentity, descendants

KNOBS = {"DISPATCH_STALE_AFTER_S": "60", "DISPATCH_GRACE_S": "30"}  # heartbeat supervision on, 1 s checks
AGENT_FLAGS = ("--work", "86400", "--heartbeat", "1")
# A heartbeating agent of ~0.5 MiB instead of a Python fake agent (~9 MiB USS), for N whose fake agents
# would not fit in memory next to the other engineers' work. Its cost is the agent's, not supervision's.
SH_AGENT = [
    "/bin/sh",
    "-c",
    'i=0; while :; do i=$((i+1)); echo "$i" > "$DISPATCH_HEARTBEAT_FILE"; sleep 1; done',
]
START_PARALLEL = 4
STOP_PARALLEL = 4
KILLS = 5  # detection samples at load
MEM_HEADROOM = 0.6  # only start N when the estimate fits in this share of available memory
SHARED_FUDGE_MIB = 2.0  # page tables, tmux per-pane state, sqlite: beyond the processes' USS
SH_AGENT_MIB = 0.6


def _server(b: Bench) -> ProcessIdentity | None:
    out = b.tmux("display-message", "-p", "#{pid}").stdout.strip()
    return ProcessIdentity.of(int(out)) if out.isdigit() else None


def _classify(server: ProcessIdentity) -> dict[str, list[psutil.Process]]:
    """The server's descendants by role: wrapper, logpipe, agent (anything else is 'other')."""
    roles: dict[str, list[psutil.Process]] = {"wrapper": [], "logpipe": [], "agent": [], "other": []}
    procs = []
    for ident in descendants(server):
        try:
            p = psutil.Process(ident.pid)
            procs.append((p, " ".join(p.cmdline()), p.ppid()))
        except psutil.Error:
            continue
    wrappers = {p.pid for p, cmd, _ in procs if "runner.wrapper" in cmd}
    for p, cmd, ppid in procs:
        if p.pid in wrappers:
            roles["wrapper"].append(p)
        elif "runner.logpipe" in cmd:
            roles["logpipe"].append(p)
        elif ppid in wrappers:
            roles["agent"].append(p)  # the agent is the wrapper's child
        else:
            roles["other"].append(p)
    return roles


def _cpu(procs: list[psutil.Process]) -> float:
    """CPU seconds used so far: /proc/PID/schedstat (ns) where it exists, else psutil cpu_times (ticks)."""
    total = 0.0
    for p in procs:
        try:  # every thread: /proc/PID/schedstat alone is the main thread's
            tasks = os.listdir(f"/proc/{p.pid}/task")
            total += sum(_schedstat(f"/proc/{p.pid}/task/{t}/schedstat") for t in tasks)
            continue
        except (OSError, ValueError, IndexError):
            pass
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def _schedstat(path: str) -> float:
    with open(path) as f:
        return int(f.read().split()[0]) / 1e9


def _wakeups(procs: list[psutil.Process]) -> int:
    """Voluntary context switches so far (each idle wake-up of a sleeping process is one)."""
    total = 0
    for p in procs:
        try:
            total += p.num_ctx_switches().voluntary
        except psutil.Error:
            pass
    return total


def _ticks(procs: list[psutil.Process]) -> float:
    """psutil cpu_times (user + system, clock-tick resolution), reported next to schedstat."""
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def _uss(procs: list[psutil.Process]) -> tuple[float, float]:
    """(sum USS, sum RSS) in MiB."""
    uss = rss = 0.0
    for p in procs:
        try:
            m = p.memory_full_info()
            uss += m.uss
            rss += m.rss
        except psutil.Error:
            pass
    return uss / 2**20, rss / 2**20


def _all_running(b: Bench, ids: list[str], timeout: float) -> int:
    end = time.monotonic() + timeout
    while True:
        n = sum(1 for t in b.impl.list() if t["task_id"] in ids and t["state"] == "running")
        if n >= len(ids) or time.monotonic() >= end:
            return n
        time.sleep(0.2)


def one_n(
    n: int,
    idle_s: float,
    log: Callable[[str], None],
    agent: str = "fake-agent",
    knobs: dict[str, str] | None = None,
) -> dict[str, Any]:
    knobs = KNOBS if knobs is None else knobs
    res: dict[str, Any] = {"n": n, "agent": agent, "knobs": knobs}
    b = Bench(ours(), knobs)
    try:
        ids = [new_id(f"n{n}") for _ in range(n)]

        def argv(tid: str) -> list[str]:
            return b.agent_argv(tid, *AGENT_FLAGS) if agent == "fake-agent" else SH_AGENT

        def start(tid: str) -> bool:
            return b.impl.start_call(tid, argv(tid), strict=False).exit_code == 0

        t0 = time.monotonic()
        with ThreadPoolExecutor(START_PARALLEL) as ex:
            ok = list(ex.map(start, ids))
        res["start_all_s"] = time.monotonic() - t0
        res["started"] = sum(ok)
        res["refused"] = n - sum(ok)
        res["running"] = _all_running(b, ids, 60.0)
        res["all_running_s"] = time.monotonic() - t0
        log(f"  N={n}: started {sum(ok)}/{n} in {res['start_all_s']:.1f}s")
        time.sleep(min(5.0, 1.0 + n / 100))  # settling window after the start burst, not an event wait
        server = _server(b)
        if server is None:
            res["error"] = "tmux server not found"
            return res
        roles = _classify(server)
        res["processes"] = {k: len(v) for k, v in roles.items()}
        sup = roles["wrapper"] + roles["logpipe"]
        srv = psutil.Process(server.pid)
        sys0 = psutil.cpu_times()
        c_sup0, c_ag0, c_srv0, k_sup0 = _cpu(sup), _cpu(roles["agent"]), _cpu([srv]), _ticks(sup)
        wk0 = {r: _wakeups(roles[r]) for r in ("wrapper", "logpipe")}
        w0 = time.monotonic()
        time.sleep(idle_s)  # the idle measurement window itself
        w = time.monotonic() - w0
        c_sup, c_ag, c_srv = _cpu(sup) - c_sup0, _cpu(roles["agent"]) - c_ag0, _cpu([srv]) - c_srv0
        k_sup = _ticks(sup) - k_sup0
        wk = {r: _wakeups(roles[r]) - wk0[r] for r in ("wrapper", "logpipe")}
        sys1 = psutil.cpu_times()
        busy = (sys1.user + sys1.system + sys1.nice) - (sys0.user + sys0.system + sys0.nice)
        res["idle"] = {
            "window_s": w,
            "supervision_core_share": c_sup / w,  # fraction of ONE core, all N together
            "supervision_core_share_per_agent": c_sup / w / max(1, n),
            "supervision_core_share_psutil_ticks": k_sup / w,
            "wrapper_wakeups_per_s_per_agent": wk["wrapper"] / w / max(1, len(roles["wrapper"])),
            "logpipe_wakeups_per_s_per_agent": wk["logpipe"] / w / max(1, len(roles["logpipe"])),
            "tmux_server_core_share": c_srv / w,
            "agents_core_share": c_ag / w,
            "machine_busy_cores": busy / w,  # everything on the machine (other engineers included)
        }
        uss_w, rss_w = _uss(roles["wrapper"])
        uss_l, rss_l = _uss(roles["logpipe"])
        uss_a, _ = _uss(roles["agent"])
        s_uss, s_rss = _uss([srv])
        res["memory_mib"] = {
            "wrapper_uss_per_agent": uss_w / max(1, len(roles["wrapper"])),
            "logpipe_uss_per_agent": uss_l / max(1, len(roles["logpipe"])),
            "supervision_uss_per_agent": (uss_w + uss_l) / max(1, n),
            "supervision_rss_per_agent": (rss_w + rss_l) / max(1, n),
            "agent_uss_per_agent": uss_a / max(1, len(roles["agent"])),
            "supervision_uss_total": uss_w + uss_l,
            "tmux_server_uss": s_uss,
            "tmux_server_rss": s_rss,
            "tmux_server_rss_per_session": s_rss / max(1, n),
        }
        log(
            f"  N={n}: supervision {100 * c_sup / w:.2f}% of a core idle, "
            f"{(uss_w + uss_l) / max(1, n):.1f} MiB USS/agent, tmux {s_rss:.0f} MiB RSS"
        )
        # detection at load: SIGKILL a few agents, time to `crashed`
        lat = []
        for tid in ids[: min(KILLS, n)]:
            pid = b.impl.status(tid).get("agent_pid")
            ident = ProcessIdentity.of(pid) if pid else None
            if ident is None:
                continue
            t = time.monotonic()
            if not ident.signal(signal.SIGKILL):
                continue
            b.impl.run("wait", tid, "--timeout", "30", timeout=60, strict=False)
            term = terminal_event(b.impl.events(tid))
            if term is not None and term["state"] == "crashed":
                lat.append(float(term["mono"]) - t)
        res["kill_detect"] = {"summary": summary(lat), "samples": lat}
        # stop everything still alive
        rest = ids[min(KILLS, n) :]
        t0 = time.monotonic()
        with ThreadPoolExecutor(STOP_PARALLEL) as ex:
            list(ex.map(lambda tid: b.impl.run("stop", tid, timeout=120, strict=False), rest))
        res["stop_all_s"] = time.monotonic() - t0
        res["left_after_stop"] = len(b.sb.leaks())
        log(
            f"  N={n}: stopped {len(rest)} in {res['stop_all_s']:.1f}s, {res['left_after_stop']} processes left"
        )
    finally:
        b.close()
    return res


def run(ns: list[int], idle_s: float, log: Callable[[str], None]) -> dict[str, Any]:
    """Each N in turn; skips an N whose memory estimate does not fit (and says so)."""
    res: dict[str, Any] = {"knobs": KNOBS, "agent_flags": list(AGENT_FLAGS), "fd_limit": raise_fd_limit()}
    points = []
    sup_mib = agent_mib = None  # per agent, USS, from the last measured N
    for n in ns:
        avail = psutil.virtual_memory().available / 2**20
        agent = "fake-agent"
        if sup_mib is not None and agent_mib is not None:
            need = (sup_mib + agent_mib + SHARED_FUDGE_MIB) * n
            if need > MEM_HEADROOM * avail:
                agent = "sh-loop"
                need = (sup_mib + SH_AGENT_MIB + SHARED_FUDGE_MIB) * n
                if need > MEM_HEADROOM * avail:
                    points.append({"n": n, "skipped": f"needs ~{need:.0f} MiB, {avail:.0f} MiB available"})
                    log(f"  N={n}: skipped ({points[-1]['skipped']})")
                    continue
                log(
                    f"  N={n}: fake agents would need ~{(sup_mib + agent_mib) * n:.0f} MiB: using sh-loop agents"
                )
        try:
            p = one_n(n, idle_s, log, agent)
        except Exception as e:  # one failing N must not lose the others; the report says why
            p = {"n": n, "agent": agent, "error": f"{type(e).__name__}: {e}"}
            log(f"  N={n}: error {p['error']}")
        points.append(p)
        mem = p.get("memory_mib")
        if mem:
            sup_mib = mem["supervision_uss_per_agent"]
            if agent == "fake-agent":
                agent_mib = mem["agent_uss_per_agent"]
    res["points"] = points
    res["pid"] = os.getpid()
    return res


def run_defaults(n: int, idle_s: float, log: Callable[[str], None]) -> dict[str, Any]:
    """The same idle measurement with the reference defaults (heartbeat supervision off): the wrapper
    then looks at the result file every states.result_interval(grace) instead of at the heartbeat."""
    raise_fd_limit()
    log(f"  idle with default knobs (DISPATCH_STALE_AFTER_S unset), N={n}")
    return one_n(n, idle_s, log, "fake-agent", knobs={})
