"""What a model request says, whichever API it came through: the turns so far and the tools on offer.

The three wire formats (Anthropic Messages, OpenAI Responses, OpenAI Chat Completions) carry the same
things in different shapes; scripts (mock_model.script) decide on this neutral view, so one script serves
every CLI.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

ANTHROPIC = "anthropic"
RESPONSES = "responses"
CHAT = "chat"


@dataclass(frozen=True)
class Tool:
    """One tool the agent advertised: its name and the JSON schema of its input ({} when freeform)."""

    name: str
    schema: dict[str, Any] = field(default_factory=dict)

    @property
    def properties(self) -> dict[str, Any]:
        props = self.schema.get("properties")
        return props if isinstance(props, dict) else {}


@dataclass(frozen=True)
class Turn:
    """One message: role (user | assistant | tool | system), its text parts, and tool results it carries."""

    role: str
    texts: tuple[str, ...] = ()
    tool_results: tuple[str, ...] = ()
    tool_calls: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        return "\n".join(self.texts)


@dataclass(frozen=True)
class Conversation:
    """The neutral view of one request."""

    api: str
    model: str
    stream: bool
    turns: tuple[Turn, ...]
    tools: tuple[Tool, ...]
    system: str = ""

    def user_texts(self) -> list[str]:
        """Every text part the user sent, in order (system reminders included, as the agent sent them)."""
        return [t for turn in self.turns if turn.role == "user" for t in turn.texts]

    def user_turns(self) -> list[Turn]:
        """Turns the user typed: text, no tool results, and not only the agent's own context blocks
        (Codex's `<environment_context>`, Claude's `<system-reminder>` travel as user text too)."""
        return [
            t
            for t in self.turns
            if t.role == "user" and t.texts and not t.tool_results
            and any(not x.lstrip().startswith("<") for x in t.texts)
        ]  # fmt: skip

    @property
    def last(self) -> Turn | None:
        return self.turns[-1] if self.turns else None

    def tool_results_since_user(self) -> int:
        """How many tool results came back after the last user text turn (0: the user just spoke)."""
        n = 0
        for turn in reversed(self.turns):
            if turn.role == "user" and turn.texts and not turn.tool_results:
                break
            n += len(turn.tool_results)
        return n

    def assistant_texts(self) -> list[str]:
        return [t for turn in self.turns if turn.role == "assistant" for t in turn.texts]

    def tool(self, *names: str) -> Tool | None:
        """The first advertised tool whose name matches one of `names` (case-insensitive, in that order)."""
        by = {t.name.lower(): t for t in self.tools}
        for n in names:
            if n.lower() in by:
                return by[n.lower()]
        return None


def _text_of(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    out: list[str] = []
    if isinstance(content, list):
        for part in content:
            if isinstance(part, str):
                out.append(part)
            elif isinstance(part, dict) and part.get("type") in ("text", "input_text", "output_text"):
                if isinstance(part.get("text"), str):
                    out.append(part["text"])
    return out


def _stringify(v: Any) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, list):
        return "\n".join(_text_of(v)) or json.dumps(v)
    return json.dumps(v)


def _anthropic(body: dict[str, Any]) -> tuple[list[Turn], list[Tool], str]:
    turns: list[Turn] = []
    for m in body.get("messages") or []:
        content = m.get("content")
        results = []
        calls = []
        if isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and part.get("type") == "tool_result":
                    results.append(_stringify(part.get("content", "")))
                if isinstance(part, dict) and part.get("type") == "tool_use":
                    calls.append(str(part.get("name")))
        turns.append(Turn(str(m.get("role")), tuple(_text_of(content)), tuple(results), tuple(calls)))
    tools = [Tool(str(t.get("name")), t.get("input_schema") or {}) for t in body.get("tools") or []]
    system = "\n".join(_text_of(body.get("system")))
    return turns, tools, system


def _responses(body: dict[str, Any]) -> tuple[list[Turn], list[Tool], str]:
    turns: list[Turn] = []
    inp = body.get("input")
    if isinstance(inp, str):
        inp = [{"role": "user", "content": inp}]
    for item in inp or []:
        if not isinstance(item, dict):
            continue
        kind = item.get("type", "message")
        if kind == "message":
            role = str(item.get("role"))
            turns.append(
                Turn("system" if role == "developer" else role, tuple(_text_of(item.get("content"))))
            )
        elif kind in ("function_call_output", "custom_tool_call_output", "local_shell_call_output"):
            turns.append(Turn("tool", (), (_stringify(item.get("output", "")),)))
        elif kind in ("function_call", "custom_tool_call", "local_shell_call"):
            turns.append(Turn("assistant", (), (), (str(item.get("name", kind)),)))
    tools = []
    for t in body.get("tools") or []:
        if isinstance(t, dict):
            name = t.get("name") or (t.get("function") or {}).get("name") or t.get("type")
            tools.append(Tool(str(name), t.get("parameters") or {}))
    return turns, tools, str(body.get("instructions") or "")


def _chat(body: dict[str, Any]) -> tuple[list[Turn], list[Tool], str]:
    turns: list[Turn] = []
    system = []
    for m in body.get("messages") or []:
        role = str(m.get("role"))
        if role in ("system", "developer"):
            system.extend(_text_of(m.get("content")))
            continue
        if role == "tool":
            turns.append(Turn("tool", (), (_stringify(m.get("content", "")),)))
            continue
        calls = tuple(str((c.get("function") or {}).get("name")) for c in m.get("tool_calls") or [])
        turns.append(Turn(role, tuple(_text_of(m.get("content"))), (), calls))
    tools = []
    for t in body.get("tools") or []:
        fn = t.get("function") if isinstance(t, dict) else None
        if isinstance(fn, dict):
            tools.append(Tool(str(fn.get("name")), fn.get("parameters") or {}))
    return turns, tools, "\n".join(system)


def parse(api: str, body: dict[str, Any]) -> Conversation:
    """The neutral view of a request body of the given API."""
    turns, tools, system = {ANTHROPIC: _anthropic, RESPONSES: _responses, CHAT: _chat}[api](body)
    # a tool turn answers the assistant: for the scripts' purposes it is the user side's reply
    norm = tuple(Turn("user", (), t.tool_results) if t.role == "tool" else t for t in turns)
    return Conversation(
        api=api,
        model=str(body.get("model", "")),
        stream=bool(body.get("stream", api == RESPONSES)),
        turns=norm,
        tools=tuple(tools),
        system=system,
    )
