"""events_newest_first (EX): `events` lists transitions newest first.

What it does wrong: the event query orders by ``seq DESC`` (the "latest first" habit of activity
feeds), so the array runs backwards: ``seq`` decreases, the terminal state comes first and monotonic
times go back in time. The contract's array is the transitions in the order they happened.
Caught by: EX.events.transitions.
"""

from __future__ import annotations

from typing import Any

from conformance.known_bad import _seam


def apply() -> None:
    from runner.tasks import Runner

    def events(orig: Any, self: Runner, task_id: str) -> list[dict[str, Any]]:
        return list(reversed(orig(self, task_id)))  # the flaw

    _seam.wrap(Runner, "events", events)


def main(argv: list[str]) -> int:
    return _seam.run("events_newest_first", argv, apply)
