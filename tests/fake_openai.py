"""A fake OpenAI-compatible HTTP server on loopback, so the real provider code runs end to end.

Real HTTP (``http.server`` in a thread, a free port): ``POST /v1/chat/completions`` answers
from a script, ``GET /v1/models`` lists one model, ``POST /v1/responses/compact`` answers as
the Responses compact API does (the input's user messages, then one ``compaction`` item),
``POST /v1/rerank`` answers as vLLM / Jina / Cohere rerank endpoints do (``rerank_scores``
scores the documents: by default the share of the query's words each one contains).
Use the ``fake_openai`` fixture (tests/conftest.py)::

    fake_openai.answer({"facts": []})                 # a JSON object answer
    fake_openai.answer("Sure! ```json\\n{...}\\n```")   # a raw text answer
    fake_openai.error(429, retry_after="1")           # an HTTP error
    fake_openai.reply(Reply(disconnect=True))         # a dropped connection
    fake_openai.answer({...}, delay=0.5)              # a slow answer
    fake_openai.reject_json_schema = True             # 400 for response_format json_schema
    fake_openai.default = lambda body: Reply(...)     # when the script is empty
    llm = OpenAICompatibleLLM("fake-model", base_url=fake_openai.base_url)
    fake_openai.requests[-1].body                     # what was sent
    fake_openai.rerank_scores = lambda q, docs: [...]  # how /v1/rerank scores
    fake_openai.rerank_errors.append(503)             # the next /v1/rerank fails

An empty script answers HTTP 418 ("no scripted reply left") unless ``default`` is set.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    """One scripted reply: ``content`` as the assistant message (status 200), or an error
    ``status`` with ``message``; extra ``headers`` (``Retry-After``), a ``delay`` before it."""

    content: str | None = None
    status: int = 200
    message: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    usage: tuple[int, int] = (10, 5)
    finish_reason: str = "stop"
    model: str | None = None
    disconnect: bool = False
    """Close the connection without answering (a crashed or restarting server)."""


@dataclass
class Request:
    """One request the server received (header names in lower case)."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any

    @property
    def text(self) -> str:
        """Everything the messages said, joined (for "no secret was sent" assertions)."""
        messages = self.body.get("messages", []) if isinstance(self.body, dict) else []
        return "\n".join(str(m.get("content", "")) for m in messages)


Scripted = Reply | Callable[[Any], Reply]


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    # headers and body go out as two writes: with Nagle's algorithm on, the body waits for
    # the client's delayed ACK (~40 ms a request), so "answers at once" would not hold
    disable_nagle_algorithm = True

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
            pass

    def _headers(self) -> dict[str, str]:
        return {k.lower(): v for k, v in self.headers.items()}

    def do_GET(self) -> None:
        fake = self.server.fake
        fake._record(Request("GET", self.path, self._headers(), None))
        if self.path.rstrip("/") == "/v1/models":
            self._send(
                200,
                {
                    "object": "list",
                    "data": [{"id": fake.model, "object": "model", "owned_by": "fake"}],
                },
            )
        else:
            self._send(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self) -> None:
        fake = self.server.fake
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw.decode(errors="replace")
        fake._record(Request("POST", self.path, self._headers(), body))
        if self.path.rstrip("/") == "/v1/responses/compact":
            self._send(200, fake._compacted(body))
            return
        if self.path.rstrip("/") == "/v1/rerank":
            self._send(*fake._reranked(body))
            return
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._send(404, {"error": {"message": f"no route {self.path}"}})
            return
        fmt = body.get("response_format") if isinstance(body, dict) else None
        if fake.reject_json_schema and isinstance(fmt, dict) and fmt.get("type") == "json_schema":
            self._send(
                400,
                {
                    "error": {
                        "message": "response_format of type json_schema is not supported",
                        "type": "invalid_request_error",
                        "param": "response_format",
                    }
                },
            )
            return
        reply = fake._next(body)
        if reply.delay:
            time.sleep(reply.delay)
        if reply.disconnect:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        if reply.status != 200:
            self._send(
                reply.status,
                {"error": {"message": reply.message or f"fake error {reply.status}"}},
                reply.headers,
            )
            return
        prompt, completion = reply.usage
        self._send(
            200,
            {
                "id": f"chatcmpl-fake-{fake.served}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": reply.model or body.get("model", fake.model),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": reply.content},
                        "finish_reason": reply.finish_reason,
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt,
                    "completion_tokens": completion,
                    "total_tokens": prompt + completion,
                },
            },
            reply.headers,
        )


