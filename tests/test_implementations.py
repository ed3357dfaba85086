"""implementations/: adapter logic (pure), the matrix page and badges (on synthetic reports), and one
real peer driven through its adapter on a real tmux server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conformance.harness import schema_errors
from conformance.matrix import Entry, render, write_badges
from conformance.report import CheckResult, Report
from conformance.smoke import Probe, SmokeResult
from implementations import adapter
from implementations.peers import PEERS
from runner.contract import DispatchError


def test_option_values_starting_with_dash_are_values() -> None:
    got = adapter.glue_values(["start", "--json", "--task-id", "-rf", "--cwd", "/w", "--", "-x", "--task-id"])
    assert got == ["start", "--json", "--task-id=-rf", "--cwd=/w", "--", "-x", "--task-id"]


@pytest.mark.parametrize("label", ["", "two\nlines", "bell\x07", "x" * 129, "c1\x85"])
def test_bad_labels_refused(label: str) -> None:
    with pytest.raises(DispatchError) as e:
        adapter.check_label(label)
    assert e.value.code == "bad_label"


def test_task_doc_matches_the_schema() -> None:
    rec = {"task_id": "t1", "argv": ["a"], "session": "s", "started_at": 1.0, "label": "l", "model": None}
    doc = adapter.task_doc(rec, adapter.Seen("failed", "exited", 3))
    assert schema_errors(doc, "task.json") == []
    assert (doc["state"], doc["exit_code"], doc["result"]) == ("failed", 3, None)


def test_at_least_three_pinned_peers() -> None:
    assert len(PEERS) >= 3
    for p in PEERS.values():
        assert p.requirement.count("==") == 1 and p.version[0].isdigit()
        assert f"implementations.{p.module}" in p.command


def _report(name: str, outcomes: dict[str, str]) -> Report:
    rows = [
        CheckResult(cid, cid.split(".")[0], "MUST", o, message=f"cause of {cid}" if o == "failed" else "")
        for cid, o in outcomes.items()
    ]
    return Report(implementation={"implementation": name, "capabilities": []}, results=rows)


def test_matrix_page_and_badges(tmp_path: Path) -> None:
    ok = SmokeResult("a", "cmd", [Probe("p", "adapter", True)])
    entries = [
        Entry("ref", "r", ok, _report("ref", {"P01.x": "passed", "P10.y": "passed"}), {"release": "here"}),
        Entry(
            "peer",
            "p",
            ok,
            _report("peer", {"P01.x": "failed", "P10.y": "passed"}),
            {"release": "peer==1", "adapter_decides": {"P10.y": "socket"}},
        ),
        Entry("mute", "m", SmokeResult("mute", "m", [Probe("caps", "adapter", False, "not JSON")]), None, {}),
    ]
    reviews = {("peer", "P01.x"): ("peer defect", "it reads the pane pid")}
    page = render(entries, lambda impl, cid, msg: reviews.get((impl, cid)))
    assert "| P01.x <sub>" in page and "**FAIL**" in page
    assert "pass (adapter)" in page  # an adapter-decided pass is never credited to the peer
    assert "`P01.x` (MUST): cause of P01.x **Review: peer defect.** it reads the pane pid" in page
    assert "adapter does not speak the contract" in page
    written = write_badges(entries, tmp_path)
    names = {p.name for p in written}
    assert {"ref.json", "peer.json", "mute.json", "peer-core.json"} <= names
    for p in written:
        doc = json.loads(p.read_text())
        assert doc["schemaVersion"] == 1 and {"label", "message", "color"} <= doc.keys()
    assert json.loads((tmp_path / "badges" / "mute.json").read_text())["message"] == "adapter broken"
    # a failed smoke probe carries its review too (key "smoke: <probe name>"), or says it has none
    assert "- smoke [adapter] caps: not JSON **Review: not reviewed.**" in page
    reviews[("mute", "smoke: caps")] = ("adapter mistake", "it printed a banner")
    page = render(entries, lambda impl, cid, msg: reviews.get((impl, cid)))
    assert "caps: not JSON **Review: adapter mistake.** it printed a banner" in page


def test_published_matrix_has_every_failure_reviewed() -> None:
    """docs/implementations.md is published only with a hand review of each failure (implementations/reviews.py).

    The committed page has no unreviewed failure; where the matrix's saved reports exist (reports/ is not
    committed: a fresh clone has none), the page re-rendered from them (no run) has none either, so a new or
    changed failure fails here until reviewed.
    """
    from conformance.matrix import DEFAULT_REPORT, _targets, load_one
    from implementations.reviews import review

    mark = "**Review: not reviewed.**"
    published = (Path(__file__).resolve().parents[1] / "docs" / "implementations.md").read_text()
    unreviewed = [line[:160] for line in published.splitlines() if mark in line]
    assert not unreviewed, "\n".join(unreviewed)
    entries = [load_one(name, DEFAULT_REPORT) for name in _targets(None)]
    if any(e.report is None for e in entries):
        return  # no saved reports here: the committed page above is what is published
    page = render(entries, review)
    unreviewed = [line[:160] for line in page.splitlines() if mark in line]
    assert not unreviewed, "\n".join(unreviewed)


@pytest.mark.slow
def test_bgtmux_adapter_on_real_tmux(sandbox: object) -> None:
    """The real peer, pinned from PyPI, on a real private tmux server: exit status 3 is reported."""
    from implementations import install

    try:
        install.ensure(PEERS["bgtmux"])
    except install.InstallError as e:
        pytest.skip(str(e))
    sb = sandbox
    env = sb.env()  # type: ignore[attr-defined]
    prompt = sb.root / "prompt"  # type: ignore[attr-defined]
    prompt.write_text("hi")
    cmd = [sys.executable, "-m", "implementations.bgtmux_adapter"]

    def run(*args: str) -> tuple[int, dict]:
        r = subprocess.run([*cmd, *args], env=env, capture_output=True, timeout=60)
        return r.returncode, json.loads(r.stdout)

    try:
        rc, doc = run(
            "start",
            "--json",
            "--task-id",
            "t1",
            "--cwd",
            str(sb.workdir),
            "--prompt-file",  # type: ignore[attr-defined]
            str(prompt),
            "--",
            sys.executable,
            "-c",
            "import time; time.sleep(0.5); raise SystemExit(3)",
        )
        assert rc == 0 and doc["task_id"] == "t1", doc
        rc, doc = run("wait", "--json", "t1", "--timeout", "30")
        assert rc == 0 and doc["state"] in ("failed", "crashed"), doc
        if doc["state"] == "failed":  # bgtmux sometimes loses a fast command's status (see reviews.py)
            assert doc["exit_code"] == 3
        rc, doc = run("status", "--json", "nope")
        assert rc == 2 and doc["error"]["code"] == "unknown_task"
    finally:
        from runner.tmux import Tmux

        Tmux(socket_path=env["DISPATCH_TMUX_SOCKET"], timeout=5).run("kill-server", check=False)
