"""An append-only history of one chaos program: operations, faults and observations, timed.

Times are the host's monotonic clock (``time.monotonic``, the clock the fake agents journal and the
reference dispatcher records events on), plus ``t``, seconds since the history began, for reading.
The program (the rule calls, with their arguments) is kept separately so a failing one can be printed
as a replayable Python test (:func:`render_replay`).
"""

from __future__ import annotations

import json
import pprint
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

KINDS = ("op", "fault", "obs", "heal", "check")


@dataclass(frozen=True)
class Entry:
    """One thing that happened: ``kind`` is op | fault | obs | heal | check."""

    seq: int
    kind: str
    name: str
    t0: float  # monotonic, when it began
    t1: float  # monotonic, when it ended (== t0 for instants)
    task_id: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class History:
    """Append-only; entries get increasing ``seq`` and non-decreasing ``t0``."""

    started: float = field(default_factory=time.monotonic)
    entries: list[Entry] = field(default_factory=list)
    program: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def add(
        self,
        kind: str,
        name: str,
        t0: float | None = None,
        t1: float | None = None,
        task_id: str | None = None,
        **data: Any,
    ) -> Entry:
        if kind not in KINDS:
            raise ValueError(f"unknown history kind {kind!r}")
        now = time.monotonic()
        t0 = now if t0 is None else t0
        if self.entries and t0 < self.entries[-1].t0:
            t0 = self.entries[-1].t0  # appended late (a background thaw): keep the order monotonic
        e = Entry(len(self.entries), kind, name, t0, max(t0, now if t1 is None else t1), task_id, data)
        self.entries.append(e)
        return e

    def step(self, rule: str, **args: Any) -> None:
        """Record one rule call of the program (what a replay calls again)."""
        self.program.append((rule, dict(args)))

    def __iter__(self) -> Iterator[Entry]:
        return iter(self.entries)

    def of(self, kind: str | None = None, task_id: str | None = None) -> list[Entry]:
        return [
            e
            for e in self.entries
            if (kind is None or e.kind == kind) and (task_id is None or e.task_id == task_id)
        ]

    def counts(self, kind: str) -> dict[str, int]:
        out: dict[str, int] = {}
        for e in self.entries:
            if e.kind == kind:
                out[e.name] = out.get(e.name, 0) + 1
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "started": self.started,
            "program": [[r, a] for r, a in self.program],
            "entries": [asdict(e) for e in self.entries],
        }

    def dump(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=1, default=str))

    def format(self, last: int | None = None) -> str:
        """Human-readable lines, times relative to the start of the history."""
        rows = self.entries if last is None else self.entries[-last:]
        out = []
        for e in rows:
            dur = f"+{e.t1 - e.t0:.2f}" if e.t1 > e.t0 else ""
            data = json.dumps(e.data, default=str, separators=(",", ":"))
            if len(data) > 160:
                data = data[:157] + "..."
            tid = f" {e.task_id}" if e.task_id else ""
            out.append(f"  {e.t0 - self.started:7.3f}{dur:>7} {e.kind:5} {e.name}{tid} {data}")
        return "\n".join(out)


def render_replay(
    program: Sequence[tuple[str, dict[str, Any]]],
    *,
    seed: int | None,
    impl: str,
    config: dict[str, Any],
    message: str = "",
) -> str:
    """A pytest module that runs ``program`` again (same rules, same arguments, same checks)."""
    name = f"seed_{seed}" if seed is not None else "program"
    steps = pprint.pformat([(r, a) for r, a in program], width=100, sort_dicts=False)
    steps = "\n".join("    " + ln for ln in steps.splitlines())
    why = "".join(f"# {ln}\n" for ln in message.strip().splitlines()[:12])
    return (
        f'"""Chaos replay (seed {seed}): run with `.venv/bin/pytest THIS_FILE`."""\n'
        f"{why}\n"
        "from chaos.stateful import ChaosConfig, replay\n\n"
        f"IMPL = {impl!r}\n"
        f"CONFIG = ChaosConfig(**{config!r})\n"
        f"PROGRAM = (\n{steps}\n)\n\n\n"
        f"def test_chaos_replay_{name}():\n"
        f"    replay(PROGRAM, impl=IMPL, config=CONFIG, seed={seed!r})\n"
    )
