"""The chaos checker's rules alone (pure logic: no tmux, no processes) and the replay rendering."""

from __future__ import annotations

import math

from chaos.checker import Fault, Journal, Knobs, Stop, TaskFacts, causes, judge, overdue, percentiles
from chaos.history import History, render_replay

K = Knobs(stale=0.5, grace=0.5, max_lifetime=4.0, early=0.25, race=1.0, detect=2.5)


def facts(j: Journal, **kw) -> TaskFacts:
    return TaskFacts(
        task_id="t1", behaviour=kw.pop("behaviour", "x"), call_t0=100.0, call_t1=100.5, journal=j, **kw
    )


def beats(start: float, end: float, step: float = 0.1) -> list[float]:
    n = int(round((end - start) / step))
    return [start + i * step for i in range(n + 1)]


def task(state, reason, exit_code=None, signal=None, result=None):
    return {"state": state, "reason": reason, "exit_code": exit_code, "signal": signal, "result": result}


def test_natural_outcomes_follow_the_journal():
    doc = {"ok": 1}
    ok = facts(
        Journal(
            started=100.6,
            beats=beats(100.6, 101.0),
            ended=101.0,
            how="exit",
            code=0,
            result_at=100.99,
            result_complete=True,
        ),
        result_doc=doc,
    )
    assert judge(ok, K, task("succeeded", "exited", 0, None, doc), (101.01, 101.01)).ok
    lost = judge(ok, K, task("succeeded", "exited", 0, None, None), (101.01, 101.01))
    assert not lost.ok and "result" in lost.message
    assert not judge(ok, K, task("failed", "exited", 1), (101.01, 101.01)).ok
    bad = facts(
        Journal(
            started=100.6, beats=beats(100.6, 101.0), ended=101.0, how="exit", code=0, result_complete=False
        )
    )
    assert judge(bad, K, task("failed", "invalid_result", 0), (101.0, 101.0)).ok
    assert not judge(bad, K, task("succeeded", "exited", 0), (101.0, 101.0)).ok
    sig = facts(Journal(started=100.6, beats=beats(100.6, 101.0), ended=101.0, how="signal", signal=11))
    assert judge(sig, K, task("crashed", "signaled", None, 11), (101.0, 101.0)).ok
    assert not judge(sig, K, task("crashed", "signaled", None, 9), (101.0, 101.0)).ok
    code = facts(Journal(started=100.6, beats=beats(100.6, 101.0), ended=101.0, how="exit", code=7))
    assert judge(code, K, task("failed", "exited", 7), (101.0, 101.0)).ok
    assert not judge(code, K, task("failed", "exited", 0), (101.0, 101.0)).ok


def test_hung_only_after_stale_plus_grace_of_silence():
    j = Journal(started=100.6, beats=beats(100.6, 101.0))  # then silent forever
    f = facts(j)
    assert judge(f, K, task("hung", "heartbeat_stale"), (102.05, 102.05)).ok
    early = judge(f, K, task("hung", "heartbeat_stale"), (101.5, 101.5))  # only stale, no grace: P12
    assert not early.ok and "no cause" in early.message
    # a silence shorter than stale+grace that ended in a normal finish: never hung
    g = facts(Journal(started=100.6, beats=beats(100.6, 101.0), ended=101.7, how="exit", code=0))
    assert not judge(g, K, task("hung", "heartbeat_stale"), (102.1, 102.1)).ok
    assert judge(g, K, task("succeeded", "exited", 0), (101.7, 101.7)).ok
    assert overdue(f, K, 105.0) is not None and overdue(f, K, 101.2) is None


def test_stop_never_overrides_an_earlier_end_but_races_are_accepted():
    j = Journal(started=100.6, beats=beats(100.6, 101.0), ended=101.0, how="exit", code=3)
    late = facts(j, stops=[Stop(104.0, 104.3)])
    assert not judge(late, K, task("stopped", "stop_requested"), (104.1, 104.1)).ok
    racing = facts(j, stops=[Stop(101.2, 101.5)])
    assert judge(racing, K, task("stopped", "stop_requested"), (101.3, 101.3)).ok
    assert judge(racing, K, task("failed", "exited", 3), (101.05, 101.05)).ok


def test_faults_allow_their_outcomes_only_after_they_happen():
    j = Journal(started=100.6, beats=beats(100.6, 102.0))  # killed from outside: no ending
    f = facts(j, faults=[Fault("kill_agent", 102.0, 102.01)])
    assert judge(f, K, task("crashed", "signaled", None, 9), (102.02, 102.02)).ok
    assert not judge(f, K, task("crashed", "signaled", None, 9), (101.5, 101.5)).ok  # before the kill
    sup = facts(
        Journal(started=100.6, beats=beats(100.6, 101.5)), faults=[Fault("kill_supervisor", 101.5, 101.5)]
    )
    assert judge(sup, K, task("crashed", "supervisor_lost"), (101.9, 101.9)).ok
    assert not judge(
        facts(Journal(started=100.6, beats=beats(100.6, 101.5))),
        K,
        task("crashed", "supervisor_lost"),
        (101.9, 101.9),
    ).ok
    member = facts(
        Journal(started=100.6, beats=beats(100.6, 101.0), ended=101.0, how="exit", code=0),
        faults=[Fault("kill_member", 100.8, 100.8)],
    )
    assert judge(member, K, task("succeeded", "exited", 0), (101.0, 101.0)).ok


