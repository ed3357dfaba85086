"""send_to_ended (EX): `send` to a task that has ended reports success.

What it does wrong: `send` does not look at the task's state and swallows tmux's complaint about the
missing pane ("fire and forget"): text sent to an ended task is reported ``delivered: true`` with exit
0, where the contract says exit 2 ``not_running``. The caller believes the agent got its answer.
Caught by: EX.send.ended-task.
"""

from __future__ import annotations

import os
from typing import Any

from conformance.known_bad import _seam


def apply() -> None:
    from runner.errors import DispatchError
    from runner.tasks import Runner

    def send(orig: Any, self: Runner, task_id: str, text_file: str) -> dict[str, Any]:
        try:
            return orig(self, task_id, text_file)
        except DispatchError as e:
            if e.code != "not_running":
                raise
            return {"task_id": task_id, "delivered": True, "bytes": os.path.getsize(text_file)}

    _seam.wrap(Runner, "send", send)


def main(argv: list[str]) -> int:
    return _seam.run("send_to_ended", argv, apply)
