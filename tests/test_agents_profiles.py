"""Profiles and launch planning: pure logic, no tmux (the end-to-end runs are in test_agents_e2e.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from runner.agents import plan as plans
from runner.agents.profiles import ProfileError, expand, first_match, from_dict, load, load_all

BUILTIN = ("agy", "aider", "claude", "cmd", "codex", "gemini", "opencode", "pi")


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"HOME": str(tmp_path), "DISPATCH_CONFIG": str(tmp_path / "agents.toml"), "PATH": os.defpath}


@pytest.fixture
def paths(tmp_path: Path) -> plans.AgentPaths:
    return plans.AgentPaths(tmp_path / "agents" / "t1")


def agent_argv(argv: list[str]) -> list[str]:
    """The agent's own argv: what follows the last helper's `--` (launcher, and the tee before it)."""
    return argv[len(argv) - argv[::-1].index("--") :]


def test_builtin_profiles_load(env: dict[str, str]) -> None:
    profiles = load_all(env)
    assert set(BUILTIN) <= set(profiles)
    assert profiles["claude"].default_mode == "interactive"
    assert profiles["claude"].hooks == "claude"
    assert profiles["codex"].events == "codex-jsonl"


def test_claude_batch_argv(env: dict[str, str], paths: plans.AgentPaths) -> None:
    p = plans.build(load("claude", env), prompt=b"fix it", paths=paths, mode="batch", model="sonnet")
    assert agent_argv(p.argv) == ["claude", "-p", "--settings", str(paths.settings), "--model", "sonnet"]
    assert p.prompt_delivery == "stdin"  # an argv prompt loses its trailing newline (measured, real CLI)
    assert "--stdin-prompt" in p.argv[: p.argv.index("--")] and "IS_SANDBOX=1" in p.argv
    hooks = p.settings["hooks"]
    assert {"SessionStart", "UserPromptSubmit", "PostToolUse", "Stop"} <= set(hooks)
    cmd = hooks["Stop"][0]["hooks"][0]["command"]
    assert "runner.agents.hook result" in cmd and cmd.endswith("|| true")


def test_claude_interactive_prompt_is_the_initial_argument(
    env: dict[str, str], paths: plans.AgentPaths
) -> None:
    """Measured against the real TUI (docs/agents.md): `claude -- PROMPT` keeps TAB, 64 KiB, a leading
    `-` and the trailing newline, which a paste did not; a TUI all the same (recorded pty, hooks)."""
    prompt = b"-dash\tTAB\n@at {prompt} $(x)\n"
    p = plans.build(
        load("claude", env), prompt=prompt, paths=paths, extra=["--permission-mode", "acceptEdits"]
    )
    assert p.mode == "interactive" and p.prompt_delivery == "tui-argv"
    argv = p.argv[p.argv.index("claude") :]
    assert argv == ["claude", "--settings", str(paths.settings), "--permission-mode", "acceptEdits", "--",
                    prompt.decode()]  # fmt: skip
    assert "--record" in p.argv and "--interactive" in p.settings["hooks"]["Stop"][0]["hooks"][0]["command"]


def test_claude_interactive_too_long_for_an_argument_is_pasted(
    env: dict[str, str], paths: plans.AgentPaths
) -> None:
    p = plans.build(load("claude", env), prompt=b"x" * (plans.MAX_ARGV_PROMPT + 1), paths=paths)
    assert p.prompt_delivery == "paste" and agent_argv(p.argv) == [
        "claude",
        "--settings",
        str(paths.settings),
    ]


def test_codex_is_teed_and_prompt_is_one_argument(env: dict[str, str], paths: plans.AgentPaths) -> None:
    prompt = b"line1\n$(rm -rf ~) `x` {prompt} \xff\xfe"
    p = plans.build(load("codex", env), prompt=prompt, paths=paths, model="gpt-5-codex")
    i = p.argv.index("--")
    assert p.argv[i - 6 : i] == [
        "--kind",
        "codex",
        "--events",
        str(paths.events),
        "--id-file",
        str(paths.thread_id),
    ]
    assert agent_argv(p.argv) == [
        "codex",
        "exec",
        "--json",
        "--skip-git-repo-check",
        "--model",
        "gpt-5-codex",
        "-",
    ]
    assert p.prompt_delivery == "stdin"  # the runner's private copy on fd 0, byte for byte


def test_codex_resume_argv(env: dict[str, str], paths: plans.AgentPaths) -> None:
    p = plans.build(load("codex", env), prompt=b"go on", paths=paths, resume_id="th_123")
    assert agent_argv(p.argv) == ["codex", "exec", "--json", "--skip-git-repo-check", "resume", "th_123", "-"]


@pytest.mark.parametrize(
    ("agent", "expected"),
    [
        ("opencode", ["opencode", "run", "--format", "json", "--print-logs", "--log-level", "ERROR"]),
        ("pi", ["pi", "-p", "--mode", "json"]),
        ("gemini", ["gemini", "--prompt", "P"]),
        ("agy", ["agy", "--print-timeout", "24h", "-p", "P"]),
    ],
)
def test_other_agents(agent: str, expected: list[str], env: dict[str, str], paths: plans.AgentPaths) -> None:
    assert agent_argv(plans.build(load(agent, env), prompt=b"P", paths=paths).argv) == expected


def test_agy_prompt_is_the_print_flags_argument(env: dict[str, str], paths: plans.AgentPaths) -> None:
    """agy's -p is a string flag: the prompt is its argument whole, a leading `-` included; extra args
    go before it (unverified profile, docs/agents.md)."""
    p = plans.build(load("agy", env), prompt=b"-rm me", paths=paths, extra=["--dangerously-skip-permissions"])
    assert agent_argv(p.argv) == [
        "agy",
        "--print-timeout",
        "24h",
        "--dangerously-skip-permissions",
        "-p",
        "-rm me",
    ]
    assert load("agy", env).resume_rerun


def test_codex_interactive_is_the_tui_without_daemon(env: dict[str, str], paths: plans.AgentPaths) -> None:
    """No event tee around a TUI; notify runs our hook; --no-daemon (docs/agents.md)."""
    p = plans.build(load("codex", env), prompt=b"P", paths=paths, mode="interactive")
    argv = agent_argv(p.argv)
    assert argv[:3] == ["codex", "--no-daemon", "-c"] and argv[3].startswith("notify=[")
    assert "runner.agents.tee" not in p.argv and p.prompt_delivery == "paste"


def test_aider_reads_prompt_file(env: dict[str, str], paths: plans.AgentPaths) -> None:
    p = plans.build(load("aider", env), prompt=b"P", paths=paths)
    assert p.argv[-2:] == ["--message-file", str(paths.prompt)] and p.prompt_delivery == "file"


def test_cmd_needs_argv(env: dict[str, str], paths: plans.AgentPaths) -> None:
    with pytest.raises(plans.PlanError) as e:
        plans.build(load("cmd", env), prompt=b"P", paths=paths)
    assert e.value.code == "bad_argv"
    assert agent_argv(plans.build(load("cmd", env), prompt=b"P", paths=paths, extra=["a", "b"]).argv) == [
        "a",
        "b",
    ]


@pytest.mark.parametrize(("agent", "model"), [("claude", "gpt-5"), ("codex", "opus"), ("cmd", "x")])
def test_model_refused_before_anything(
    agent: str, model: str, env: dict[str, str], paths: plans.AgentPaths
) -> None:
    with pytest.raises(plans.PlanError) as e:
        plans.build(load(agent, env), prompt=b"P", paths=paths, model=model)
    assert e.value.code == "model_not_allowed"
    assert not paths.root.exists()


def test_prompt_limits() -> None:
    with pytest.raises(plans.PlanError):
        plans.prompt_text(b"a\0b")
    with pytest.raises(plans.PlanError):
        plans.prompt_text(b"a" * 200_001)


def test_stdin_delivery_wraps_with_exec_launcher(
    env: dict[str, str], paths: plans.AgentPaths, tmp_path: Path
) -> None:
    (tmp_path / "agents.toml").write_text(
        '[agents.claude-stdin]\nextends = "claude"\ndefault_mode = "batch"\n'
        '[agents.claude-stdin.modes.batch]\nargv = ["{binary}", "-p", "{model_args}"]\nprompt = "stdin"\n'
    )
    p = plans.build(load("claude-stdin", env), prompt=b"P", paths=paths)
    assert p.argv[1:3] == ["-m", "runner.agents.launch"] and "--stdin-prompt" in p.argv
    assert agent_argv(p.argv) == ["claude", "-p"]


def test_user_config_overrides_and_adds(env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "agents.toml").write_text(
        '[agents.claude]\nbinary = "/opt/claude/bin/claude"\n[agents.claude.model]\nallowed = ["^opus$"]\n'
        '[agents.mine]\ndefault_mode = "batch"\n[agents.mine.modes.batch]\nargv = ["my-agent", "{prompt}"]\n'
    )
    ps = load_all(env)
    assert ps["claude"].binary == "/opt/claude/bin/claude"
    assert ps["claude"].model_allowed("opus") and not ps["claude"].model_allowed("sonnet")
    assert ps["claude"].hooks == "claude"  # the rest of the builtin table is kept
    assert ps["mine"].modes["batch"].argv == ("my-agent", "{prompt}")


@pytest.mark.parametrize(
    "text",
    [
        "[agents.x]\nmodes = 3\n",
        '[agents.x]\n[agents.x.modes.batch]\nargv = ["a", "pre{prompt}"]\n',
        '[agents.x]\n[agents.x.modes.batch]\nargv = ["a", "{nope}"]\n',
        '[agents.x]\n[agents.x.modes.batch]\nargv = ["a"]\nprompt = "argv"\n',
        '[agents.x]\n[agents.x.modes.interactive]\nargv = ["a"]\nprompt = "paste"\n',
        '[agents.x]\nextends = "ghost"\n',
        "[oops]\n",
        "not toml [",
    ],
)
def test_bad_user_config_is_one_clear_error(text: str, env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "agents.toml").write_text(text)
    with pytest.raises(ProfileError) as e:
        load_all(env)
    assert "\n" not in str(e.value).strip() or "TOML" in str(e.value)


def test_unknown_agent(env: dict[str, str]) -> None:
    with pytest.raises(ProfileError, match="known: agy, aider"):
        load("nope", env)


def test_expand_never_reformats_values() -> None:
    out = expand(["{binary}", "--x={model}", "{extra}", "{prompt}"], {
        "binary": "b", "model": "{prompt}", "extra": ["{binary}"], "prompt": "{model}"})  # fmt: skip
    assert out == ["b", "--x={prompt}", "{binary}", "{model}"]
    with pytest.raises(ProfileError):
        expand(["--resume", "{session_id}"], {})


def test_from_dict_rejects_unknown_keys() -> None:
    with pytest.raises(ProfileError, match="unknown key"):
        from_dict({"name": "x", "modes": {"batch": {"argv": ["a", "{prompt}"]}}, "typo": 1})


def test_needs_input_patterns(env: dict[str, str]) -> None:
    claude = load("claude", env)
    screen = "some output\n Do you want to proceed?\n ❯ 1. Yes\n   2. No\n"
    assert claude.needs_input_match(screen) == "Do you want to proceed?"
    assert claude.needs_input_match("all good\n> ") is None
    assert first_match([r"QUESTION:"], "a\nQUESTION: go?\nb") == "QUESTION: go?"
