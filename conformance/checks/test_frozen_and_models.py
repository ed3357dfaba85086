"""P14 (a frozen tmux server must not freeze the dispatcher) and P15 (model allowlist, argv recorded)."""

from __future__ import annotations

import os
import signal
import threading
import time

from conformance.context import Ctx
from conformance.harness import TERMINAL, Call
from conformance.isolation import find_marked
from conformance.registry import check
from conformance.timing import STATUS_FROZEN_LIMIT

# Neither P14 check is serial: each freezes only its own sandbox's server, and their bounds (a status
# call within STATUS_FROZEN_LIMIT + 1 s, a verdict within crash_bound or the lifetime + 5 s, a tmux
# client blocked past 7.5 s) are seconds wide, so another check running beside them changes nothing;
# the known-bads block forever. Serial, they kept the other worker idle ~15 s of a ~110 s run.


def _bounded_status(dispatch: Ctx, tid: str, limit: float, server: object) -> Call | None:
    """One `status` call, abandoned after `limit` + slack: None when it did not answer by then.

    The harness kills a timed-out call's process group, but a tmux client blocked on a stopped server
    has already handed its stdout to the server (SCM_RIGHTS in the socket queue), so the pipe never
    reaches EOF while the server is stopped. On overrun the server is thawed (SIGCONT) so the call can
    end, and the caller fails the check: a bounded total time whatever the implementation does.
    """
    box: list[Call | BaseException] = []

    def call() -> None:
        try:
            box.append(dispatch.impl.run("status", tid, timeout=limit + 2.0, strict=False))
        except BaseException as e:  # surfaced in the check's own thread
            box.append(e)

    th = threading.Thread(target=call, daemon=True)
    th.start()
    th.join(limit + 3.0)
    if th.is_alive():
        server.signal(signal.SIGCONT)  # type: ignore[attr-defined]
        th.join(15.0)
        return None
    if box and isinstance(box[0], BaseException):
        raise box[0]
    return box[0] if box else None  # type: ignore[return-value]


@check(
    id="P14.frozen-server.status-answers",
    level="MUST",
    pitfall="P14",
    reason="give every tmux call a timeout and judge the agent from its own process and files, so `status` "
    "answers within 5 s with a SIGSTOPped server and still sees the agent die",
)
def test_frozen_server_status_answers(dispatch: Ctx) -> None:
    from faults.procfault import ProcIdentity
    from faults.tmuxfault import freeze_server

    agent = dispatch.agent("--work", "60")
    tid = dispatch.run_agent(agent)
    start = agent.wait_for("start", 15)
    dispatch.wait_running(tid)
    limit = STATUS_FROZEN_LIMIT + 1.0  # + process start-up on a loaded machine
    with freeze_server(dispatch.sandbox.socket) as server:  # thawed on the way out, whatever happens
        call = _bounded_status(dispatch, tid, limit, server)
        assert call is not None, (
            f"status did not answer within {limit + 3:g}s with the tmux server frozen "
            f"(limit {STATUS_FROZEN_LIMIT:g}s; the server was thawed to end the call)"
        )
        assert not call.timed_out and call.duration_s <= limit, (
            f"status took {call.duration_s:.1f}s with the tmux server frozen (limit {STATUS_FROZEN_LIMIT:g}s)"
        )
        assert call.exit_code == 0 and call.problem is None, f"status with a frozen server: {call.describe()}"
        dispatch.latency("status, server frozen", call.duration_s)
        assert ProcIdentity(start.pid, start["start_ticks"]).signal(signal.SIGKILL), (
            "agent gone before the kill"
        )
        t_kill = time.monotonic()
        end = t_kill + dispatch.knobs.crash_bound + limit
        state = None
        while True:
            call = _bounded_status(dispatch, tid, limit, server)
            assert call is not None and not call.timed_out and call.duration_s <= limit, (
                "a status call did not answer in time with the server frozen"
                + (f" ({call.duration_s:.1f}s)" if call is not None else "")
            )
            assert call.exit_code == 0 and call.problem is None, f"status: {call.describe()}"
            state = call.doc.get("state")
            now = time.monotonic()
            if state in TERMINAL or now >= end:
                break
            time.sleep(0.1)
        assert state in TERMINAL, f"agent SIGKILLed while the server was frozen: still {state!r}"
        dispatch.latency("agent killed->terminal, server frozen", now - t_kill)
        assert state in ("crashed", "failed"), f"state {state!r}, expected crashed"


