"""wait_no_timeout (EX): `wait --timeout` returns the live task with exit 0 when the timeout is reached.

What it does wrong: when ``--timeout`` expires before the task ended, `wait` prints the task as it is
and exits 0 instead of 124, so a caller's ``dispatch wait ID --timeout 600 && merge`` proceeds as if
the agent had finished.
Caught by: EX.wait.timeout-124.
"""

from __future__ import annotations

from typing import Any

from conformance.known_bad import _seam


def apply() -> None:
    from runner.tasks import Runner

    def wait(orig: Any, self: Runner, task_id: str, timeout: float | None) -> tuple[dict[str, Any], bool]:
        task, _ended = orig(self, task_id, timeout)
        return task, True  # "done waiting" reported as "ended" (the flaw)

    _seam.wrap(Runner, "wait", wait)


def main(argv: list[str]) -> int:
    return _seam.run("wait_no_timeout", argv, apply)
