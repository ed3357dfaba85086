"""A mock model server for running the real agent CLIs offline: Anthropic Messages, OpenAI Responses and
Chat Completions on 127.0.0.1, scriptable per test, recording every request. See docs/agents.md."""

from mock_model.conversation import Conversation, Tool, Turn
from mock_model.script import Reply, Script, ToolCall
from mock_model.server import MockModel, Recorded

__all__ = ["Conversation", "MockModel", "Recorded", "Reply", "Script", "Tool", "ToolCall", "Turn"]
