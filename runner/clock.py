"""Clocks: monotonic for every duration and deadline, wall only for display (P6, P14)."""

from __future__ import annotations

import time


def mono() -> float:
    """Seconds on the system-wide monotonic clock (comparable across processes on one boot)."""
    return time.monotonic()


def wall() -> float:
    """Epoch seconds, for display and records only; never compared to decide anything."""
    return time.time()


class Deadline:
    """A point on the monotonic clock; `remaining()` is what a timeout parameter should get."""

    __slots__ = ("at",)

    def __init__(self, seconds: float | None) -> None:
        self.at = None if seconds is None else mono() + max(0.0, seconds)

    def remaining(self) -> float | None:
        """Seconds left (>= 0), or None for no deadline."""
        return None if self.at is None else max(0.0, self.at - mono())

    def expired(self) -> bool:
        return self.at is not None and mono() >= self.at

    def cap(self, seconds: float) -> float:
        """min(seconds, remaining) — for one step of a loop bounded by this deadline."""
        r = self.remaining()
        return seconds if r is None else min(seconds, r)

    def __repr__(self) -> str:
        return f"Deadline(remaining={self.remaining()!r})"
