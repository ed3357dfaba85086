"""Plots (docs/bench/*.png) and docs/benchmarks.md from one results JSON; nothing here measures."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from bench.common import SEED_HEALTH_S, SEED_START_SLEEP_S
from bench.headline import CRASH_AND_COMPLETION, TARGETS
from runner.states import MAX_TICK_S, heartbeat_interval, result_interval

PLOTS = ("start_latency.png", "detect_latency.png", "scale_cost.png")


def _ms(x: float | None, digits: int = 1) -> str:
    return "–" if x is None else f"{x * 1000:.{digits}f} ms"


def _s(x: float | None) -> str:
    if x is None:
        return "–"
    return f"{x:.1f} s" if abs(x) >= 1 else _ms(x)


def _x(x: float | None) -> str:
    return "–" if x is None else (f"{x:,.0f}×" if x >= 10 else f"{x:.2f}×")


def _pct(x: float | None, digits: int = 2) -> str:
    return "–" if x is None else f"{100 * x:.{digits}f} %"


def _verdict(met: bool | None) -> str:
    return {True: "**met**", False: "**missed**", None: "not measured"}[met]


# -- plots ------------------------------------------------------------------------------------------


def plots(res: dict[str, Any], outdir: Path) -> list[str]:
    """Write the PNGs; return their names (empty when matplotlib is missing)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    outdir.mkdir(parents=True, exist_ok=True)
    written = []

    st = res.get("start")
    if st:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
        for ax, mode in zip(axes, ("warm", "cold"), strict=True):
            m = st.get(mode, {})
            series = [
                ("floor\ntmux+spawn", m.get("floor", {}).get("tmux_spawn", {}).get("samples", [])),
                ("floor\nspawn only", m.get("floor", {}).get("spawn", {}).get("samples", [])),
                ("before", m.get("before", {}).get("call_to_agent", {}).get("samples", [])),
                ("ours", m.get("ours", {}).get("call_to_agent", {}).get("samples", [])),
                ("ours\neditable", m.get("editable", {}).get("call_to_agent", {}).get("samples", [])),
                ("seed", m.get("seed", {}).get("call_to_agent", {}).get("samples", [])),
            ]
            series = [(k, [v * 1000 for v in s]) for k, s in series if s]
            if series:
                ax.boxplot([s for _, s in series], showfliers=True)
                ax.set_xticks(range(1, len(series) + 1), [k for k, _ in series])
            ax.set_title(f"start call -> agent running ({mode} tmux server)")
            ax.set_ylabel("ms")
            ax.grid(axis="y", alpha=0.3)
        fig.tight_layout()
        fig.savefig(outdir / PLOTS[0], dpi=110)
        plt.close(fig)
        written.append(PLOTS[0])

    det = res.get("detect")
    if det:
        fig, (ax, ax2) = plt.subplots(1, 2, figsize=(13, 5), gridspec_kw={"width_ratios": [2, 1]})
        groups = [
            ("ours", det.get("ours", {}), "tab:green"),
            (f"seed, {det.get('seed_scaled_poll_s', 0.25):g} s poll", det.get("seed", {}), "tab:orange"),
        ]
        if det.get("seed_default"):
            groups.append(
                (f"seed, {det['seed_default']['poll_s']:g} s poll", det["seed_default"]["endings"], "tab:red")
            )
        short = {
            "exit0": "exit 0",
            "exit_nonzero": "exit 3",
            "sigkill": "SIGKILL",
            "pane_killed": "pane killed",
            "heartbeat": "heartbeat stopped\n(beyond stale+grace)",
            "result": "result written\n(beyond grace)",
        }
        for a, names, scale_ms in (
            (ax, list(CRASH_AND_COMPLETION), False),
            (ax2, ["heartbeat", "result"], True),
        ):
            width = 0.8 / len(groups)
            for gi, (label, data, color) in enumerate(groups):
                pos, vals = [], []
                for i, n in enumerate(names):
                    s = data.get(n, {}).get("samples", [])
                    s = [v * 1000 for v in s] if scale_ms else [max(v, 1e-4) for v in s]
                    if s:
                        pos.append(i + (gi - (len(groups) - 1) / 2) * width)
                        vals.append(s)
                if vals:
                    bp = a.boxplot(vals, positions=pos, widths=width * 0.9, patch_artist=True)
                    for b in bp["boxes"]:
                        b.set_facecolor(color)
                        b.set_alpha(0.6)
                if a is ax:
                    a.plot([], [], color=color, lw=8, alpha=0.6, label=label)
            a.set_xticks(range(len(names)), [short.get(n, n) for n in names], fontsize=8)
            a.grid(axis="y", alpha=0.3, which="both")
        fl = det.get("floor", {})
        for key, idx in (("exit", [0, 1]), ("sigkill", [2])):
            p50 = fl.get(key, {}).get("summary", {}).get("p50")
            if p50:
                for i in idx:
                    ax.hlines(p50, i - 0.45, i + 0.45, colors="k", linestyles="dotted")
        ax.plot([], [], "k:", label="floor: bare pidfd wake-up (p50)")
        ax.axhline(TARGETS["detect_p99_s"], color="r", ls="--", lw=0.8, label="100 ms")
        ax.set_yscale("log")
        ax.set_ylabel("s (log)")
        ax.set_title("crash / completion: ending -> terminal state recorded")
        ax.legend(fontsize=8)
        ax2.axhline(0, color="k", lw=0.8)
        ax2.set_ylabel("ms beyond the knob (negative: too early)")
        ax2.set_title("hang / result: overshoot")
        fig.tight_layout()
        fig.savefig(outdir / PLOTS[1], dpi=110)
        plt.close(fig)
        written.append(PLOTS[1])

    sc = res.get("scale")
    pts = [p for p in (sc or {}).get("points", []) if "idle" in p]
    if pts:
        ns = [p["n"] for p in pts]
        fig, axes = plt.subplots(2, 2, figsize=(11, 7))
        a = axes[0][0]
        a.plot(
            ns, [100 * p["idle"]["supervision_core_share"] for p in pts], "o-", label="supervision (all N)"
        )
        a.plot(ns, [100 * p["idle"]["tmux_server_core_share"] for p in pts], "s--", label="tmux server")
        a.axhline(100 * TARGETS["idle_core_share"], color="r", ls=":", label="target 5 %")
        a.set_title("idle CPU, % of one core")
        a.legend(fontsize=8)
        a = axes[0][1]
        a.plot(
            ns, [p["memory_mib"]["supervision_uss_per_agent"] for p in pts], "o-", label="wrapper+logpipe USS"
        )
        a.plot(
            ns,
            [p["memory_mib"]["tmux_server_rss_per_session"] for p in pts],
            "s--",
            label="tmux RSS / session",
        )
        a.set_title("memory per agent, MiB")
        a.legend(fontsize=8)
        a = axes[1][0]
        a.plot(ns, [p["start_all_s"] for p in pts], "o-", label="start all")
        a.plot(ns, [p.get("stop_all_s", 0) for p in pts], "s--", label="stop all")
        a.set_title("time to start / stop all N, s")
        a.legend(fontsize=8)
        a = axes[1][1]
        a.plot(ns, [1000 * (p["kill_detect"]["summary"]["p50"] or 0) for p in pts], "o-", label="p50")
        a.plot(ns, [1000 * (p["kill_detect"]["summary"]["max"] or 0) for p in pts], "s--", label="max")
        a.set_title("SIGKILL -> crashed at load, ms")
        a.legend(fontsize=8)
        for row in axes:
            for a in row:
                a.set_xscale("log")
                a.set_xlabel("N concurrent agents")
                a.grid(alpha=0.3, which="both")
        fig.tight_layout()
        fig.savefig(outdir / PLOTS[2], dpi=110)
        plt.close(fig)
        written.append(PLOTS[2])
    return written


