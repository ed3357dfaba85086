"""Turn (profile, mode, prompt, model, extra args) into the exact argv the runner will execute.

Pure: no files are written here, so the whole decision can be unit-tested and a refused run creates
nothing. The helpers put in front of the agent are ours and tiny: `runner.agents.launch` for every agent
(PWD = --cwd, the profile's env, the prompt on stdin, then exec: same PID) and `runner.agents.tee` for
JSON-event agents (Codex, OpenCode, Pi: heartbeat, native session id, result, failure signals).
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.agents.profiles import TUI_PROMPTS, Profile, ProfileError, expand

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
# one argv element may hold at most MAX_ARG_STRLEN (128 KiB on Linux); stay well below it
MAX_ARGV_PROMPT = 100_000


class PlanError(ValueError):
    """A run that cannot be planned; `code` is a contract error code (exit 2)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class AgentPaths:
    """Our per-task files under STATE_DIR/agents/<task_id>/ (never the runner's task dir)."""

    root: Path

    @property
    def prompt(self) -> Path:
        return self.root / "prompt"

    @property
    def settings(self) -> Path:
        return self.root / "claude-settings.json"

    @property
    def events(self) -> Path:
        return self.root / "events.jsonl"

    @property
    def thread_id(self) -> Path:
        return self.root / "thread_id"

    @property
    def session_id(self) -> Path:
        return self.root / "session_id"

    @property
    def submitted(self) -> Path:
        return self.root / "submitted.json"

    @property
    def attention(self) -> Path:
        return self.root / "attention.json"

    @property
    def meta(self) -> Path:
        return self.root / "meta.json"

    @property
    def retrying(self) -> Path:
        """Written by runner.agents.tee while the agent retries an API error (tee.RETRYING)."""
        return self.root / "retrying.json"

    @property
    def screen(self) -> Path:
        """A TUI's raw output (runner.agents.ptyrec): what `dispatch logs` renders as the screen's text."""
        return self.root / "screen.raw"


@dataclass
class Plan:
    """What to start and what to do after: the argv, and whether the prompt is pasted into a TUI."""

    agent: str
    mode: str
    argv: list[str]
    prompt_delivery: str
    model: str | None
    settings: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)


def python_cmd() -> list[str]:
    """How our helper modules are run inside the pane (the interpreter running us, absolute)."""
    return [sys.executable or "python3"]


def prompt_text(data: bytes, limit: int = MAX_ARGV_PROMPT) -> str:
    """The prompt as one argv element, byte for byte (surrogateescape round-trips any non-UTF-8 byte)."""
    if b"\0" in data:
        raise PlanError("bad_prompt_file", "the prompt contains a NUL byte, which an argv cannot carry")
    if len(data) > limit:
        raise PlanError(
            "bad_prompt_file",
            f"the prompt is {len(data)} bytes, too long for one argument (max {limit}); "
            "use a profile whose prompt is 'stdin', 'file' or 'paste'",
        )
    return os.fsdecode(data)


def check_model(profile: Profile, model: str | None) -> None:
    """The profile's own model rule (the runner applies DISPATCH_MODELS on top, before anything is made)."""
    if model is None:
        return
    if not profile.model_args:
        raise PlanError("model_not_allowed", f"agent {profile.name!r} takes no model flag")
    if not profile.model_allowed(model):
        raise PlanError(
            "model_not_allowed",
            f"model {model!r} is not one agent {profile.name!r} accepts ({' | '.join(profile.models_allowed)})",
        )


def hook_command(kind: str, agent_dir: Path, interactive: bool = False) -> str:
    """A robust sh one-liner for one Claude Code hook: our module, never failing the agent."""
    py = " ".join(shlex.quote(x) for x in python_cmd())
    return (
        f"PYTHONPATH={shlex.quote(str(REPO_ROOT))}${{PYTHONPATH:+:$PYTHONPATH}} "
        f"{py} -m runner.agents.hook {kind} --agent-dir {shlex.quote(str(agent_dir))}"
        f"{' --interactive' if interactive else ''} >/dev/null 2>&1 || true"
    )


def notify_toml(agent_dir: Path) -> str:
    """Codex's `notify` program as a TOML array: Codex runs it with the turn's JSON as the last argument
    when a turn completes (`agent-turn-complete`), the interactive TUI's equivalent of Claude's Stop hook.
    `sh -c` keeps it from ever failing the agent."""
    py = " ".join(shlex.quote(x) for x in python_cmd())
    cmd = (
        f"PYTHONPATH={shlex.quote(str(REPO_ROOT))}${{PYTHONPATH:+:$PYTHONPATH}} {py} -m runner.agents.hook "
        f'codex-notify --interactive --agent-dir {shlex.quote(str(agent_dir))} "$1" >/dev/null 2>&1 || true'
    )
    return json.dumps(["sh", "-c", cmd, "dispatch-notify"])  # a JSON string array is a TOML array


