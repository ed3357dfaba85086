"""The fake agents' journal: what really happened, one JSON line per event, durable as written.

Writers flush and fsync every line so a SIGKILL right after an event cannot lose it; readers tolerate a
torn last line (the writer may be mid-write or killed). Times: ``mono`` is CLOCK_MONOTONIC (comparable
across processes on one host), ``wall`` is epoch seconds for display only.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fake_agents.jwriter import Journal

__all__ = ["Event", "Journal", "all_of", "first", "read", "wait_for"]

_BASE = ("event", "pid", "mono", "wall")


@dataclass(frozen=True)
class Event:
    """One journal line: the fixed fields, and everything else in ``data``."""

    event: str
    pid: int
    mono: float
    wall: float
    data: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)


def _parse(line: bytes) -> Event | None:
    try:
        rec = json.loads(line)
    except ValueError:
        return None
    if not isinstance(rec, dict) or "event" not in rec:
        return None
    data = {k: v for k, v in rec.items() if k not in _BASE}
    return Event(
        str(rec["event"]),
        int(rec.get("pid", 0)),
        float(rec.get("mono", 0.0)),
        float(rec.get("wall", 0.0)),
        data,
    )


def read(path: str | os.PathLike[str]) -> list[Event]:
    """All complete events in order; a missing file is an empty journal, a torn last line is skipped."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return []
    out = []
    for line in raw.split(b"\n"):
        if line.strip():
            ev = _parse(line)
            if ev is not None:
                out.append(ev)
    return out


def first(events: list[Event], name: str) -> Event | None:
    """The first event called ``name``, or None."""
    return next((e for e in events if e.event == name), None)


def all_of(events: list[Event], name: str) -> list[Event]:
    """Every event called ``name``, in order."""
    return [e for e in events if e.event == name]


def wait_for(
    path: str | os.PathLike[str],
    event: str,
    timeout: float,
    where: Callable[[Event], bool] | None = None,
    count: int = 1,
    poll: float = 0.01,
) -> Event:
    """Block until the journal holds ``count`` events named ``event`` (matching ``where``); return the last.

    Raises TimeoutError (with the journal's event names) when the deadline passes first.
    """
    deadline = time.monotonic() + timeout
    while True:
        hits = [e for e in read(path) if e.event == event and (where is None or where(e))]
        if len(hits) >= count:
            return hits[count - 1]
        if time.monotonic() >= deadline:
            seen = [e.event for e in read(path)]
            raise TimeoutError(f"no {count}x {event!r} in {os.fspath(path)} after {timeout}s; saw {seen}")
        time.sleep(poll)
