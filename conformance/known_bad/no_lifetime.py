"""no_lifetime (P9): DISPATCH_MAX_LIFETIME_S is never read; tasks live for ever.

What it does wrong: the configuration loader ignores the max-lifetime knob (it is still listed as a
capability), so the supervisor never ends an agent that outlives it and `reap` has no lifetime to
enforce: a runaway agent is never ``timed_out``.
Caught by: P09.max-lifetime.timed-out.
"""

from __future__ import annotations

from typing import Any

from conformance.known_bad import _seam


def apply() -> None:
    from runner import config

    def load(orig: Any, *a: Any, **kw: Any) -> Any:
        return orig(*a, **kw)._replace(max_lifetime=0.0)  # knob ignored (the flaw); Config is a NamedTuple

    _seam.wrap(config, "load", load)


def main(argv: list[str]) -> int:
    return _seam.run("no_lifetime", argv, apply)
