"""The mock model server: Anthropic Messages, OpenAI Responses and Chat Completions on 127.0.0.1.

Threaded (an agent may hold a stream open while it sends side requests), an ephemeral port, any model
name, any path prefix (`/v1/messages`, `/messages`, `/api/v1/chat/completions` ...). Every request is
recorded with its parsed conversation before it is answered, so a test can assert what the agent sent
even when the answer is an error. Nothing here reaches the network.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from mock_model import wire
from mock_model.conversation import ANTHROPIC, CHAT, RESPONSES, Conversation, parse
from mock_model.script import Reply, Script, text

MAX_BODY = 64 << 20


@dataclass(frozen=True)
class Recorded:
    """One request as it arrived: method, path, headers, the JSON body (or None) and its parsed view."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    conversation: Conversation | None
    at: float


def api_of(path: str) -> str | None:
    """Which API a path belongs to, by its last segments (any prefix before them)."""
    p = path.split("?", 1)[0].rstrip("/")
    if p.endswith("/messages"):
        return ANTHROPIC
    if p.endswith("/responses"):
        return RESPONSES
    if p.endswith("/chat/completions"):
        return CHAT
    return None


class MockModel:
    """A running mock: `url`, `script` (replace it per test), `requests` (everything received)."""

    def __init__(self, script: Script | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        self.script: Script = script or text("Hello from the mock model.")
        self.requests: list[Recorded] = []
        self._cond = threading.Condition()
        self._closed = threading.Event()
        self.httpd = ThreadingHTTPServer((host, port), _handler(self))
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="mock-model", daemon=True)

    # -- life ----------------------------------------------------------------------------------------

    def start(self) -> MockModel:
        self._thread.start()
        return self

    def close(self) -> None:
        self._closed.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> MockModel:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    @property
    def url(self) -> str:
        """The base URL without a version segment (Anthropic clients add /v1 themselves)."""
        return f"http://127.0.0.1:{self.port}"

    # -- records -------------------------------------------------------------------------------------

    def record(self, rec: Recorded) -> None:
        with self._cond:
            self.requests.append(rec)
            self._cond.notify_all()

    def model_requests(self) -> list[Recorded]:
        """The requests that were model turns (any of the three APIs), in arrival order."""
        with self._cond:
            return [r for r in self.requests if r.conversation is not None]

    def task_requests(self) -> list[Recorded]:
        """Model turns that offered tools: the agent's real turns, not its side traffic."""
        return [r for r in self.model_requests() if r.conversation and r.conversation.tools]

    def wait_for(self, pred: Callable[[list[Recorded]], bool], timeout: float) -> bool:
        """Block until `pred(requests)` holds (re-checked on each new request) or `timeout` passes."""
        end = time.monotonic() + timeout
        with self._cond:
            while not pred(list(self.requests)):
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def user_texts(self) -> list[str]:
        """Every user text part of every model request (duplicates across turns included)."""
        return [t for r in self.model_requests() if r.conversation for t in r.conversation.user_texts()]

    def saw_text(self, needle: str) -> bool:
        """True when some user text part of some request equals or contains `needle` exactly."""
        return any(needle in t for t in self.user_texts())

    def reply_for(self, conv: Conversation) -> Reply:
        try:
            return self.script(conv)
        except Exception as e:  # a broken script is a 500 the test sees, not a hung agent
            return Reply(error=500, error_message=f"mock script failed: {type(e).__name__}: {e}")

    def sleep(self, seconds: float) -> bool:
        """Wait `seconds` unless the server is closing (True when it is)."""
        return self._closed.wait(seconds)


def _handler(mock: MockModel) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "dispatch-kit-mock-model/1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

        def _read_body(self) -> Any:
            n = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(min(n, MAX_BODY)) if n else b""
            if not raw:
                return None
            try:
                return json.loads(raw)
            except ValueError:
                return raw.decode(errors="replace")

        def _send_json(self, status: int, doc: Any, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            mock.record(Recorded("GET", self.path, dict(self.headers), None, None, time.time()))
            path = self.path.split("?", 1)[0].rstrip("/")
            if path.endswith("/models"):
                models = [{"id": "mock", "object": "model", "created": 0, "owned_by": "mock",
                           "type": "model", "display_name": "mock"}]  # fmt: skip
                self._send_json(200, {"object": "list", "data": models, "models": [], "has_more": False})
            else:
                self._send_json(404, wire.openai_error(404, f"no such path {path}"))

        def do_HEAD(self) -> None:
            mock.record(Recorded("HEAD", self.path, dict(self.headers), None, None, time.time()))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_POST(self) -> None:
            body = self._read_body()
            api = api_of(self.path)
            path = self.path.split("?", 1)[0].rstrip("/")
            if path.endswith("/count_tokens"):
                mock.record(Recorded("POST", self.path, dict(self.headers), body, None, time.time()))
                self._send_json(200, {"input_tokens": 10})
                return
            conv = parse(api, body) if api and isinstance(body, dict) else None
            mock.record(Recorded("POST", self.path, dict(self.headers), body, conv, time.time()))
            if api is None or conv is None:
                self._send_json(404, wire.openai_error(404, f"no model API at {path}"))
                return
            reply = mock.reply_for(conv)
            if reply.error:
                self._send_json(reply.error, wire.error_body(api, reply.error, reply.error_message),
                                {"retry-after": "0", "x-should-retry": "true", **reply.headers})  # fmt: skip
            elif conv.stream:
                self._stream(api, reply, conv.model)
            else:
                self._send_json(200, wire.body(api, reply, conv.model), reply.headers)

        def _stream(self, api: str, reply: Reply, model: str) -> None:
            evs = list(wire.events(api, reply, model))
            gap = reply.seconds / max(1, len(evs) - 1) if reply.seconds else 0.0
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            for k, v in reply.headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.close_connection = True
            try:
                for i, (name, data) in enumerate(evs):
                    if i and gap and mock.sleep(gap):
                        return
                    self.wfile.write(wire.sse(name, data))
                    self.wfile.flush()
                if api == CHAT:
                    self.wfile.write(b"data: [DONE]\n\n")
                    self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                return  # the agent hung up (stopped mid-stream): nothing to finish

    return Handler
