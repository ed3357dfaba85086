"""P3: output capture is best effort and never decides completion; logs are plain UTF-8 and complete."""

from __future__ import annotations

import re
import secrets
import time

from conformance.context import Ctx
from conformance.harness import TERMINAL
from conformance.registry import check

SPLIT_TEXT = "héllo wörld → ✓ 日本語 🎉 ñ"  # what fake-agent --split-utf8 prints, byte by byte
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\x80-\x9f]")


@check(
    id="P03.done-marker.ignored",
    level="MUST",
    pitfall="P03",
    reason="decide completion from the agent's process and result file only, never from text in its "
    "output (__TASK_DONE__, 'exit code 0', a shell prompt)",
)
def test_done_marker_in_output_is_ignored(dispatch: Ctx) -> None:
    agent = dispatch.agent(
        "--ansi-flood", "20000", "--split-utf8", "--fake-done", "--work", "1.5", "--die", "KILL"
    )
    tid = dispatch.run_agent(agent)
    bound = 1.5 + 15 + dispatch.knobs.crash_bound
    poll = dispatch.impl.wait_for_state(tid, TERMINAL, bound, interval=0.1)
    assert poll.matched, f"the agent died by SIGKILL, status still {poll.state!r}"
    # judged: the done marker in the output was not taken as the end; the recorded signal (and crashed
    # rather than failed) is P10's (P10.exit-recorded.sigkill)
    assert not poll.saw("succeeded"), (
        f"reported succeeded from the output's done marker (states {poll.states})"
    )


@check(
    id="P03.log.plain-utf8",
    level="SHOULD",
    pitfall="P03",
    reason="filter pipe-pane output: incremental UTF-8 decoding (characters split across writes), "
    "strip ANSI/OSC/control sequences, CRLF -> LF",
    needs=("logs",),
)
def test_log_is_plain_utf8(dispatch: Ctx) -> None:
    nonce = secrets.token_hex(4)
    agent = dispatch.agent(
        "--print",
        f"BEGIN-{nonce}",
        "--ansi-flood",
        "20000",
        "--split-utf8",
        "--crlf",
        "--print",
        f"END-{nonce}",
    )
    tid = dispatch.run_agent(agent)
    dispatch.require_succeeded(dispatch.impl.wait(tid, 20))  # an ended task's whole log is judged
    raw = dispatch.impl.logs_raw(tid)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise AssertionError(f"`logs` output is not UTF-8: {e}") from None
    bad = CONTROL.search(text)
    assert bad is None, (
        f"log holds control/escape characters: {text[max(0, bad.start() - 20) : bad.end() + 20]!r}"
    )
    assert "\r" not in text, "log holds CR (CRLF not normalised)"
    assert f"END-{nonce}" in text, "the last printed line is missing from the log"
    assert SPLIT_TEXT in text, "multi-byte characters written byte by byte are garbled in the log"
    doc = dispatch.impl.logs(tid)
    assert doc["text"] == text, "`logs --json` text differs from `logs`"


@check(
    id="P03.log.burst-kept",
    level="SHOULD",
    pitfall="P03",
    reason="before the session closes, flush the log pipe (end marker + ack) so a burst just before "
    "exit reaches the log",
    needs=("logs",),
)
def test_burst_before_exit_is_kept(dispatch: Ctx) -> None:
    agent = dispatch.agent("--burst-before-exit", "262144")
    tid = dispatch.run_agent(agent)
    dispatch.require_succeeded(dispatch.impl.wait(tid, 20))  # an ended task's whole log is judged
    burst = next(e for e in agent.all("output") if e.get("kind") == "burst")
    text = dispatch.impl.logs(tid)["text"]
    assert f"BURST-END {burst['nonce']}" in text, (
        f"the last line of a {burst['bytes']}-byte burst printed right before exit is not in the log "
        f"({len(text)} chars captured)"
    )


@check(
    id="P03.log.first-byte",
    level="SHOULD",
    pitfall="P03",
    reason="attach pipe-pane before the agent starts (start it only after the pipe is on), so output "
    "is captured from the first byte",
    needs=("logs",),
)
def test_output_captured_from_first_byte(dispatch: Ctx) -> None:
    nonce = secrets.token_hex(4)
    agent = dispatch.agent("--print", f"FIRST-{nonce}", "--work", "0.2", heartbeat=None)
    tid = dispatch.run_agent(agent)
    dispatch.impl.wait(tid, 20)
    text = dispatch.impl.logs(tid)["text"]
    assert f"FIRST-{nonce}" in text, (
        f"the agent's first line (printed at once) is missing from the log: {text[:120]!r}"
    )
    first = next((ln for ln in text.splitlines() if ln.strip()), "")
    assert first.strip() == f"FIRST-{nonce}", (
        f"the log does not start with the agent's first line: {first[:80]!r}"
    )
    time.sleep(0)  # nothing to wait for: the task ended and the log is final


@check(
    id="P03.log.live",
    level="SHOULD",
    pitfall="P03",
    reason="write the log as output arrives (pipe-pane into a filter that flushes per chunk), so `logs` "
    "shows a running task's output, not only after it ended",
    needs=("logs",),
)
def test_log_readable_while_running(dispatch: Ctx) -> None:
    nonce = secrets.token_hex(4)
    agent = dispatch.agent("--print", f"LIVE-{nonce}", "--work", "20")
    tid = dispatch.run_agent(agent)
    dispatch.wait_running(tid, agent)
    t0 = time.monotonic()
    bound = 3.0 + dispatch.knobs.slack
    seen = ""
    while time.monotonic() - t0 < bound:
        seen = dispatch.impl.logs(tid)["text"]
        if f"LIVE-{nonce}" in seen:
            break
        time.sleep(0.1)
    state = dispatch.impl.status(tid)["state"]
    dispatch.impl.stop(tid)
    assert f"LIVE-{nonce}" in seen, (
        f"the log stays without the running agent's first line {bound:.1f}s after it was printed "
        f"({len(seen)} chars; task {state!r}): it is only written at exit"
    )
    assert state not in TERMINAL, f"the task ended ({state!r}) before its live log could be judged"
    dispatch.latency("printed->in log, running", time.monotonic() - t0)
