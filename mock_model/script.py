"""Scripts: what the mock model answers, decided from the conversation so far (mock_model.conversation).

A script is any callable `Conversation -> Reply`. The ones here cover what the kit's tests need from a
model: plain text, a tool call that writes a file then a final answer, a question to the user, a slow
stream, an overload/5xx error, and an answer that proves the earlier turns arrived (resume).
Requests that advertise no tools (title generation, quota probes) get a short plain answer: they are the
agent's side traffic, not the task.
"""

from __future__ import annotations

import re
import shlex
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mock_model.conversation import Conversation, Tool

WRITE_TOOLS = ("Write", "write", "write_file", "create_file")
SHELL_TOOLS = ("Bash", "bash", "shell_command", "exec_command", "shell", "local_shell")
PATCH_TOOLS = ("apply_patch",)
_CWD = re.compile(r"(?i)(?:working directory|<cwd>|\bcwd\b)[^\n/]{0,40}?(/[^\s<>\"'`]+)")


@dataclass(frozen=True)
class ToolCall:
    """A call of one advertised tool: `arguments` is JSON-able, or a str for a freeform tool."""

    name: str
    arguments: Any
    freeform: bool = False


@dataclass(frozen=True)
class Reply:
    """One model answer. `error` (HTTP status) wins over everything; `seconds` spreads the stream out."""

    text: str = ""
    tool: ToolCall | None = None
    error: int | None = None
    error_message: str = "Overloaded"
    seconds: float = 0.0
    chunks: int = 4
    headers: dict[str, str] = field(default_factory=dict)


Script = Callable[[Conversation], Reply]


def side_traffic(conv: Conversation) -> bool:
    """A request with no tools is the agent's own plumbing (titles, quota checks), not the task's turn."""
    return not conv.tools


def text(answer: str) -> Script:
    """Always answer `answer`."""
    return lambda conv: Reply(text=answer)


def agent_cwd(conv: Conversation) -> str | None:
    """The working directory the agent told the model about (system prompt or environment context)."""
    for blob in (conv.system, *conv.user_texts()):
        m = _CWD.search(blob)
        if m:
            return m.group(1).rstrip(".,;:)")
    return None


def write_call(conv: Conversation, path: str, content: str, prefer: str = "shell") -> ToolCall:
    """The call that writes `content` to `path` (relative to the agent's cwd) with a tool this agent has.

    A shell tool runs in the agent's cwd, so a relative path proves where the agent runs; a Write tool
    needs an absolute path, taken from the cwd the agent itself announced.
    """
    shell = conv.tool(*SHELL_TOOLS)
    write = conv.tool(*WRITE_TOOLS)
    patch = conv.tool(*PATCH_TOOLS)
    order = [shell, write] if prefer == "shell" else [write, shell]
    for tool in order:
        if tool is shell and shell is not None:
            return _shell_call(shell, f"printf %s {shlex.quote(content)} > {shlex.quote(path)}")
        if tool is write and write is not None:
            return _write_call(write, conv, path, content)
    if patch is not None:
        body = "".join("+" + line + "\n" for line in content.splitlines() or [""])
        return ToolCall(patch.name, f"*** Begin Patch\n*** Add File: {path}\n{body}*** End Patch\n", True)
    names = ", ".join(t.name for t in conv.tools) or "none"
    raise LookupError(f"no write or shell tool among the agent's tools ({names})")


def _shell_call(tool: Tool, command: str) -> ToolCall:
    props = tool.properties
    key = "cmd" if "cmd" in props and "command" not in props else "command"
    as_list = (props.get(key) or {}).get("type") == "array"
    args: dict[str, Any] = {key: ["bash", "-lc", command] if as_list else command}
    if "description" in props and "description" in (tool.schema.get("required") or []):
        args["description"] = "write the requested file"
    return ToolCall(tool.name, args)


def _write_call(tool: Tool, conv: Conversation, path: str, content: str) -> ToolCall:
    props = tool.properties
    pkey = next((k for k in ("file_path", "filePath", "path", "filename") if k in props), "file_path")
    ckey = next((k for k in ("content", "contents", "text") if k in props), "content")
    full = path
    cwd = agent_cwd(conv)
    if not path.startswith("/") and cwd:
        full = cwd.rstrip("/") + "/" + path
    return ToolCall(tool.name, {pkey: full, ckey: content})


