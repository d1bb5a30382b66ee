"""A loopback stdlib HTTP server speaking the Anthropic Messages API and OpenAI chat-completions.

Used by the judge tests and ``benchmarks/judge_throughput.py``: the real SDK / httpx talk to it on
127.0.0.1. A *behaviour* decides each reply from the request, so faults can be scripted per prompt:

* ``Ok(text)`` - a well-formed API response whose assistant text is ``text``;
* ``Status(code, headers)`` - an API error (429, 500, 529, ...) with an API-shaped error body;
* ``Hang(seconds)`` - sleep past the client's timeout, then close the connection;
* ``Drop()`` - close the connection without any response;
* ``Raw(status, body)`` - any bytes (an empty body, malformed JSON).

``Request.attempt`` is how many times this exact prompt has been seen (1 on the first try), so "529 then
success" is ``Status(529) if req.attempt == 1 else judge(req)``. ``Request.rank`` is the order in which
distinct prompts first arrived (0, 1, ...), so "the first 3 prompts fail forever" gives exact counts
even when requests arrive concurrently.

The default behaviour ``lenient_judge`` passes a response when it names the gold conclusion as a word
anywhere (ANSWER line or not), fails it otherwise.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Request:
    api: str  # "anthropic" | "openai"
    path: str
    headers: dict
    body: dict
    prompt: str  # the user message text
    system: str
    key: str
    attempt: int
    rank: int
    received: float


@dataclass
class Ok:
    text: str


@dataclass
class Status:
    code: int
    headers: dict = field(default_factory=dict)
    message: str = "scripted fault"


@dataclass
class Hang:
    seconds: float = 5.0


@dataclass
class Drop:
    pass


@dataclass
class Raw:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"


Reply = "Ok | Status | Hang | Drop | Raw"
Behaviour = Callable[[Request], object]

_TAG = {name: re.compile(rf"<{name}>\n?(.*?)\n?</{name}>", re.DOTALL) for name in ("gold", "response")}


def section(prompt: str, name: str) -> str:
    m = _TAG[name].search(prompt)
    return m.group(1) if m else ""


def verdict_json(passed: bool, **over) -> str:
    d = {"conclusion_reached": passed, "passed": passed, "score": 0.9 if passed else 0.1,
         "criteria_met": 3 if passed else 0, "criteria_total": 3,
         "rationale": "names the gold conclusion" if passed else "does not reach the gold conclusion"}
    d.update(over)
    return json.dumps(d)


def names_gold(gold: str, response: str) -> bool:
    """The lenient judge's rule: the gold conclusion appears as a whole word/phrase (any case)."""
    gold, response = gold.strip().lower(), response.lower()
    return bool(gold) and re.search(rf"(?<!\w){re.escape(gold)}(?!\w)", response) is not None


def lenient_judge(req: Request) -> Ok:
    return Ok(verdict_json(names_gold(section(req.prompt, "gold"), section(req.prompt, "response"))))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, *args) -> None:  # quiet
        pass

    def setup(self) -> None:
        super().setup()
        # headers and body go out in separate writes: without TCP_NODELAY, Nagle + delayed ACK add ~40 ms
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_POST(self) -> None:
        lb: Loopback = self.server.loopback
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            body = {}
        if self.path.rstrip("/").endswith("/messages"):
            api = "anthropic"
            system = body.get("system") or ""
            if isinstance(system, list):
                system = "".join(b.get("text", "") for b in system)
            msgs = body.get("messages") or []
        elif self.path.rstrip("/").endswith("/chat/completions"):
            api = "openai"
            msgs = body.get("messages") or []
            system = "".join(m.get("content", "") for m in msgs if m.get("role") == "system")
            msgs = [m for m in msgs if m.get("role") != "system"]
        else:
            self._send(404, {"error": {"type": "not_found", "message": self.path}})
            return
        prompt = ""
        for m in msgs:
            c = m.get("content")
            prompt += c if isinstance(c, str) else "".join(b.get("text", "") for b in c or [])
        key = hashlib.sha256(prompt.encode()).hexdigest()[:16]
        with lb.lock:
            lb.calls += 1
            lb.attempts[key] = lb.attempts.get(key, 0) + 1
            if key not in lb.ranks:
                lb.ranks[key] = len(lb.ranks)
            req = Request(api=api, path=self.path, headers={k.lower(): v for k, v in self.headers.items()},
                          body=body, prompt=prompt, system=system, key=key, attempt=lb.attempts[key],
                          rank=lb.ranks[key], received=time.monotonic())
            lb.log.append(req)
            lb.inflight += 1
            lb.max_inflight = max(lb.max_inflight, lb.inflight)
        try:
            self._reply(lb, api, body, req)
        finally:
            with lb.lock:
                lb.inflight -= 1

    def _reply(self, lb: Loopback, api: str, body: dict, req: Request) -> None:
        if lb.delay:
            time.sleep(lb.delay)
        reply = lb.behaviour(req)
        if isinstance(reply, Ok):
            self._send(200, _ok_body(api, body.get("model") or "loopback", reply.text))
        elif isinstance(reply, Status):
            err = ({"type": "error", "error": {"type": "scripted", "message": reply.message}} if api == "anthropic"
                   else {"error": {"message": reply.message, "type": "scripted", "code": reply.code}})
            self._send(reply.code, err, reply.headers)
        elif isinstance(reply, Hang):
            time.sleep(reply.seconds)
            self._drop()
        elif isinstance(reply, Drop):
            self._drop()
        elif isinstance(reply, Raw):
            self.send_response(reply.status)
            self.send_header("content-type", reply.content_type)
            self.send_header("content-length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)
        else:  # pragma: no cover - test bug
            raise TypeError(f"unknown reply {reply!r}")

    def _send(self, code: int, data: dict, headers: dict | None = None) -> None:
        payload = json.dumps(data).encode()
        self.send_response(code)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        for k, v in (headers or {}).items():
            self.send_header(k, str(v))
        self.end_headers()
        self.wfile.write(payload)

    def _drop(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def _ok_body(api: str, model: str, text: str) -> dict:
    if api == "anthropic":
        return {"id": "msg_loopback", "type": "message", "role": "assistant", "model": model,
                "content": [{"type": "text", "text": text}], "stop_reason": "end_turn", "stop_sequence": None,
                "usage": {"input_tokens": 10, "output_tokens": 10}}
    return {"id": "chatcmpl-loopback", "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20}}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    loopback: Loopback


class Loopback:
    """``with Loopback(behaviour, delay=0.2) as lb: lb.url ...``; ``lb.calls`` counts requests."""

    def __init__(self, behaviour: Behaviour | None = None, delay: float = 0.0):
        self.behaviour = behaviour or lenient_judge
        self.delay = delay
        self.lock = threading.Lock()
        self.calls = 0
        self.inflight = 0
        self.max_inflight = 0
        self.attempts: dict[str, int] = {}
        self.ranks: dict[str, int] = {}
        self.log: list[Request] = []
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.loopback = self
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def reset(self) -> None:
        with self.lock:
            self.calls = 0
            self.max_inflight = 0
            self.attempts.clear()
            self.ranks.clear()
            self.log.clear()

    def start(self) -> Loopback:
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Loopback:  # noqa: PYI034
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main() -> None:  # pragma: no cover - manual use: python tests/loopback.py [delay]
    import sys

    delay = float(sys.argv[1]) if len(sys.argv) > 1 else 0.0
    with Loopback(delay=delay) as lb:
        print(lb.url, flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":  # pragma: no cover
    main()
