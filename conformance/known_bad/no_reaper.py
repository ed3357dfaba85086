"""no_reaper (P9): `reap` does nothing, and `stop` ends only the agent, not its process tree.

What it does wrong: ``reaper.reap`` returns ``[]`` (so neither `reap` nor the reap run by every `start`
ends lost tasks, expired tasks or ownerless sessions), and every tree kill signals only its roots: no
descendant walk, no run-marker search. A double-forked ``setsid`` grandchild (fake agent ``--daemon``)
or plain children (``--children N``) survive `stop`; a task whose supervisor died keeps its session.
Caught by: the P09 stop-tree / reap checks.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterable
from typing import Any

from conformance.known_bad import _seam


def kill_roots(
    roots: Iterable[Any],
    marker: tuple[str, str] | None = None,
    term_timeout: float = 1.0,
    kill_timeout: float = 2.0,
    reap: Callable[[int, int], None] | None = None,
) -> list[Any]:
    """TERM, then KILL, the given processes only (what `kill $PID` in a cleanup trap does)."""
    from runner.clock import Deadline
    from runner.procid import reap_children

    roots = [r for r in roots if r is not None]
    sent = [r for r in roots if r.signal(signal.SIGTERM)]
    dl = Deadline(term_timeout)
    for r in sent:
        r.wait_exit(dl)
        if reap:
            reap_children(reap)
    for r in sent:
        if r.is_alive():
            r.signal(signal.SIGKILL)
            r.wait_exit(kill_timeout)
    if reap:
        reap_children(reap)
    return sent


def apply() -> None:
    from runner import reaper

    reaper.reap = lambda store, tmux: []
    reaper.kill_tree = kill_roots


def pane_apply() -> None:
    from runner import wrapper

    wrapper.kill_tree = kill_roots


def main(argv: list[str]) -> int:
    return _seam.run("no_reaper", argv, apply, pane_apply)