# -- markdown ---------------------------------------------------------------------------------------


def _tick(knobs: dict[str, str]) -> str:
    """The heartbeat check interval the scale knobs give (runner.states.heartbeat_interval)."""
    try:
        t = heartbeat_interval(
            float(knobs["DISPATCH_STALE_AFTER_S"]), float(knobs.get("DISPATCH_GRACE_S", 0))
        )
    except (KeyError, ValueError):
        return "?"
    return f"{t:g} s"


def _agent_mib(sc_res: dict[str, Any]) -> str:
    """A fake agent's own USS as measured in this scale run ('≈9 MiB' when no point has it)."""
    xs = [
        p["memory_mib"]["agent_uss_per_agent"]
        for p in sc_res.get("points", [])
        if p.get("agent") == "fake-agent" and "memory_mib" in p
    ]
    return f"{max(xs):.1f} MiB" if xs else "≈9 MiB"


def _load_of(res: dict[str, Any], part: str) -> str:
    """'load average X on N cores' when PART was measured (this run, or the earlier run it was reused from)."""
    meta = res["meta"]
    reused = (meta.get("reused") or {}).get(part)
    cores = meta["machine"]["cores_logical"]
    if reused:
        return f"load average {reused['loadavg_start'][0]:.0f} on {cores} cores"
    a, b = meta["loadavg_start"][0], meta["loadavg_end"][0]
    return f"load average {a:.0f} at the run's start and {b:.0f} at its end, on {cores} cores"


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def markdown(res: dict[str, Any], plot_rel: str, plots_written: list[str]) -> str:
    h = res["headline"]
    meta = res["meta"]
    m = meta["machine"]
    L: list[str] = []
    w = L.append
    w("# Benchmarks")
    w("")
    w("<!-- generated by `python -m bench` (bench/report.py); edit the generator, not this file -->")
    w("")
    w(
        "A dispatcher exists to notice quickly and cheaply. These numbers put the reference runner next to "
        "the seed skills' approach (`conformance/known_bad/seed_polling.sh`, a faithful rendering) and next to "
        "the physical floor measured in the same run (bare `tmux -S sock new-session -d` + process spawn; a "
        "bare pidfd wake-up for exit detection)."
    )
    w("")
    w(
        "Regenerate everything with one command: `python -m bench --suite` (`--quick` for a smoke run; without "
        f"`--suite` the suite's own cost is skipped). This page came from `{meta['command']}`."
    )
    w("")
    w(
        f"Run: {meta['started']} UTC, {meta['duration_s'] / 60:.1f} min, mode **{'quick' if meta['quick'] else 'full'}**"
        + (
            f", code `{meta['rev']}` (bytecode precompiled, as an installed copy has it)"
            if meta.get("rev")
            else ""
        )
        + ". "
        f"Machine: {m['cpu']}, {m['cores_logical']} logical cores, {m['memory_total_mb'] / 1024:.1f} GiB, "
        f"{m['kernel']}, {m['tmux']}, Python {m['python']}."
    )
    w("")
    w(
        f"Load: the machine is shared with other engineers running test suites; load average "
        f"{' / '.join(f'{x:.1f}' for x in meta['loadavg_start'])} at the start and "
        f"{' / '.join(f'{x:.1f}' for x in meta['loadavg_end'])} at the end (1/5/15 min, on {m['cores_logical']} cores). "
        f"Other busy processes sampled at the start: {meta.get('others') or 'none'}."
    )
    w("")

    for part, r in (meta.get("reused") or {}).items():
        w(
            f"The *{part}* numbers come from an earlier run ({r['started']} UTC, `{r['from']}`"
            + (f", code `{r['rev']}`" if r.get("rev") else "")
            + ", load average "
            f"{' / '.join(f'{x:.1f}' for x in r['loadavg_start'])}"
            + (
                f" at its start and {' / '.join(f'{x:.1f}' for x in r['loadavg_end'])} at its end"
                if r.get("loadavg_end")
                else ""
            )
            + f"; busy then: {r['others'] or 'none'})."
        )
        w("")
    # headline
    w("## Headline")
    w("")
    st, dt, hg, sc = h["start"], h["detect"], h["hang"], h["scale"]
    poll = dt.get("seed_default_poll_s")
    rows = [
        [
            f"start → agent running ≤ {TARGETS['start_ratio']:g}× floor",
            f"{_x(st['ratio_to_floor'])} ({_ms(st['ours_p50_s'])} vs floor {_ms(st['floor_p50_s'])}, p50)",
            _verdict(st["met"]),
        ],
        [
            "crash + completion detection p99 ≤ 100 ms",
            f"worst p99 {_ms(dt['worst_p99_s'])}",
            _verdict(dt["p99_met"]),
        ],
        [
            "≥ 500× faster than the seed at its defaults",
            f"≥ {_x(dt['min_speedup_p50'])} (p50 vs seed polling every {poll:g} s)" if poll else "–",
            _verdict(dt["speedup_met"])
            + ("" if not poll or poll >= 60 else f" (seed poll scaled to {poll:g} s)"),
        ],
        [
            "hang detected within 5 % of stale+grace",
            f"p99 overshoot {_ms(hg['overshoot_p99_s'])} = {_pct(hg['overshoot_p99_rel'])} of {_s(hg['stale_plus_grace_s'])}",
            _verdict(hg["met"]),
        ],
        [
            "500 agents, idle supervision < 5 % of a core",
            f"N={sc['max_n_measured']} ({sc['agent_kind_at_max']}): {_pct(sc['idle_core_share_at_max'])} of a core, "
            f"{sc['uss_mib_per_agent_at_max'] or 0:.1f} MiB USS/agent"
            if sc["max_n_measured"]
            else "–",
            _verdict(sc["met"]),
        ],
    ]
    L += _table(["target", "measured here", "verdict"], rows)
    w("")
    L += _explain(res)

    # start
    s = res.get("start")
    if s:
        w("## Start latency")
        w("")
        w(
            "One task at a time, agent `fake-agent --work 0`"
            + (
                "; rounds interleave floor, ours and seed (and *before*, the reference at an earlier "
                "revision, when the run names one) so all see the same background load. "
                if s.get("interleaved")
                else " (floor, ours and seed measured one after the other, under whatever load each met). "
            )
            + "*call → agent* ends at the agent's journaled `start` "
            "event (its interpreter is up); *call → running* at the dispatcher's `running` transition "
            "(`events --json`); *returned → agent* is negative when the agent was already running when `start` "
            "returned. *warm*: a tmux server is already up (a holder session); *cold*: a fresh socket each time, "
            "so the call also starts the server."
        )
        w("")
        w(_which_copy(s))
        w("")
        for mode in ("warm", "cold"):
            mm = s.get(mode)
            if not mm:
                continue
            rows = []
            for who, key, label in (
                ("floor", "tmux_spawn", "floor: `tmux new-session -d -- fake-agent`"),
                ("floor", "spawn", "floor: `Popen(fake-agent)` (no tmux)"),
                ("floor", "tmux_call", "floor: `tmux new-session -d -- sleep` call alone"),
                ("ours", "call_to_agent", "ours: call → agent"),
                ("ours", "call_to_starting", "ours: call → `starting` (CLI up, inputs checked, the row in)"),
                ("ours", "call_to_running", "ours: call → `running`"),
                ("ours", "returned_to_agent", "ours: returned → agent"),
                ("ours", "call_duration", "ours: `start` call duration"),
                ("editable", "call_to_agent", "ours, editable install: call → agent"),
                ("editable", "call_to_starting", "ours, editable install: call → `starting`"),
                ("editable", "call_to_running", "ours, editable install: call → `running`"),
                ("editable", "call_duration", "ours, editable install: `start` call duration"),
                ("before", "call_to_agent", f"before (`{s.get('before_rev')}`): call → agent"),
                ("before", "call_to_starting", f"before (`{s.get('before_rev')}`): call → `starting`"),
                ("before", "call_to_running", f"before (`{s.get('before_rev')}`): call → `running`"),
                ("before", "call_duration", f"before (`{s.get('before_rev')}`): `start` call duration"),
                ("seed", "call_to_agent", "seed: call → agent"),
                ("seed", "call_to_running", "seed: call → `running`"),
                ("seed", "returned_to_agent", "seed: returned → agent"),
            ):
                sm = mm.get(who, {}).get(key, {}).get("summary")
                if sm and sm["n"]:
                    rows.append([label, str(sm["n"]), _ms(sm["p50"]), _ms(sm["p95"]), _ms(sm["p99"])])
            w(f"**{mode}**")
            w("")
            L += _table(["measure", "n", "p50", "p95", "p99"], rows)
            w("")
        L += _before_after(s)
        w(
            f"The seed's `start` reports `running` as soon as `send-keys` returns, before the shell has even run "
            f"the command line; the seed skill then sleeps {SEED_START_SLEEP_S:g} s (seed 001, step 4) before "
            f"trusting the start, so its *trusted* start latency is {SEED_START_SLEEP_S:g} s plus the call."
        )
        w("")
        if "start_latency.png" in plots_written:
            w(f"![start latency]({plot_rel}/start_latency.png)")
            w("")

    # detection
    d = res.get("detect")
    if d:
        k = d["knobs"]
        w("## Detection latency")
        w("")
        w(
            "Injected moment: the fake agent's journal (`ending` right before it exits, its last `heartbeat`, its "
            "`result`) or the bench's CLOCK_MONOTONIC stamp right before it sends SIGKILL / runs `tmux kill-pane`. "
            "Detected moment: the terminal transition's `mono` in `events --json` (the seed script stamps "
            "/proc/uptime; converted with the measured CLOCK_BOOTTIME − CLOCK_MONOTONIC offset). "
            f"Exits happen {k['work_s']:g} s after the agent started. Heartbeat: beats every {k['heartbeat']['every']:g} s, "
            f"stops after {k['heartbeat']['beats']}, stale {k['heartbeat']['stale']:g} s + grace {k['heartbeat']['grace']:g} s; "
            f"the number is the overshoot beyond stale+grace ({k['hb_parallel']} runs overlap). Result: written "
            f"atomically while the agent keeps running, grace {k['result_grace']:g} s; the number is the overshoot "
            "beyond the grace."
        )
        w("")
        rows = []
        fl = d.get("floor", {})
        for key, label in (
            ("exit", "floor: pidfd wake-up after exit"),
            ("sigkill", "floor: pidfd wake-up after SIGKILL"),
        ):
            sm = fl.get(key, {}).get("summary")
            if sm and sm["n"]:
                rows.append([label, "–", str(sm["n"]), _ms(sm["p50"]), _ms(sm["p95"]), _ms(sm["p99"]), "–"])
        for who, label in (
            ("ours", "ours"),
            ("seed", f"seed, {d.get('seed_scaled_poll_s', 0.25):g} s poll"),
        ):
            for name, title in d["endings"].items():
                r = d.get(who, {}).get(name)
                if not r:
                    continue
                sm = r["summary"]
                states = ", ".join(f"{k2} ×{v}" for k2, v in r["states"].items()) or "; ".join(r["errors"])
                rows.append([label, title, str(sm["n"]), _s(sm["p50"]), _s(sm["p95"]), _s(sm["p99"]), states])
        sd = d.get("seed_default")
        if sd:
            for name, r in sd["endings"].items():
                sm = r["summary"]
                states = ", ".join(f"{k2} ×{v}" for k2, v in r["states"].items()) or "; ".join(r["errors"])
                rows.append(
                    [
                        f"seed, {sd['poll_s']:g} s poll",
                        d["endings"][name],
                        str(sm["n"]),
                        _s(sm["p50"]),
                        _s(sm["p95"]),
                        _s(sm["p99"]),
                        states,
                    ]
                )
        L += _table(["dispatcher", "ending", "n", "p50", "p95", "p99", "recorded as"], rows)
        w("")
        if sd:
            w(
                f"The seed at its documented poll ({sd['poll_s']:g} s, seed 001 step 6) is measured with all "
                f"{sd['per_ending']} tasks per ending started together and each ending injected at a uniformly random "
                "offset, so every phase of the poll is sampled; the scaled-down runs use the script's own default "
                f"(`SEED_POLL_S={d.get('seed_scaled_poll_s', 0.25):g}`), which the conformance suite uses. The seed's "
                f"other default, health checks every {SEED_HEALTH_S[0] / 60:.0f}-{SEED_HEALTH_S[1] / 60:.0f} min "
                "(seed 002), would be 3-5× slower still; it is not run."
            )
            w("")
        hb = d.get("ours", {}).get("heartbeat", {}).get("summary", {})
        if hb.get("p50") is not None:
            w(
                f"The hang overshoot is nearly constant in absolute terms (p50 {_ms(hb['p50'])}: the heartbeat check "
                f"interval clamp((stale+grace)/40, 20 ms, {MAX_TICK_S:g} s), then ending the agent before `hung` is "
                "recorded), so with production values (stale of a minute or more) it is a fraction of a percent; at "
                "the 3 s used here to keep runs short it "
                + (
                    "exceeds"
                    if (h["hang"]["overshoot_p99_rel"] or 0) > TARGETS["hang_rel"]
                    else "sits close to"
                )
                + " the 5 % bound. The seed judges staleness on whole-second mtimes "
                "and wall time (P6), so at its scaled poll it fires up to a second *early* (negative overshoot)."
            )
            w("")
        if "detect_latency.png" in plots_written:
            w(f"![detection latency]({plot_rel}/detect_latency.png)")
            w("")
        rows = []
        for name in CRASH_AND_COMPLETION:
            r = h["detect"]["rows"][name]
            rows.append(
                [
                    d["endings"][name],
                    _ms(r["ours_p50_s"]),
                    _s(r["seed_default_p50_s"]),
                    _x(r["speedup_p50"]),
                    _x(r["speedup_mean"]),
                    _s(r["seed_scaled_p50_s"]),
                    _x(r["speedup_p50_vs_scaled"]),
                ]
            )
        w("Speed-up over the seed (ratio of medians and of means):")
        w("")
        L += _table(
            [
                "ending",
                "ours p50",
                f"seed {poll or 60:g} s p50",
                "× (p50)",
                "× (mean)",
                "seed 0.25 s p50",
                "× (p50)",
            ],
            rows,
        )
        w("")

    # scale
    sc_res = res.get("scale")
    if sc_res:
        w("## Scale")
        w("")
        w(
            f"N agents at once (`{' '.join(sc_res['agent_flags'])}`, knobs "
            f"{', '.join(f'{k}={v}' for k, v in sc_res['knobs'].items())}: heartbeat supervision on, one check "
            f"every {_tick(sc_res['knobs'])}), all under one tmux server. Supervision = the wrapper and logpipe processes (descendants of "
            "the tmux server, found through runner.procid); CPU from /proc/PID/task/*/schedstat (ns) over an idle "
            f"window of {meta['config']['idle_s']:g} s, memory = USS (`memory_full_info`). *sh-loop* agents are a "
            f"0.5 MiB `/bin/sh` heartbeat loop used where Python fake agents ({_agent_mib(sc_res)} USS each) would "
            "not fit in "
            f"memory next to other work; the agent's own cost is not supervision. fd limit {sc_res['fd_limit']}."
        )
        w("")
        rows = []
        for p in sc_res["points"]:
            if "idle" not in p:
                rows.append(
                    [str(p["n"]), p.get("agent", "–"), p.get("skipped") or p.get("error", "?")] + ["–"] * 8
                )
                continue
            i, mem, kd = p["idle"], p["memory_mib"], p["kill_detect"]["summary"]
            rows.append(
                [
                    str(p["n"]),
                    p["agent"],
                    f"{p['started']}/{p['n']} ({p.get('running', '?')} running)",
                    _pct(i["supervision_core_share"], 3),
                    f"{i['wrapper_wakeups_per_s_per_agent']:.2f} / {i['logpipe_wakeups_per_s_per_agent']:.2f}",
                    f"{mem['supervision_uss_per_agent']:.1f} ({mem['wrapper_uss_per_agent']:.1f} + {mem['logpipe_uss_per_agent']:.1f})",
                    f"{mem['tmux_server_rss']:.1f} ({1024 * mem['tmux_server_rss_per_session']:.0f} KiB/session)",
                    _ms(kd["p50"]) + " / " + _ms(kd["max"]),
                    _s(p["start_all_s"]),
                    _s(p.get("stop_all_s")),
                    f"{i['machine_busy_cores']:.2f}",
                ]
            )
        L += _table(
            [
                "N",
                "agent",
                "started",
                "idle supervision CPU (% of 1 core, all N)",
                "wake-ups/s per agent (wrapper / logpipe)",
                "supervision USS MiB/agent (wrapper + logpipe)",
                "tmux server RSS MiB",
                "SIGKILL → crashed p50 / max",
                "start all",
                "stop all",
                "machine busy cores in window",
            ],
            rows,
        )
        w("")
        idd = res.get("idle_defaults")
        if idd and "idle" in idd:
            i = idd["idle"]
            w(
                f"With the reference defaults instead (`DISPATCH_STALE_AFTER_S` unset: heartbeat supervision off), "
                f"N={idd['n']} idle agents cost {_pct(i['supervision_core_share'], 3)} of a core: each wrapper wakes "
                f"{i['wrapper_wakeups_per_s_per_agent']:.2f}×/s to look at the result file (`states.result_interval`: "
                f"clamp(grace/15, 20 ms, {MAX_TICK_S:g} s), {result_interval(30.0):g} s at the default 30 s grace), "
                f"so 500 agents would cost ≈{_pct(i['supervision_core_share'] * 500 / idd['n'], 1)} of a core "
                "(extrapolated, not measured). A result only matters while the agent lives on after writing it, "
                "and then only against the grace; exits are seen through the pidfd regardless."
            )
            w("")
        if "scale_cost.png" in plots_written:
            w(f"![cost against N]({plot_rel}/scale_cost.png)")
            w("")

    su = res.get("suite")
    w("## Cost of the conformance suite")
    w("")
    if su:
        rows = [
            [f"-n {r['workers']}", _s(r["wall_s"]), str(r["exit_code"]), r.get("last_line", "")]
            for r in su["runs"]
        ]
        L += _table(["workers", "wall time", "exit", "pytest summary"], rows)
    else:
        w("Not run in this run (pass `--suite`; it takes several minutes per worker count).")
    w("")
    w("## Reproducing")
    w("")
    w(
        "`python -m bench` runs everything (about 15-25 minutes on this machine); `--quick` runs a few samples of "
        "each (a minute or two, numbers are not meaningful); `--runs N`, `--start-runs N`, `--scale 1,10,100,500`, "
        "`--idle S`, `--seed-default-n K`, `--seed-default-poll S`, `--idle-defaults-n N`, "
        "`--only start,detect,scale,idle_defaults,suite` select and size the parts; `--reuse FILE` takes the parts "
        "not measured now from an earlier results JSON (the page names the run each part came from); "
        "`--from-json FILE` only regenerates this page and the plots. Raw samples and the machine "
        "description are in the JSON this page was generated from, `docs/bench/bench.json` (committed with "
        "the page; every run's JSON also stays under `bench/results/`, not committed)."
    )
    w("")
    return "\n".join(L)


