"""P10: the agent's exit status and killing signal are recorded, not lost behind an `exec` or a shell."""

from __future__ import annotations

import pytest

from conformance.context import Ctx
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
    ending = agent.wait_for("ending", 5)
    assert task["state"] == state, (
        f"{case}: state {task['state']!r} (reason {task['reason']!r}), expected {state!r}"
    )
    assert task["exit_code"] == code, f"{case}: exit_code {task['exit_code']!r}, expected {code!r}"
    assert task["signal"] == sig, f"{case}: signal {task['signal']!r}, expected {sig!r}"
    assert task["agent_pid"] == ending.pid, (
        f"agent_pid {task['agent_pid']} is not the agent's pid {ending.pid}"
    )
