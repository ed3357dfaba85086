"""`python -m containers build|run|sweep|platforms|engine` (also `dispatch containers ...` via main(argv)).

Exit codes: 0 all checks as expected, 1 a check failed or a platform errored, 2 bad usage,
3 environment (no docker engine, debootstrap failed), 130 interrupted (after sweeping).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from containers import coarsefs, engine, images, platforms
from containers.run import DEFAULT_CONFORMANCE, DEFAULT_PYTEST, RunOptions, _Interrupted, run
from containers.sweep import leftovers, sweep


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="dispatch containers", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="verb", required=True)
    plat_help = f"platform(s), repeatable or comma-separated; default all: {', '.join(platforms.PLATFORMS)}"

    b = sub.add_parser("build", help="build (or find cached) platform images")
    b.add_argument("--platform", action="append", help=plat_help)
    b.add_argument("--force", action="store_true", help="rebuild the platform layer even if cached")

    r = sub.add_parser("run", help="run the checks on each platform and write the matrix")
    r.add_argument("--platform", action="append", help=plat_help)
    r.add_argument(
        "--impl", default="dispatch", help="dispatcher under test, a command prefix (default: dispatch)"
    )
    r.add_argument(
        "--report", default="reports/containers", help="report directory (default: reports/containers)"
    )
    r.add_argument("--command", help="run this shell command in each container instead of the checks")
    r.add_argument(
        "--no-kit",
        action="store_true",
        help="with --command: do not build or install the kit wheel (the command needs only the source)",
    )
    r.add_argument("--pytest", default=DEFAULT_PYTEST, help="pytest args for the kit's tests; '' skips them")
    r.add_argument(
        "--conformance",
        default=DEFAULT_CONFORMANCE,
        help="conformance command ({impl}, {report}); '' skips it",
    )
    r.add_argument("--jobs", type=int, default=1, help="platforms run at once (default 1)")
    r.add_argument("--timeout", type=float, default=1500.0, help="seconds per platform (default 1500)")
    r.add_argument(
        "--mount", action="append", default=[], help="HOST[:PATH] read-only bind, e.g. an impl's dir"
    )
    r.add_argument(
        "--privileged", action="store_true", help="privileged containers (loop devices); off by default"
    )
    r.add_argument("--keep", action="store_true", help="keep containers after the run (remove with `sweep`)")
    r.add_argument("--no-coarse-mtime", action="store_true", help="macOS-like: keep TMPDIR on the overlay fs")
    r.add_argument(
        "--tmpdir", help="TMPDIR inside the containers (e.g. /tmp: macos-like's /tmp -> /private/tmp)"
    )
    r.add_argument("--run-id", help="label value for this run's resources (default: time + random)")

    s = sub.add_parser("sweep", help="remove containers/networks/volumes labelled by runs")
    s.add_argument("--run", help="only this run id (default: every dispatch-kit run)")

    sub.add_parser("platforms", help="list the platforms as JSON")
    sub.add_parser("engine", help="make sure a docker engine answers (install/start dockerd)")
    return ap


def main(argv: list[str] | None = None) -> int:
    ap = _parser()
    a = ap.parse_args(argv)
    if a.verb == "platforms":
        print(json.dumps({n: vars(p) for n, p in platforms.PLATFORMS.items()}, indent=2))
        return 0
    try:
        chosen = platforms.select(getattr(a, "platform", None))
    except ValueError as e:
        print(f"dispatch containers: {e}", file=sys.stderr)
        return 2
    if getattr(a, "jobs", 1) < 1:
        print("dispatch containers: --jobs must be >= 1", file=sys.stderr)
        return 2
    if getattr(a, "no_kit", False) and not a.command:
        print(
            "dispatch containers: --no-kit needs --command (the checks run the installed kit)",
            file=sys.stderr,
        )
        return 2
    try:
        client = engine.ensure_engine()
    except engine.EngineUnavailable as e:
        print(f"dispatch containers: {e}", file=sys.stderr)
        return 3
    if a.verb == "engine":
        print(f"docker engine {client.version().get('Version')} answers")
        return 0
    if a.verb == "sweep":
        counts = sweep(client, a.run)
        counts["coarse_filesystems"] = coarsefs.sweep(a.run or "")
        left = leftovers(client, a.run)
        print(json.dumps({"removed": counts, "left": left}))
        return 0 if not any(left.values()) else 1
    try:
        if a.verb == "build":
            try:
                results = images.build(client, chosen, force=a.force)
            except RuntimeError as e:
                print(f"dispatch containers: {e}", file=sys.stderr)
                return 3
            for r in results:
                print(f"{r.platform:12} {'cached' if r.cached else 'built '} {r.seconds:7.1f}s  {r.tag}")
            return 0
        opts = RunOptions(
            platforms=chosen,
            impl=a.impl,
            report_dir=Path(a.report),
            command=a.command,
            install_kit=not a.no_kit,
            pytest_args=a.pytest,
            conformance=a.conformance,
            jobs=a.jobs,
            timeout=a.timeout,
            privileged=a.privileged,
            mounts=a.mount,
            keep=a.keep,
            coarse_mtime=not a.no_coarse_mtime and not a.tmpdir,
            tmpdir=a.tmpdir,
        )
        if a.run_id:
            opts.run_id = a.run_id
        try:
            m = run(client, opts)
        except RuntimeError as e:
            print(f"dispatch containers: {e}", file=sys.stderr)
            return 3
        print(Path(opts.report_dir, "matrix.md").read_text())
        return 0 if m["ok"] else 1
    except (KeyboardInterrupt, _Interrupted):
        print("dispatch containers: interrupted (containers swept)", file=sys.stderr)
        return 130
