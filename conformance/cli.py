"""`dispatch conformance`: run the suite on any implementation with good defaults.

``main(argv)`` returns the exit status: 0 when every MUST check passed (and every SHOULD with
``--level should``), 1 when one failed or the implementation could not start, 2 for bad usage.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence

from conformance.suite import pytest_args


def build_parser(prog: str = "dispatch conformance") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Run the dispatch conformance suite (contract v1, pitfalls P1-P15) against a dispatcher.",
    )
    p.add_argument(
        "--impl",
        default=None,
        metavar="CMD",
        help="dispatcher command prefix (default: the reference runner)",
    )
    p.add_argument(
        "--level",
        choices=("must", "should"),
        default="must",
        help="fail on MUST only (default) or also SHOULD",
    )
    p.add_argument(
        "--report",
        default=None,
        metavar="DIR",
        help="write junit.xml, conformance-report.json and .md to DIR",
    )
    p.add_argument(
        "-k",
        dest="k",
        default=None,
        metavar="EXPR",
        help="select checks (pytest -k; check ids work, e.g. 'P05 or P10')",
    )
    p.add_argument(
        "-n", dest="workers", default="2", metavar="N", help="parallel workers (default 2; 0 = in process)"
    )
    p.add_argument(
        "--keep-going",
        action="store_true",
        help="run every check even when the smoke stage failed (what needs the missing behaviour is blocked)",
    )
    p.add_argument("-v", dest="verbose", action="count", default=0, help="more pytest output")
    p.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    return p


# `dispatch conformance smoke|matrix`: the adapter-alone check and the implementations matrix (issue 15)
_SUBCOMMANDS = {"smoke": "conformance.smoke", "matrix": "conformance.matrix"}


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (without the program name) and run the suite in this process."""
    args = list(sys.argv[1:] if argv is None else argv)
    sub = _SUBCOMMANDS.get(args[0]) if args else None
    if sub is None and "--matrix" in args:  # `dispatch conformance --matrix ...` = `... matrix ...`
        sub, args = "conformance.matrix", ["matrix", *(a for a in args if a != "--matrix")]
    if sub is not None:  # smoke / matrix (issue 15): their own parsers
        import importlib

        return int(importlib.import_module(sub).main(args[1:], prog=f"dispatch conformance {args[0]}"))
    opts = build_parser().parse_args(args)
    workers = opts.workers
    if workers not in ("0", "1", "auto", "logical") and not str(workers).isdigit():
        print(f"dispatch conformance: -n wants a number, got {workers!r}", file=sys.stderr)
        return 2
    if workers not in ("0", "1"):
        import importlib.util

        if importlib.util.find_spec("xdist") is None:
            print("dispatch conformance: pytest-xdist is not installed; running with -n 0", file=sys.stderr)
            workers = "0"
    extra = ["-q"] if not opts.verbose else ["-" + "v" * opts.verbose]
    # this process imported `conformance` before pytest could rewrite its asserts: expected, not news
    extra += ["-W", "ignore::pytest.PytestAssertRewriteWarning"]
    args = pytest_args(
        opts.impl,
        level=opts.level,
        report_dir=opts.report,
        k=opts.k,
        workers=workers,
        extra=[*extra, *(["--dispatch-keep-going"] if opts.keep_going else []), *opts.pytest_args],
    )
    os.environ.pop("DK_CONFORMANCE_RUN", None)
    import pytest

    # xdist makes pytest create $TMPDIR/pytest-of-USER/pytest-N for its workers (pytest keeps the 3
    # newest), though no check uses tmp_path: a private basetemp, removed after, leaves nothing of ours
    own_base = None
    if workers not in ("0", "1") and not any(a.startswith("--basetemp") for a in opts.pytest_args):
        own_base = tempfile.mkdtemp(prefix="dkconf-bt-")
        args += ["--basetemp", own_base]
    try:
        return int(pytest.main(args))
    finally:
        if own_base:
            shutil.rmtree(own_base, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
