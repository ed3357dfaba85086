"""P8: prompts and sent text reach the agent byte for byte; nothing in them is ever interpreted or run."""

from __future__ import annotations

import base64
import hashlib
import random
from pathlib import Path

from conformance.context import Ctx
from conformance.registry import check


def _corpus(canary: Path, big: bool) -> dict[str, bytes]:
    c = str(canary)
    rnd = random.Random(8)
    words = [
        b"alpha",
        b"Enter",
        b"C-c",
        b"$HOME",
        b"`id`",
        b";",
        b"'",
        b'"',
        b"\\",
        b"\n",
        b"\t",
        b"#{pane_id}",
    ]
    out = {
        "enter-words": b"Enter",
        "key-names": b"C-c C-d Escape Enter C-m Space BSpace Tab",
        "trailing-semicolon": f"do the thing; touch {c}-semi;".encode(),
        "command-substitution": f"$(touch {c}-subst)".encode(),
        "backticks": f"`touch {c}-tick`".encode(),
        "quotes": b"'single' \"double\" \\back\\slash 'unbalanced \"also",
        "newlines": f"line one\nline two\n\ntouch {c}-nl\n".encode(),
        "control-bytes": bytes(range(1, 32)) + b"\x7f after controls",
        "utf8": "héllo wörld 日本語 🎉 \u202e rtl".encode(),
        "tmux-format": b"#{session_name} #(touch " + c.encode() + b"-fmt) %1 @2 ;",
    }
    if big:
        body = b" ".join(rnd.choice(words) for _ in range(250_000))
        out["one-megabyte"] = (body + f" $(touch {c}-big)".encode()).ljust(1 << 20, b"x")[: 1 << 20]
    return out


@check(
    id="P08.prompt.byte-for-byte",
    level="MUST",
    pitfall="P08",
    reason="deliver the prompt as a private file copy (DISPATCH_PROMPT_FILE), never through send-keys or "
    "a shell string; every byte must arrive and nothing may run",
)
def test_prompts_delivered_byte_for_byte(dispatch: Ctx) -> None:
    impl = dispatch.set_knobs(stale=0)
    canary = dispatch.sandbox.workdir / "CANARY"
    corpus = _corpus(canary, big=True)
    started = {}
    for name, prompt in corpus.items():
        agent = dispatch.agent("--work", "0.1", heartbeat=None)
        tid = dispatch.task_id("p")
        impl.start(tid, agent.argv, prompt=prompt)
        started[name] = (tid, agent)
    tasks = impl.wait_all([tid for tid, _ in started.values()], 30)
    for name, (tid, agent) in started.items():
        task = tasks[tid]
        ev = agent.wait_for("prompt", 5)
        want = hashlib.sha256(corpus[name]).hexdigest()
        assert not ev.get("missing"), f"{name}: the agent found no prompt file ({ev.get('error')})"
        assert ev["length"] == len(corpus[name]) and ev["sha256"] == want, (
            f"prompt {name!r} arrived changed: {ev['length']} bytes, expected {len(corpus[name])}"
        )
        dispatch.require_succeeded(task, f"the task given prompt {name!r}")
    ran = sorted(p.name for p in canary.parent.glob("CANARY*"))
    assert not ran, f"prompt text was executed: {ran}"


@check(
    id="P08.send.byte-for-byte",
    level="MUST",
    pitfall="P08",
    reason="send text as a pasted buffer (load-buffer from the file + paste-buffer -p -r), never send-keys "
    "with the text; every byte must arrive inside one paste, followed by one Enter",
    needs=("send",),
)
def test_send_delivered_byte_for_byte(dispatch: Ctx) -> None:
    # 11 agents wait for their text in turn: on a loaded machine the last one waits longer than the
    # default 20 s safety-net lifetime (seen: `send` refused, task timed_out); the lifetime is not tested
    impl = dispatch.set_knobs(stale=0, max_lifetime=120)
    canary = dispatch.sandbox.workdir / "CANARY"
    corpus = _corpus(canary, big=False)
    corpus["64k"] = (b"0123456789abcdef" * 4096)[:65536]
    running = {}
    for name in corpus:
        agent = dispatch.agent("--read-paste", heartbeat=None)
        tid = dispatch.task_id("s")
        impl.start(tid, agent.argv)
        running[name] = (tid, agent)
    for name, (tid, agent) in running.items():
        agent.wait_for("paste_ready", 20)
        doc = impl.send(tid, corpus[name])
        assert doc["bytes"] == len(corpus[name]), f"{name}: send reported {doc['bytes']} bytes"
    for name, (_tid, agent) in running.items():
        enter = agent.wait_for("input", 15, where=lambda e: e.get("kind") == "enter")
        pastes = [e for e in agent.all("input") if e.get("kind") == "paste"]
        want = hashlib.sha256(corpus[name]).hexdigest()
        got = b"".join(base64.b64decode(e.get("b64", "")) for e in pastes)
        assert pastes, (
            f"{name}: the text did not arrive as a paste (typed: {enter.get('typed_b64', '')[:40]!r})"
        )
        assert len(pastes) == 1 and pastes[0]["sha256"] == want, (
            f"{name}: sent text arrived changed ({len(got)} bytes in {len(pastes)} paste(s), expected "
            f"{len(corpus[name])}): {got[:60]!r}"
        )
        assert not enter.get("typed_b64"), f"{name}: extra keys typed outside the paste"
    tasks = impl.wait_all([tid for tid, _ in running.values()], 15)
    for name, (tid, _) in running.items():
        dispatch.require_succeeded(tasks[tid], f"the task sent {name!r}")
    ran = sorted(p.name for p in canary.parent.glob("CANARY*"))
    assert not ran, f"sent text was executed: {ran}"
