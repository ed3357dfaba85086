"""Agent profiles: what each coding-agent CLI needs, as data (runner/profiles/*.toml + the user's config).

A profile says how to start the CLI (batch or interactive), how the prompt reaches it (argv, stdin, a
file, or a bracketed paste into the TUI), which model flag and names it takes, which screen text means
ready / working / waiting for input, and how to resume a run from the agent's own session id. Users add
or override profiles in ``$DISPATCH_CONFIG`` or ``~/.config/dispatch-kit/agents.toml`` without code.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - 3.10 only
    import tomli as tomllib

BUILTIN_DIR = Path(__file__).resolve().parent.parent / "profiles"
PROMPT_MODES = ("argv", "stdin", "file", "paste", "tui-argv")
# a TUI on a pty of ours, the prompt pasted into it or given as its initial argument (`{prompt}`, Claude
# Code: measured to keep more of a hostile prompt than a paste, docs/agents.md); both wait until it is taken
TUI_PROMPTS = ("paste", "tui-argv")
HOOK_KINDS = ("none", "claude")
EVENT_KINDS = ("none", "codex-jsonl", "opencode-json", "pi-json")
# Claude's first-run screens: only report them (with the fix), or pre-answer them (an explicit opt-in)
FIRST_RUN = ("none", "report", "preanswer")
NATIVE_IDS = ("none", "session_id", "thread_id")
# placeholders that splice a list into argv (only as a whole element)
LIST_VARS = ("model_args", "extra")
# placeholders replaced inside an element; `prompt` only as a whole element (never formatted into text)
# `notify`: a TOML array that runs our turn-complete hook (Codex's `-c notify=...`; runner.agents.hook)
SCALAR_VARS = ("binary", "model", "prompt_file", "settings", "session_id", "thread_id", "notify")
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")


class ProfileError(ValueError):
    """A profile or user config that cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class Mode:
    """One way to start the CLI: its argv template and how the prompt gets in."""

    argv: tuple[str, ...]
    prompt: str
    ready: tuple[str, ...] = ()
    ready_timeout_s: float = 60.0
    working: tuple[str, ...] = ()
    submit_timeout_s: float = 20.0


@dataclass(frozen=True)
class Profile:
    """Everything the dispatcher knows about one agent CLI."""

    name: str
    binary: str
    description: str = ""
    install: str = ""
    default_mode: str = "batch"
    hooks: str = "none"
    events: str = "none"
    native_id: str = "none"
    model_args: tuple[str, ...] = ()
    models_allowed: tuple[str, ...] = ()
    modes: Mapping[str, Mode] = field(default_factory=dict)
    needs_input: tuple[str, ...] = ()
    retrying: tuple[str, ...] = ()  # the agent's own "retrying after an API error" line (live state)
    resume_id: str = "none"
    resume_argv: tuple[str, ...] = ()
    resume_prompt: str = "Continue the previous task where you left off."
    resume_rerun: bool = False
    env: Mapping[str, str] = field(default_factory=dict)
    first_run: str = "none"
    source: str = ""

    def mode(self, name: str | None) -> tuple[str, Mode]:
        """The named mode (or the default one); ProfileError when this agent has no such mode."""
        key = name or self.default_mode
        if key not in self.modes:
            have = ", ".join(sorted(self.modes)) or "none"
            raise ProfileError(f"agent {self.name!r} has no {key!r} mode (has: {have})")
        return key, self.modes[key]

    def model_allowed(self, model: str) -> bool:
        """True when `model` matches one of the profile's patterns (no patterns: any plain token)."""
        return not self.models_allowed or any(re.search(p, model) for p in self.models_allowed)

    def needs_input_match(self, screen: str) -> str | None:
        """The first line of `screen` matching a waiting-for-input pattern, or None."""
        return first_match(self.needs_input, screen)


def _mode(mname: str, md: Any, where: str) -> Mode:
    """One `[modes.batch|interactive]` table, checked."""
    mw = f"{where} modes.{mname}"
    if mname not in ("batch", "interactive") or not isinstance(md, Mapping):
        raise ProfileError(f"{mw}: modes are tables named batch or interactive")
    argv = _tuple_of_str(md.get("argv", []), f"{mw}.argv")
    if not argv:
        raise ProfileError(f"{mw}.argv: empty")
    _check_template(argv, f"{mw}.argv")
    prompt = _choice(md.get("prompt", "argv"), PROMPT_MODES, f"{mw}.prompt")
    if prompt in ("argv", "tui-argv") and "{prompt}" not in argv:
        raise ProfileError(f"{mw}: prompt = '{prompt}' needs a {{prompt}} element in argv")
    ready = _tuple_of_str(md.get("ready", []), f"{mw}.ready")
    working = _tuple_of_str(md.get("working", []), f"{mw}.working")
    _check_regexes(ready + working, mw)
    if prompt in TUI_PROMPTS and not ready:
        raise ProfileError(f"{mw}: prompt = '{prompt}' needs ready patterns (the TUI's banner)")
    return Mode(
        argv=argv,
        prompt=prompt,
        ready=ready,
        ready_timeout_s=_num(md.get("ready_timeout_s", 60), f"{mw}.ready_timeout_s"),
        working=working,
        submit_timeout_s=_num(md.get("submit_timeout_s", 20), f"{mw}.submit_timeout_s"),
    )


