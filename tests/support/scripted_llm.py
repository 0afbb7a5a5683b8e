"""A scripted OpenAI-compatible HTTP server on loopback, for testing the LLM client layer.

The server speaks real HTTP, so the ``openai`` client is exercised end to end (no monkeypatching).
It serves ``GET /v1/models`` and ``POST /v1/chat/completions``; each chat request consumes the
next step of the script. A step is a dict with one of these shapes:

- ``{"reply": str}``: a normal completion whose content is the string;
- ``{"status": int}``: that HTTP status with an OpenAI-style JSON error body (e.g. 429, 500);
  with ``"headers": {name: value}`` the reply carries those headers too (e.g. ``Retry-After``);
- ``{"sleep": seconds, "reply": str}``: the reply, sent only after sleeping (client timeouts);
- ``{"garbage": True}``: status 200 with a body that is not JSON;
- ``{"truncated_json": True}``: a completion whose content is a JSON object cut short.

A ``reply`` step may also shape its completion the way real servers do:

- ``"reasoning": str``: the message's ``reasoning_content`` (vLLM with a reasoning parser);
- ``"usage": dict | None``: the usage object as given (fields may be null), or no usage;
- ``"finish_reason": str``: e.g. ``"length"`` (the reply hit its token limit);
- ``"no_choices": True``: ``choices`` is empty (the usage stays); ``"content_null": True``:
  the message's content is null;
- ``"trickle": seconds``: the body is sent in 8 pieces, that many seconds apart;
- ``"refuse": [field, ...]``: a request carrying any of these fields gets a 400 naming it, as
  OpenAI's reasoning models answer ``max_tokens`` and ``temperature``.

The script is either one list, shared by every request, or a dict of lists keyed by role; the
role of a request is the ``<name>`` in ``ROLE: <name>`` in its first system message, and requests
with no role (or a role with no list) use the ``"*"`` list. An exhausted script answers 400 so a
test fails fast instead of retrying. Token usage is ``len(text) // 4`` of the prompt (the message
contents joined) and of the reply.

What must stay true: every request is recorded in ``requests`` (path, role, parsed body) before
it is answered; leaving the ``with`` block stops the server, wakes sleeping handlers and joins
every handler thread, so no socket or thread outlives a test.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

Step = dict[str, Any]
Script = list[Step] | dict[str, list[Step]]

DEFAULT_ROLE = "*"
TRUNCATED_JSON = '```json\n{"name": "design", "rationale": "the reply was cut of'
_ROLE_RE = re.compile(r"ROLE:\s*([A-Za-z_][\w-]*)")


@dataclass
class RecordedRequest:
    """One request the server received."""

    method: str
    path: str
    role: str | None
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


def request_role(body: Any) -> str | None:
    """The ``ROLE: <name>`` of the first system message of a chat request body, if any."""
    if not isinstance(body, dict):
        return None
    for message in body.get("messages") or []:
        if isinstance(message, dict) and message.get("role") == "system":
            match = _ROLE_RE.search(str(message.get("content", "")))
            return match.group(1) if match else None
    return None


def _prompt_text(body: Any) -> str:
    if not isinstance(body, dict):
        return ""
    parts = [str(m.get("content", "")) for m in body.get("messages") or [] if isinstance(m, dict)]
    return "\n".join(parts)


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # handler threads are joined by server_close()
    block_on_close = True
    owner: ScriptedLLMServer


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"  # one request per connection: nothing lingers on keep-alive

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""

    def do_GET(self) -> None:
        owner = self.server.owner
        owner.record(RecordedRequest("GET", self.path, None, None, dict(self.headers)))
        if self.path.rstrip("/") == "/v1/models":
            data = [
                {"id": name, "object": "model", "owned_by": "scripted"} for name in owner.models
            ]
            self._send_json(200, {"object": "list", "data": data})
        else:
            self._send_error(404, "not found", "invalid_request_error")

    def do_POST(self) -> None:
        owner = self.server.owner
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = None
        role = request_role(body)
        owner.record(RecordedRequest("POST", self.path, role, body, dict(self.headers)))
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._send_error(404, "not found", "invalid_request_error")
            return
        if body is None:
            self._send_error(400, "request body is not JSON", "invalid_request_error")
            return
        step = owner.next_step(role)
        if step is None:
            self._send_error(400, "scripted LLM server: script exhausted", "script_exhausted")
            return
        self._answer(step, body)

    def _answer(self, step: Step, body: dict[str, Any]) -> None:
        owner = self.server.owner
        if "sleep" in step and owner.stopping.wait(float(step["sleep"])):
            return  # the server is closing; the client has long given up
        refused = [name for name in step.get("refuse", ()) if name in body]
        if refused:
            message = f"Unsupported parameter: '{refused[0]}' is not supported with this model."
            self._send_error(400, message, "invalid_request_error")
            return
        if "status" in step:
            status = int(step["status"])
            kind = "rate_limit_exceeded" if status == 429 else "server_error"
            self._send_error(status, f"scripted error {status}", kind, step.get("headers"))
        elif step.get("garbage"):
            self._send_raw(200, b"<html>this is not JSON {", "application/json")
        elif step.get("truncated_json"):
            self._send_completion(body, TRUNCATED_JSON)
        elif "reply" in step:
            self._send_completion(body, str(step["reply"]), step)
        else:
            self._send_error(400, f"scripted LLM server: bad step {step!r}", "bad_step")

    def _send_completion(
        self, body: dict[str, Any], content: str, step: Step | None = None
    ) -> None:
        step = step or {}
        prompt_tokens = len(_prompt_text(body)) // 4
        completion_tokens = len(content) // 4
        message: dict[str, Any] = {
            "role": "assistant",
            "content": None if step.get("content_null") else content,
        }
        if "reasoning" in step:
            message["reasoning_content"] = step["reasoning"]
        completion: dict[str, Any] = {
            "id": f"chatcmpl-scripted-{self.server.owner.request_count()}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": str(body.get("model", "")),
            "choices": []
            if step.get("no_choices")
            else [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": step.get("finish_reason", "stop"),
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }
        if "usage" in step:
            completion["usage"] = step["usage"]
        if step.get("trickle"):
            self._trickle(json.dumps(completion).encode(), float(step["trickle"]))
        else:
            self._send_json(200, completion)

    def _trickle(self, data: bytes, pause: float) -> None:
        """Send ``data`` in 8 pieces, ``pause`` seconds apart (a server that dribbles)."""
        owner = self.server.owner
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            size = -(-len(data) // 8)
            for start in range(0, len(data), size):
                self.wfile.write(data[start : start + size])
                self.wfile.flush()
                if owner.stopping.wait(pause):
                    return
        except OSError:
            pass  # the client gave up

    def _send_error(
        self, status: int, message: str, kind: str, headers: dict[str, Any] | None = None
    ) -> None:
        error = {"message": message, "type": kind, "param": None, "code": kind}
        self._send_json(status, {"error": error}, headers)

    def _send_json(self, status: int, payload: Any, headers: dict[str, Any] | None = None) -> None:
        self._send_raw(status, json.dumps(payload).encode(), "application/json", headers)

    def _send_raw(
        self, status: int, data: bytes, content_type: str, headers: dict[str, Any] | None = None
    ) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            for name, value in (headers or {}).items():
                self.send_header(name, str(value))
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            pass  # the client went away (e.g. it timed out); nothing to tell it


class ScriptedLLMServer:
    """An OpenAI-compatible chat server that answers by a script; use it as a context manager."""

    def __init__(self, script: Script, *, models: tuple[str, ...] = ("m1",)) -> None:
        if isinstance(script, dict):
            self._queues = {role: deque(steps) for role, steps in script.items()}
        else:
            self._queues = {DEFAULT_ROLE: deque(script)}
        self.models = models
        self.requests: list[RecordedRequest] = []
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- used by the handler ------------------------------------------------------------------

    def record(self, request: RecordedRequest) -> None:
        """Append one request to ``requests``."""
        with self._lock:
            self.requests.append(request)

    def request_count(self) -> int:
        """How many requests were received so far."""
        with self._lock:
            return len(self.requests)

    def next_step(self, role: str | None) -> Step | None:
        """Pop the next step for a role (its own list, else the ``"*"`` list); None if none."""
        with self._lock:
            queue = self._queues.get(role) if role is not None else None
            if queue is None:
                queue = self._queues.get(DEFAULT_ROLE)
            return queue.popleft() if queue else None

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        """The ``POST /v1/chat/completions`` requests received so far."""
        with self._lock:
            return [r for r in self.requests if r.path.rstrip("/").endswith("/chat/completions")]

    @property
    def base_url(self) -> str:
        """The OpenAI base URL of the running server, ``http://127.0.0.1:PORT/v1``."""
        if self._server is None:
            raise RuntimeError("ScriptedLLMServer is not running")
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def start(self) -> ScriptedLLMServer:
        """Bind an ephemeral loopback port and serve in a daemon thread."""
        server = _Server(("127.0.0.1", 0), _Handler)
        server.owner = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, wake sleeping handlers, join every thread and close the socket."""
        self.stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> ScriptedLLMServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