def _which_copy(s: dict[str, Any]) -> str:
    """Which `dispatch` the start rows call "ours" (bench/start.py, `--start-install`)."""
    install = s.get("install", "editable")
    if install == "editable":
        return (
            "*ours* is the dev checkout's `dispatch` (an editable install: its interpreter runs `site`, and "
            "setuptools' import finder serves `runner`), bytecode precompiled."
        )
    text = (
        "*ours* (the headline) is this tree built as a wheel and installed with pip in a private venv, "
        "bytecode compiled, as a user's `pip install dispatch-kit` has it (bench/installed.py)"
    )
    if s.get("before_rev"):
        text += f"; *before* is `{s['before_rev']}` installed the same way"
    if install == "both":
        text += (
            "; *ours, editable install* is the dev checkout's own `dispatch` (`site` starts setuptools' "
            "import finder, which serves `runner`) in the same rounds"
        )
    return text + "."


def _before_after(s: dict[str, Any]) -> list[str]:
    """The warm start's phases, the reference at `before_rev` next to this checkout (same rounds)."""
    ws = s.get("warm") or {}
    if not s.get("before_rev") or "before" not in ws:
        return []

    def p50(who: str, key: str) -> float | None:
        return ws.get(who, {}).get(key, {}).get("summary", {}).get("p50")

    floor = p50("floor", "tmux_spawn")

    def phases(who: str) -> list[float | None]:
        c, r, a = p50(who, "call_to_starting"), p50(who, "call_to_running"), p50(who, "call_to_agent")
        return [c, None if c is None or r is None else r - c, None if r is None or a is None else a - r, a]

    b, o = phases("before"), phases("ours")
    names = [
        "call → `starting`: the CLI up, inputs checked, the task row in",
        '`starting` → `running`: task files, session, wrapper up + ack, log pipe, "go", exec',
        "`running` → the agent's `start` (its own interpreter)",
        "total: call → agent",
    ]
    rows = [[n, _ms(x), _ms(y)] for n, x, y in zip(names, b, o, strict=True)]
    ratio = [None if v is None or not floor else v / floor for v in (b[3], o[3])]
    rows.append([f"× the floor ({_ms(floor)}, p50)", _x(ratio[0]), _x(ratio[1])])
    out = [f"**warm, before (`{s['before_rev']}`) and after, in the same rounds (p50)**", ""]
    out += _table(["phase", "before", "after"], rows)
    out.append("")
    return out