def write_file(path: str, content: str, final: str = "wrote the file", prefer: str = "shell") -> Script:
    """First turn: a tool call writing `path`; once a tool result is back: `final` plus that result."""

    def script(conv: Conversation) -> Reply:
        if side_traffic(conv):
            return Reply(text="ok")
        results = [r for t in conv.turns for r in t.tool_results]
        if conv.tool_results_since_user() == 0:
            return Reply(tool=write_call(conv, path, content, prefer))
        return Reply(text=f"{final} (tool said: {results[-1][:200].strip()})" if results else final)

    return script


def question(ask: str, final: str = "thanks, done") -> Script:
    """Ask `ask` on the first user turn; after the user answered, `final` quoting the answer."""

    def script(conv: Conversation) -> Reply:
        if side_traffic(conv):
            return Reply(text="ok")
        users = conv.user_turns()
        if len(users) <= 1:
            return Reply(text=ask)
        return Reply(text=f"{final}: you said {users[-1].text.strip()[:200]!r}")

    return script


def slow(answer: str, seconds: float, chunks: int = 20) -> Script:
    """Stream `answer` in `chunks` pieces spread over `seconds` (a long-running turn to stop or watch)."""
    return lambda conv: (
        Reply(text="ok") if side_traffic(conv) else Reply(answer, seconds=seconds, chunks=chunks)
    )


def error(status: int = 529, times: int | None = None, then: str = "recovered") -> Script:
    """Fail with HTTP `status` (529 overloaded, 500, 503 ...): always, or the first `times` calls."""
    count = [0]

    def script(conv: Conversation) -> Reply:
        count[0] += 1
        if times is None or count[0] <= times:
            return Reply(error=status, error_message="Overloaded" if status == 529 else "server error")
        return Reply(text=then)

    return script


def history(marker: str = "HISTORY") -> Script:
    """Answer with how many user turns arrived and the first one: a resume that kept history says so."""

    def script(conv: Conversation) -> Reply:
        if side_traffic(conv):
            return Reply(text="ok")
        users = conv.user_turns()
        typed = [x for x in users[0].texts if not x.lstrip().startswith("<")] if users else []
        first = typed[-1].strip()[:120] if typed else ""
        return Reply(text=f"{marker} turns={len(users)} first={first!r}")

    return script


def sequence(*scripts: Script) -> Script:
    """Use the n-th script for the n-th user turn (the last one for any later turn)."""

    def script(conv: Conversation) -> Reply:
        n = max(1, len(conv.user_turns()))
        return scripts[min(n, len(scripts)) - 1](conv)

    return script


def choice(question: str, options: tuple[str, ...] = ("Red", "Blue"), final: str = "chose") -> Script:
    """Claude's multiple-choice question tool (AskUserQuestion) on the first turn; once its result is back,
    `final` quoting the answer. Agents without that tool get the question as text."""

    def script(conv: Conversation) -> Reply:
        if side_traffic(conv):
            return Reply(text="ok")
        results = [r for t in conv.turns for r in t.tool_results]
        if conv.tool_results_since_user() > 0:
            return Reply(text=f"{final} (tool said: {results[-1][:200].strip()})" if results else final)
        tool = conv.tool("AskUserQuestion")
        if tool is None:
            return Reply(text=f"QUESTION: {question}")
        opts = [{"label": o, "description": f"the {o.lower()} one"} for o in options]
        args = {
            "questions": [{"question": question, "header": "Choice", "options": opts, "multiSelect": False}]
        }
        return Reply(tool=ToolCall(tool.name, args))

    return script


def held(inner: Script, gate: threading.Event, at: int = 2, limit: float = 300.0) -> Script:
    """`inner`, except that its `at`-th task turn (side traffic not counted) waits for `gate` first (at
    most `limit` s): the agent is provably mid-request while a test looks at it, not maybe between two."""
    count = [0]
    lock = threading.Lock()

    def script(conv: Conversation) -> Reply:
        if not side_traffic(conv):
            with lock:
                count[0] += 1
                n = count[0]
            if n == at:
                gate.wait(limit)
        return inner(conv)

    return script
