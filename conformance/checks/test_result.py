"""P5: a result file is only read when complete; partial, empty or invalid is never success."""

from __future__ import annotations

import json

from conformance.context import Ctx
from conformance.harness import TERMINAL
from conformance.registry import check

RESULT = {"answer": 42, "summary": "conformance " * 40, "files": ["a.py", "b.py"], "ok": True}
DOC = json.dumps(RESULT)


def _results_only(dispatch: Ctx) -> None:
    """No heartbeat timing in a result check: P5 is how a result is read, not when an agent first beats.

    With the default knobs an agent booting slower than stale + grace (a starved boot under CPU hogs) is
    `hung` for any dispatcher, which these checks would blame on the result file (CI: the flawless
    panepid's positive control ended hung/heartbeat_stale). Forced: tests/test_conformance_slow_boot.py.
    """
    dispatch.set_knobs(stale=0)


def _positive_control(dispatch: Ctx) -> str:
    """Start a task that writes a complete result atomically, in the same run as a negative case."""
    return dispatch.run_agent(dispatch.agent("--result", DOC, "--result-mode", "atomic", "--work", "0.3"))


def _assert_control(dispatch: Ctx, tid: str, case: str) -> None:
    """Not-a-success means something only if a complete result does come back as one (P5)."""
    task = dispatch.impl.wait(tid, 25)
    assert task["state"] == "succeeded" and task["result"] == RESULT, (
        f"the {case} result was not reported succeeded, but neither was a complete one (positive "
        f"control: state {task['state']!r}, reason {task['reason']!r}, result "
        f"{str(task['result'])[:60]!r}): the result file is not read"
    )


def _run(dispatch: Ctx, *flags: str):
    agent = dispatch.agent("--result", DOC, *flags)
    tid = dispatch.run_agent(agent)
    poll = dispatch.impl.wait_for_state(tid, TERMINAL, 25, interval=0.05)
    assert poll.matched, f"task still {poll.state!r} after 25s"
    for _, task in poll.tasks:
        if task.get("state") == "succeeded":
            got = task.get("result")
            assert got == RESULT, (
                "succeeded with no result returned (result null)"
                if got is None
                else f"succeeded with a partial result: {str(got)[:80]!r}"
            )
    return agent, poll


@check(
    id="P05.partial-result.chunked",
    level="MUST",
    pitfall="P05",
    reason="read the result only after the agent exited (or retry until it parses as a whole); a result "
    "written in chunks must be reported complete",
)
def test_chunked_result_reported_complete(dispatch: Ctx) -> None:
    _results_only(dispatch)
    _, poll = _run(dispatch, "--result-mode", "chunked", "--result-chunks", "4", "--result-pause", "0.4")
    assert poll.state == "succeeded", (
        f"a result written in 4 chunks then exit 0: state {poll.state!r} (reason {poll.task.get('reason')!r})"
    )
    assert poll.task["result"] == RESULT, (
        f"result {str(poll.task['result'])[:80]!r} is not the complete document"
    )


@check(
    id="P05.partial-result.truncated",
    level="MUST",
    pitfall="P05",
    reason="a result file that is not complete valid JSON makes the task failed (invalid_result), never succeeded",
)
def test_truncated_result_is_not_success(dispatch: Ctx) -> None:
    _results_only(dispatch)
    control = _positive_control(dispatch)
    _, poll = _run(dispatch, "--result-mode", "truncated")
    assert not poll.saw("succeeded"), f"a truncated result was reported succeeded (states {poll.states})"
    assert poll.state == "failed", f"truncated result + exit 0: state {poll.state!r}, expected failed"
    assert poll.task.get("result") is None, "a truncated result was reported as the result"
    _assert_control(dispatch, control, "truncated")


@check(
    id="P05.partial-result.empty",
    level="MUST",
    pitfall="P05",
    reason="an empty result file makes the task failed (invalid_result), never succeeded",
)
def test_empty_result_is_not_success(dispatch: Ctx) -> None:
    _results_only(dispatch)
    control = _positive_control(dispatch)
    _, poll = _run(dispatch, "--result-mode", "empty")
    assert not poll.saw("succeeded"), f"an empty result was reported succeeded (states {poll.states})"
    assert poll.state == "failed", f"empty result + exit 0: state {poll.state!r}, expected failed"
    _assert_control(dispatch, control, "empty")


@check(
    id="P05.result.complete",
    level="MUST",
    pitfall="P05",
    reason="report a complete valid result document verbatim in `result` with state succeeded",
)
def test_complete_result_reported(dispatch: Ctx) -> None:
    _results_only(dispatch)
    _, poll = _run(dispatch, "--result-mode", "atomic", "--work", "0.3")
    assert poll.state == "succeeded", f"state {poll.state!r} (reason {poll.task.get('reason')!r})"
    assert poll.task["result"] == RESULT, (
        f"result {str(poll.task['result'])[:80]!r} differs from what was written"
    )
