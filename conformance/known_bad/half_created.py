"""half_created (EX): `start` reserves the task before checking its cwd and prompt file.

What it does wrong: after checking the task id, label, model and argv, `start` creates the state dir and
inserts the task record (state ``starting``) and only then checks ``--cwd`` and the prompt file. A
start refused for those reasons exits 2 with the right code -- but leaves a task that never
starts behind (it shows in `list`, and the id is taken).
Caught by: EX.refusals.nothing-created.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any

from conformance.known_bad import _seam


def apply() -> None:
    from runner import validate
    from runner.config import SESSION_HEX, SESSION_PREFIX
    from runner.tasks import Runner

    def start(
        orig: Any,
        self: Runner,
        task_id: str,
        cwd: str,
        prompt_file: str,
        argv: Sequence[str],
        label: str | None = None,
        model: str | None = None,
    ) -> dict[str, Any]:
        tid = validate.task_id(task_id)
        validate.label(label)
        validate.model(model, self.cfg.models)
        argv = validate.argv(argv)
        self.require_tmux()
        store = self.store(create=True)
        reserved = store.insert(  # the flaw: the record exists before the rest is validated
            {
                "task_id": tid,
                "session": SESSION_PREFIX + secrets.token_hex(SESSION_HEX // 2),
                "argv": list(argv),
                "model": model,
                "label": label,
                "task_dir": str(self.cfg.tasks_dir / tid),
                "run_marker": "dkr" + secrets.token_hex(12),
                "log_path": None,
                "max_lifetime": self.cfg.max_lifetime,
            }
        )
        validate.cwd(cwd)
        validate.readable_file(prompt_file, "bad_prompt_file", "prompt file")
        if reserved:
            store.delete(tid)  # all checks passed: the reference path re-creates it properly
        return orig(self, task_id, cwd, prompt_file, argv, label, model)

    _seam.wrap(Runner, "start", start)


def main(argv: list[str]) -> int:
    return _seam.run("half_created", argv, apply)
