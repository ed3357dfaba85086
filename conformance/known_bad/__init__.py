"""Miniature broken dispatchers that prove the conformance suite can fail (Bowtie style).

Each entry speaks contract v1 and gets exactly ONE thing wrong (except `seed_polling`, a faithful
rendering of the seed skills, which gets many things wrong at once). Python ones run as
``python -m conformance.known_bad NAME VERB ...``: the reference runner with one seam replaced
(see each module's docstring); ``seed_polling`` is a bash script.

``KNOWN_BAD[name].checks`` lists the conformance check ids that must fail against it (measured by
``tests/test_known_bad_caught.py``); ``KNOWN_BAD[name].impl`` is the command prefix (argv words).
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class KnownBad:
    """One broken implementation: how to run it, what it gets wrong, which checks must say so."""

    name: str
    pitfall: str  # "P1".."P15" (seed 000), or "seed" for seed_polling
    description: str  # the one thing it does wrong
    checks: tuple[str, ...] = ()  # conformance check ids that must fail against it
    leaks: bool = False  # its flaw leaves processes behind; tests clean up by marker
    impl: list[str] = field(default_factory=list)

    @property
    def impl_str(self) -> str:
        """The command prefix as one shell-quoted string (the suite's `--impl` form)."""
        return shlex.join(self.impl)


def _py(name: str) -> list[str]:
    return [sys.executable, "-m", "conformance.known_bad", name]


# Check ids (a parametrized check's base id covers all its variants) that fail against each known-bad
# and pass against the reference, measured with the full suite (docs/known-bad.md has the whole table).
CAUGHT_BY: dict[str, tuple[str, ...]] = {
    "shell_pid": ("P01.agent-pid.journaled", "P01.agent-death.detected"),
    "kill0": ("P02.pid-reuse.not-running",),
    "done_from_log": ("P03.done-marker.ignored",),
    "no_pipe_cleanup": (
        "P04.stop.releases-log",
        "P04.session-killed.releases-log",
        "P04.label-reuse.fresh-log",
    ),
    "nonatomic_read": (
        "P05.partial-result.chunked",
        "P05.partial-result.empty",
        "P05.partial-result.truncated",
    ),
    "mtime_clock": ("P06.coarse-mtime.not-hung", "P06.wall-jump.healthy", "P06.wall-jump.hung"),
    # label.collision only ever failed as a consequence (its agents crash); it is blocked now
    "names_from_input": ("P07.concurrent-starts.distinct",),
    "inline_send_keys": ("P08.send.byte-for-byte",),
    "no_reaper": ("P09.stop.kills-tree", "P09.supervisor-killed.reaped"),
    "bare_exec": ("P10.exit-recorded",),
    "hardcoded_tmp": ("P11.no-tmp-writes", "P11.tmpdir.odd-paths"),
    "no_grace": ("P12.finish-in-grace.succeeded", "P12.hung.detected"),
    "no_version_check": ("P13.tmux-missing.refused", "P13.tmux-too-old.refused"),
    "tmux_no_timeout": ("P14.frozen-server.status-answers",),
    "no_allowlist": ("P15.model.refused",),
    "server_env": ("EX.env.caller-not-server",),
    "default_socket": ("EX.tmux.default-server-untouched",),
    "no_submit": ("EX.send.interactive-submitted",),
    "half_created": ("EX.refusals.nothing-created",),
    "send_to_ended": ("EX.send.ended-task",),
    "wait_no_timeout": ("EX.wait.timeout-124",),
    "events_newest_first": ("EX.events.transitions",),
    "late_pipe": ("P03.log.first-byte",),
    "raw_log": ("P03.log.plain-utf8",),
    "no_flush": ("P03.log.burst-kept", "P03.log.first-byte", "P03.log.plain-utf8"),
    "result_preview": ("P05.result.complete",),
    "prefix_reaper": ("P07.foreign-session.untouched",),
    "label_unchecked": ("P07.label.control-refused",),
    "label_as_name": ("P07.label.hostile",),
    "prompt_stripped": ("P08.prompt.byte-for-byte",),
    "no_lifetime": ("P09.max-lifetime.timed-out",),
    "long_socket_path": ("P11.long-state-dir.default-socket",),
    "result_then_hung": ("P12.result-then-silence.succeeded",),
    "argv_resplit": ("P15.argv.recorded",),
    "model_dropped": ("P15.model.recorded",),
    "seed_polling": (
        "P01.agent-pid.journaled",
        "P03.done-marker.ignored",
        "P05.partial-result.empty",
        "P09.stop.kills-tree",
        "P10.exit-recorded",
        "P11.no-tmp-writes",
        "P13.tmux-missing.refused",
        "P14.frozen-server.status-answers",
        "P15.model.refused",
    ),
}


def _kb(name: str, pitfall: str, description: str, leaks: bool = False) -> KnownBad:
    impl = ["bash", str(HERE / "seed_polling.sh")] if name == "seed_polling" else _py(name)
    return KnownBad(name, pitfall, description, CAUGHT_BY.get(name, ()), leaks, impl)


# Crafted known-bads: conformance/known_bad/crafted/panepid.py (written from scratch, another architecture)
# with exactly one flaw switched on; each is caught by the check aimed at that flaw (issue 11).
CRAFTED_CAUGHT_BY: dict[str, tuple[str, ...]] = {
    "loose_target": ("P07.foreign-session.untouched",),
    "kill0": ("P02.pid-reuse.not-running",),
    "tmux_no_timeout": ("P14.frozen-server.supervisor-acts",),
    "mtime": ("P06.coarse-mtime.not-hung",),
    "never_read_result": ("P05.partial-result.empty", "P05.partial-result.truncated"),
    "hardcoded_min": ("P13.tmux-too-old.refused",),
    "log_at_exit": ("P03.log.live",),
    "caller_pwd": ("EX.cwd.agent-pwd",),
    "lose_payload": ("P10.supervisor-lost.keeps-outcome",),
    "own_socket": ("EX.socket.sessions-on-socket",),
    "name_from_label": ("P07.label.collision",),
}


def _crafted() -> list[KnownBad]:
    from conformance.known_bad import crafted
    from conformance.known_bad.crafted.panepid import FLAWS

    return [
        KnownBad(f"panepid_{flaw}", "crafted", FLAWS[flaw], checks, flaw == "own_socket", crafted.impl(flaw))
        for flaw, checks in CRAFTED_CAUGHT_BY.items()
    ]


KNOWN_BAD: dict[str, KnownBad] = {
    k.name: k
    for k in [
        _kb(
            "shell_pid",
            "P1",
            "launches the pane's shell and send-keys the command line; records #{pane_pid} (the shell) as agent_pid",
        ),
        _kb(
            "kill0",
            "P2",
            "running while kill -0 $AGENT_PID succeeds, no start-time check: fooled by a recycled PID",
        ),
        _kb("done_from_log", "P3", "completion read from the log text (__TASK_DONE__, 'exit code 0')"),
        _kb("no_pipe_cleanup", "P4", "never turns pipe-pane off nor ends the pipe process", leaks=True),
        _kb("nonatomic_read", "P5", "reads the result file once; partial or empty counts as success"),
        _kb("mtime_clock", "P6", "staleness = wall-clock now - heartbeat file mtime"),
        _kb("names_from_input", "P7", "session name derived from the task id/label; targets without '='"),
        _kb("inline_send_keys", "P8", "send text with inline send-keys: key names interpreted, no paste"),
        _kb("no_reaper", "P9", "reap does nothing; stop kills only the agent, not its tree", leaks=True),
        _kb("bare_exec", "P10", "execs the agent as the pane's process, no wrapper: no exit record"),
        _kb("hardcoded_tmp", "P11", "temporary files under a hard-coded /tmp, ignoring TMPDIR"),
        _kb("no_grace", "P12", "kills as hung the moment the heartbeat is stale, no grace period"),
        _kb("no_version_check", "P13", "never checks tmux presence/version; fails late, leaving debris"),
        _kb("tmux_no_timeout", "P14", "tmux calls without a timeout: status hangs on a frozen server"),
        _kb("no_allowlist", "P15", "model not checked against DISPATCH_MODELS"),
        _kb("server_env", "EX", "the agent gets the tmux server's global environment, not the caller's"),
        _kb("default_socket", "EX", "reap's list-sessions omits -S and asks the user's default tmux server"),
        _kb("no_submit", "EX", "send pastes the text but never presses Enter"),
        _kb("half_created", "EX", "start records the task before checking cwd/prompt; refusals leave it"),
        _kb("send_to_ended", "EX", "send to an ended task reports delivered (exit 0)"),
        _kb("wait_no_timeout", "EX", "wait --timeout exits 0 with the live task instead of 124"),
        _kb("events_newest_first", "EX", "events lists transitions newest first"),
        _kb("late_pipe", "P3", "pipe-pane attached after the agent started: its first output is lost"),
        _kb("raw_log", "P3", "log pipe copies pane bytes verbatim (ANSI, CR, controls kept)"),
        _kb(
            "no_flush",
            "P3",
            "buffered log pipe killed when the agent ends, never drained: every log loses its tail",
        ),
        _kb("result_preview", "P5", "result stored as a preview: strings cut to 200 characters"),
        _kb("prefix_reaper", "P7", "reap kills every ownerless session whose name starts with dk_"),
        _kb("label_unchecked", "P7", "labels with control characters, empty or too long are accepted"),
        _kb("label_as_name", "P7", "the label is part of the tmux session name (dk_<random>-<label>)"),
        _kb("prompt_stripped", "P8", "prompt copy read as text and .strip()ped: not byte for byte"),
        _kb("no_lifetime", "P9", "DISPATCH_MAX_LIFETIME_S never read: no task ever times out"),
        _kb("long_socket_path", "P11", "socket is STATE_DIR/tmux.sock even when too long for sun_path"),
        _kb("result_then_hung", "P12", "a complete result does not suspend staleness: killed as hung"),
        _kb("argv_resplit", "P15", "argv joined with spaces and split again before it is run"),
        _kb("model_dropped", "P15", "model recorded but DISPATCH_MODEL never given to the agent"),
        _kb(
            "seed_polling",
            "seed",
            "the seed skills' approach in bash: names from input, send-keys into a shell, pane_pid, "
            "kill -0, sleep-polling, done-file, __TASK_DONE__ in pane captures",
            leaks=True,
        ),
    ]
    + _crafted()
}

__all__ = ["KNOWN_BAD", "KnownBad"]