TMUX_CALL_LIMIT = STATUS_FROZEN_LIMIT  # the longest one tmux call of the implementation may block


def _stuck_tmux_clients(dispatch: Ctx, server_pid: int, older_than: float) -> list[str]:
    """tmux clients of the sandbox (not the server) alive for more than ``older_than`` seconds."""
    now = time.time()
    return [
        f"pid {lk.pid} ({now - lk.create_time:.1f}s): {lk.cmdline[:120]}"
        for lk in find_marked(dispatch.sandbox.marker)
        if lk.pid != server_pid
        and os.path.basename(lk.cmdline.split(" ", 1)[0]) == "tmux"
        and now - lk.create_time > older_than
    ]


@check(
    id="P14.frozen-server.supervisor-acts",
    level="MUST",
    pitfall="P14",
    reason="give the supervisor's own tmux calls a timeout: with the server SIGSTOPped it must still "
    "record an agent's death and enforce the max lifetime, and no tmux call may block past its timeout",
    needs=("max_lifetime",),
)
def test_frozen_server_supervisor_acts(dispatch: Ctx) -> None:
    from faults.procfault import ProcIdentity
    from faults.tmuxfault import freeze_server

    life = 8.0
    k = dispatch.knobs.but(max_lifetime=life)
    victim, elder = dispatch.agent("--work", "60"), dispatch.agent("--work", "60")
    tids = {"victim": dispatch.run_agent(victim)}
    start = victim.wait_for("start", 15)
    dispatch.wait_running(tids["victim"], victim)
    tids["elder"] = dispatch.task_id()
    dispatch.make_impl(k).start(tids["elder"], elder.argv)  # only the elder has a short lifetime
    t_started = time.monotonic()
    dispatch.wait_running(tids["elder"], elder)
    limit = STATUS_FROZEN_LIMIT + 1.0
    states: dict[str, str | None] = {}
    stuck: list[str] = []
    pre = dispatch.impl.status(tids["elder"])["state"]
    dispatch.require(  # the lifetime must run out while frozen, or nothing is measured
        pre not in TERMINAL,
        "the elder's max lifetime must still be running when the server is frozen",
        "P09.max-lifetime.timed-out",
        f"{pre!r} {time.monotonic() - t_started:.1f}s after its start (a very loaded machine)",
    )
    with freeze_server(dispatch.sandbox.socket) as server:
        t_freeze = time.monotonic()
        assert ProcIdentity(start.pid, start["start_ticks"]).signal(signal.SIGKILL), (
            "agent gone before the kill"
        )
        t_kill = time.monotonic()
        end = max(t_kill + k.crash_bound + TMUX_CALL_LIMIT, t_started + k.lifetime_bound + TMUX_CALL_LIMIT)
        census_until = t_freeze + TMUX_CALL_LIMIT + k.slack + 0.5
        while True:
            for name, tid in tids.items():
                if states.get(name) in TERMINAL:
                    continue
                call = _bounded_status(dispatch, tid, limit, server)
                assert call is not None and call.exit_code == 0 and call.problem is None, (
                    "status did not answer with the tmux server frozen"
                    + (f": {call.describe()}" if call is not None else "")
                )
                states[name] = call.doc.get("state")
            stuck = stuck or _stuck_tmux_clients(dispatch, server.pid, TMUX_CALL_LIMIT + k.slack)
            now = time.monotonic()
            done = all(states.get(n) in TERMINAL for n in tids)
            if (done and now >= census_until) or now >= end or stuck:
                break
            time.sleep(0.1)
        elder_left = [str(p) for p in elder.processes()]
    frozen_for = now - t_freeze
    assert not stuck, (
        f"a tmux call stayed blocked on the frozen server past {TMUX_CALL_LIMIT + k.slack:g}s: {stuck[0]}"
    )
    assert states["victim"] in TERMINAL, (
        f"the supervisor did not act with the tmux server frozen: agent SIGKILLed, still "
        f"{states['victim']!r} after {now - t_kill:.1f}s"
    )
    assert states["victim"] in ("crashed", "failed"), (
        f"killed agent: state {states['victim']!r}, expected crashed"
    )
    assert states["elder"] == "timed_out", (
        f"the supervisor did not act with the tmux server frozen: max lifetime {life:g}s passed, task "
        f"{states['elder']!r} after {frozen_for:.1f}s frozen"
    )
    assert not elder_left, f"timed_out with the server frozen but the agent still runs: {elder_left[0]}"


