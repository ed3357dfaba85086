"""hardcoded_tmp (P11): temporary files go under a hard-coded ``/tmp``, ignoring ``TMPDIR``.

What it does wrong: the agent's private prompt copy (``DISPATCH_PROMPT_FILE``) is made with
``mkstemp(dir="/tmp")`` -- the seed's ``/tmp/tmux-prompt-<name>.txt`` habit -- instead of living in the
task dir under the state dir. It is removed when the task ends, but while it runs the prompt sits outside
both the state dir and ``$TMPDIR`` (and `start` fails outright where /tmp is not writable).
Caught by: the P11 temp-location checks.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

from conformance.known_bad import _seam

# The kit's tests point DK_HARD_TMP at a directory under /tmp that their session removes: the flaw
# (ignoring TMPDIR, writing under /tmp) is unchanged, but a SIGKILLed wrapper's copy is not left behind.
HARD_TMP = os.environ.get("DK_HARD_TMP", "/tmp")


def pane_apply() -> None:
    from runner.wrapper import Wrapper

    made: list[str] = []

    def agent_env(orig: Any, self: Wrapper) -> dict[str, str]:
        env = orig(self)
        os.makedirs(HARD_TMP, exist_ok=True)
        fd, path = tempfile.mkstemp(prefix=f"dispatch-prompt-{self.task_id}-", suffix=".txt", dir=HARD_TMP)
        with open(self.p("prompt"), "rb") as src, os.fdopen(fd, "wb") as dst:
            dst.write(src.read())
        made.append(path)
        env["DISPATCH_PROMPT_FILE"] = path
        return env

    def finish(orig: Any, self: Wrapper, *a: Any, **kw: Any) -> None:
        try:
            orig(self, *a, **kw)
        finally:
            for p in made:
                try:
                    os.unlink(p)
                except OSError:
                    pass

    _seam.wrap(Wrapper, "agent_env", agent_env)
    _seam.wrap(Wrapper, "finish", finish)


def main(argv: list[str]) -> int:
    return _seam.run("hardcoded_tmp", argv, None, pane_apply)
