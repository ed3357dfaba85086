"""Task states and the pure supervision decision: what to do given what the supervisor observed.

Kept free of I/O so every rule (P5, P6, P12) is unit-testable with plain numbers.
"""

from __future__ import annotations

from runner import contract

STARTING, RUNNING, STALLED = "starting", "running", "stalled"
# Set by the agent front end (runner.agents) when the agent asks a question; the supervisor leaves it be.
NEEDS_INPUT = "needs_input"
SUCCEEDED = "succeeded"
FAILED = "failed"
CRASHED = "crashed"
HUNG = "hung"
TIMED_OUT = "timed_out"
STOPPED = "stopped"
TERMINAL = contract.TERMINAL
# NON_TERMINAL (contract.LIVE) and ALL come from the schema: made on first use (see __getattr__ below), so
# the supervisor, which never needs them while it watches an agent, does not read the schema (json)

# result file classification
ABSENT, VALID, INVALID = "absent", "valid", "invalid"

# decision kinds
NONE, ENTER, KILL, END = "none", "enter", "kill", "end"

is_terminal = contract.is_terminal


MAX_TICK_S = 5.0  # an idle supervisor wakes at most every 5 s: 500 idle agents cost ~1 % of a core


def heartbeat_interval(stale_after: float, grace: float = 0.0) -> float:
    """How often staleness is checked: clamp((stale+grace)/40, 20 ms, 5 s).

    A hang is then declared within 2.5 % of stale+grace (the bound users set), with as few wake-ups
    as that allows: 500 idle agents at stale 60 s + grace 30 s wake 0.44 times a second each.
    """
    return min(MAX_TICK_S, max(0.02, (stale_after + grace) / 40.0))


def result_interval(grace: float) -> float:
    """How often the result file is looked at when heartbeats are off: it only matters after GRACE."""
    return min(MAX_TICK_S, max(0.02, grace / 15.0))


def __getattr__(name: str) -> frozenset[str]:
    if name == "NON_TERMINAL":
        return contract.LIVE
    if name == "ALL":
        return contract.LIVE | TERMINAL
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _Record:
    """A frozen record, built from positional or keyword values with the defaults in `_defaults`, equal by
    value: what @dataclass(frozen=True) gave these two, written out because importing `dataclasses`
    (inspect, ast, dis, re...) was ~2.7 MiB of every idle supervisor (docs/benchmarks.md)."""

    __slots__: tuple[str, ...] = ()
    _defaults: dict[str, object] = {}

    def __init__(self, *args: object, **kw: object) -> None:
        names = self.__slots__
        if len(args) > len(names):
            raise TypeError(f"{type(self).__name__}() takes at most {len(names)} values")
        values = dict(zip(names, args, strict=False))
        for k, v in kw.items():
            if k not in names or k in values:
                raise TypeError(f"{type(self).__name__}() got an unexpected or repeated argument {k!r}")
            values[k] = v
        for k in names:
            if k not in values and k not in self._defaults:
                raise TypeError(f"{type(self).__name__}() missing argument {k!r}")
            object.__setattr__(self, k, values[k] if k in values else self._defaults[k])

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, k) for k in self.__slots__)

    def replace(self, **changes: object) -> _Record:
        """A copy with `changes` applied: what dataclasses.replace gave (the known-bads patch with it)."""
        return type(self)(**({k: getattr(self, k) for k in self.__slots__} | changes))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field {name!r}")

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._values() == other._values()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={getattr(self, k)!r}" for k in self.__slots__)
        return f"{type(self).__name__}({inner})"


class Observation(_Record):
    """What the supervisor saw in one pass (times are monotonic seconds)."""

    __slots__ = ("state", "now", "started", "stale_after", "grace", "max_lifetime", "exited", "exit_code",
                 "signal", "intent", "result", "result_seen_at", "stop_requested", "session_lost",
                 "last_beat_change")  # fmt: skip
    _defaults = {
        "stale_after": 0.0,
        "grace": 30.0,
        "max_lifetime": 0.0,
        "exited": False,
        "exit_code": None,
        "signal": None,
        "intent": None,  # (state, reason) we ended the agent for, if we did
        "result": ABSENT,
        "result_seen_at": None,
        "stop_requested": False,
        "session_lost": False,
        "last_beat_change": None,
    }
    state: str
    now: float
    started: float
    stale_after: float
    grace: float
    max_lifetime: float
    exited: bool
    exit_code: int | None
    signal: int | None
    intent: tuple[str, str] | None
    result: str
    result_seen_at: float | None
    stop_requested: bool
    session_lost: bool
    last_beat_change: float | None


class Decision(_Record):
    """`kind` is none | enter (a non-terminal state) | kill (end the tree, then record) | end (record)."""

    __slots__ = ("kind", "state", "reason", "next_check")
    # next_check: monotonic time of the next pass, None = only on an event
    _defaults = {"state": None, "reason": None, "next_check": None}
    kind: str
    state: str | None
    reason: str | None
    next_check: float | None


def classify_exit(exit_code: int | None, signal: int | None, result: str) -> tuple[str, str]:
    """The terminal state of an agent that ended on its own (P3: process + result, never log text)."""
    if signal is not None:
        return CRASHED, "signaled"
    if exit_code != 0:
        return FAILED, "exited"
    if result == INVALID:
        return FAILED, "invalid_result"
    return SUCCEEDED, "exited"


def decide(o: Observation) -> Decision:
    """Order per pass: exited -> result complete -> stop -> lifetime -> heartbeat (P12)."""
    if is_terminal(o.state):
        return Decision(NONE)
    if o.exited:
        if o.intent is not None:
            return Decision(END, *o.intent)
        state, reason = classify_exit(o.exit_code, o.signal, o.result)
        return Decision(END, state, reason)
    if o.session_lost:
        return Decision(KILL, CRASHED, "session_lost")
    candidates: list[float] = []
    if o.result == VALID:
        seen = o.now if o.result_seen_at is None else o.result_seen_at
        if o.now - seen >= o.grace:
            return Decision(KILL, SUCCEEDED, "completed_by_result")
        candidates.append(seen + o.grace)
    if o.stop_requested:
        return Decision(KILL, STOPPED, "stop_requested")
    if o.max_lifetime > 0:
        end = o.started + o.max_lifetime
        if o.now >= end:
            return Decision(KILL, TIMED_OUT, "max_lifetime")
        candidates.append(end)
    enter: tuple[str, str] | None = None
    if o.result == VALID:
        if o.state == STALLED:
            enter = (RUNNING, "result_written")
        elif o.state == STARTING:
            enter = (RUNNING, "spawned")
    elif o.stale_after > 0:
        last = o.started if o.last_beat_change is None else o.last_beat_change
        age = o.now - last
        if age >= o.stale_after + o.grace:
            return Decision(KILL, HUNG, "heartbeat_stale")
        if age >= o.stale_after:
            if o.state != STALLED:
                enter = (STALLED, "heartbeat_stale")
            candidates.append(last + o.stale_after + o.grace)
        else:
            if o.state == STALLED:
                enter = (RUNNING, "heartbeat_resumed")
            candidates.append(last + o.stale_after)
        candidates.append(o.now + heartbeat_interval(o.stale_after, o.grace))
    if o.result != VALID:
        candidates.append(
            o.now + result_interval(o.grace)
            if o.stale_after <= 0
            else o.now + heartbeat_interval(o.stale_after, o.grace)
        )
    nxt = min(candidates) if candidates else None
    if enter is not None:
        return Decision(ENTER, enter[0], enter[1], nxt)
    return Decision(NONE, next_check=nxt)