def _patterns(d: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    """`[KEY] patterns = [...]`: checked regexes (screen lines the agent shows in that state)."""
    pats = _tuple_of_str((d.get(key) or {}).get("patterns", []), f"{where} {key}.patterns")
    _check_regexes(pats, f"{where} {key}")
    return pats


def first_match(patterns: Sequence[str], text: str) -> str | None:
    """The line of `text` holding the first match of any pattern (multiline search), or None."""
    for pat in patterns:
        m = re.search(pat, text, re.MULTILINE)
        if m:
            start = text.rfind("\n", 0, m.start()) + 1
            end = text.find("\n", m.end())
            return text[start : end if end >= 0 else len(text)].strip()
    return None


def _tuple_of_str(v: Any, where: str) -> tuple[str, ...]:
    if isinstance(v, str):
        return (v,)
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise ProfileError(f"{where}: expected a list of strings")
    return tuple(v)


def _num(v: Any, where: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
        raise ProfileError(f"{where}: expected a positive number")
    return float(v)


def _check_regexes(pats: Sequence[str], where: str) -> None:
    for p in pats:
        try:
            re.compile(p)
        except re.error as e:
            raise ProfileError(f"{where}: bad regex {p!r}: {e}") from None


def _check_template(argv: Sequence[str], where: str) -> None:
    for el in argv:
        for name in _PLACEHOLDER.findall(el):
            if name in LIST_VARS or name == "prompt":
                if el != "{" + name + "}":
                    raise ProfileError(f"{where}: {{{name}}} must be a whole argv element, got {el!r}")
            elif name not in SCALAR_VARS:
                raise ProfileError(f"{where}: unknown placeholder {{{name}}} in {el!r}")


def _choice(v: Any, allowed: Sequence[str], where: str) -> str:
    if v not in allowed:
        raise ProfileError(f"{where}: {v!r} is not one of {', '.join(allowed)}")
    return str(v)


def from_dict(d: Mapping[str, Any], source: str = "<dict>") -> Profile:
    """Validate one profile table into a Profile; every problem is one ProfileError line."""
    name = d.get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,31}", name):
        raise ProfileError(f"{source}: name must be a short lowercase word, got {name!r}")
    where = f"{source} [{name}]"
    known = {"name", "binary", "description", "install", "default_mode", "hooks", "events", "native_id",
             "model", "modes", "needs_input", "retrying", "resume", "extends", "env", "first_run"}  # fmt: skip
    unknown = sorted(set(d) - known)
    if unknown:
        raise ProfileError(f"{where}: unknown key(s) {', '.join(unknown)}")
    modes: dict[str, Mode] = {}
    for key in ("modes", "model", "needs_input", "retrying", "resume", "env"):
        if key in d and not isinstance(d[key], Mapping):
            raise ProfileError(f"{where}: {key} must be a table")
    for mname, md in (d.get("modes") or {}).items():
        modes[mname] = _mode(mname, md, where)
    if not modes:
        raise ProfileError(f"{where}: no modes (add [modes.batch] or [modes.interactive])")
    default_mode = d.get("default_mode", "batch")
    if default_mode not in modes:
        raise ProfileError(f"{where}: default_mode {default_mode!r} has no [modes.{default_mode}]")
    model = d.get("model") or {}
    model_args = _tuple_of_str(model.get("args", []), f"{where} model.args")
    _check_template(model_args, f"{where} model.args")
    allowed = _tuple_of_str(model.get("allowed", []), f"{where} model.allowed")
    _check_regexes(allowed, f"{where} model.allowed")
    needs, retrying = _patterns(d, "needs_input", where), _patterns(d, "retrying", where)
    res = d.get("resume") or {}
    resume_id = _choice(res.get("id", "none"), NATIVE_IDS, f"{where} resume.id")
    resume_argv = _tuple_of_str(res.get("argv", []), f"{where} resume.argv")
    _check_template(resume_argv, f"{where} resume.argv")
    if resume_id != "none" and ("{" + resume_id + "}") not in resume_argv:
        raise ProfileError(f"{where}: resume.argv must contain {{{resume_id}}}")
    hooks = _choice(d.get("hooks", "none"), HOOK_KINDS, f"{where} hooks")
    all_argv = [a for m in modes.values() for a in m.argv] + list(resume_argv)
    if any("{settings}" in a for a in all_argv) and hooks == "none":
        raise ProfileError(f"{where}: {{settings}} is only available with hooks = 'claude'")
    env = d.get("env") or {}
    if not all(isinstance(k, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", k) and isinstance(v, str)
               for k, v in env.items()):  # fmt: skip
        raise ProfileError(f'{where} env: expected NAME = "value" strings')
    return Profile(
        name=name,
        binary=str(d.get("binary", name)),
        description=str(d.get("description", "")),
        install=str(d.get("install", "")),
        default_mode=default_mode,
        hooks=hooks,
        events=_choice(d.get("events", "none"), EVENT_KINDS, f"{where} events"),
        native_id=_choice(d.get("native_id", "none"), NATIVE_IDS, f"{where} native_id"),
        model_args=model_args,
        models_allowed=allowed,
        modes=modes,
        needs_input=needs,
        retrying=retrying,
        resume_id=resume_id,
        resume_argv=resume_argv,
        resume_prompt=str(res.get("prompt", "Continue the previous task where you left off.")),
        resume_rerun=bool(res.get("rerun", False)),
        env=dict(env),
        first_run=_choice(d.get("first_run", "none"), FIRST_RUN, f"{where} first_run"),
        source=source,
    )


def deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Tables merge key by key; anything else (lists included) in `over` replaces."""
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as e:
        raise ProfileError(f"{path}: cannot read: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise ProfileError(f"{path}: not valid TOML: {e}") from None


def user_config_path(env: Mapping[str, str] | None = None) -> Path:
    """$DISPATCH_CONFIG, else $XDG_CONFIG_HOME/dispatch-kit/agents.toml (~/.config by default)."""
    env = os.environ if env is None else env
    if env.get("DISPATCH_CONFIG"):
        return Path(env["DISPATCH_CONFIG"])
    base = env.get("XDG_CONFIG_HOME") or os.path.join(env.get("HOME") or os.path.expanduser("~"), ".config")
    return Path(base) / "dispatch-kit" / "agents.toml"


def builtin_tables(directory: Path = BUILTIN_DIR) -> dict[str, dict[str, Any]]:
    """The shipped profile tables by name."""
    out: dict[str, dict[str, Any]] = {}
    for p in sorted(directory.glob("*.toml")):
        t = _read_toml(p)
        t.setdefault("name", p.stem)
        out[t["name"]] = {**t, "__source": str(p)}
    return out


def load_all(env: Mapping[str, str] | None = None, builtin_dir: Path = BUILTIN_DIR) -> dict[str, Profile]:
    """Builtin profiles overlaid with the user's `[agents.NAME]` tables (merge, or `extends = "other"`)."""
    tables = builtin_tables(builtin_dir)
    cfg = user_config_path(env)
    user: dict[str, Any] = {}
    if cfg.exists():
        user = _read_toml(cfg)
        extra = sorted(set(user) - {"agents", "defaults"})
        if extra:
            raise ProfileError(f"{cfg}: unknown top-level table(s) {', '.join(extra)}; use [agents.NAME]")
    for name, over in (user.get("agents") or {}).items():
        if not isinstance(over, Mapping):
            raise ProfileError(f"{cfg}: [agents.{name}] must be a table")
        parent = over.get("extends", name if name in tables else None)
        if parent is not None and parent not in tables:
            raise ProfileError(f"{cfg}: [agents.{name}] extends unknown agent {parent!r}")
        base = {k: v for k, v in tables[parent].items()} if parent else {}
        merged = deep_merge(base, {k: v for k, v in over.items() if k != "extends"})
        merged["name"] = name
        merged["__source"] = str(cfg)
        tables[name] = merged
    out = {}
    for name, t in tables.items():
        src = t.pop("__source", "<builtin>")
        out[name] = from_dict(t, src)
    return out


def load(name: str, env: Mapping[str, str] | None = None) -> Profile:
    """One profile by name; ProfileError listing the known names when it does not exist."""
    profiles = load_all(env)
    if name not in profiles:
        raise ProfileError(f"unknown agent {name!r} (known: {', '.join(sorted(profiles))})")
    return profiles[name]


def _scalar(values: Mapping[str, Any], name: str, el: str) -> str:
    v = values.get(name)
    if v is None or v == "":
        raise ProfileError(f"argv element {el!r} needs {{{name}}} but this run has none")
    return str(v)


def expand(template: Sequence[str], values: Mapping[str, Any]) -> list[str]:
    """Fill an argv template: list vars splice, `{prompt}` becomes one element verbatim, scalars replace.

    Values are inserted, never re-read as templates, so a prompt or path containing braces is safe.
    A scalar placeholder with no value is an error (the profile needs something this run lacks).
    """
    out: list[str] = []
    for el in template:
        whole = _PLACEHOLDER.fullmatch(el)
        if whole and whole.group(1) in LIST_VARS:
            out.extend(str(x) for x in values.get(whole.group(1)) or ())
            continue
        if whole and whole.group(1) == "prompt":
            if values.get("prompt") is None:
                raise ProfileError("this argv needs the prompt text but none was given")
            out.append(values["prompt"])
            continue

        out.append(_PLACEHOLDER.sub(lambda m, el=el: _scalar(values, m.group(1), el), el))
    return out
