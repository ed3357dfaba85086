"""The mock model server over real HTTP: each API's streamed and whole answers, the scripts, recording."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from mock_model import agents, script
from mock_model.fixture import mock_model  # noqa: F401 - the fixture
from mock_model.server import MockModel

ANTH_TOOLS = [{"name": "Bash", "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}}},
              {"name": "Write", "input_schema": {"type": "object",
                                                 "properties": {"file_path": {}, "content": {}}}}]  # fmt: skip
CHAT_TOOLS = [{"type": "function", "function": {"name": "write", "parameters": {
    "type": "object", "properties": {"filePath": {"type": "string"}, "content": {"type": "string"}}}}}]  # fmt: skip
RESP_TOOLS = [{"type": "function", "name": "shell", "parameters": {
    "type": "object", "properties": {"command": {"type": "array", "items": {"type": "string"}}}}}]  # fmt: skip


def post(url: str, body: dict[str, Any]) -> tuple[int, bytes, str]:
    req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read(), r.headers.get("Content-Type", "")
    except urllib.error.HTTPError as e:
        return e.code, e.read(), e.headers.get("Content-Type", "")


def sse_events(raw: bytes) -> list[tuple[str | None, Any]]:
    out: list[tuple[str | None, Any]] = []
    for block in raw.decode().split("\n\n"):
        if not block.strip():
            continue
        name = None
        data = None
        for line in block.splitlines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data = line[6:]
        out.append((name, data if data == "[DONE]" else json.loads(data or "null")))
    return out


def test_anthropic_stream_text(mock_model: MockModel) -> None:  # noqa: F811
    mock_model.script = script.text("hello there, world")
    body = {"model": "any-model-name", "stream": True, "max_tokens": 10, "tools": ANTH_TOOLS,
            "messages": [{"role": "user", "content": "hi\tthere"}]}  # fmt: skip
    status, raw, ctype = post(mock_model.url + "/v1/messages", body)
    assert status == 200 and ctype.startswith("text/event-stream")
    evs = sse_events(raw)
    names = [n for n, _ in evs]
    assert names[0] == "message_start" and names[-1] == "message_stop"
    assert evs[0][1]["message"]["model"] == "any-model-name"
    text = "".join(d["delta"]["text"] for n, d in evs if n == "content_block_delta")
    assert text == "hello there, world"
    assert mock_model.saw_text("hi\tthere")


def test_anthropic_tool_use_then_final(mock_model: MockModel) -> None:  # noqa: F811
    mock_model.script = script.write_file("out.txt", "x'y\n", final="done")
    msgs: list[dict[str, Any]] = [{"role": "user", "content": [{"type": "text", "text": "write it"}]}]
    status, raw, _ = post(mock_model.url + "/v1/messages",
                          {"model": "m", "stream": True, "tools": ANTH_TOOLS, "messages": msgs})  # fmt: skip
    evs = sse_events(raw)
    start = next(d for n, d in evs if n == "content_block_start")
    assert start["content_block"]["type"] == "tool_use" and start["content_block"]["name"] == "Bash"
    partial = "".join(d["delta"]["partial_json"] for n, d in evs if n == "content_block_delta")
    assert "printf" in json.loads(partial)["command"]
    stop = next(d for n, d in evs if n == "message_delta")
    assert stop["delta"]["stop_reason"] == "tool_use"
    msgs += [{"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "Bash", "input": {}}]},
             {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok"}]}]  # fmt: skip
    status, raw, _ = post(
        mock_model.url + "/v1/messages", {"model": "m", "tools": ANTH_TOOLS, "messages": msgs}
    )
    doc = json.loads(raw)
    assert status == 200 and doc["stop_reason"] == "end_turn" and doc["content"][0]["text"].startswith("done")


def test_write_tool_gets_absolute_path_from_announced_cwd(mock_model: MockModel) -> None:  # noqa: F811
    mock_model.script = script.write_file("out.txt", "data", prefer="write")
    body = {"model": "m", "stream": False, "tools": CHAT_TOOLS,
            "messages": [{"role": "system", "content": "Working directory: /tmp/proj\n"},
                         {"role": "user", "content": "go"}]}  # fmt: skip
    status, raw, _ = post(mock_model.url + "/v1/chat/completions", body)
    call = json.loads(raw)["choices"][0]["message"]["tool_calls"][0]["function"]
    assert call["name"] == "write"
    assert json.loads(call["arguments"]) == {"filePath": "/tmp/proj/out.txt", "content": "data"}


def test_chat_stream_tool_call_and_done(mock_model: MockModel) -> None:  # noqa: F811
    mock_model.script = script.write_file("o.txt", "z", prefer="write")
    body = {
        "model": "m",
        "stream": True,
        "tools": CHAT_TOOLS,
        "messages": [{"role": "user", "content": "go"}],
    }
    _, raw, _ = post(mock_model.url + "/v1/chat/completions", body)
    evs = sse_events(raw)
    assert evs[-1][1] == "[DONE]"
    chunks = [d for _, d in evs[:-1]]
    args = "".join(c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"]
                   for c in chunks if c["choices"] and "tool_calls" in c["choices"][0]["delta"])  # fmt: skip
    assert json.loads(args)["content"] == "z"
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "tool_calls"


def test_responses_stream_function_call(mock_model: MockModel) -> None:  # noqa: F811
    mock_model.script = script.write_file("o.txt", "z")
    body = {"model": "gpt-x", "stream": True, "tools": RESP_TOOLS,
            "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "go"}]}]}  # fmt: skip
    _, raw, _ = post(mock_model.url + "/v1/responses", body)
    evs = sse_events(raw)
    assert evs[0][0] == "response.created" and evs[-1][0] == "response.completed"
    item = next(d["item"] for n, d in evs if n == "response.output_item.done")
    assert item["type"] == "function_call" and json.loads(item["arguments"])["command"][:2] == ["bash", "-lc"]
    seqs = [d["sequence_number"] for _, d in evs]
    assert seqs == sorted(seqs)


def test_question_then_answer(mock_model: MockModel) -> None:  # noqa: F811
    mock_model.script = script.question("QUESTION: red or blue?", final="ok")
    turn1 = [{"role": "user", "content": "paint it"}]
    _, raw, _ = post(
        mock_model.url + "/v1/chat/completions", {"model": "m", "tools": CHAT_TOOLS, "messages": turn1}
    )
    assert json.loads(raw)["choices"][0]["message"]["content"] == "QUESTION: red or blue?"
    turn2 = turn1 + [
        {"role": "assistant", "content": "QUESTION: red or blue?"},
        {"role": "user", "content": "blue"},
    ]
    _, raw, _ = post(
        mock_model.url + "/v1/chat/completions", {"model": "m", "tools": CHAT_TOOLS, "messages": turn2}
    )
    assert "blue" in json.loads(raw)["choices"][0]["message"]["content"]


def test_history_sees_earlier_turns(mock_model: MockModel) -> None:  # noqa: F811
    mock_model.script = script.history()
    msgs = [{"role": "user", "content": "first thing"}, {"role": "assistant", "content": "a"},
            {"role": "user", "content": "second"}]  # fmt: skip
    _, raw, _ = post(mock_model.url + "/v1/messages", {"model": "m", "tools": ANTH_TOOLS, "messages": msgs})
    assert json.loads(raw)["content"][0]["text"] == "HISTORY turns=2 first='first thing'"


@pytest.mark.parametrize(("path", "status"), [("/v1/messages", 529), ("/v1/responses", 503),
                                              ("/v1/chat/completions", 500)])  # fmt: skip
def test_errors_then_recovery(mock_model: MockModel, path: str, status: int) -> None:  # noqa: F811
    mock_model.script = script.error(status, times=1, then="back")
    body = {"model": "m", "stream": False, "messages": [{"role": "user", "content": "x"}], "input": "x"}
    code, raw, _ = post(mock_model.url + path, body)
    assert code == status
    err = json.loads(raw)
    assert (
        (err["error"]["type"] == "overloaded_error")
        if status == 529
        else err["error"]["type"] == "server_error"
    )
    code, _, _ = post(mock_model.url + path, body)
    assert code == 200


def test_slow_stream_takes_its_time_and_threads_serve_others(mock_model: MockModel) -> None:  # noqa: F811
    import threading

    mock_model.script = script.slow("a b c d e f", seconds=1.0, chunks=6)
    body = {"model": "m", "stream": True, "tools": CHAT_TOOLS, "messages": [{"role": "user", "content": "x"}]}
    t = threading.Thread(target=post, args=(mock_model.url + "/v1/chat/completions", body))
    t0 = time.monotonic()
    t.start()
    assert mock_model.wait_for(lambda rs: len(rs) >= 1, 10)
    code, _, _ = post(mock_model.url + "/v1/models", {})  # another request while the stream runs
    mid = time.monotonic() - t0
    t.join(30)
    assert time.monotonic() - t0 >= 0.9 and mid < 0.9 and code == 404  # POST /models is no model API


def test_any_prefix_and_models_listing(mock_model: MockModel) -> None:  # noqa: F811
    code, _, _ = post(mock_model.url + "/api/v1/chat/completions",
                      {"model": "m", "messages": [{"role": "user", "content": "x"}]})  # fmt: skip
    assert code == 200
    with urllib.request.urlopen(mock_model.url + "/v1/models", timeout=10) as r:
        assert json.loads(r.read())["data"][0]["id"] == "mock"
    assert [r.method for r in mock_model.requests] == ["POST", "GET"]


def test_agents_setup_stays_inside_home(tmp_path: Path) -> None:
    for cli in agents.CLIS:
        env = agents.setup(cli, "http://127.0.0.1:9", tmp_path / cli)
        assert env["HOME"] == str(tmp_path / cli)
        for k, v in env.items():
            if v.startswith("/"):
                assert v.startswith(str(tmp_path)), (cli, k, v)
    with pytest.raises(ValueError):
        agents.setup("nope", "http://x", tmp_path)