def claude_settings(agent_dir: Path, interactive: bool = False) -> dict[str, Any]:
    """The --settings document: hooks that beat the heartbeat, record the session, and write the result."""

    def one(kind: str, matcher: str | None = None) -> list[dict[str, Any]]:
        cmd = hook_command(kind, agent_dir, interactive)
        entry: dict[str, Any] = {"hooks": [{"type": "command", "command": cmd}]}
        if matcher is not None:
            entry["matcher"] = matcher
        return [entry]

    return {
        "hooks": {
            "SessionStart": one("session"),
            "UserPromptSubmit": one("submitted"),
            "PreToolUse": one("heartbeat", "*"),
            "PostToolUse": one("heartbeat", "*"),
            "Notification": one("attention"),
            "Stop": one("result"),
            "StopFailure": one("failure"),  # the turn ended on an API error (Stop does not fire then)
        }
    }


EVENT_TEE = {"codex-jsonl": "codex", "opencode-json": "opencode", "pi-json": "pi"}


def launcher(profile: Profile, delivery: str, record: Path | None = None) -> list[str]:
    """`runner.agents.launch` in front of every agent: PWD = --cwd, the profile's env, stdin, exec
    (a TUI's raw output recorded in `record`)."""
    argv = [*python_cmd(), "-m", "runner.agents.launch"]
    if delivery == "stdin":
        argv.append("--stdin-prompt")
    if record is not None:
        argv += ["--record", str(record)]
    for k, v in sorted(profile.env.items()):
        argv += ["--set", f"{k}={v}"]
    if profile.first_run == "preanswer":
        argv.append("--claude-preanswer")
    return [*argv, "--"]


def wrap(profile: Profile, argv: list[str], delivery: str, paths: AgentPaths) -> tuple[list[str], list[str]]:
    """The agent argv behind our launcher (and the event tee for JSON-event agents); the notes say why."""
    notes = ["runner.agents.launch sets PWD to the working directory and execs the agent (same PID)"]
    if delivery == "stdin":
        notes.append("prompt on stdin from the runner's private copy (byte for byte)")
    tui = delivery in TUI_PROMPTS
    argv = [*launcher(profile, delivery, paths.screen if tui else None), *argv]
    if tui:
        notes.append(
            "the TUI runs on a pty of ours that records its raw output (dispatch logs shows its text)"
        )
    kind = EVENT_TEE.get(profile.events)
    if kind is not None and not tui:  # a TUI writes a screen, not JSON events (Codex's: notify instead)
        id_file = paths.thread_id if profile.native_id == "thread_id" else paths.session_id
        argv = [
            *python_cmd(), "-m", "runner.agents.tee", "--kind", kind,
            "--events", str(paths.events), "--id-file", str(id_file), "--", *argv,
        ]  # fmt: skip
        notes.append("JSON events teed: each one beats the heartbeat; the session id is kept for resume")
    return argv, notes


def without_prompt(template: Sequence[str]) -> tuple[str, ...]:
    """A TUI argv whose initial-argument prompt (`-- {prompt}`) is pasted instead: both elements dropped."""
    out = list(template)
    while "{prompt}" in out:
        i = out.index("{prompt}")
        del out[i - 1 if i and out[i - 1] == "--" else i : i + 1]
    return tuple(out)


def build(
    profile: Profile,
    *,
    prompt: bytes,
    paths: AgentPaths,
    mode: str | None = None,
    model: str | None = None,
    extra: Sequence[str] = (),
    resume_id: str | None = None,
) -> Plan:
    """The plan for a fresh run (resume_id None) or a native resume (resume_id given)."""
    check_model(profile, model)
    mode_name, m = profile.mode(mode)
    values: dict[str, Any] = {
        "binary": profile.binary,
        "model": model,
        "model_args": expand(profile.model_args, {"model": model}) if model else [],
        "extra": list(extra),
        "prompt_file": str(paths.prompt),
        "settings": str(paths.settings) if profile.hooks == "claude" else None,
        "notify": notify_toml(paths.root),
    }
    delivery = m.prompt
    template = m.argv
    if resume_id is not None:
        if not profile.resume_argv:
            raise PlanError("not_supported", f"agent {profile.name!r} has no native resume")
        template = profile.resume_argv
        values[profile.resume_id] = resume_id
        # the resume argv carries the prompt as an argument, else stdin (every resumable CLI reads it)
        delivery = "argv" if "{prompt}" in template else "stdin"
    if delivery == "tui-argv" and (len(prompt) > MAX_ARGV_PROMPT or b"\0" in prompt):
        delivery = "paste"  # too long for one argument: the TUI gets it pasted instead (docs/agents.md)
    if delivery == "paste":
        template = without_prompt(template)
    if delivery in ("argv", "tui-argv"):
        values["prompt"] = prompt_text(prompt)
    try:
        argv = expand(template, values)
    except ProfileError as e:
        raise PlanError("bad_usage", str(e)) from None
    if not argv or not argv[0]:
        raise PlanError(
            "bad_argv", f"agent {profile.name!r} needs a command: run --agent {profile.name} -- ARGV..."
        )
    argv, notes = wrap(profile, argv, delivery, paths)
    interactive = m.prompt in TUI_PROMPTS and resume_id is None
    settings = claude_settings(paths.root, interactive) if profile.hooks == "claude" else None
    return Plan(
        agent=profile.name,
        mode=mode_name,
        argv=argv,
        prompt_delivery=delivery,
        model=model,
        settings=settings,
        notes=notes,
    )
