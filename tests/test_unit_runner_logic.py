"""Pure logic of the runner, alone: validation, the state decision, log stripping, versions, config."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runner import states, validate
from runner.clock import Deadline
from runner.config import load, parse_seconds, socket_fits
from runner.errors import CODES, DispatchError
from runner.logpipe import Stripper, strip
from runner.states import Observation, decide
from runner.tmux import install_hint, parse_version, version_at_least

# -- validate ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("tid", ["a", "A9._-", "x" * 64, "0"])
def test_task_id_ok(tid):
    assert validate.task_id(tid) == tid


@pytest.mark.parametrize("tid", ["", "-a", ".a", "a b", "x" * 65, "a/b", "a\n", "é"])
def test_task_id_bad(tid):
    with pytest.raises(DispatchError) as ei:
        validate.task_id(tid)
    assert ei.value.code == "bad_task_id" and ei.value.exit_status == 2


def test_label_rules():
    assert validate.label("ok label ✓ $(x)") == "ok label ✓ $(x)"
    assert validate.label(None) is None
    for bad in ("", "x" * 129, "a\nb", "a\tb", "\x7f", "\x9b", "a\u2028b"):
        with pytest.raises(DispatchError):
            validate.label(bad)


def test_model_rules():
    assert validate.model("claude-3.5:sonnet@x/y+z", None)
    assert validate.model(None, ["a"]) is None
    assert validate.model("a", ["a", "b"]) == "a"
    for bad, allow in (("c", ["a"]), ("a b", None), ("-a", None), ("", None)):
        with pytest.raises(DispatchError) as ei:
            validate.model(bad, allow)
        assert ei.value.code == "model_not_allowed"


def test_argv_cwd_timeout(tmp_path):
    with pytest.raises(DispatchError):
        validate.argv([])
    with pytest.raises(DispatchError):
        validate.argv([""])
    assert validate.argv(["x", ""]) == ["x", ""]
    assert validate.cwd(str(tmp_path)) == str(tmp_path)
    with pytest.raises(DispatchError):
        validate.cwd(str(tmp_path / "nope"))
    assert validate.timeout("0.25") == 0.25 and validate.timeout(None) is None
    for bad in ("x", "-1", "nan", "inf"):
        with pytest.raises(DispatchError):
            validate.timeout(bad)


def test_error_codes_map_to_contract_exit_statuses():
    assert CODES["tmux_missing"] == 3 and CODES["tmux_too_old"] == 3 and CODES["state_dir_unusable"] == 3
    assert CODES["not_running"] == 2 and CODES["internal"] == 1
    e = DispatchError("bad_label", "two\nlines")
    assert e.message == "two lines" and e.to_json() == {
        "error": {"code": "bad_label", "message": "two lines"}
    }


# -- states.decide -----------------------------------------------------------------------------------


def obs(**kw):
    base = dict(state="running", now=100.0, started=90.0, stale_after=0.0, grace=5.0)
    base.update(kw)
    return Observation(**base)


@pytest.mark.parametrize(
    "kw,expect",
    [
        (dict(exited=True, exit_code=0), ("succeeded", "exited")),
        (dict(exited=True, exit_code=0, result="valid"), ("succeeded", "exited")),
        (dict(exited=True, exit_code=0, result="invalid"), ("failed", "invalid_result")),
        (dict(exited=True, exit_code=2, result="valid"), ("failed", "exited")),
        (dict(exited=True, signal=9), ("crashed", "signaled")),
        (dict(exited=True, signal=15, intent=("stopped", "stop_requested")), ("stopped", "stop_requested")),
        (dict(exited=True, signal=9, intent=("hung", "heartbeat_stale")), ("hung", "heartbeat_stale")),
    ],
)
def test_decide_exit(kw, expect):
    d = decide(obs(**kw))
    assert d.kind == states.END and (d.state, d.reason) == expect


def test_decide_order_result_before_stop_before_lifetime_before_heartbeat():
    # a complete result whose grace ran out wins over everything else still running
    d = decide(obs(result="valid", result_seen_at=90.0, stop_requested=True, max_lifetime=1, stale_after=1))
    assert (d.kind, d.state, d.reason) == ("kill", "succeeded", "completed_by_result")
    d = decide(obs(stop_requested=True, max_lifetime=1, stale_after=1, grace=0))
    assert (d.state, d.reason) == ("stopped", "stop_requested")
    d = decide(obs(max_lifetime=1, stale_after=1, grace=0))
    assert (d.state, d.reason) == ("timed_out", "max_lifetime")
    d = decide(obs(stale_after=1, grace=0))
    assert (d.state, d.reason) == ("hung", "heartbeat_stale")
    assert decide(obs(session_lost=True)).state == "crashed"


def test_decide_heartbeat_stalled_grace_and_resume():
    d = decide(obs(stale_after=10, grace=5, last_beat_change=95.0))
    assert d.kind == states.NONE and 95.0 + 10 >= d.next_check > 100
    d = decide(obs(stale_after=10, grace=5, last_beat_change=89.0))
    assert (d.kind, d.state, d.reason) == ("enter", "stalled", "heartbeat_stale")
    d = decide(obs(state="stalled", stale_after=10, grace=5, last_beat_change=89.0))
    assert d.kind == states.NONE
    d = decide(obs(state="stalled", stale_after=10, grace=5, last_beat_change=85.0))
    assert (d.kind, d.state) == ("kill", "hung")
    d = decide(obs(state="stalled", stale_after=10, grace=5, last_beat_change=99.0))
    assert (d.kind, d.state, d.reason) == ("enter", "running", "heartbeat_resumed")
    # no heartbeat ever: staleness counts from the start
    assert decide(obs(stale_after=5, grace=6, started=90.0)).state == "stalled"
    assert decide(obs(stale_after=5, grace=5, started=90.0)).state == "hung"


def test_decide_valid_result_suspends_staleness():
    d = decide(obs(stale_after=1, grace=5, last_beat_change=0.0, result="valid", result_seen_at=99.0))
    assert d.kind == states.NONE and d.next_check == pytest.approx(104.0)
    d = decide(obs(state="stalled", stale_after=1, grace=5, result="valid", result_seen_at=99.0))
    assert (d.kind, d.state, d.reason) == ("enter", "running", "result_written")


def test_decide_never_leaves_terminal_and_heartbeat_interval():
    for s in states.TERMINAL:
        assert decide(obs(state=s, exited=True, exit_code=0)).kind == states.NONE
    assert states.heartbeat_interval(0.5) == 0.02 and states.heartbeat_interval(400) == 5.0
    assert states.heartbeat_interval(4) == pytest.approx(0.1)
    assert states.heartbeat_interval(60, 30) == pytest.approx(2.25)  # 2.5 % of stale+grace


@given(now=st.floats(0, 1e6), stale=st.floats(0.01, 100), grace=st.floats(0, 100), age=st.floats(0, 300))
def test_decide_hung_exactly_after_stale_plus_grace(now, stale, grace, age):
    d = decide(obs(now=now + age, started=now, stale_after=stale, grace=grace, last_beat_change=now))
    age = (now + age) - now  # the age decide() sees, after float rounding
    if age >= stale + grace:
        assert d.state == "hung"
    else:
        assert d.kind in ("none", "enter") and d.next_check is not None and d.next_check > now + age - 1e-9


# -- logpipe -----------------------------------------------------------------------------------------


def test_strip_sequences():
    assert strip(b"\x1b[1;31mred\x1b[0m\r\n") == "red\n"
    assert strip(b"a\x1b]0;title\x07b\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\c") == "ablinkc"
    assert strip(b"\x1bPdcs stuff\x1b\\ok") == "ok"
    assert strip(b"\x1b(Bx\x1b=y\x1b7z") == "xyz"
    assert strip(b"bell\x07 bs\x08 nul\x00 del\x7f") == "bell bs nul del"
    assert strip(b"a\r\r\nb\rc\n") == "a\nb\nc\n"
    assert strip("c1\u009bx".encode()) == "c1x"
    assert strip(b"bad \xff utf8") == "bad \ufffd utf8"
    assert strip(b"tab\tok") == "tab\tok"


@given(st.binary(max_size=300), st.lists(st.integers(1, 50), max_size=20))
def test_strip_is_independent_of_chunking(data, cuts):
    whole = strip(data)
    s = Stripper()
    out, i = [], 0
    for c in cuts:
        out.append(s.feed(data[i : i + c]))
        i += c
    out.append(s.feed(data[i:]))
    out.append(s.finish())
    assert "".join(out) == whole
    assert "\x1b" not in whole and "\r" not in whole


def test_end_marker_is_seen_and_stripped():
    s = Stripper()
    text = s.feed(b"last line\r\n\x1b]dk-end;abc") + s.feed(b"123\x07")
    assert text == "last line\n" and s.markers == [b"dk-end;abc123"]


# -- tmux versions, config, clock ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "text,parsed",
    [
        ("tmux 3.3a", (3, 3, "a")),
        ("tmux 3.2", (3, 2, "")),
        ("tmux next-3.5", (3, 5, "")),
        ("tmux openbsd-7.4", None),
        ("tmux master", None),
        ("tmux 2.9a", (2, 9, "a")),
    ],
)
def test_parse_version(text, parsed):
    assert parse_version(text) == parsed


def test_version_floor():
    assert version_at_least("3.2a", "3.2a") and version_at_least("3.3", "3.2a")
    assert not version_at_least("3.2", "3.2a") and not version_at_least("3.1c", "3.2a")
    assert version_at_least("next-3.5", "3.2a") and version_at_least("openbsd-7.4", "3.2a")
    assert "tmux" in install_hint()


def test_config_knobs_and_socket_fallback(tmp_path):
    # A short state dir of its own: tmp_path under macOS' long /var/folders/... TMPDIR is already too long
    # for state/tmux.sock (load() only computes paths, it creates nothing).
    short = Path("/dk-state")
    env = {"DISPATCH_STATE_DIR": str(short), "DISPATCH_STALE_AFTER_S": "0.25", "DISPATCH_MODELS": "a, b,"}
    cfg = load(env)
    assert cfg.stale_after == 0.25 and cfg.grace == 30 and cfg.max_lifetime == 0
    assert cfg.models == ("a", "b") and cfg.socket_path == short / "tmux.sock"
    long = tmp_path / ("x" * 120)
    cfg = load({"DISPATCH_STATE_DIR": str(long)})
    assert cfg.socket_path is None and cfg.socket_args()[0] == "-L" and cfg.socket_name.startswith("dk-")
    assert load({"DISPATCH_STATE_DIR": str(long)}).socket_name == cfg.socket_name
    assert not socket_fits("/" + "x" * 200)
    assert load({"DISPATCH_STATE_DIR": "x", "DISPATCH_TMUX_SOCKET": "/s"}).socket_args() == ["-S", "/s"]
    for bad in ("x", "-1", "inf", "nan"):
        with pytest.raises(DispatchError):
            parse_seconds("K", bad, 1.0)
    assert parse_seconds("K", "", 1.5) == 1.5


def test_deadline():
    d = Deadline(10)
    assert not d.expired() and 9 < d.remaining() <= 10 and d.cap(1) == 1
    assert Deadline(0).expired() and Deadline(None).remaining() is None and Deadline(None).cap(2) == 2


def test_only_full_scheme_session_names_are_ours():
    from runner.config import is_our_session_name

    assert is_our_session_name("dk_0123456789ab")
    for name in (
        "dk_",
        "dk_0123",
        "dk_0123456789abc",
        "dk_0123456789AB",
        "xdk_0123456789ab",
        "dk_0123456789ab-u",
    ):
        assert not is_our_session_name(name), name
