"""Conformance results: one row per check, the gate decision, and the JSON / Markdown renderings.

The JSON document (``conformance-report.json``) is the machine interface: CI and the kit's own tests
load it with :meth:`Report.load`. The Markdown matrix groups rows by pitfall with measured detection
latency; the terminal summary prints the same matrix.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from conformance.registry import PITFALLS

JSON_NAME = "conformance-report.json"
MD_NAME = "conformance-report.md"
JUNIT_NAME = "junit.xml"

OUTCOMES = ("passed", "failed", "error", "skipped")
ICON = {"passed": "pass", "failed": "FAIL", "error": "ERROR", "skipped": "skip"}


@dataclass
class CheckResult:
    """The outcome of one check (one row of every report)."""

    check_id: str
    pitfall: str
    level: str
    outcome: str  # passed | failed | error | skipped
    latency_ms: float | None = None
    message: str = ""
    duration_s: float = 0.0
    reason: str = ""  # what the implementer should fix (the check's declared reason)
    latencies: dict[str, float] = field(default_factory=dict)
    nodeid: str = ""

    @property
    def bad(self) -> bool:
        return self.outcome in ("failed", "error")


@dataclass
class Report:
    """A whole conformance run."""

    implementation: dict[str, Any] = field(default_factory=dict)  # command + capabilities document
    level: str = "must"
    results: list[CheckResult] = field(default_factory=list)
    smoke: dict[str, Any] = field(default_factory=dict)  # {"ok": bool, "message": str, "duration_s": float}
    duration_s: float = 0.0
    exit_code: int | None = None  # filled by run_suite: the pytest process's exit status

    # -- the gate --------------------------------------------------------------------------------
    def gating(self) -> list[CheckResult]:
        """Failed checks that fail the run at this level (MUST always; SHOULD at level `should`)."""
        levels = {"MUST", "SHOULD"} if self.level == "should" else {"MUST"}
        return [r for r in self.results if r.bad and r.level in levels]

    @property
    def ok(self) -> bool:
        return bool(self.smoke.get("ok", True)) and not self.gating()

    def by_id(self) -> dict[str, CheckResult]:
        return {r.check_id: r for r in self.results}

    def outcome(self, check_id: str) -> str | None:
        """Outcome of a check id, or of all rows of a parametrized check (worst wins)."""
        rows = [r for r in self.results if r.check_id == check_id or r.check_id.startswith(check_id + ".")]
        if not rows:
            return None
        for o in ("error", "failed", "passed", "skipped"):
            if any(r.outcome == o for r in rows):
                return o
        return rows[0].outcome

    def failed_ids(self) -> list[str]:
        return [r.check_id for r in self.results if r.bad]

    def summary(self) -> dict[str, Any]:
        counts: dict[str, dict[str, int]] = {}
        for r in self.results:
            counts.setdefault(r.level, {o: 0 for o in OUTCOMES})[r.outcome] += 1
        return {
            "ok": self.ok,
            "level": self.level,
            "total": len(self.results),
            "by_level": counts,
            "gating_failures": [r.check_id for r in self.gating()],
            "smoke_ok": bool(self.smoke.get("ok", True)),
        }

    # -- serialisation ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "contract": "1",
            "implementation": self.implementation,
            "level": self.level,
            "smoke": self.smoke,
            "duration_s": round(self.duration_s, 3),
            "summary": self.summary(),
            "results": [asdict(r) for r in sorted(self.results, key=_order)],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Report:
        fields = CheckResult.__dataclass_fields__
        return cls(
            implementation=d.get("implementation", {}),
            level=d.get("level", "must"),
            results=[
                CheckResult(**{k: v for k, v in r.items() if k in fields}) for r in d.get("results", [])
            ],
            smoke=d.get("smoke", {}),
            duration_s=float(d.get("duration_s", 0.0)),
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Report:
        """Load ``conformance-report.json`` (or the directory holding it)."""
        p = Path(path)
        if p.is_dir():
            p = p / JSON_NAME
        return cls.from_dict(json.loads(p.read_text()))

    def write(self, directory: str | os.PathLike[str]) -> tuple[Path, Path]:
        """Write the JSON and Markdown reports into ``directory``; returns their paths."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        jp, mp = d / JSON_NAME, d / MD_NAME
        _atomic_write(jp, json.dumps(self.to_dict(), indent=2) + "\n")
        _atomic_write(mp, self.markdown())
        return jp, mp

    # -- rendering -------------------------------------------------------------------------------
    def headline(self) -> str:
        impl = self.implementation.get("implementation") or self.implementation.get("command", "?")
        s = self.summary()
        must = s["by_level"].get("MUST", {})
        should = s["by_level"].get("SHOULD", {})
        verdict = "CONFORMS" if self.ok else "DOES NOT CONFORM"
        return (
            f"{impl}: {verdict} at level {self.level.upper()} - MUST {must.get('passed', 0)} passed, "
            f"{must.get('failed', 0) + must.get('error', 0)} failed, {must.get('skipped', 0)} skipped; "
            f"SHOULD {should.get('passed', 0)} passed, {should.get('failed', 0) + should.get('error', 0)} failed, "
            f"{should.get('skipped', 0)} skipped ({self.duration_s:.1f}s)"
        )

    def matrix_lines(self, markdown: bool = True) -> list[str]:
        """The check x result matrix grouped by pitfall, with measured detection latency."""
        lines = ["| check | level | result | latency | note |", "|---|---|---|---|---|"]
        for pitfall, rows in _grouped(self.results):
            title = PITFALLS.get(pitfall, "")
            lines.append(f"| **{pitfall}** {title} | | | | |")
            for r in rows:
                lat = f"{r.latency_ms:.0f} ms" if r.latency_ms is not None else ""
                note = r.message if r.outcome != "passed" else ""
                if r.bad and r.reason:
                    note = f"{note} -> fix: {r.reason}" if note else f"fix: {r.reason}"
                lines.append(
                    f"| {r.check_id} | {r.level} | {ICON.get(r.outcome, r.outcome)} | {lat} | {_cell(note)} |"
                )
        return lines

    def markdown(self) -> str:
        impl = self.implementation
        out = [
            "# Dispatch conformance report",
            "",
            f"- implementation: `{impl.get('command', '?')}` ({impl.get('implementation', '?')} {impl.get('version', '')})",
            f"- capabilities: {', '.join(impl.get('capabilities', [])) or '(none)'}",
            f"- level: {self.level.upper()}; result: **{'pass' if self.ok else 'FAIL'}**",
            f"- {self.headline()}",
        ]
        if not self.smoke.get("ok", True):
            out.append(f"- smoke stage failed: {self.smoke.get('message', '')}")
        out += ["", *self.matrix_lines(), ""]
        return "\n".join(out)


def _order(r: CheckResult) -> tuple[str, str]:
    return (r.pitfall if r.pitfall != "EX" else "PZZ", r.check_id)


def _grouped(results: Iterable[CheckResult]) -> list[tuple[str, list[CheckResult]]]:
    groups: dict[str, list[CheckResult]] = {}
    for r in sorted(results, key=_order):
        groups.setdefault(r.pitfall, []).append(r)
    return list(groups.items())


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")[:300]


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
