"""Plumbing shared by the known-bads: patch one seam of the reference runner, then run it.

A known-bad module calls :func:`run` with a CLI-side ``apply`` (patches in the `dispatch` process) and,
when its flaw lives in the in-pane supervisor, a ``pane_apply``: the session then runs
``python -m conformance.known_bad NAME _wrapper TASKDIR`` instead of ``python -m runner.wrapper TASKDIR``,
which applies ``pane_apply`` and hands over to ``runner.wrapper.main``. Nothing in runner/ is edited.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

WRAPPER_MODULE = "runner.wrapper"


def wrap(owner: Any, attr: str, fn: Callable[..., Any]) -> None:
    """Replace ``owner.attr`` with ``fn(original, *args, **kwargs)`` (composes with earlier wraps)."""
    orig = getattr(owner, attr)

    @functools.wraps(orig)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return fn(orig, *args, **kwargs)

    setattr(owner, attr, wrapper)


def swap_pane_module(name: str, mode: str = "_wrapper") -> None:
    """Make `start` launch ``python -m conformance.known_bad NAME MODE TASKDIR`` as the pane's process."""
    from runner.tmux import Tmux

    def new_session(
        orig: Callable[..., Any], self: Any, sname: str, argv: Sequence[str], *a: Any, **kw: Any
    ) -> Any:
        argv = list(argv)
        i = argv.index(WRAPPER_MODULE) if WRAPPER_MODULE in argv else -1
        if i > 0 and argv[i - 1] == "-m":  # interpreter flags (-S) before -m are kept
            argv = [*argv[:i], "conformance.known_bad", name, mode, *argv[i + 1 :]]
        elif i > 1 and argv[i - 2] == "-c":  # runner.tasks.PANE_BOOT's form: -c BOOT runner.wrapper
            argv = [*argv[: i - 2], "-m", "conformance.known_bad", name, mode, *argv[i + 1 :]]
        return orig(self, sname, argv, *a, **kw)

    wrap(Tmux, "new_session", new_session)


def name_capabilities(name: str) -> None:
    """Report the known-bad's own name in `capabilities` (same capability list as the reference)."""
    from runner.tasks import Runner

    orig = Runner.capabilities

    def capabilities() -> dict[str, Any]:
        doc = dict(orig())
        doc["implementation"] = f"known_bad/{name}"
        return doc

    Runner.capabilities = staticmethod(capabilities)  # type: ignore[method-assign]


def run(
    name: str,
    argv: Sequence[str],
    apply: Callable[[], None] | None = None,
    pane_apply: Callable[[], None] | None = None,
    modes: Mapping[str, Callable[[list[str]], int]] | None = None,
) -> int:
    """Entry point of a patching known-bad: CLI verbs, the patched wrapper, or an extra pane mode."""
    argv = list(argv)
    if argv and modes and argv[0] in modes:
        return modes[argv[0]](argv[1:])
    if argv[:1] == ["_wrapper"]:
        if pane_apply is not None:
            pane_apply()
        from runner import wrapper

        return wrapper.main(argv[1:])
    if apply is not None:
        apply()
    if pane_apply is not None:
        swap_pane_module(name)
    name_capabilities(name)
    from runner import cli

    return cli.main(argv)


def task_json(taskdir: str) -> dict[str, Any]:
    """The task.json the CLI wrote for the wrapper (argv, cwd, knobs, log_path, ...)."""
    import json
    import os

    with open(os.path.join(taskdir, "task.json")) as f:
        return json.load(f)


def pane_taskdir() -> str:
    """TASKDIR of the patched wrapper process (its last argv word)."""
    return sys.argv[-1]
