"""model_dropped (P15): the model is checked and recorded but never handed to the agent.

What it does wrong: ``--model`` is validated against the allowlist and stored in the task, but the
agent is started without ``DISPATCH_MODEL`` (the "forgot to export it" bug): the agent runs whatever
its own default model is while `status` claims the requested one.
Caught by: P15.model.recorded.
"""

from __future__ import annotations

from typing import Any

from conformance.known_bad import _seam


def pane_apply() -> None:
    from runner.wrapper import Wrapper

    def agent_env(orig: Any, self: Wrapper) -> dict[str, str]:
        env = orig(self)
        env.pop("DISPATCH_MODEL", None)  # the flaw
        return env

    _seam.wrap(Wrapper, "agent_env", agent_env)


def main(argv: list[str]) -> int:
    return _seam.run("model_dropped", argv, None, pane_apply)
