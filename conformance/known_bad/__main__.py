"""``python -m conformance.known_bad NAME VERB ...``: run one known-bad dispatcher.

NAME's module (conformance/known_bad/NAME.py) exposes ``main(argv) -> int``; most apply one patch to
the reference runner and hand over to ``runner.cli.main``.
"""

from __future__ import annotations

import importlib
import sys

from conformance.known_bad import KNOWN_BAD


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    names = sorted(n for n, k in KNOWN_BAD.items() if k.impl[:1] != ["bash"])
    if not argv or argv[0] not in names:
        print(
            f"usage: python -m conformance.known_bad NAME VERB ...  (NAME: {', '.join(names)})",
            file=sys.stderr,
        )
        return 2
    mod = importlib.import_module(f"conformance.known_bad.{argv[0]}")
    return int(mod.main(argv[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main())
