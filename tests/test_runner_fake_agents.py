"""The runner driven with the team's fake agents (fake_agents.generic), journals as ground truth."""

from __future__ import annotations

import base64

import pytest
from test_runner_support import PY, dispatch, settle, start_ok, status, wait_done, wait_for

journal = pytest.importorskip("fake_agents.journal")
pytest.importorskip("fake_agents.generic")


def fake(*flags: str) -> list[str]:
    return [PY, "-m", "fake_agents.generic", *flags]


def test_agent_pid_is_the_fake_agents_own_pid(sandbox):
    j = sandbox.workdir / "j.jsonl"
    start_ok(sandbox, "fa", *fake("--journal", str(j), "--work", "0.1", "--slow-start", "0.2"))
    t = wait_done(sandbox, "fa")
    assert t["state"] == "succeeded"
    st = journal.first(journal.read(j), "start")
    assert st.pid == t["agent_pid"]
    settle(sandbox)


def test_stop_kills_fake_daemon_and_children(sandbox):
    j = sandbox.workdir / "j.jsonl"
    start_ok(sandbox, "fd", *fake("--journal", str(j), "--work", "300", "--children", "2", "--daemon"))
    kids = wait_for(
        lambda: (
            len(journal.all_of(journal.read(j), "child")) == 3 and journal.all_of(journal.read(j), "child")
        )
    )
    from runner.procid import ProcessIdentity

    idents = [ProcessIdentity.of(e["child_pid"]) for e in kids]
    assert all(i is not None and i.is_alive() for i in idents)
    assert dispatch(sandbox, "stop", "fd").doc["state"] == "stopped"
    assert not any(i.is_alive() for i in idents)
    settle(sandbox)


def test_burst_before_exit_is_in_logs(sandbox):
    j = sandbox.workdir / "j.jsonl"
    start_ok(
        sandbox,
        "fb",
        *fake(
            "--journal",
            str(j),
            "--burst-before-exit",
            "200000",
            "--ansi-flood",
            "5000",
            "--split-utf8",
            "--crlf",
        ),
    )
    t = wait_done(sandbox, "fb")
    assert t["state"] == "succeeded"
    text = dispatch(sandbox, "logs", "fb").doc["text"]
    out = [e for e in journal.read(j) if e.event == "output"]
    assert out
    assert "BURST-END " in text and text.rstrip("\n").rsplit("\n", 1)[-1].startswith("BURST-END")
    assert "\x1b" not in text and "\r" not in text
    settle(sandbox)


def test_send_reaches_fake_read_paste_byte_for_byte(sandbox):
    j = sandbox.workdir / "j.jsonl"
    start_ok(sandbox, "fp", *fake("--journal", str(j), "--read-paste"))
    wait_for(lambda: journal.first(journal.read(j), "paste_ready"))
    payload = b"multi\nline $(id) `x` Enter C-c \x1b[A \xe2\x9c\x93"
    f = sandbox.workdir / "t.bin"
    f.write_bytes(payload)
    assert dispatch(sandbox, "send", "fp", "--text-file", str(f)).doc["bytes"] == len(payload)
    assert wait_done(sandbox, "fp")["state"] == "succeeded"
    pastes = [e for e in journal.all_of(journal.read(j), "input") if e.get("kind") == "paste"]
    assert len(pastes) == 1 and base64.b64decode(pastes[0]["b64"]) == payload
    settle(sandbox)


@pytest.mark.parametrize(
    "flags,state,reason",
    [
        (["--result-mode", "truncated"], "failed", "invalid_result"),
        (["--result-mode", "empty"], "failed", "invalid_result"),
        (
            ["--result-mode", "chunked", "--result-chunks", "4", "--result-pause", "0.05"],
            "succeeded",
            "exited",
        ),
        (["--result-mode", "atomic", "--result", '{"k": 1}'], "succeeded", "exited"),
        (["--exit", "3"], "failed", "exited"),
        (["--die", "SEGV"], "crashed", "signaled"),
    ],
)
def test_fake_outcomes(sandbox, flags, state, reason):
    start_ok(sandbox, "fo", *fake("--work", "0.1", *flags))
    t = wait_done(sandbox, "fo")
    assert (t["state"], t["reason"]) == (state, reason)
    settle(sandbox)


def test_fake_heartbeat_then_hang_is_hung(sandbox):
    knobs = {"DISPATCH_STALE_AFTER_S": "0.5", "DISPATCH_GRACE_S": "0.5"}
    start_ok(sandbox, "fh", *fake("--work", "300", "--heartbeat", "0.05", "--beats", "5"), env=knobs)
    t = wait_done(sandbox, "fh")
    assert (t["state"], t["reason"]) == ("hung", "heartbeat_stale")
    settle(sandbox)


def test_fake_fake_done_text_is_not_completion(sandbox):
    start_ok(sandbox, "fx", *fake("--fake-done", "--work", "300"))
    wait_for(lambda: "__TASK_DONE__" in dispatch(sandbox, "logs", "fx").doc["text"])
    assert status(sandbox, "fx")["state"] == "running"  # P3: log text never decides
    dispatch(sandbox, "stop", "fx")
    settle(sandbox)
