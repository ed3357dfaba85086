"""Merge per-platform `conformance-report.json` files into one platform x check matrix (JSON + Markdown)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

MATRIX_JSON = "matrix.json"
MATRIX_MD = "matrix.md"
ICON = {"passed": "pass", "failed": "FAIL", "error": "ERROR", "skipped": "skip", None: "-"}
BAD = ("failed", "error")


def merge(run_id: str, platforms: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """`platforms` maps name -> {"results": [...], "exit_code", "error", "duration_s", "image"}."""
    checks: dict[str, dict[str, Any]] = {}
    for name, p in platforms.items():
        for r in p.get("results", []):
            row = checks.setdefault(
                r["check_id"], {"pitfall": r.get("pitfall", ""), "level": r.get("level", ""), "cells": {}}
            )
            row["cells"][name] = {
                "outcome": r.get("outcome"),
                "latency_ms": r.get("latency_ms"),
                "message": r.get("message", ""),
            }
    bad_platforms = [n for n, p in platforms.items() if p.get("error")]
    bad_cells = [
        (c, n) for c, row in checks.items() for n, cell in row["cells"].items() if cell["outcome"] in BAD
    ]
    return {
        "run_id": run_id,
        "ok": not bad_platforms and not bad_cells,
        "platforms": {
            n: {k: v for k, v in p.items() if k != "results"} | {"checks": len(p.get("results", []))}
            for n, p in platforms.items()
        },
        "checks": dict(sorted(checks.items(), key=lambda kv: (_order(kv[0]), kv[0]))),
        "failures": [f"{n}: {c}" for c, n in bad_cells]
        + [f"{n}: {platforms[n]['error']}" for n in bad_platforms],
    }


def _order(check_id: str) -> int:
    for i, prefix in enumerate(("platform.", "smoke.", "conformance.suite", "kit.")):
        if check_id.startswith(prefix):
            return i
    return 2  # individual conformance checks sit between the suite row and the kit's tests


def markdown(m: dict[str, Any]) -> str:
    names = list(m["platforms"])
    out = [
        "# Dispatch Kit container matrix",
        "",
        f"- run `{m['run_id']}`: **{'pass' if m['ok'] else 'FAIL'}**",
    ]
    for n, p in m["platforms"].items():
        extra = f"; error: {p['error']}" if p.get("error") else ""
        out.append(
            f"- {n}: image `{p.get('image', '?')}`, {p.get('duration_s', 0):.1f}s, exit {p.get('exit_code')}{extra}"
        )
    out += ["", "| check | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for cid, row in m["checks"].items():
        cells = []
        for n in names:
            cell = row["cells"].get(n)
            if not cell:
                cells.append("-")
                continue
            text = ICON.get(cell["outcome"], str(cell["outcome"]))
            if cell["outcome"] in BAD and cell.get("message"):
                text += " " + _cell(cell["message"])[:120]
            cells.append(text)
        out.append(f"| {cid} | " + " | ".join(cells) + " |")
    if m["failures"]:
        out += ["", "## Failures", ""] + [f"- {_cell(f)}" for f in m["failures"]]
    return "\n".join(out) + "\n"


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def write(m: dict[str, Any], directory: Path) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    jp, mp = directory / MATRIX_JSON, directory / MATRIX_MD
    jp.write_text(json.dumps(m, indent=2) + "\n")
    mp.write_text(markdown(m))
    return jp, mp
