"""P10: the agent's exit status and killing signal are recorded, not lost behind an `exec` or a shell."""

from __future__ import annotations

import json
import signal

import pytest

from conformance.checks._procs import supervision
from conformance.context import Ctx, wait_until
from conformance.harness import TERMINAL
from conformance.registry import check

CASES = {
    "exit0": (["--exit", "0"], "succeeded", 0, None),
    "exit3": (["--exit", "3"], "failed", 3, None),
    "sigkill": (["--die", "KILL"], "crashed", None, 9),
}


@pytest.mark.parametrize("case", list(CASES))
@check(
    id="P10.exit-recorded",
    level="MUST",
    pitfall="P10",
    reason="supervise the agent as a child (wrapper) and record its real exit code or signal, then the state",
)
def test_exit_recorded(dispatch: Ctx, case: str) -> None:
    flags, state, code, sig = CASES[case]
    agent = dispatch.agent("--work", "0.3", *flags)
    tid = dispatch.run_agent(agent)
    task = dispatch.impl.wait(tid, timeout=15)
    # judged: the recorded outcome only; whether agent_pid names the agent is P01's (P01.agent-pid.*)
    assert task["state"] == state, (
        f"{case}: state {task['state']!r} (reason {task['reason']!r}), expected {state!r}"
    )
    assert task["exit_code"] == code, f"{case}: exit_code {task['exit_code']!r}, expected {code!r}"
    assert task["signal"] == sig, f"{case}: signal {task['signal']!r}, expected {sig!r}"


RESULT = {"answer": 42, "kept": "through a supervisor's death"}


@check(
    id="P10.supervisor-lost.keeps-outcome",
    level="MUST",
    pitfall="P10",
    reason="when recovery (reap/status) settles a task whose supervisor died, keep what is known: a "
    "recovered success carries its complete result, a recovered failure its exit code or signal",
    needs=("reap",),
)
def test_recovery_keeps_the_outcome(dispatch: Ctx) -> None:
    # a long grace and no heartbeat timing: the supervisor cannot decide before it is killed, however
    # loaded the machine (the kill is the deterministic point, not a race)
    dispatch.set_knobs(stale=0, grace=30)
    # (b) the agent exits 3 after its supervision is gone
    quitter = dispatch.agent("--work", "6.0", "--exit", "3")
    b = dispatch.run_agent(quitter)
    # (a) a complete result is written and the agent lingers: the supervision is killed right then,
    #     inside the grace after which it would decide completed_by_result
    lingerer = dispatch.agent("--result", json.dumps(RESULT), "--result-mode", "atomic", "--result-at", "0.2",
                              "--work", "60")  # fmt: skip
    a = dispatch.run_agent(lingerer)
    quitter.wait_for("start", 15)
    lingerer.wait_for("result", 15)
    dispatch.require(
        quitter.processes(),
        "the exit-3 agent must still run when the supervision is killed",
        "P10.exit-recorded",
    )
    _kill_supervision(dispatch, lingerer, quitter)  # both tasks' supervision, right at the result
    wait_until(lambda: not quitter.processes(), 15)  # exit 3 at 6 s (or SIGHUP with its pane's process)
    dispatch.impl.reap()
    for tid, what in ((a, "a complete result then lingering"), (b, "exit 3")):
        task = dispatch.impl.wait(tid, 15)
        state = task["state"]
        if state == "succeeded":
            assert task["result"] == RESULT, (
                f"{what}, supervisor killed: recovered as succeeded ({task['reason']!r}) without its result "
                f"(result {str(task['result'])[:60]!r})"
            )
        elif state == "failed":
            assert task["exit_code"] is not None or task["signal"] is not None, (
                f"{what}, supervisor killed: recovered as failed ({task['reason']!r}) with neither exit code "
                "nor signal"
            )
        assert state in TERMINAL, f"{what}: still {state!r} after reap"
    task = dispatch.impl.status(b)
    assert task["state"] != "succeeded", f"exit 3 was recovered as succeeded ({task['reason']!r})"
    if task["state"] == "failed" and task["reason"] != "invalid_result":
        assert task["exit_code"] == 3, f"exit 3 recovered as failed with exit_code {task['exit_code']!r}"


def _kill_supervision(dispatch: Ctx, agent, other) -> None:
    """SIGKILL every supervising process of the sandbox now (the other agent's tree is spared)."""
    spare = tuple(p.pid for p in other.processes())
    supervision(dispatch, agent, exclude=spare).signal(signal.SIGKILL)