def test_lifetime_and_completed_by_result():
    doc = {"r": 1}
    j = Journal(started=100.6, beats=beats(100.6, 104.6), result_at=100.8, result_complete=True)
    f = facts(j, result_doc=doc)
    assert judge(f, K, task("succeeded", "completed_by_result", None, None, doc), (101.35, 101.35)).ok
    k10 = Knobs(stale=0.5, grace=0.5, max_lifetime=10.0, early=0.25, race=1.0, detect=2.5)
    assert not judge(f, k10, task("timed_out", "max_lifetime"), (110.6, 110.6)).ok  # result+grace came first
    long = facts(Journal(started=100.6, beats=beats(100.6, 104.6)))
    assert judge(long, K, task("timed_out", "max_lifetime"), (104.2, 104.2)).ok
    assert not judge(long, K, task("timed_out", "max_lifetime"), (103.0, 103.0)).ok


def test_killed_start_allows_an_unfinished_handshake():
    f = facts(Journal(), start_killed=True)
    assert judge(f, K, task("failed", "spawn_failed"), (160.0, 160.0)).ok
    assert judge(f, K, task("stopped", "stop_requested"), (103.0, 103.0)).ok
    kinds = {c.label for c in causes(f, K)}
    assert "start CLI killed mid-call" in kinds


def test_killed_start_with_no_agent_is_ended_by_a_late_reap_after_its_lifetime():
    """Seed 7 under 2x load: no agent ever ran, the final reap came at +9.45 s with timed_out."""
    f = facts(Journal(), start_killed=True)
    assert not any(c.sure for c in causes(f, K))
    assert judge(f, K, task("timed_out", "max_lifetime"), (109.45, 109.45)).ok
    assert not judge(f, K, task("timed_out", "max_lifetime"), (101.0, 101.0)).ok  # before its lifetime
    started = facts(Journal(started=100.6, beats=beats(100.7, 101.0)), start_killed=True)
    assert any(c.sure for c in causes(started, K))  # an agent ran: its supervisor's bounds still hold


def test_percentiles_are_nearest_rank():
    assert percentiles([]) == {}
    p = percentiles([float(i) for i in range(1, 101)])
    assert p == {"p50": 50.0, "p95": 95.0, "p99": 99.0}
    assert percentiles([3.0]) == {"p50": 3.0, "p95": 3.0, "p99": 3.0}
    assert not math.isnan(percentiles([1.0, 2.0])["p50"])


def test_history_is_append_only_monotonic_and_replays_render():
    h = History()
    a = h.add("op", "start", task_id="t1", behaviour="ok")
    b = h.add("fault", "kill_agent", t0=a.t0 - 5, task_id="t1")  # late append keeps the order
    assert b.seq == 1 and b.t0 >= a.t0
    h.step("start", behaviour="ok", work=0.3, variant=0, noise=False)
    h.step("kill_agent", task="t1")
    assert h.counts("op") == {"start": 1} and "kill_agent" in h.format()
    src = render_replay(
        h.program, seed=7, impl="python -m runner.cli", config={"stale": 0.5}, message="boom\nline2"
    )
    compile(src, "replay.py", "exec")
    assert "def test_chaos_replay_seed_7" in src and "('kill_agent', {'task': 't1'})" in src


def test_silence_before_the_first_beat_is_only_sure_from_the_start_calls_return():
    """A start call slowed by load (3.7 s) and an agent that ends at once without a beat: hung was allowed
    but not sure (the dispatcher's clock may start when supervision does), so its success stands."""
    slow = TaskFacts(
        task_id="t1",
        behaviour="ok",
        call_t0=100.0,
        call_t1=103.69,
        journal=Journal(
            started=103.7, ended=103.8, how="exit", code=0, result_at=103.79, result_complete=True
        ),
        result_doc={"ok": 1},
    )
    assert judge(slow, K, task("succeeded", "exited", 0, None, {"ok": 1}), (103.92, 103.92)).ok
    assert judge(slow, K, task("hung", "heartbeat_stale"), (101.2, 101.2)).ok  # a clock from the call
    # the same silence after a prompt start call is still surely hung: a late success is refused
    k = Knobs(stale=0.5, grace=0.5, max_lifetime=0.0, early=0.25, race=1.0, detect=2.5)
    prompt = facts(Journal(started=100.6, ended=104.6, how="exit", code=0))
    late = judge(prompt, k, task("succeeded", "exited", 0), (104.6, 104.6))
    assert not late.ok and "no cause" in late.message