def _explain(res: dict[str, Any]) -> list[str]:
    """Why each missed target is missed and what would close it (text grows with the measurements)."""
    h = res["headline"]
    out: list[str] = []
    st = h["start"]
    ws = (res.get("start") or {}).get("warm", {})
    if st["met"] is False:

        def p50(who: str, key: str) -> float | None:
            return ws.get(who, {}).get(key, {}).get("summary", {}).get("p50")

        c_start, c_run, c_agent = (
            p50("ours", "call_to_starting"),
            p50("ours", "call_to_running"),
            st["ours_p50_s"],
        )
        spawn = p50("floor", "spawn")
        wrap = None if c_start is None or c_run is None else c_run - c_start
        agent = None if c_run is None or c_agent is None else c_agent - c_run
        out.append(
            f"- **Start** is {_x(st['ratio_to_floor'])} the floor, {_x(st['ratio_to_floor'] / TARGETS['start_ratio'])} "
            f"the allowance ({_ms(c_agent)} against {TARGETS['start_ratio']:g} × {_ms(st['floor_p50_s'])}). The floor "
            f"starts one interpreter (the fake agent: {_ms(spawn)} for a bare spawn); ours starts three in sequence "
            f"(p50s): the `dispatch` CLI until the task row exists ({_ms(c_start)}), then the task files, tmux, "
            f"the in-pane wrapper and the FIFO handshake until `running` ({_ms(wrap)}), then the agent's own interpreter until "
            f"it journals ({_ms(agent)}, what the floor pays). Each interpreter start costs tens of ms unloaded "
            "and several times that under load, so the ratio stays well above the target at any load. Done "
            "for issue 13 (the before/after table in the start section): no `tmux -V` per start (cached per "
            "binary in the state dir), the reap's sweep and `pipe-pane` while the wrapper starts up instead of "
            "on the path, the CLI's start path without dataclasses, tempfile, shutil and random, task files "
            "not fsynced, the wrapper reading its task from a `marshal` copy (no json), and, last, the pane's "
            "pid (`#{pane_pid}`, from `new-session`) recorded by `start` as the supervisor: the wrapper reads "
            "it from a file and forks and acks at once instead of claiming the row through its recorder child "
            '(whose sqlite3 import held the ack back), `start` records the agent from the ack before "go", '
            "and the pipe-pane process no longer imports json, pathlib and typing (runner.atomicio imports only "
            "os) while the wrapper and the agent start beside it on the same two cores. Left on the path: the "
            "CLI's interpreter and its imports (argparse with re and enum, json, sqlite3, subprocess: ≈35 ms "
            "quiet; an installed copy has no editable finder, the dev checkout's does), one `new-session` round "
            "trip, the wrapper's `python -S` start (≈20 ms quiet, with ctypes for the subreaper prctl), then "
            "the agent's own interpreter. The structural step after that (not taken: it changes who owns the "
            "pane's process and every recovery path with it): a long-lived per-server supervisor that forks "
            "per-task ones, so that only the CLI's and the agent's own interpreters remain."
        )
    dt = h["detect"]
    if dt["p99_met"] is False:
        bad = {
            n: r["ours_p99_s"]
            for n, r in dt["rows"].items()
            if r["ours_p99_s"] is not None and r["ours_p99_s"] > TARGETS["detect_p99_s"]
        }
        good = [n for n, r in dt["rows"].items() if n not in bad and r["ours_p99_s"] is not None]
        limit = TARGETS["detect_p99_s"]
        missed = ", ".join(
            f"`{n}` ({_ms(v)}, {_x(v / limit)} the target; {dt['rows'][n]['ours_over_target']} of "
            f"{dt['rows'][n]['ours_n']} samples above {_ms(limit, 0)}, the largest {_ms(dt['rows'][n]['ours_max_s'])})"
            for n, v in bad.items()
        )
        met = ", ".join(f"`{n}`" for n in good)
        text = f"- **Detection p99** misses in {missed}" + (f"; {met} meet it." if good else ".")
        slow_p50 = [n for n in bad if (dt["rows"][n]["ours_p50_s"] or 0) > limit]
        if slow_p50:
            medians = ", ".join(f"`{n}` p50 {_ms(dt['rows'][n]['ours_p50_s'])}" for n in slow_p50)
            text += (
                f" The median is over the target too ({medians}), "
                "so this is not the tail: the wrapper decides within milliseconds of the exit (exit.json carries "
                "the decision's time), but the terminal state is stored afterwards, by a recorder child forked "
                "for the write (runner/recorder.py) that imports sqlite3 and json, after the wrapper has imported "
                "runner.atomicio for exit.json; `finish()` does not pass the decision's (mono, wall) as `at`, as "
                "entered states do, so the event carries the write's time. That is the price of the idle "
                "wrapper's 3.5 MiB (it holds no sqlite3); the runner change that keeps both: stamp the terminal "
                "event with the decision's time, or fork the recorder when the agent's pidfd fires rather than "
                "after the decision."
            )
        else:
            text += (
                f" With {dt['rows'][next(iter(bad))]['ours_n']} samples the p99 is set by the one or two slowest "
                "runs, and the machine was saturated (load average well above the 2 cores), so a single "
                "descheduling of 0.1-0.5 s lands in the tail."
            )
        p50s = {n: r["ours_p50_s"] or 0 for n, r in dt["rows"].items()}
        if "pane_killed" in bad and p50s["pane_killed"] >= max(p50s.values()):
            pk = dt["rows"]["pane_killed"]
            text += (
                f" Pane killed has the longest path (p50 {_ms(pk['ours_p50_s'])}): the `tmux kill-pane` client "
                "itself (a process start, inside the measured interval), tmux delivering SIGHUP, then the wrapper "
                "ending the agent's tree (`procid.kill_tree`: SIGTERM, wait, rescan including a /proc environ scan "
                "for marked descendants) before it records `crashed/session_lost`. Runner change that would "
                "shorten it: in `runner/wrapper.py` `supervise()`, when `decide()` returns KILL for `session_lost` "
                "(an outcome the kill cannot change), write the transition first and clean up after, as `finish()` "
                "already does for exits."
            )
        out.append(text)
    if dt["speedup_met"] is False and dt.get("seed_default_poll_s"):
        out.append(
            f"- **Speed-up over the seed** is {_x(dt['min_speedup_p50'])} at the least favourable ending against a "
            f"{dt['seed_default_poll_s']:g} s seed poll."
        )
    hg = h["hang"]
    if hg["met"] is False:
        out.append(
            f"- **Hang detection** overshoots by {_pct(hg['overshoot_p99_rel'])} of stale+grace at p99 (p50 "
            f"{_ms(hg['overshoot_p50_s'])}). The overshoot is the check interval (up to (stale+grace)/40, "
            "75 ms here), then ending the agent's tree (SIGTERM, wait for its exit); `hung` is stamped with the "
            "moment that exit was seen. Each step is a process wake-up, dearer under load; the runner change "
            "that would shorten it is waking on the heartbeat file (inotify) and on the deadline itself "
            "instead of on the check interval."
        )
    sc = h["scale"]
    if sc["met"] is False:
        share = sc["idle_core_share_at_max"]
        pts = [p for p in (res.get("scale") or {}).get("points", []) if "idle" in p]
        top = max(pts, key=lambda p: p["n"]) if pts else None
        if top and top["n"] < TARGETS["scale_n"]:
            out.append(f"- **Scale**: only N={top['n']} could be measured (see the scale table for why).")
        if share is not None and share >= TARGETS["idle_core_share"] and top:
            wk = top["idle"]["wrapper_wakeups_per_s_per_agent"]
            per_wake = share / max(1e-9, wk * top["n"])
            out.append(
                f"- **Idle supervision** at N={top['n']} costs {_pct(share)} of a core, "
                f"{_x(share / TARGETS['idle_core_share'])} the target: each wrapper wakes {wk:.2f}×/s "
                f"(heartbeat checks every clamp((stale+grace)/40, 20 ms, {MAX_TICK_S:g} s)) and each pass costs ≈{per_wake * 1e6:.0f} µs "
                "of Python (read the heartbeat's content + the result, decide, poll) with the machine at "
                f"{_load_of(res, 'scale')} (CPU time measured under that contention for "
                "the shared cores and caches: a quieter machine may show less). Closing it is a runner change: one supervisor process for all "
                "tasks instead of one Python wrapper each, or waking on inotify (heartbeat, result and stop files) "
                "and on the deadline instead of on a timer."
            )
    if out:
        out = ["Where a target is missed:", "", *out, ""]
    mem = h["scale"].get("uss_mib_per_agent_at_max")
    pts = [p for p in (res.get("scale") or {}).get("points", []) if "memory_mib" in p]
    if mem and pts:
        top = max(pts, key=lambda p: p["n"])
        mm = top["memory_mib"]
        out += [
            f"Memory: supervision costs {mem:.1f} MiB of unshared memory per agent at N={top['n']} (wrapper "
            f"{mm['wrapper_uss_per_agent']:.1f} + log pipe {mm['logpipe_uss_per_agent']:.1f} MiB: one `python -S` "
            "wrapper per agent, and the pipe-pane process is `cat`); "
            f"{top['n']} agents need ≈{mem * top['n'] / 1024:.1f} GiB for supervision. A forked rather than exec'd "
            "wrapper (a per-server supervisor) would share most of the interpreter's pages.",
            "",
        ]
    return out


def write(res: dict[str, Any], md_path: Path, plot_dir: Path) -> list[str]:
    """Write the plots and the markdown; the markdown links the plots relative to itself."""
    written = plots(res, plot_dir)
    rel = os.path.relpath(plot_dir, md_path.parent)
    md_path.parent.mkdir(parents=True, exist_ok=True)
    md_path.write_text(markdown(res, rel, written))
    return written
