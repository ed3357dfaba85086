"""Point each real agent CLI at a mock model, with a private HOME: the env and config files it needs.

`setup(cli, url, home)` writes the CLI's config under `home` (never the user's real one) and returns the
environment variables to run it with. Every CLI is told to stay offline: no update checks, telemetry,
model catalogues or plugin downloads. What each knob is and where it came from is in docs/agents.md.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

CLIS = ("claude", "codex", "opencode", "pi")
DUMMY_KEY = "sk-mock-0000000000000000000000000000000000000000"
MODEL = "mock"


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def base_env(home: Path) -> dict[str, str]:
    """HOME and the XDG dirs inside `home`: no CLI reads or writes the user's own files."""
    return {
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "XDG_STATE_HOME": str(home / ".local" / "state"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "NO_UPDATE_NOTIFIER": "1",
        "DO_NOT_TRACK": "1",
    }


def claude(url: str, home: Path) -> dict[str, str]:
    """Claude Code: base URL + dummy key; no nonessential traffic. First-run screens are NOT pre-answered
    here: that is the runner's explicit opt-in (runner.agents.firstrun)."""
    (home / ".claude").mkdir(parents=True, exist_ok=True)
    return {
        "ANTHROPIC_BASE_URL": url,
        "ANTHROPIC_API_KEY": DUMMY_KEY,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_ERROR_REPORTING": "1",
        "CLAUDE_CODE_DISABLE_TERMINAL_TITLE": "1",
    }


def codex(url: str, home: Path) -> dict[str, str]:
    """Codex: a CODEX_HOME whose config.toml names a model provider at the mock (Responses API)."""
    chome = home / ".codex"
    _write(
        chome / "config.toml",
        f'''model = "{MODEL}"
model_provider = "mock"
check_for_update_on_startup = false

[model_providers.mock]
name = "mock"
base_url = "{url}/v1"
wire_api = "responses"
env_key = "MOCK_API_KEY"
request_max_retries = 0
stream_max_retries = 0

[analytics]
enabled = false

[otel]
exporter = "none"
''',
    )
    return {"CODEX_HOME": str(chome), "MOCK_API_KEY": DUMMY_KEY}


def opencode(url: str, home: Path) -> dict[str, str]:
    """OpenCode: a custom openai-compatible provider at the mock; model catalogue and updates off."""
    cfg = {
        "$schema": "https://opencode.ai/config.json",
        "model": f"mock/{MODEL}",
        "small_model": f"mock/{MODEL}",
        "autoupdate": False,
        "share": "disabled",
        "provider": {
            "mock": {
                "npm": "@ai-sdk/openai-compatible",
                "name": "Mock",
                "options": {"baseURL": f"{url}/v1", "apiKey": DUMMY_KEY},
                "models": {MODEL: {"name": "Mock model", "tool_call": True}},
            }
        },
    }
    path = home / ".config" / "opencode" / "opencode.json"
    _write(path, json.dumps(cfg, indent=2))
    return {
        "OPENCODE_CONFIG": str(path),
        "OPENCODE_DISABLE_MODELS_FETCH": "1",
        "OPENCODE_DISABLE_AUTOUPDATE": "1",
        "OPENCODE_DISABLE_LSP_DOWNLOAD": "1",
        "OPENCODE_DISABLE_DEFAULT_PLUGINS": "1",
        "OPENCODE_DISABLE_SHARE": "1",
    }


def pi(url: str, home: Path) -> dict[str, str]:
    """Pi: a models.json provider at the mock (Chat Completions), made the default; PI_OFFLINE=1."""
    agent_dir = home / ".pi" / "agent"
    models = {
        "providers": {
            "mock": {
                "baseUrl": f"{url}/v1",
                "api": "openai-completions",
                "apiKey": "MOCK_API_KEY",
                "models": [{"id": MODEL, "name": "Mock model", "reasoning": False, "input": ["text"],
                            "contextWindow": 128000, "maxTokens": 8192,
                            "cost": {"input": 0, "output": 0, "cacheRead": 0, "cacheWrite": 0}}],
            }
        }
    }  # fmt: skip
    _write(agent_dir / "models.json", json.dumps(models, indent=2))
    _write(agent_dir / "settings.json", json.dumps({"defaultProvider": "mock", "defaultModel": MODEL}))
    return {"PI_OFFLINE": "1", "PI_CODING_AGENT_DIR": str(agent_dir), "MOCK_API_KEY": DUMMY_KEY}


def setup(cli: str, url: str, home: Path) -> dict[str, str]:
    """Write `cli`'s private config under `home` and return the env to run it with (HOME included)."""
    if cli not in CLIS:
        raise ValueError(f"unknown CLI {cli!r} (known: {', '.join(CLIS)})")
    home.mkdir(parents=True, exist_ok=True)
    env = base_env(home)
    env.update({"claude": claude, "codex": codex, "opencode": opencode, "pi": pi}[cli](url, home))
    return env


def bin_dir(root: Path | None = None) -> Path:
    """Where .ci/setup installs the pinned CLIs ($DISPATCH_AGENTS_PREFIX, else .agents/ in the checkout)."""
    if os.environ.get("DISPATCH_AGENTS_PREFIX"):
        return Path(os.environ["DISPATCH_AGENTS_PREFIX"]) / "node_modules" / ".bin"
    root = root or Path(__file__).resolve().parent.parent
    return root / ".agents" / "node_modules" / ".bin"
