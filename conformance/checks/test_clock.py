"""P6: staleness is judged on content change and a monotonic clock: wall-clock jumps and coarse file
timestamps change nothing."""

from __future__ import annotations

import os

import pytest

from conformance.checks._boot import start_and_await
from conformance.context import Ctx
from conformance.harness import TERMINAL
from conformance.registry import check

JUMPS = {"forward": 3600.0, "backward": -3600.0}
# stale+grace 4 s, not TIGHT's 1.2 s: a dispatcher counts staleness from the start until the first
# beat, and a Python agent booting at load 15-30 took longer than 1.2 s (the reference killed it as
# hung before it beat: "journaled nothing" / "heartbeating agent declared hung"). The 1 h jump makes a
# wall-clock/mtime dispatcher see an age of ~3600 s (or -3600 s) whatever the knobs, so the catch
# does not depend on them.
JUMP_KNOBS = {"stale": 2.0, "grace": 2.0}


def _clocked(dispatch: Ctx):
    """A FakeClock whose env goes to every call of the implementation, hence to its tmux server too."""
    try:
        from faults.clock import FakeClock
    except ImportError:
        pytest.skip("injector faults.clock.FakeClock is not available")
    clock = FakeClock.create(dispatch.sandbox.root / "clock")
    impl = dispatch.impl.with_env(**clock.env(dispatch.impl.env))
    dispatch.impl = impl
    return clock, impl


@pytest.mark.parametrize("direction", list(JUMPS))
@check(
    id="P06.wall-jump.healthy",
    level="MUST",
    pitfall="P06",
    reason="measure heartbeat staleness on a monotonic clock (never wall clock or mtimes); a wall-clock "
    "jump must not kill a healthy agent",
    needs=("heartbeat",),
)
def test_wall_jump_spares_healthy_agent(dispatch: Ctx, direction: str) -> None:
    dispatch.set_knobs(**JUMP_KNOBS)
    clock, impl = _clocked(dispatch)
    with clock:
        # works 6 s after its boot: still beating when the clock jumps, even when noticing the beats
        # took a few `status` processes on a loaded machine
        agent = dispatch.agent("--work", "6.0", heartbeat=0.1)
        tid, _ = start_and_await(dispatch, agent, "heartbeat", 20, count=2)
        clock.jump(JUMPS[direction])
        poll = impl.wait_for_state(tid, TERMINAL, 20, interval=0.1)
    assert poll.matched, f"still {poll.state!r}"
    assert not poll.saw("hung"), f"wall clock jumped {direction} 1h: a heartbeating agent was declared hung"
    assert poll.state == "succeeded", (
        f"state {poll.state!r} (reason {poll.task.get('reason')!r}), expected succeeded"
    )


@pytest.mark.parametrize("direction", list(JUMPS))
@check(
    id="P06.wall-jump.hung",
    level="MUST",
    pitfall="P06",
    reason="measure staleness on a monotonic clock; after a wall-clock jump a hung agent is still "
    "declared hung after STALE+GRACE, not earlier and not never",
    needs=("heartbeat",),
)
def test_wall_jump_still_detects_hang_on_time(dispatch: Ctx, direction: str) -> None:
    # Not serial (like .healthy): the clock is this sandbox's FakeClock, and the catches do not rest on
    # timing: a wall/mtime clock sees an age of +3600 s (hung at once, < stale+grace) or -3600 s (never
    # hung); the reference has the whole slack (2.5 s, ~0.2 s used) beside another running check.
    dispatch.set_knobs(**JUMP_KNOBS)
    clock, impl = _clocked(dispatch)
    k = dispatch.knobs
    with clock:
        agent = dispatch.agent("--hang", heartbeat=0.1)
        tid, _ = start_and_await(dispatch, agent, "hang", 20)
        clock.jump(JUMPS[direction])
        poll = impl.wait_for_state(tid, TERMINAL, k.hung_bound + 1.0, interval=0.05)
    last = agent.all("heartbeat")[-1].mono
    assert poll.matched, f"wall clock jumped {direction} 1h: a hung agent is still {poll.state!r}"
    assert poll.state == "hung", f"state {poll.state!r} (reason {poll.task.get('reason')!r}), expected hung"
    since = poll.matched_at - last
    dispatch.latency("last heartbeat->hung (minus stale+grace)", since - k.stale - k.grace)
    assert since >= k.stale + k.grace - 0.05, (
        f"declared hung {since:.2f}s after the last heartbeat: too early"
    )
    assert since <= k.hung_bound, (
        f"declared hung {since:.2f}s after the last heartbeat (bound {k.hung_bound:.1f}s)"
    )


@check(
    id="P06.coarse-mtime.not-hung",
    level="MUST",
    pitfall="P06",
    reason="judge heartbeat staleness by the file's content changing, not its mtime: on a filesystem "
    "with 1-second timestamps a 5/s heartbeat is alive",
    needs=("heartbeat",),
)
def test_coarse_timestamps_do_not_hang(dispatch: Ctx) -> None:
    try:
        from faults.fs import coarse_timestamps_dir
    except ImportError:
        pytest.skip("injector faults.fs.coarse_timestamps_dir is not available")
    # stale+grace (0.8 s) below the 1 s timestamp granularity: mtime-based staleness fails here. The
    # state dir, TMPDIR and the agent's cwd are all on the coarse filesystem, so wherever the
    # implementation tells the agent to heartbeat, the timestamps there are coarse (never vacuous).
    with coarse_timestamps_dir(parent=dispatch.sandbox.root) as coarse:
        for sub in ("tmp", "work"):
            (coarse / sub).mkdir(mode=0o700)
        impl = dispatch.make_impl(
            dispatch.knobs.but(stale=0.5, grace=0.3),
            DISPATCH_STATE_DIR=str(coarse / "state"),
            TMPDIR=str(coarse / "tmp"),
        )
        dispatch.impl = impl
        # a shell agent: it beats from its first millisecond (a Python agent booting on a loaded
        # machine could miss the tight stale+grace before its first beat) and notes where it beats
        note = dispatch.sandbox.root / "heartbeat-path"
        beat = (
            'echo "$DISPATCH_HEARTBEAT_FILE" > "$1"; i=0; while [ "$i" -lt 13 ]; do i=$((i+1)); '
            'echo "$i" > "$DISPATCH_HEARTBEAT_FILE"; sleep 0.2; done'
        )
        tid = dispatch.task_id()
        impl.start(tid, ["sh", "-c", beat, "beater", str(note)], cwd=coarse / "work")
        poll = impl.wait_for_state(tid, TERMINAL, 25, interval=0.1)
        impl.run("stop", tid, strict=False)  # end it before the filesystem goes away
        hb = note.read_text().strip() if note.exists() else None
    dispatch.require(
        hb and os.path.realpath(hb).startswith(os.path.realpath(coarse) + os.sep),
        "the heartbeat file must be under the state dir or $TMPDIR",
        "P11.tmpdir.odd-paths",
        f"DISPATCH_HEARTBEAT_FILE={hb!r}",
    )
    assert poll.matched, f"still {poll.state!r}"
    assert not poll.saw("hung"), "a 5/s heartbeat on a 1-second-timestamp filesystem was declared hung"
    assert poll.state == "succeeded", (
        f"state {poll.state!r} (reason {poll.task.get('reason')!r}), expected succeeded"
    )
