"""The timing knobs the suite sets on every implementation, and the detection bounds derived from them.

Bounds are knob-derived plus a slack that holds on a loaded 2-core machine (each `status` is a fresh
process of the implementation, a Python CLI can take a few hundred ms to start under load).
``DK_CONFORMANCE_SLACK_SCALE`` multiplies every slack for slower machines.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace


def _scale() -> float:
    try:
        return max(0.1, float(os.environ.get("DK_CONFORMANCE_SLACK_SCALE", "1")))
    except ValueError:
        return 1.0


@dataclass(frozen=True)
class Knobs:
    """DISPATCH_STALE_AFTER_S / DISPATCH_GRACE_S / DISPATCH_MAX_LIFETIME_S for one check."""

    # Heartbeat supervision stays on in every check, with a grace long enough that an agent booting on
    # a loaded machine is never judged hung; the heartbeat checks tighten it to TIGHT (0.6/0.6).
    stale: float = 0.6
    grace: float = 3.0
    max_lifetime: float = 20.0  # a safety net; the lifetime check sets it small (3 s)

    def env(self) -> dict[str, str]:
        return {
            "DISPATCH_STALE_AFTER_S": f"{self.stale:g}",
            "DISPATCH_GRACE_S": f"{self.grace:g}",
            "DISPATCH_MAX_LIFETIME_S": f"{self.max_lifetime:g}",
        }

    def but(self, **kw: float) -> Knobs:
        return replace(self, **kw)

    # -- bounds, in seconds from the injected event -------------------------------------------
    @property
    def slack(self) -> float:
        """What a correct implementation may need beyond the knobs on a loaded machine."""
        return 2.5 * _scale()

    @property
    def crash_bound(self) -> float:
        """Agent died (killed, session gone) -> terminal state observed."""
        return 2.0 + self.slack

    @property
    def hung_bound(self) -> float:
        """Last heartbeat change -> `hung` observed."""
        return self.stale + self.grace + self.slack

    @property
    def lifetime_bound(self) -> float:
        """Start -> `timed_out` observed."""
        return self.max_lifetime + self.slack

    @property
    def cleanup_bound(self) -> float:
        """`stop`/`reap` returned -> the last process of the task gone."""
        return 1.5 * _scale()


DEFAULT = Knobs()
TIGHT = {"stale": 0.6, "grace": 0.6}  # what the heartbeat checks run with
STATUS_FROZEN_LIMIT = 5.0  # CONTRACT.md: status answers within 5 s with a frozen tmux server