def _nothing_started(dispatch: Ctx, tid: str, agent) -> None:
    """Right after one refusal: no agent ran, no server; `list` is asked once for all refusals at the end."""
    assert not agent.journal.exists(), "the agent ran although the start was refused"
    assert not dispatch.sandbox.socket.exists(), "a refused start created the tmux socket/server"


@check(
    id="P15.model.refused",
    level="MUST",
    pitfall="P15",
    reason="check --model against DISPATCH_MODELS (and the model syntax) before creating anything; "
    "refuse with exit 2, model_not_allowed",
    needs=("models",),
)
def test_model_outside_allowlist_refused(dispatch: Ctx) -> None:
    impl = dispatch.impl.with_env(DISPATCH_MODELS="sonnet,opus")
    refused = {}
    for model in ("gpt-5", "opus; touch CANARY", "sonnet,opus", "-x"):
        agent = dispatch.agent()
        tid = dispatch.task_id()
        call = impl.start_call(tid, agent.argv, model=model, strict=False)
        assert call.problem is None, call.describe()
        assert call.exit_code == 2, f"model {model!r} not allowed: {call.describe()}, expected exit 2"
        if model == "gpt-5":
            assert call.error_code == "model_not_allowed", f"error.code {call.error_code!r}"
        _nothing_started(dispatch, tid, agent)
        refused[tid] = model
    left = [refused[t["task_id"]] for t in impl.list() if t["task_id"] in refused]
    assert not left, f"a refused start left a task (model {left[0]!r})"


@check(
    id="P15.model.recorded",
    level="MUST",
    pitfall="P15",
    reason="record the model in the task and give it to the agent as DISPATCH_MODEL, exactly as given",
    needs=("models",),
)
def test_allowed_model_recorded_and_passed(dispatch: Ctx) -> None:
    impl = dispatch.impl.with_env(DISPATCH_MODELS="sonnet,opus")
    agent = dispatch.agent("--work", "0.2")
    tid = dispatch.task_id()
    impl.start(tid, agent.argv, model="opus")
    task = impl.wait(tid, 20)
    env = agent.wait_for("start", 5)["env"]
    assert task["model"] == "opus", f"task model {task['model']!r}"
    assert env.get("DISPATCH_MODEL") == "opus", f"the agent saw DISPATCH_MODEL={env.get('DISPATCH_MODEL')!r}"


@check(
    id="P15.argv.recorded",
    level="MUST",
    pitfall="P15",
    reason="execute ARGV exactly as given (execvp, no shell, no re-quoting) and record that same argv",
)
def test_argv_recorded_is_argv_run(dispatch: Ctx) -> None:
    words = [
        "--print",
        "two words",
        "--print",
        "$HOME `id` ; |",
        "--print",
        "",
        "--print",
        "ünï 🎉",
        "--print=-x",
    ]
    agent = dispatch.agent("--work", "0.2", *words)
    tid = dispatch.run_agent(agent)
    task = dispatch.impl.wait(tid, 20)
    start = agent.wait_for("start", 5)
    assert task["argv"] == agent.argv, f"recorded argv {task['argv']!r} differs from the argv given"
    ran = start["argv"]
    assert ran[1:] == agent.argv[1:] and ran[0].endswith(agent.argv[0].rsplit("/", 1)[-1]), (
        f"the agent ran with argv {ran!r}, the task records {task['argv']!r}"
    )
    dispatch.require_succeeded(task)
