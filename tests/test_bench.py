"""Smoke test of the benchmark harness: `python -m bench --quick` runs end to end and writes its outputs.

Not a timed test: nothing here asserts on a measured number, only that every part produced data.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conformance.isolation import Sandbox

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_quick_bench_writes_json_plots_and_page(sandbox: Sandbox, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["--quick", "--out", str(out), "--runs", "1", "--start-runs", "1", "--scale", "2"]
    args += ["--idle", "0.5", "--seed-default-n", "1", "--seed-default-poll", "1"]
    p = subprocess.run(
        [sys.executable, "-m", "bench", *args],
        cwd=REPO,
        env=sandbox.env(),
        capture_output=True,
        text=True,
        timeout=900,
        stdin=subprocess.DEVNULL,
    )
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    files = list(out.glob("bench-quick-*.json"))
    assert len(files) == 1
    res = json.loads(files[0].read_text())
    m = res["meta"]["machine"]
    for key in ("cpu", "cores_logical", "memory_total_mb", "kernel", "tmux", "python"):
        assert m[key], key
    assert res["start"]["warm"]["ours"]["call_to_agent"]["summary"]["n"] == 1
    assert res["start"]["warm"]["floor"]["tmux_spawn"]["summary"]["n"] == 1
    for name in ("exit0", "exit_nonzero", "sigkill", "pane_killed", "heartbeat", "result"):
        assert res["detect"]["ours"][name]["summary"]["n"] == 1, (name, res["detect"]["ours"][name])
    assert res["detect"]["floor"]["exit"]["summary"]["n"] == 1
    assert res["detect"]["seed_default"]["endings"]["exit0"]["summary"]["n"] == 1
    point = res["scale"]["points"][0]
    assert point["n"] == 2 and point["started"] == 2 and point["left_after_stop"] == 0
    assert point["processes"]["wrapper"] == 2 and point["processes"]["logpipe"] == 2
    assert set(res["headline"]) == {"start", "detect", "hang", "scale"}
    page = (out / "benchmarks.md").read_text()
    assert "## Headline" in page and "## Detection latency" in page
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return
    for png in ("start_latency.png", "detect_latency.png", "scale_cost.png"):
        assert (out / "bench" / png).stat().st_size > 1000, png
