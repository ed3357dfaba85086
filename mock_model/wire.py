"""The three wire formats: a Reply as an Anthropic Messages, OpenAI Responses or Chat Completions answer.

`events(api, reply, model)` gives the streamed form as (event-name or None, JSON data) pairs in order;
`body(api, reply, model)` gives the one-document form. Field sets follow the public API references, so
the real CLIs' own parsers accept them (that is what the real-CLI tier proves).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from typing import Any

from mock_model.conversation import ANTHROPIC, CHAT, RESPONSES
from mock_model.script import Reply

Event = tuple[str | None, dict[str, Any]]


def _id(prefix: str) -> str:
    return prefix + secrets.token_hex(12)


def split(text: str, n: int) -> list[str]:
    """`text` in at most `n` non-empty pieces (one empty piece for empty text)."""
    if not text:
        return [""]
    n = max(1, min(n, len(text)))
    step = -(-len(text) // n)
    return [text[i : i + step] for i in range(0, len(text), step)]


def _args_json(reply: Reply) -> str:
    assert reply.tool is not None
    a = reply.tool.arguments
    return a if isinstance(a, str) else json.dumps(a)


def _usage_tokens(reply: Reply) -> int:
    return max(1, len(reply.text) // 4 + (len(_args_json(reply)) // 4 if reply.tool else 0))


# -- Anthropic Messages --------------------------------------------------------------------------------


def anthropic_body(reply: Reply, model: str) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if reply.text:
        content.append({"type": "text", "text": reply.text})
    if reply.tool:
        content.append({"type": "tool_use", "id": _id("toolu_"), "name": reply.tool.name,
                        "input": reply.tool.arguments})  # fmt: skip
    return {
        "id": _id("msg_"), "type": "message", "role": "assistant", "model": model, "content": content,
        "stop_reason": "tool_use" if reply.tool else "end_turn", "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": _usage_tokens(reply)},
    }  # fmt: skip


def anthropic_events(reply: Reply, model: str) -> Iterator[Event]:
    msg = anthropic_body(reply, model)
    start = {**msg, "content": [], "stop_reason": None, "usage": {"input_tokens": 10, "output_tokens": 1}}
    yield "message_start", {"type": "message_start", "message": start}
    yield "ping", {"type": "ping"}
    for i, block in enumerate(msg["content"]):
        if block["type"] == "text":
            yield "content_block_start", {"type": "content_block_start", "index": i,
                                          "content_block": {"type": "text", "text": ""}}  # fmt: skip
            for piece in split(block["text"], reply.chunks):
                yield "content_block_delta", {"type": "content_block_delta", "index": i,
                                              "delta": {"type": "text_delta", "text": piece}}  # fmt: skip
        else:
            yield "content_block_start", {"type": "content_block_start", "index": i,
                                          "content_block": {**block, "input": {}}}  # fmt: skip
            for piece in split(json.dumps(block["input"]), reply.chunks):
                yield "content_block_delta", {"type": "content_block_delta", "index": i,
                                              "delta": {"type": "input_json_delta", "partial_json": piece}}  # fmt: skip
        yield "content_block_stop", {"type": "content_block_stop", "index": i}
    yield "message_delta", {"type": "message_delta",
                            "delta": {"stop_reason": msg["stop_reason"], "stop_sequence": None},
                            "usage": {"output_tokens": msg["usage"]["output_tokens"]}}  # fmt: skip
    yield "message_stop", {"type": "message_stop"}


def anthropic_error(status: int, message: str) -> dict[str, Any]:
    kind = {529: "overloaded_error", 429: "rate_limit_error", 401: "authentication_error"}.get(
        status, "api_error"
    )
    return {"type": "error", "error": {"type": kind, "message": message}}


# -- OpenAI Responses ----------------------------------------------------------------------------------


def _responses_items(reply: Reply) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    if reply.text:
        items.append({"type": "message", "id": _id("msg_"), "role": "assistant", "status": "completed",
                      "content": [{"type": "output_text", "text": reply.text, "annotations": []}]})  # fmt: skip
    if reply.tool:
        call = {"id": _id("fc_"), "call_id": _id("call_"), "name": reply.tool.name, "status": "completed"}
        if reply.tool.freeform:
            items.append({"type": "custom_tool_call", **call, "input": _args_json(reply)})
        else:
            items.append({"type": "function_call", **call, "arguments": _args_json(reply)})
    return items


def responses_body(reply: Reply, model: str, status: str = "completed") -> dict[str, Any]:
    out = _usage_tokens(reply)
    return {
        "id": _id("resp_"), "object": "response", "created_at": int(time.time()), "status": status,
        "model": model, "output": _responses_items(reply) if status == "completed" else [],
        "usage": {"input_tokens": 10, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": out,
                  "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 10 + out},
    }  # fmt: skip


def responses_events(reply: Reply, model: str) -> Iterator[Event]:
    full = responses_body(reply, model)
    seq = iter(range(1_000_000))

    def ev(kind: str, **data: Any) -> Event:
        return kind, {"type": kind, "sequence_number": next(seq), **data}

    yield ev("response.created", response={**full, "status": "in_progress", "output": []})
    yield ev("response.in_progress", response={**full, "status": "in_progress", "output": []})
    for idx, item in enumerate(full["output"]):
        if item["type"] == "message":
            yield ev(
                "response.output_item.added",
                output_index=idx,
                item={**item, "status": "in_progress", "content": []},
            )
            part = {"type": "output_text", "text": "", "annotations": []}
            yield ev(
                "response.content_part.added",
                item_id=item["id"],
                output_index=idx,
                content_index=0,
                part=part,
            )
            for piece in split(reply.text, reply.chunks):
                yield ev("response.output_text.delta", item_id=item["id"], output_index=idx, content_index=0,
                         delta=piece)  # fmt: skip
            yield ev("response.output_text.done", item_id=item["id"], output_index=idx, content_index=0,
                     text=reply.text)  # fmt: skip
            yield ev("response.content_part.done", item_id=item["id"], output_index=idx, content_index=0,
                     part=item["content"][0])  # fmt: skip
        else:
            field = "input" if item["type"] == "custom_tool_call" else "arguments"
            yield ev(
                "response.output_item.added",
                output_index=idx,
                item={**item, field: "", "status": "in_progress"},
            )
            kind = "custom_tool_call_input" if field == "input" else "function_call_arguments"
            for piece in split(item[field], reply.chunks):
                yield ev(f"response.{kind}.delta", item_id=item["id"], output_index=idx, delta=piece)
            yield ev(f"response.{kind}.done", item_id=item["id"], output_index=idx, **{field: item[field]})
        yield ev("response.output_item.done", output_index=idx, item=item)
    yield ev("response.completed", response=full)


def openai_error(status: int, message: str) -> dict[str, Any]:
    kind = "server_error" if status >= 500 else "invalid_request_error"
    return {"error": {"message": message, "type": kind, "param": None, "code": kind}}


# -- OpenAI Chat Completions ---------------------------------------------------------------------------


def chat_body(reply: Reply, model: str) -> dict[str, Any]:
    msg: dict[str, Any] = {"role": "assistant", "content": reply.text or None}
    if reply.tool:
        msg["tool_calls"] = [{"id": _id("call_"), "type": "function",
                              "function": {"name": reply.tool.name, "arguments": _args_json(reply)}}]  # fmt: skip
    out = _usage_tokens(reply)
    return {
        "id": _id("chatcmpl-"), "object": "chat.completion", "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "message": msg, "finish_reason": "tool_calls" if reply.tool else "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": out, "total_tokens": 10 + out},
    }  # fmt: skip


def chat_events(reply: Reply, model: str, usage: bool = True) -> Iterator[Event]:
    full = chat_body(reply, model)
    base = {"id": full["id"], "object": "chat.completion.chunk", "created": full["created"], "model": model}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> Event:
        return None, {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    yield chunk({"role": "assistant", "content": ""})
    if reply.text:
        for piece in split(reply.text, reply.chunks):
            yield chunk({"content": piece})
    if reply.tool:
        call = full["choices"][0]["message"]["tool_calls"][0]
        for i, piece in enumerate(split(call["function"]["arguments"], reply.chunks)):
            if i == 0:
                fn = {"name": call["function"]["name"], "arguments": piece}
                delta = {"index": 0, "id": call["id"], "type": "function", "function": fn}
            else:
                delta = {"index": 0, "function": {"arguments": piece}}
            yield chunk({"tool_calls": [delta]})
    yield chunk({}, full["choices"][0]["finish_reason"])
    if usage:
        yield None, {**base, "choices": [], "usage": full["usage"]}


# -- dispatch by API -----------------------------------------------------------------------------------


def events(api: str, reply: Reply, model: str) -> Iterator[Event]:
    return {ANTHROPIC: anthropic_events, RESPONSES: responses_events, CHAT: chat_events}[api](reply, model)


def body(api: str, reply: Reply, model: str) -> dict[str, Any]:
    return {ANTHROPIC: anthropic_body, RESPONSES: responses_body, CHAT: chat_body}[api](reply, model)


def error_body(api: str, status: int, message: str) -> dict[str, Any]:
    return anthropic_error(status, message) if api == ANTHROPIC else openai_error(status, message)


def sse(event: str | None, data: dict[str, Any]) -> bytes:
    """One server-sent event (Chat Completions uses bare `data:` lines; the others name the event)."""
    head = f"event: {event}\n" if event else ""
    return (head + "data: " + json.dumps(data, separators=(",", ":")) + "\n\n").encode()
