"""`dispatch conformance matrix`: the suite on every real dispatcher and the reference, one public page.

Bowtie-style: each implementation (the reference and every peer in implementations/) gets a smoke run
(conformance/smoke.py) and a full suite run; the results become ``docs/implementations.md``
(implementation x check, a verdict per profile, the cause of every failure in one line, and the hand
review of each failure from implementations/reviews.py) and a shields.io endpoint badge per
implementation and profile under ``<report>/badges/``. ``--from`` re-renders from the saved reports
(``--rerun NAME`` runs that one afresh and keeps the others' saved results).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conformance.registry import PITFALLS, PROFILES
from conformance.report import Report
from conformance.smoke import SmokeResult, smoke
from conformance.suite import PACKAGE_ROOT, run_suite

Review = Callable[[str, str, str], "tuple[str, str] | None"]  # (impl, check id, message) -> finding
DOC = PACKAGE_ROOT / "docs" / "implementations.md"
DEFAULT_REPORT = PACKAGE_ROOT / "reports" / "implementations"
CELL = {"passed": "pass", "failed": "**FAIL**", "error": "**ERROR**", "blocked": "blocked", "skipped": "skip"}
COLOR = {
    "CONFORMS": "brightgreen",
    "DOES NOT CONFORM": "red",
    "INCOMPLETE": "yellow",
    "NOT TESTED": "lightgrey",
}


@dataclass
class Entry:
    """One implementation's column: how to run it, its smoke result and its suite report."""

    name: str
    command: str
    smoke: SmokeResult | None = None
    report: Report | None = None
    meta: dict[str, Any] = field(default_factory=dict)  # pinned release, adapter-decided checks


def _targets(names: Sequence[str] | None) -> list[str]:
    from implementations.install import REFERENCE
    from implementations.peers import PEERS

    return list(names) if names else [REFERENCE, *PEERS]


def _meta(name: str) -> dict[str, Any]:
    from implementations.peers import PEERS

    p = PEERS.get(name)
    if p is None:
        return {"release": "this repository (runner/)", "adapter_decides": {}}
    return {"release": p.requirement, "homepage": p.homepage, "adapter_decides": dict(p.adapter_decides)}


def run_one(name: str, report_dir: Path, *, workers: str, k: str | None, level: str) -> Entry:
    """Smoke, then the whole suite, for one implementation; both saved under ``report_dir/name``."""
    from implementations.install import resolve

    label, command = resolve(name)
    out = report_dir / safe_name(label)
    out.mkdir(parents=True, exist_ok=True)
    entry = Entry(label, command, meta=_meta(label))
    entry.smoke = smoke(label, command)
    (out / "smoke.json").write_text(json.dumps(entry.smoke.to_dict(), indent=2) + "\n")
    if entry.smoke.adapter_ok:  # an adapter that does not speak the contract gets no suite verdict
        entry.report = run_suite(command, report_dir=out, k=k, workers=workers, level=level)
    return entry


def safe_name(label: str) -> str:
    """A directory and badge name for an implementation (a raw command becomes a plain word)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("._")[:60] or "impl"


def load_one(name: str, report_dir: Path) -> Entry:
    """An Entry from a previous run's files (for re-rendering the page without re-running)."""
    out = report_dir / safe_name(name)
    entry = Entry(name, "", meta=_meta(name))
    sp = out / "smoke.json"
    if sp.exists():
        d = json.loads(sp.read_text())
        from conformance.smoke import Probe

        entry.smoke = SmokeResult(
            d["impl"], d["command"], [Probe(**p) for p in d["probes"]], d["capabilities"]
        )
        entry.command = d["command"]
    if (out / "conformance-report.json").exists():
        entry.report = Report.load(out)
    return entry


# -- badges ---------------------------------------------------------------------------------------


def badge(label: str, message: str, color: str) -> dict[str, Any]:
    """A shields.io endpoint document (https://shields.io/badges/endpoint-badge)."""
    return {"schemaVersion": 1, "label": label, "message": message, "color": color}