def _overlap(query: str, documents: list[str]) -> list[float]:
    """The share of the query's words each document contains."""
    words = set(query.lower().split())
    return [len(words & set(d.lower().split())) / max(len(words), 1) for d in documents]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeOpenAI


class FakeOpenAI:
    """The server's script and record; see the module doc."""

    def __init__(self, model: str = "fake-model") -> None:
        self.model = model
        self.reject_json_schema = False
        self.default: Callable[[Any], Reply] | None = None
        self.requests: list[Request] = []
        self.served = 0
        self.rerank_scores: Callable[[str, list[str]], list[float]] = _overlap
        self.rerank_errors: list[int] = []
        self._script: list[Scripted] = []
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.fake = self
        self.port: int = self._server.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )
        self._thread.start()

    # -- script ----------------------------------------------------------------------------

    def answer(
        self,
        content: Any,
        *,
        delay: float = 0.0,
        usage: tuple[int, int] = (10, 5),
        finish_reason: str = "stop",
        headers: dict[str, str] | None = None,
    ) -> None:
        """Queue an answer: a string is sent as is, anything else as its JSON."""
        text = content if isinstance(content, str) else json.dumps(content)
        self.reply(
            Reply(
                text, delay=delay, usage=usage, finish_reason=finish_reason, headers=headers or {}
            )
        )

    def error(
        self,
        status: int,
        *,
        retry_after: str | None = None,
        message: str = "",
        delay: float = 0.0,
    ) -> None:
        """Queue an HTTP error (with a ``Retry-After`` header when given)."""
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        self.reply(Reply(status=status, message=message, headers=headers, delay=delay))

    def reply(self, *replies: Scripted) -> None:
        """Queue replies, or functions of the request body returning one."""
        with self._lock:
            self._script.extend(replies)

    @property
    def pending(self) -> int:
        """Scripted replies not served yet."""
        with self._lock:
            return len(self._script)

    @property
    def completions(self) -> list[Request]:
        """The chat completion requests received, oldest first."""
        with self._lock:
            return [r for r in self.requests if r.path.rstrip("/").endswith("/chat/completions")]

    def _reranked(self, body: Any) -> tuple[int, Any]:
        """The ``/v1/rerank`` answer: results best first, ``top_n`` of them."""
        with self._lock:
            status = self.rerank_errors.pop(0) if self.rerank_errors else 200
        if status != 200:
            return status, {"error": {"message": f"fake error {status}"}}
        documents = [str(d) for d in body.get("documents", [])]
        scores = self.rerank_scores(str(body.get("query", "")), documents)
        ranked = sorted(range(len(documents)), key=lambda i: -scores[i])
        top = body.get("top_n") or len(documents)
        results = [{"index": i, "relevance_score": scores[i]} for i in ranked[:top]]
        return 200, {"id": "rerank-fake", "model": body.get("model"), "results": results}

    def _record(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)

    def _next(self, body: Any) -> Reply:
        with self._lock:
            self.served += 1
            item = self._script.pop(0) if self._script else None
        if item is None:
            if self.default is not None:
                return self.default(body)
            return Reply(status=418, message="fake_openai: no scripted reply left")
        return item(body) if callable(item) else item

    @property
    def compactions(self) -> list[Request]:
        """The ``POST /v1/responses/compact`` requests received, oldest first."""
        with self._lock:
            return [r for r in self.requests if r.path.rstrip("/").endswith("/responses/compact")]

    def _compacted(self, body: Any) -> dict[str, Any]:
        """The Responses compact API's answer: every user message of the input, then one
        ``compaction`` item whose ``encrypted_content`` names how many items it replaced."""
        items = body.get("input") if isinstance(body, dict) else None
        items = items if isinstance(items, list) else []
        users = [
            {"type": "message", "role": "user", "content": i["content"]}
            for i in items
            if isinstance(i, dict) and i.get("role") == "user" and "content" in i
        ]
        with self._lock:
            self.served += 1
            n = self.served
        summary = {
            "type": "compaction",
            "id": f"cmp_fake_{n}",
            "encrypted_content": f"fake-compaction-of-{len(items)}-items",
        }
        usage = {
            "input_tokens": 10,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": 5,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 15,
        }
        return {
            "id": f"resp_compact_fake_{n}",
            "object": "response.compaction",
            "created_at": int(time.time()),
            "output": [*users, summary],
            "usage": usage,
        }

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
