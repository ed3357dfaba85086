"""Claude Code's first-run screens: recognise each one on the pane, say the exact fix, or pre-answer them.

With a fresh config Claude Code 2.1 (measured against the real CLI, docs/agents.md) first checks that it
can reach api.anthropic.com and exits when it cannot ("Unable to connect to Anthropic services"), then
asks for a theme, whether to trust the folder, and whether to use the API key found in the environment
(default: No). None of these is the task's question: `run` reports the screen at once with its fix
instead of waiting for a ready banner that never comes.

`preanswer` is the explicit opt-in (`first_run = "preanswer"` in the agent's profile): it records those
answers in the agent's own config file ($CLAUDE_CONFIG_DIR/.claude.json, else ~/.claude.json), for the
run's working directory and the key in the run's environment only. Nothing is changed without the opt-in.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.atomicio import write_atomic

OPT_IN = 'set first_run = "preanswer" under [agents.claude] in your dispatch config to let dispatch answer it'


@dataclass(frozen=True)
class Screen:
    """One first-run screen: how it looks on the pane, what it is, and how to get past it."""

    key: str
    pattern: str
    what: str
    fix: str


SCREENS = (
    Screen("connectivity", r"Unable to connect to Anthropic services",
           "Claude Code's first-run onboarding is not done (its connectivity check fails offline and it exits)",
           "mark onboarding done (hasCompletedOnboarding in ~/.claude.json) or " + OPT_IN),
    Screen("theme", r"(?i)choose the text style|Let's get started",
           "Claude Code's first-run theme picker", "complete onboarding once, or " + OPT_IN),
    Screen("trust", r"(?i)do you trust the files in this folder|Yes, I trust this folder|one you trust\?",
           "Claude Code asks whether to trust the working directory",
           "accept the folder once in claude (projects.<cwd>.hasTrustDialogAccepted), or " + OPT_IN),
    Screen("api_key", r"(?i)detected a custom API key|use this API key",
           "Claude Code asks whether to use ANTHROPIC_API_KEY (default: No)",
           "approve the key once in claude (customApiKeyResponses.approved), or " + OPT_IN),
)  # fmt: skip


def recognise(screen: str) -> Screen | None:
    """The first-run screen shown on `screen`, if any."""
    for s in SCREENS:
        if re.search(s.pattern, screen):
            return s
    return None


def message(s: Screen) -> str:
    """One line: what the screen is and the exact fix."""
    return f"first-run screen '{s.key}': {s.what}; fix: {s.fix}"


def config_path(env: Mapping[str, str]) -> Path:
    """Claude Code's global config file for this environment."""
    if env.get("CLAUDE_CONFIG_DIR"):
        return Path(env["CLAUDE_CONFIG_DIR"]) / ".claude.json"
    return Path(env.get("HOME") or os.path.expanduser("~")) / ".claude.json"


def answers(cfg: MutableMapping[str, Any], cwd: str, api_key: str | None) -> MutableMapping[str, Any]:
    """`cfg` with the first-run screens answered for `cwd` and `api_key` (pure; merged, never replaced)."""
    cfg["hasCompletedOnboarding"] = True
    cfg.setdefault("theme", "dark")
    projects = cfg.setdefault("projects", {})
    proj = projects.setdefault(os.path.realpath(cwd), {})
    proj["hasTrustDialogAccepted"] = True
    proj.setdefault("hasCompletedProjectOnboarding", True)
    if api_key:
        responses = cfg.setdefault("customApiKeyResponses", {"approved": [], "rejected": []})
        approved = responses.setdefault("approved", [])
        if api_key[-20:] not in approved:
            approved.append(api_key[-20:])
    return cfg


def preanswer(env: Mapping[str, str], cwd: str) -> Path:
    """Write the answers into the agent's config (atomically); returns the file written."""
    path = config_path(env)
    try:
        cfg = json.loads(path.read_text())
        if not isinstance(cfg, dict):
            cfg = {}
    except (OSError, ValueError):
        cfg = {}
    answers(cfg, cwd, env.get("ANTHROPIC_API_KEY"))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(cfg, indent=2) + "\n")
    return path


def pending(env: Mapping[str, str], cwd: str) -> list[Screen]:
    """The first-run screens Claude would still show for `cwd` with this config (what doctor reports)."""
    try:
        cfg = json.loads(config_path(env).read_text())
        if not isinstance(cfg, dict):
            cfg = {}
    except (OSError, ValueError):
        cfg = {}
    by = {s.key: s for s in SCREENS}
    out = []
    if not cfg.get("hasCompletedOnboarding"):
        out.append(by["connectivity"])
    proj = (cfg.get("projects") or {}).get(os.path.realpath(cwd)) or {}
    if not proj.get("hasTrustDialogAccepted"):
        out.append(by["trust"])
    key = env.get("ANTHROPIC_API_KEY")
    if key and key[-20:] not in ((cfg.get("customApiKeyResponses") or {}).get("approved") or []):
        out.append(by["api_key"])
    return out
