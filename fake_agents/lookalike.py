"""What the look-alikes (claude, codex, opencode, pi) share: generic faults from FAKE_AGENT_FLAGS,
session ids, a per-agent home for resume/continue, and the canned reply."""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile

from fake_agents.core import Agent, parse_flags_env


def make_agent(kind: str, module: str) -> Agent:
    """An Agent steered by FAKE_AGENT_FLAGS (bad flags: one line on stderr, exit 2)."""
    return Agent(parse_flags_env(f"fake-{kind}"), kind=kind, module=module)


def new_id() -> str:
    """A random (version 4) UUID string without importing uuid."""
    b = bytearray(os.urandom(16))
    b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def home(kind: str) -> str:
    """FAKE_<KIND>_HOME, else $TMPDIR/fake-<kind>-<uid>: where sessions live (never the real agent's)."""
    path = os.environ.get(f"FAKE_{kind.upper()}_HOME") or os.path.join(
        tempfile.gettempdir(), f"fake-{kind}-{os.getuid()}"
    )
    os.makedirs(path, mode=0o700, exist_ok=True)
    return path


def _last_file(kind: str, cwd: str) -> str:
    return os.path.join(home(kind), "last-" + hashlib.sha256(cwd.encode()).hexdigest()[:16])


def remember(kind: str, session_id: str) -> None:
    """Record the session as the last one for this cwd (for --continue / resume --last)."""
    with open(_last_file(kind, os.getcwd()), "w", encoding="utf-8") as f:
        f.write(session_id)
    open(os.path.join(home(kind), f"session-{session_id}"), "a").close()


def last(kind: str) -> str | None:
    try:
        with open(_last_file(kind, os.getcwd()), encoding="utf-8") as f:
            return f.read().strip() or None
    except OSError:
        return None


def known(kind: str, session_id: str) -> bool:
    return os.path.exists(os.path.join(home(kind), f"session-{session_id}"))


def reply(kind: str, prompt: bytes) -> str:
    """The canned answer: names the prompt by hash so a test can tie output to input."""
    return f"fake {kind} finished the task (prompt {len(prompt)} bytes, sha256 {hashlib.sha256(prompt).hexdigest()[:12]})"


def read_stdin_prompt() -> bytes:
    """The whole of stdin when it is not a terminal (how `claude -p` and `codex exec -` read it)."""
    if os.isatty(0):
        return b""
    return sys.stdin.buffer.read()


def ask_or_read(agent: Agent, prompt_source: str) -> str | None:
    """The batch CLIs' answer to --ask: with the prompt on stdin nobody can answer on the terminal, so
    (as the real `-p`/`exec`/`run` do) the question is the turn's final message; returns it, or None.
    --read-paste still reads the terminal when stdin is one."""
    o = agent.opts
    if o.read_paste and os.isatty(0):
        agent.read_paste()
    if not o.ask:
        return None
    if prompt_source != "stdin" and os.isatty(0):
        agent.interact()
        return None
    agent.journal.write("question", text=o.ask, answerable=False)
    return o.ask


def batch_turn(agent: Agent, kind: str, session: str, words: list[str]) -> int:
    """One prompt from argv words (or stdin), worked on and answered: the batch CLIs' whole run."""
    if words:
        prompt, source = os.fsencode(" ".join(words)), "argv"
    else:
        prompt, source = read_stdin_prompt(), "stdin"
    agent.record_prompt(prompt, source)
    agent.emit_outputs()
    question = ask_or_read(agent, source)
    agent.work()
    text = question or reply(kind, prompt)
    agent.line(text)
    agent.journal.write("turn", n=1, session_id=session, reply=text)
    agent.finish()
    return 0  # pragma: no cover
