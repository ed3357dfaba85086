"""`python -m bench [--quick] [--out DIR]`: measure, write the JSON, the plots and docs/benchmarks.md.

Without --out: JSON under bench/results/, plots under docs/bench/, the page at docs/benchmarks.md.
With --out DIR: everything under DIR (DIR/bench-*.json, DIR/bench/*.png, DIR/benchmarks.md), the repo's
docs untouched (what the smoke test does).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parent.parent
RESULT_NAME = "bench.json"  # docs/bench/bench.json: the results the page shows
AGENT_BEFORE = "41a408a"  # the last commit before the agent-layer redesign (issue 13)


def _ints(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a few samples of everything (a smoke run)")
    p.add_argument("--out", default=None, metavar="DIR", help="write JSON, plots and page under DIR")
    p.add_argument("--runs", type=int, default=None, help="detection runs per ending (full 50, quick 3)")
    p.add_argument(
        "--start-runs", type=int, default=None, help="start runs per dispatcher (full 50, quick 3)"
    )
    p.add_argument("--scale", type=_ints, default=None, help="N values (full 1,10,100,500; quick 1,3)")
    p.add_argument("--idle", type=float, default=None, help="idle window for CPU, s (full 15, quick 2)")
    p.add_argument(
        "--seed-default-n",
        type=int,
        default=None,
        help="seed-at-defaults tasks per ending (full 20, quick 1)",
    )
    p.add_argument(
        "--seed-default-poll",
        type=float,
        default=None,
        help="the seed's poll for the headline (full 60 = its documented default; quick 2)",
    )
    p.add_argument(
        "--idle-defaults-n",
        type=int,
        default=None,
        help="N for the default-knobs idle point (full 100, quick 2)",
    )
    p.add_argument("--seed-poll", type=float, default=0.25, help="the scaled-down seed poll (script default)")
    p.add_argument(
        "--suite", action="store_true", help="also time the conformance suite (-n 1 and -n 2; slow)"
    )
    p.add_argument("--suite-workers", type=_ints, default=[1, 2])
    p.add_argument(
        "--only",
        default="start,detect,scale,idle_defaults,queue",
        help="comma-separated parts: start,detect,scale,idle_defaults,queue,suite,agent (agent: the agent layer before/after, bench/agent_cost.py)",
    )
    p.add_argument(
        "--agent-before",
        default=AGENT_BEFORE,
        metavar="REV",
        help="the revision the agent part compares against (default: before the agent-layer redesign)",
    )
    p.add_argument(
        "--start-before",
        default=None,
        metavar="REV",
        help="also run the reference at REV in the start part's rounds (before/after side by side)",
    )
    p.add_argument(
        "--start-install",
        choices=("wheel", "editable", "both"),
        default=None,
        help="which `dispatch` the start part times as ours: this tree's wheel in a private venv (as a "
        "user's pip install has it; the headline), the dev checkout's editable install, or both in the "
        "same rounds (wheel = ours, editable beside it; the default, --quick: editable)",
    )
    p.add_argument("--from-json", default=None, metavar="FILE", help="only regenerate the page and plots")
    p.add_argument(
        "--reuse",
        default=None,
        metavar="FILE",
        help="take the parts not measured in this run from an earlier results JSON (the page says so)",
    )
    return p


def _others(sample_s: float = 1.0, top: int = 5) -> str:
    """The busiest other processes right now (the machine is shared): 'cmd (cpu%)', comma-separated."""
    me = os.getpid()
    procs = []
    for p in psutil.process_iter(["pid", "cmdline", "name"]):
        if p.pid == me:
            continue
        try:
            p.cpu_percent(None)
            procs.append(p)
        except psutil.Error:
            pass
    time.sleep(sample_s)
    load = []
    for p in procs:
        try:
            c = p.cpu_percent(None)
        except psutil.Error:
            continue
        if c >= 5.0:
            words = p.info.get("cmdline") or [p.info.get("name") or "?"]
            short = " ".join([os.path.basename(words[0]), *words[1:]])[:70]
            load.append((c, short))
    load.sort(reverse=True)
    return ", ".join(f"`{s}` ({c:.0f} %)" for c, s in load[:top])


def _rev() -> str:
    """The commit measured, with '+dirty' when runner/ differs from it (others edit the checkout)."""
    import subprocess

    def git(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", "-C", str(REPO), *args], capture_output=True, text=True
            ).stdout.strip()
        except OSError:  # no git installed (a platform container): the measurement stands without its rev
            return ""

    rev = git("rev-parse", "--short", "HEAD") or "unknown"
    return rev + ("+dirty" if git("status", "--porcelain", "--", "runner") else "")


def _keep(res: dict[str, Any], plot_dir: Path) -> None:
    """The JSON the page was generated from, beside its plots (docs/bench/bench.json, committed with the
    page): bench/results/ keeps every run but is not committed."""
    plot_dir.mkdir(parents=True, exist_ok=True)
    (plot_dir / RESULT_NAME).write_text(json.dumps(res, indent=1) + "\n")


def _other_sections(res: dict[str, Any], md_path: Path, out: Path | None) -> None:
    """The agent-layer and queue sections, from their committed JSON when this run did not measure them:
    report.write rewrites the whole page, and without this a run of other parts dropped both."""
    if out is not None:
        return
    from bench import agent_cost
    from bench import queue as queue_bench

    qj = REPO / "docs" / "bench" / "queue.json"
    if "queue" not in res and qj.exists():
        queue_bench.write_section(md_path, json.loads(qj.read_text())["queue"])
    if "agent" not in res and agent_cost.RESULT.exists():
        agent_cost.write_page(json.loads(agent_cost.RESULT.read_text()), md_path)


def main(argv: list[str] | None = None) -> int:
    opts = build_parser().parse_args(argv)
    out = Path(opts.out).resolve() if opts.out else None
    json_dir = out or REPO / "bench" / "results"
    plot_dir = (out / "bench") if out else REPO / "docs" / "bench"
    md_path = (out / "benchmarks.md") if out else REPO / "docs" / "benchmarks.md"

    from bench import headline, report

    if opts.from_json:
        res = json.loads(Path(opts.from_json).read_text())
        res["headline"] = headline.compute(res)
        report.write(res, md_path, plot_dir)
        _keep(res, plot_dir)
        _other_sections(res, md_path, out)
        print(f"wrote {md_path}")
        return 0

    from bench import detect, machine, scale, start, suite
    from bench.agent_cost import precompile
    from bench.common import raise_fd_limit

    # Bytecode as an installed copy has it: with PYTHONDONTWRITEBYTECODE set and a source newer than its
    # .pyc (a checkout being edited), every wrapper and CLI compiles those modules again, which costs
    # start time and leaves each idle wrapper ~1.6 MiB of heap larger (5.0 instead of 3.4 MiB USS).
    precompile(REPO)

    q = opts.quick
    cfg = {
        "runs": opts.runs or (3 if q else 50),
        "start_runs": opts.start_runs or (3 if q else 50),
        "scale": opts.scale or ([1, 3] if q else [1, 10, 100, 500]),
        "idle_s": opts.idle or (2.0 if q else 15.0),
        "seed_default_n": opts.seed_default_n if opts.seed_default_n is not None else (1 if q else 20),
        "seed_default_poll": opts.seed_default_poll or (2.0 if q else 60.0),
        "seed_poll": opts.seed_poll,
        "idle_defaults_n": opts.idle_defaults_n or (2 if q else 100),
        "start_install": opts.start_install or ("editable" if q else "both"),
    }
    parts = {x.strip() for x in opts.only.split(",") if x.strip()}
    if opts.suite:
        parts.add("suite")
    raise_fd_limit()

    def log(msg: str) -> None:
        print(msg, flush=True)

    t0 = time.monotonic()
    cmd = "python -m bench" + (
        "" if argv is None and len(sys.argv) <= 1 else " " + shlex.join(argv or sys.argv[1:])
    )
    res: dict[str, Any] = {
        "meta": {
            "command": cmd,
            "quick": q,
            "config": cfg,
            "parts": sorted(parts),
            "started": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M"),
            "rev": _rev(),
            "machine": machine.describe(),
            "loadavg_start": list(os.getloadavg()),
            "others": _others(),
        }
    }
    log(f"bench: {cfg} parts={sorted(parts)}; busy: {res['meta']['others'] or 'nothing else'}")
    if "start" in parts:
        log("start latency")
        res["start"] = start.run(
            cfg["start_runs"], cfg["seed_poll"], log, opts.start_before, cfg["start_install"]
        )
    if "detect" in parts:
        log("detection latency")
        res["detect"] = detect.run(
            cfg["runs"], cfg["seed_poll"], cfg["seed_default_n"], log, cfg["seed_default_poll"]
        )
    if "scale" in parts:
        log("scale")
        res["scale"] = scale.run(cfg["scale"], cfg["idle_s"], log)
    if "idle_defaults" in parts:
        log("idle cost with default knobs")
        res["idle_defaults"] = scale.run_defaults(cfg["idle_defaults_n"], cfg["idle_s"], log)
    if "queue" in parts:
        from bench import queue as queue_bench

        log("queue: PostgreSQL across hosts vs sqlite on one")
        res["queue"] = queue_bench.run(q, log)
    if "agent" in parts:
        from bench import agent_cost

        log(f"agent layer: before ({opts.agent_before}) and after, side by side")
        res["agent"] = agent_cost.run(
            opts.agent_before, 3 if q else 9, 4.0 if q else 10.0, 1 if q else 3, log
        )
        if parts == {"agent"} and not opts.reuse:  # only this section of the page changes
            log(f"wrote {agent_cost.save(res['agent'], out)} and its section of {md_path}")
            return 0
    if "suite" in parts:
        log("conformance suite cost")
        res["suite"] = suite.run(opts.suite_workers, log)
    if opts.reuse:
        old = json.loads(Path(opts.reuse).read_text())
        res["meta"]["reused"] = {}
        for part in ("start", "detect", "scale", "idle_defaults", "queue", "suite"):
            if part not in res and part in old:
                res[part] = old[part]
                earlier = (old["meta"].get("reused") or {}).get(part)
                if earlier:  # reused there too: keep pointing at the run that measured it
                    res["meta"]["reused"][part] = earlier
                    continue
                res["meta"]["reused"][part] = {
                    "from": os.path.basename(opts.reuse),
                    "started": old["meta"]["started"],
                    "loadavg_start": old["meta"]["loadavg_start"],
                    "loadavg_end": old["meta"].get("loadavg_end"),
                    "rev": old["meta"].get("rev"),
                    "others": old["meta"].get("others", ""),
                }
    res["meta"]["duration_s"] = time.monotonic() - t0
    res["meta"]["loadavg_end"] = list(os.getloadavg())
    res["headline"] = headline.compute(res)
    json_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    jp = json_dir / f"bench-{'quick' if q else 'full'}-{stamp}.json"
    jp.write_text(json.dumps(res, indent=1) + "\n")
    report.write(res, md_path, plot_dir)
    _keep(res, plot_dir)
    _other_sections(res, md_path, out)
    if "agent" in res:  # its own section of the page, kept across report.write (bench/agent_cost.py)
        from bench import agent_cost

        agent_cost.save(res["agent"], out)
    if "queue" in res:  # its own section of the page (bench/queue.py)
        from bench import queue as queue_bench

        queue_bench.write_section(md_path, res["queue"])
    log(f"wrote {jp}, {md_path}, plots in {plot_dir}")
    log(json.dumps(res["headline"], indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
