"""no_flush (P3): when the agent ends, the log pipe is ended at once, without flushing it.

What it does wrong: the supervisor records the end and kills the pipe-pane process straight away (the
"kill-session right after the exit" order) instead of writing its end marker and waiting for the pipe to
acknowledge it. Output the agent printed just before exiting that is still in flight through tmux and
the pipe never reaches the log.
Caught by: P03.log.burst-kept.
"""

from __future__ import annotations

from conformance.known_bad import _seam


def pane_apply() -> None:
    from runner.procid import ProcessIdentity, kill_tree
    from runner.wrapper import Wrapper

    def flush_log(self: Wrapper) -> None:
        try:
            with open(self.p("logpipe.pid")) as f:
                pid, start = (int(x) for x in f.read().split())
        except (OSError, ValueError):
            return
        kill_tree([ProcessIdentity(pid, start)], None, term_timeout=0.5)  # no end marker, no wait

    Wrapper.flush_log = flush_log  # type: ignore[method-assign]


def main(argv: list[str]) -> int:
    return _seam.run("no_flush", argv, None, pane_apply)
