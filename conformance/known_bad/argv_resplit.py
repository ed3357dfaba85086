"""argv_resplit (P15): the agent's argv is joined into a command line and split again on whitespace.

What it does wrong: the supervisor runs ``" ".join(argv).split()`` instead of the argv it was given
(the command-string habit, without even a shell): words with spaces fall apart, empty words vanish. The
task still records the argv as given, so the argv reported is not the argv that ran.
Caught by: P15.argv.recorded.
"""

from __future__ import annotations

from typing import Any

from conformance.known_bad import _seam


def pane_apply() -> None:
    from runner.wrapper import Wrapper

    def init(orig: Any, self: Wrapper, taskdir: str) -> None:
        orig(self, taskdir)
        self.task["argv"] = " ".join(self.task["argv"]).split()  # the flaw

    _seam.wrap(Wrapper, "__init__", init)


def main(argv: list[str]) -> int:
    return _seam.run("argv_resplit", argv, None, pane_apply)
