"""The timing knobs the suite sets on every implementation (runner.contract.Knobs, with its bounds).

Bounds are knob-derived plus a slack that holds on a loaded 2-core machine (each `status` is a fresh
process of the implementation, a Python CLI can take a few hundred ms to start under load).
``DK_CONFORMANCE_SLACK_SCALE`` multiplies every slack for slower machines.
"""

from __future__ import annotations

from runner.contract import Knobs

__all__ = ["Knobs", "DEFAULT", "TIGHT", "STATUS_FROZEN_LIMIT"]


DEFAULT = Knobs()
TIGHT = {"stale": 0.6, "grace": 0.6}  # what the heartbeat checks run with
STATUS_FROZEN_LIMIT = 5.0  # CONTRACT.md: status answers within 5 s with a frozen tmux server
