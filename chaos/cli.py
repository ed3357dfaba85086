"""`python -m chaos run ...`: long chaos soaks against any contract-v1 dispatcher, with a report.

Exit codes (runner.contract's suite table, shared with `dispatch conformance`): 0 every program passed,
1 at least one failed (see the report) or the implementation cannot be run, 2 bad usage.
"""

from __future__ import annotations

import argparse
import sys

from chaos.stateful import BEHAVIOURS, DEFAULT_IMPL, FAULTS
from runner.contract import SUITE_FAILED, SUITE_PASSED, SUITE_USAGE


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m chaos", description="Jepsen-style chaos runs against a dispatcher."
    )
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="random programs of operations and faults until the duration ends")
    r.add_argument(
        "--impl", default=DEFAULT_IMPL, help="the dispatcher command prefix (default: the reference runner)"
    )
    r.add_argument("--duration", default="10m", help="how long to run: 90, 90s, 10m, 1h (default 10m)")
    r.add_argument("--seed", type=int, default=0, help="first program's seed; program i uses SEED+i")
    r.add_argument(
        "--report", default=None, metavar="DIR", help="write report.json, report.md and replays here"
    )
    r.add_argument("--steps", type=int, default=8, help="steps per program (default 8)")
    r.add_argument("--stale", type=float, default=0.5, help="DISPATCH_STALE_AFTER_S (default 0.5)")
    r.add_argument("--grace", type=float, default=0.5, help="DISPATCH_GRACE_S (default 0.5)")
    r.add_argument("--max-lifetime", type=float, default=4.0, help="DISPATCH_MAX_LIFETIME_S (default 4)")
    r.add_argument(
        "--behaviours",
        default=",".join(BEHAVIOURS),
        help="comma-separated subset of: " + ",".join(BEHAVIOURS),
    )
    r.add_argument(
        "--faults",
        default=",".join(FAULTS),
        help="comma-separated subset of: " + ",".join(FAULTS) + " (empty: none)",
    )
    r.add_argument(
        "--load",
        default="0",
        help="CPU hogs to run for the whole soak: a count (4) or a multiple of the CPUs (2x); default 0",
    )
    r.add_argument(
        "--programs",
        type=int,
        default=0,
        metavar="N",
        help="stop after N programs even if time is left (default 0: as many as fit in the duration)",
    )
    r.add_argument("--no-shrink", action="store_true", help="report failing programs unshrunk (faster)")
    r.add_argument("--quiet", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    from chaos.soak import parse_duration, parse_load, run_soak
    from chaos.stateful import ChaosConfig
    from conformance.harness import ImplUnavailable, resolve_command

    p = _parser()
    try:
        a = p.parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    try:
        duration = parse_duration(a.duration)
        load = parse_load(a.load)
        if a.steps < 1:
            raise ValueError(f"--steps must be at least 1, got {a.steps}")
        if a.programs < 0:
            raise ValueError(f"--programs must be 0 (no limit) or more, got {a.programs}")
        cfg = ChaosConfig(
            stale=a.stale,
            grace=a.grace,
            max_lifetime=a.max_lifetime,
            behaviours=tuple(x for x in a.behaviours.split(",") if x),
            faults=tuple(x for x in a.faults.split(",") if x),
        )
    except ValueError as e:
        print(f"chaos: bad usage: {e}", file=sys.stderr)
        return SUITE_USAGE
    try:
        resolve_command(a.impl)
    except (ImplUnavailable, ValueError) as e:
        print(f"chaos: cannot run the implementation: {e}", file=sys.stderr)
        return SUITE_FAILED  # as `dispatch conformance` says it (runner.contract's suite table)

    def say(msg: str) -> None:
        if not a.quiet:
            print(f"chaos: {msg}", file=sys.stderr, flush=True)

    rep = run_soak(
        duration,
        seed=a.seed,
        impl=a.impl,
        config=cfg,
        steps=a.steps,
        report_dir=a.report,
        shrink=not a.no_shrink,
        progress=say,
        load=load,
        max_programs=a.programs,
    )
    ok = not rep.failures
    say(
        f"{rep.programs} programs, {rep.tasks} tasks, {sum(rep.faults.values())} faults, "
        f"{len(rep.failures)} failing, {rep.elapsed_s:.0f} s"
        + (f"; report in {a.report}" if a.report else "")
    )
    if a.report is None:
        print(rep.to_markdown())
    return SUITE_PASSED if ok else SUITE_FAILED
