"""label_as_name (P7): the label is put into the tmux session name (for "readable" sessions).

What it does wrong: the session is named ``dk_<random>-<label>`` instead of ``dk_<random>``. The random
part keeps names distinct, but the label now reaches tmux: ``.`` and ``:`` are rewritten by tmux (the
session is not found under the name the dispatcher asked for), spaces break the parsing of tmux's
answers, and ``#{...}`` in a label is a format. Labels must be stored verbatim and used for nothing else.
Caught by: P07.label.hostile.
"""

from __future__ import annotations

from typing import Any

from conformance.known_bad import _seam


def apply() -> None:
    from runner.store import Store

    def insert(orig: Any, self: Store, row: dict[str, Any], *a: Any, **kw: Any) -> Any:
        # In place: the start's own row names the tmux session too, so tmux holds the very name that
        # was stored (a copy renamed only the record, and the start's reap then took the real session,
        # `dk_<random>`, for an orphan: even the label 'plain' ended session_lost).
        if row.get("label"):
            row["session"] = f"{row['session']}-{row['label']}"
        return orig(self, row, *a, **kw)

    _seam.wrap(Store, "insert", insert)


def main(argv: list[str]) -> int:
    return _seam.run("label_as_name", argv, apply)