def write_badges(entries: Sequence[Entry], report_dir: Path) -> list[Path]:
    d = report_dir / "badges"
    d.mkdir(parents=True, exist_ok=True)
    written = []
    for e in entries:
        docs = {f"{safe_name(e.name)}.json": _overall_badge(e)}
        for v in e.report.profiles() if e.report else ():
            docs[f"{safe_name(e.name)}-{v.name}.json"] = badge(
                f"{e.name} {v.name}", v.verdict.lower(), COLOR[v.verdict]
            )
        for fname, doc in docs.items():
            (d / fname).write_text(json.dumps(doc) + "\n")
            written.append(d / fname)
    return written


def _overall_badge(e: Entry) -> dict[str, Any]:
    label = f"dispatch contract v1: {e.name}"
    if e.smoke is not None and not e.smoke.adapter_ok:
        return badge(label, "adapter broken", "lightgrey")
    if e.report is None:
        return badge(label, "not run", "lightgrey")
    s = e.report.summary()["by_level"].get("MUST", {})
    passed, bad = s.get("passed", 0), s.get("failed", 0) + s.get("error", 0)
    color = "brightgreen" if e.report.ok else ("red" if bad else "yellow")
    return badge(label, f"MUST {passed} pass, {bad} fail", color)


# -- the page -------------------------------------------------------------------------------------


def _cause(r: Any) -> str:
    text = " ".join((r.message or r.reason or "").split())
    return (text[:220] + "...") if len(text) > 220 else text


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render(entries: Sequence[Entry], review: Review, note: str = "") -> str:
    """docs/implementations.md from the entries (and the hand review of each failure)."""
    names = [e.name for e in entries]
    out = [
        "# Implementations matrix",
        "",
        "Every real dispatcher we know of that launches and tracks a command in tmux, run through the same",
        "conformance suite as the reference. Regenerate with `dispatch conformance matrix` (adapters and pins:",
        "`implementations/README.md`). Peers are installed from PyPI at the pinned release at run time.",
        "",
        "`adapter` after a result: the check is decided by something the adapter supplies (README), not by",
        "the peer. A failure's **Review** says what a hand review of the peer's installed source found;",
        "`not reviewed` marks one nobody has checked by hand yet (a new or changed failure).",
        "",
        *([note, ""] if note else []),
        "## Implementations",
        "",
        "| implementation | release | smoke | MUST | duration |",
        "|---|---|---|---|---|",
    ]
    for e in entries:
        sm = e.smoke.verdict if e.smoke else "not run"
        must = _overall_badge(e)["message"]
        dur = f"{e.report.duration_s:.0f} s" if e.report else ""
        out.append(f"| `{e.name}` | {e.meta.get('release', '')} | {sm} | {must} | {dur} |")
    out += ["", "## Verdict per profile", "", "| profile | " + " | ".join(names) + " |"]
    out.append("|---|" + "---|" * len(names))
    for prof, (_caps, what) in PROFILES.items():
        cells = []
        for e in entries:
            v = {p.name: p for p in e.report.profiles()}.get(prof) if e.report else None
            cells.append(v.verdict if v else "")
        out.append(f"| **{prof}** ({what}) | " + " | ".join(cells) + " |")
    out += _check_table(entries)
    out += _failure_list(entries, review)
    return "\n".join(out) + "\n"


def _check_table(entries: Sequence[Entry]) -> list[str]:
    rows: dict[str, tuple[str, str, str]] = {}
    for e in entries:
        for r in e.report.results if e.report else ():
            rows.setdefault(r.check_id, (r.pitfall, r.level, r.profile))
    out = [
        "",
        "## Check x implementation",
        "",
        "| check | level | " + " | ".join(e.name for e in entries) + " |",
    ]
    out.append("|---|---|" + "---|" * len(entries))
    for cid in sorted(rows, key=lambda c: (rows[c][0] if rows[c][0] != "EX" else "PZZ", c)):
        cells = []
        for e in entries:
            r = e.report.by_id().get(cid) if e.report else None
            cell = CELL.get(r.outcome, r.outcome) if r else ""
            if r and cid in e.meta.get("adapter_decides", {}):
                cell += " (adapter)"
            cells.append(cell)
        pit = rows[cid][0]
        out.append(
            f"| {cid} <sub>{PITFALLS.get(pit, '')}</sub> | {rows[cid][1]} | " + " | ".join(cells) + " |"
        )
    return out


