"""The headline: ratios to the floor and to the seed approach, and each target met or missed (pure)."""

from __future__ import annotations

from typing import Any

from bench.stats import ratio

CRASH_AND_COMPLETION = ("exit0", "exit_nonzero", "sigkill", "pane_killed")
TARGETS = {
    "start_ratio": 2.0,  # start -> agent running <= 2x the bare tmux+spawn floor (issue 13)
    "detect_p99_s": 0.100,  # crash and completion detection p99
    "seed_speedup": 500.0,  # >= 500x faster than the seed at its defaults
    "hang_rel": 0.05,  # hang detection within 5% of stale+grace
    "scale_n": 500,  # agents supervised at once
    "idle_core_share": 0.05,  # supervision < 5% of one core when idle, at scale_n
}


def _get(d: Any, *path: str) -> Any:
    for p in path:
        if not isinstance(d, dict) or p not in d:
            return None
        d = d[p]
    return d


def compute(res: dict[str, Any]) -> dict[str, Any]:
    """Every headline number with its target and verdict (None when not measured)."""
    h: dict[str, Any] = {}
    st = res.get("start") or {}
    floor = _get(st, "warm", "floor", "tmux_spawn", "summary", "p50")
    ours = _get(st, "warm", "ours", "call_to_agent", "summary", "p50")
    h["start"] = {
        "floor_p50_s": floor,
        "ours_p50_s": ours,
        "seed_p50_s": _get(st, "warm", "seed", "call_to_agent", "summary", "p50"),
        "ratio_to_floor": ratio(ours, floor),
        "target": TARGETS["start_ratio"],
    }
    r = h["start"]["ratio_to_floor"]
    h["start"]["met"] = None if r is None else r <= TARGETS["start_ratio"]

    det = res.get("detect") or {}
    rows = {}
    for name in CRASH_AND_COMPLETION:
        o = _get(det, "ours", name, "summary") or {}
        sd = _get(det, "seed_default", "endings", name, "summary") or {}
        ss = _get(det, "seed", name, "summary") or {}
        rows[name] = {
            "ours_p50_s": o.get("p50"),
            "ours_p99_s": o.get("p99"),
            "ours_over_target": sum(
                1 for x in _get(det, "ours", name, "samples") or [] if x > TARGETS["detect_p99_s"]
            ),
            "ours_max_s": o.get("max"),
            "ours_n": o.get("n"),
            "seed_default_p50_s": sd.get("p50"),
            "seed_default_p99_s": sd.get("p99"),
            "seed_scaled_p50_s": ss.get("p50"),
            "speedup_p50": ratio(sd.get("p50"), o.get("p50")),
            "speedup_mean": ratio(sd.get("mean"), o.get("mean")),
            "speedup_p50_vs_scaled": ratio(ss.get("p50"), o.get("p50")),
        }
    p99s = [v["ours_p99_s"] for v in rows.values() if v["ours_p99_s"] is not None]
    speeds = [v["speedup_p50"] for v in rows.values() if v["speedup_p50"] is not None]
    h["detect"] = {
        "rows": rows,
        "worst_p99_s": max(p99s) if p99s else None,
        "min_speedup_p50": min(speeds) if speeds else None,
        "seed_default_poll_s": _get(det, "seed_default", "poll_s"),
        "target_p99_s": TARGETS["detect_p99_s"],
        "target_speedup": TARGETS["seed_speedup"],
    }
    h["detect"]["p99_met"] = None if not p99s else max(p99s) <= TARGETS["detect_p99_s"]
    h["detect"]["speedup_met"] = None if not speeds else min(speeds) >= TARGETS["seed_speedup"]

    hb = _get(det, "ours", "heartbeat", "summary") or {}
    knobs = _get(det, "knobs", "heartbeat") or {}
    budget = (knobs.get("stale") or 0) + (knobs.get("grace") or 0)
    rel = ratio(hb.get("p99"), budget) if budget else None
    h["hang"] = {
        "stale_plus_grace_s": budget or None,
        "overshoot_p50_s": hb.get("p50"),
        "overshoot_p99_s": hb.get("p99"),
        "overshoot_p99_rel": rel,
        "target_rel": TARGETS["hang_rel"],
        "met": None if rel is None else abs(rel) <= TARGETS["hang_rel"],
    }

    sc = res.get("scale") or {}
    pts = [p for p in sc.get("points", []) if "idle" in p]
    top = max(pts, key=lambda p: p["n"]) if pts else None
    h["scale"] = {
        "max_n_measured": top["n"] if top else None,
        "agent_kind_at_max": top.get("agent") if top else None,
        "idle_core_share_at_max": _get(top, "idle", "supervision_core_share") if top else None,
        "uss_mib_per_agent_at_max": _get(top, "memory_mib", "supervision_uss_per_agent") if top else None,
        "target_n": TARGETS["scale_n"],
        "target_core_share": TARGETS["idle_core_share"],
    }
    share = h["scale"]["idle_core_share_at_max"]
    h["scale"]["met"] = (
        None
        if top is None
        else (top["n"] >= TARGETS["scale_n"] and share is not None and share < TARGETS["idle_core_share"])
    )
    return h
