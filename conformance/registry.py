"""The ``@check`` decorator: every conformance check carries an id, a level, a pitfall and a fix-it reason.

The plugin and the report read this metadata from the test function, so a check is declared in one
place and every report (terminal matrix, JSON, Markdown, JUnit) names it the same way.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, TypeVar

import pytest

Level = Literal["MUST", "SHOULD"]
LEVELS: tuple[Level, ...] = ("MUST", "SHOULD")

# P01..P15 are the seed's pitfalls; EX covers contract rules beyond them (env, default server, ...).
PITFALLS: dict[str, str] = {
    "P01": "PID race on session startup",
    "P02": "PID reuse",
    "P03": "pipe-pane buffering, done markers in output",
    "P04": "pipe-pane persists after session kill",
    "P05": "partial result file",
    "P06": "heartbeat vs clocks and timestamp granularity",
    "P07": "session name collisions",
    "P08": "send-keys quoting and injection",
    "P09": "zombie sessions and leaks",
    "P10": "exit status lost by exec/shell",
    "P11": "temporary directories",
    "P12": "heartbeat/result race and grace",
    "P13": "tmux missing or too old",
    "P14": "frozen tmux and monitor drift",
    "P15": "model routing and argv recorded",
    "EX": "contract rules beyond the seed pitfalls",
}

ID_RE = re.compile(r"^(P(0[1-9]|1[0-5])|EX)\.[a-z0-9]+(-[a-z0-9]+)*(\.[a-z0-9]+(-[a-z0-9]+)*)*$")
CAPABILITIES = ("send", "events", "logs", "reap", "heartbeat", "max_lifetime", "models")

# Conformance profiles: a verdict is given per profile, so a dispatcher that lists no capabilities is
# told which behaviour was never tested instead of "conforming" with checks skipped. A profile is
# claimed when the implementation lists every capability it names (core and results name none).
PROFILES: dict[str, tuple[tuple[str, ...], str]] = {
    "core": ((), "start/status/wait/stop/list, exit codes, PIDs, sessions, cleanup, environment, refusals"),
    "results": ((), "the result file: partial, truncated, empty, complete"),
    "supervision": (("heartbeat", "max_lifetime", "reap"), "heartbeat staleness, grace, max lifetime, reap"),
    "observability": (("logs", "events"), "logs and events"),
    "models": (("models",), "model allowlist and routing"),
    "interactive": (("send",), "send text to a running agent"),
}
_PROFILE_BY_CAP = {cap: name for name, (caps, _) in PROFILES.items() for cap in caps}
_PROFILE_ORDER = ("interactive", "models", "supervision", "observability")


def profile_of(info: CheckInfo) -> str:
    """The profile a check belongs to: its declared one, else the first of its capabilities' profiles."""
    if info.profile:
        return info.profile
    owners = {_PROFILE_BY_CAP[c] for c in info.needs}
    for name in _PROFILE_ORDER:
        if name in owners:
            return name
    return "results" if info.pitfall == "P05" else "core"


MARK = "dispatch_check"
SERIAL_MARK = "dispatch_serial"

F = TypeVar("F", bound=Callable[..., object])


@dataclass(frozen=True)
class CheckInfo:
    """What a report needs to know about a check, independent of its outcome."""

    id: str
    level: Level
    pitfall: str
    reason: str
    needs: tuple[str, ...] = ()
    serial: bool = False
    profile: str = ""  # empty: derived by profile_of()

    @property
    def pitfall_title(self) -> str:
        return PITFALLS.get(self.pitfall, "")


REGISTRY: dict[str, CheckInfo] = {}


def check(
    *,
    id: str,
    level: Level,
    pitfall: str,
    reason: str,
    needs: tuple[str, ...] | list[str] = (),
    serial: bool = False,
    profile: str = "",
) -> Callable[[F], F]:
    """Declare a conformance check.

    ``reason`` is the one line shown on failure telling the implementer what to fix. ``needs`` lists
    contract capabilities; a check whose capability the implementation does not list is skipped.
    ``serial`` checks run while no other check runs (timing-sensitive ones). ``profile`` overrides
    the profile derived from ``needs`` (see :data:`PROFILES`).
    """
    if not ID_RE.match(id):
        raise ValueError(f"bad check id {id!r}: want like 'P05.partial-result.chunked'")
    if level not in LEVELS:
        raise ValueError(f"bad level {level!r} for {id}")
    if pitfall not in PITFALLS or not id.startswith(pitfall + "."):
        raise ValueError(f"check {id} must start with its pitfall {pitfall!r}")
    unknown = set(needs) - set(CAPABILITIES)
    if unknown:
        raise ValueError(f"check {id} needs unknown capabilities {sorted(unknown)}")
    if profile and profile not in PROFILES:
        raise ValueError(f"check {id} names unknown profile {profile!r}")
    if not reason or "\n" in reason:
        raise ValueError(f"check {id} needs a one-line reason")
    info = CheckInfo(
        id=id, level=level, pitfall=pitfall, reason=reason, needs=tuple(needs), serial=serial, profile=profile
    )
    if REGISTRY.get(id, info) != info:  # a module imported twice re-registers the same info: fine
        raise ValueError(f"duplicate check id {id}")
    REGISTRY[id] = info

    def deco(fn: F) -> F:
        fn = getattr(pytest.mark, MARK)(info)(fn)
        if serial:
            fn = getattr(pytest.mark, SERIAL_MARK)(fn)
        fn._dispatch_check = info  # type: ignore[attr-defined]
        return fn

    return deco


def info_of(item: pytest.Item) -> CheckInfo | None:
    """The check metadata of a collected item, or None for any other test."""
    m = item.get_closest_marker(MARK)
    if m is None or not m.args or not isinstance(m.args[0], CheckInfo):
        return None
    return m.args[0]


def result_id(item: pytest.Item, info: CheckInfo) -> str:
    """The check id a result row carries: the check's id, plus the parameter id when parametrized."""
    callspec = getattr(item, "callspec", None)
    return f"{info.id}.{callspec.id}" if callspec is not None else info.id
