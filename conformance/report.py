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

from conformance.registry import PITFALLS, PROFILES

JSON_NAME = "conformance-report.json"
MD_NAME = "conformance-report.md"
JUNIT_NAME = "junit.xml"

# blocked: a precondition of the check is unmet (named with the check or capability covering it);
# it is neither a pass nor a failure of the check's own pitfall.
OUTCOMES = ("passed", "failed", "error", "blocked", "skipped")
ICON = {"passed": "pass", "failed": "FAIL", "error": "ERROR", "blocked": "BLOCKED", "skipped": "skip"}


@dataclass
class CheckResult:
    """The outcome of one check (one row of every report)."""

    check_id: str
    pitfall: str
    level: str
    outcome: str  # passed | failed | error | blocked | skipped
    latency_ms: float | None = None
    message: str = ""
    duration_s: float = 0.0
    reason: str = ""  # what the implementer should fix (the check's declared reason)
    latencies: dict[str, float] = field(default_factory=dict)
    nodeid: str = ""
    profile: str = "core"
    needs: list[str] = field(default_factory=list)
    details: str = ""  # what the message leaves out: the calls' command lines, the rest of the text

    @property
    def bad(self) -> bool:
        return self.outcome in ("failed", "error")


@dataclass
class ProfileVerdict:
    """The verdict on one profile: conforms, does not, incomplete (blocked) or not tested (and why)."""

    name: str
    verdict: str  # CONFORMS | DOES NOT CONFORM | INCOMPLETE | NOT TESTED
    why: str = ""  # for anything but a plain CONFORMS: what was not tested and why
    counts: dict[str, int] = field(default_factory=dict)
    claimed: bool = True

    @property
    def ok(self) -> bool:
        """A profile that fails the run: DOES NOT CONFORM, or INCOMPLETE while claimed."""
        return self.verdict in ("CONFORMS", "NOT TESTED")

    def line(self) -> str:
        return f"{self.name}: {self.verdict}" + (f" ({self.why})" if self.why else "")


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
        levels = self.gating_levels()
        return [r for r in self.results if r.bad and r.level in levels]

    def gating_levels(self) -> set[str]:
        return {"MUST", "SHOULD"} if self.level == "should" else {"MUST"}

    def profiles(self) -> list[ProfileVerdict]:
        """A verdict per profile that has rows; a profile is claimed when every capability it names is listed."""
        listed = set(self.implementation.get("capabilities") or [])
        gating = self.gating_levels()
        out = []
        for name, (caps, _what) in PROFILES.items():
            rows = [r for r in self.results if r.profile == name]
            if not rows:
                continue
            counts = {o: sum(r.outcome == o for r in rows) for o in OUTCOMES}
            missing = [c for c in caps if c not in listed]
            bad = [r for r in rows if r.bad and r.level in gating]
            blocked = [r for r in rows if r.outcome == "blocked" and r.level in gating]
            skipped = [r for r in rows if r.outcome == "skipped"]
            if bad:
                why = f"{len(blocked)} blocked: {_why(blocked)}" if blocked else ""
                v = ProfileVerdict(name, "DOES NOT CONFORM", why, counts)
            elif missing:
                untested = len(blocked) + len(skipped)
                v = ProfileVerdict(
                    name,
                    "NOT TESTED",
                    f"capability {', '.join(missing)} not listed; {untested} check(s) not run",
                    counts,
                    claimed=False,
                )
            elif blocked:
                v = ProfileVerdict(name, "INCOMPLETE", f"{len(blocked)} blocked: {_why(blocked)}", counts)
            elif skipped:
                v = ProfileVerdict(name, "CONFORMS", f"{len(skipped)} not run: {_why(skipped)}", counts)
            else:
                v = ProfileVerdict(name, "CONFORMS", "", counts)
            out.append(v)
        return out

    @property
    def ok(self) -> bool:
        """Smoke ok, no gating failure, and every claimed profile shown to conform (none blocked)."""
        if not self.smoke.get("ok", True) or self.gating():
            return False
        return all(p.ok for p in self.profiles())

    def by_id(self) -> dict[str, CheckResult]:
        return {r.check_id: r for r in self.results}

    def outcome(self, check_id: str) -> str | None:
        """Outcome of a check id, or of all rows of a parametrized check (worst wins)."""
        rows = [r for r in self.results if r.check_id == check_id or r.check_id.startswith(check_id + ".")]
        if not rows:
            return None
        for o in ("error", "failed", "blocked", "passed", "skipped"):
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
            "blocked": {r.check_id: r.message for r in self.results if r.outcome == "blocked"},
            "not_tested": self.not_tested(),
            "profiles": {
                p.name: {"verdict": p.verdict, "why": p.why, "claimed": p.claimed} for p in self.profiles()
            },
            "smoke_ok": bool(self.smoke.get("ok", True)),
        }

    def not_tested(self) -> list[str]:
        """One line per profile (or smoke) that was not tested fully, saying why."""
        out = []
        if not self.smoke.get("ok", True):
            out.append(f"every check: smoke failed: {self.smoke.get('message', '')}")
        out += [p.line() for p in self.profiles() if p.verdict in ("NOT TESTED", "INCOMPLETE") or p.why]
        return out

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
        profiles = self.profiles()
        tested = [p.name for p in profiles if p.verdict == "CONFORMS"]
        if self.ok and all(p.verdict == "CONFORMS" for p in profiles):
            verdict = f"CONFORMS at level {self.level.upper()} (profiles {', '.join(tested)})"
        elif self.ok:
            verdict = f"CONFORMS at level {self.level.upper()} to {', '.join(tested) or 'no profile'} only"
        else:
            verdict = f"DOES NOT CONFORM at level {self.level.upper()}"
        line = f"{impl}: {verdict} - MUST {_counts(must)}; SHOULD {_counts(should)} ({self.duration_s:.1f}s)"
        untested = self.not_tested()
        return line + ("; NOT TESTED: " + "; ".join(untested) if untested else "")

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
        out += ["", "| profile | verdict | not tested, and why |", "|---|---|---|"]
        out += [f"| {p.name} | {p.verdict} | {_cell(p.why)} |" for p in self.profiles()]
        out += ["", *self.matrix_lines(), ""]
        detailed = [r for r in sorted(self.results, key=_order) if r.details and r.outcome != "passed"]
        if detailed:
            out += ["## Details", ""]
            for r in detailed:
                out += [f"### {r.check_id} ({r.outcome})", "", "```", r.details, "```", ""]
        return "\n".join(out)