def _failure_list(entries: Sequence[Entry], review: Review) -> list[str]:
    out = ["", "## Every failure, its cause, and the hand review", ""]
    counts: dict[str, int] = {}
    for e in entries:
        bad = [r for r in e.report.results if r.bad] if e.report else []
        smoke_bad = [p for p in e.smoke.probes if not p.ok] if e.smoke else []
        if not bad and not smoke_bad:
            continue
        out += [f"### {e.name}", ""]
        for p in smoke_bad:
            kind, note = review(e.name, f"smoke: {p.name}", p.detail) or ("not reviewed", "")
            counts[kind] = counts.get(kind, 0) + 1
            line = f"- smoke [{p.layer}] {p.name}: {_cell(p.detail)}"
            out.append(line + (f" **Review: {kind}.** {_cell(note)}" if note else f" **Review: {kind}.**"))
        for r in bad:
            kind, note = review(e.name, r.check_id, r.message) or ("not reviewed", "")
            counts[kind] = counts.get(kind, 0) + 1
            line = f"- `{r.check_id}` ({r.level}): {_cell(_cause(r))}"
            out.append(line + (f" **Review: {kind}.** {_cell(note)}" if note else f" **Review: {kind}.**"))
        out.append("")
    if counts:
        out.append("Reviewed: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) + ".")
    return out


# -- command line ---------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None, prog: str = "dispatch conformance matrix") -> int:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    p.add_argument(
        "--impl", action="append", help="an implementation (repeatable; default: reference + all peers)"
    )
    p.add_argument("--report", default=str(DEFAULT_REPORT), metavar="DIR", help="reports and badges go here")
    p.add_argument(
        "--doc", default=str(DOC), metavar="FILE", help="the Markdown page (default docs/implementations.md)"
    )
    p.add_argument("--no-doc", action="store_true", help="write reports and badges only")
    p.add_argument(
        "--from", dest="from_dir", action="store_true", help="re-render from the saved reports, run nothing"
    )
    p.add_argument(
        "--rerun",
        action="append",
        default=[],
        metavar="NAME",
        help="with --from: run this implementation afresh (repeatable), the others from saved reports",
    )
    p.add_argument("-n", dest="workers", default="2", help="pytest-xdist workers per suite run (default 2)")
    p.add_argument("-k", dest="k", default=None, help="select checks (pytest -k)")
    p.add_argument("--level", choices=("must", "should"), default="must")
    p.add_argument("--note", default="", help="a line about the run (machine, load) put on the page")
    try:
        o = p.parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as e:
        return 2 if e.code else 0
    from implementations.install import InstallError
    from implementations.reviews import review

    report_dir = Path(o.report)
    entries = []
    for name in _targets(o.impl):
        t0 = time.monotonic()
        try:
            e = (
                load_one(name, report_dir)
                if o.from_dir and name not in o.rerun
                else run_one(name, report_dir, workers=o.workers, k=o.k, level=o.level)
            )
        except InstallError as exc:
            print(f"{prog}: {exc}", file=sys.stderr)
            return 3
        entries.append(e)
        head = e.report.headline() if e.report else (e.smoke.verdict if e.smoke else "no report")
        print(f"{e.name}: {head} [{time.monotonic() - t0:.0f} s]", flush=True)
    write_badges(entries, report_dir)
    if not o.no_doc:
        Path(o.doc).write_text(render(entries, review, o.note))
        print(f"wrote {o.doc} and {report_dir}/badges/")
    broken = [e.name for e in entries if e.smoke is not None and not e.smoke.adapter_ok]
    return 3 if broken else 0


if __name__ == "__main__":
    raise SystemExit(main())