def _counts(c: dict[str, int]) -> str:
    bad = c.get("failed", 0) + c.get("error", 0)
    text = f"{c.get('passed', 0)} passed, {bad} failed"
    for o in ("blocked", "skipped"):
        if c.get(o):
            text += f", {c[o]} {o}"
    return text


def _ids(rows: list[CheckResult], n: int = 4) -> str:
    ids = [r.check_id for r in rows]
    return ", ".join(ids[:n]) + (f" and {len(ids) - n} more" if len(ids) > n else "")


def _why(rows: list[CheckResult]) -> str:
    """The distinct reasons of blocked/skipped rows, each with the ids it applies to."""
    reasons: dict[str, list[CheckResult]] = {}
    for r in rows:
        reasons.setdefault((r.message or r.outcome).removeprefix("blocked: "), []).append(r)
    return "; ".join(f"{_ids(rs, 3)}: {msg}" for msg, rs in reasons.items())


def _order(r: CheckResult) -> tuple[str, str]:
    return (r.pitfall if r.pitfall != "EX" else "PZZ", r.check_id)


def _grouped(results: Iterable[CheckResult]) -> list[tuple[str, list[CheckResult]]]:
    groups: dict[str, list[CheckResult]] = {}
    for r in sorted(results, key=_order):
        groups.setdefault(r.pitfall, []).append(r)
    return list(groups.items())


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
