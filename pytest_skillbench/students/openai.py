"""``backend = "openai"``: any OpenAI-compatible chat-completions server (vLLM, TGI, Ollama, llama.cpp, ...).

Registry fields: ``base_url`` (default ``$OPENAI_BASE_URL``, else ``https://api.openai.com/v1``; the
``/chat/completions`` path is appended), ``model`` (the served model name), optional ``adapter`` (the
name a LoRA adapter is served under, e.g. vLLM ``--enable-lora --lora-modules v2.1=adapters/v2.1``; it
is sent as the request's ``model``), ``api_key_env`` (an environment variable holding the key; without it
``$OPENAI_API_KEY`` is sent when set, else no key - local servers need none), ``concurrency``,
``timeout``, ``max_retries``, ``max_new_tokens``, ``repetition_penalty`` (sent only when set: vLLM
accepts it, api.openai.com does not) and ``thinking`` (``disable`` sends
``chat_template_kwargs: {enable_thinking: false}``, understood by vLLM).

Each request is greedy (``temperature: 0``) with ``max_tokens`` = the generation budget.
"""

from __future__ import annotations

import os

from ..errors import SkillbenchError
from .registry import StudentSpec
from .remote import RemoteBackend, TransientError, status_error, with_thinking

DEFAULT_BASE_URL = "https://api.openai.com/v1"


def _error_text(response) -> str:
    try:
        data = response.json()
        err = data.get("error") if isinstance(data, dict) else None
        msg = err.get("message") if isinstance(err, dict) else (err or data.get("message") or data.get("detail"))
        if msg:
            return f"HTTP {response.status_code}: {msg}"
    except Exception:  # noqa: BLE001, S110 - an unreadable error body: fall back to its first bytes
        pass
    return f"HTTP {response.status_code}: {response.text[:200]}"


class OpenAIBackend(RemoteBackend):
    backend_name = "openai"

    def __init__(self, spec: StudentSpec, *, max_new_tokens: int):
        super().__init__(spec, max_new_tokens=max_new_tokens)
        self._base_url = (spec.base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        env = spec.api_key_env or "OPENAI_API_KEY"
        self.api_key = os.environ.get(env)
        if spec.api_key_env and not self.api_key:
            raise SkillbenchError(f"student {spec.name!r}: environment variable {env} (api_key_env) is not set")
        self.served_name = spec.adapter or spec.model
        if not self.served_name:
            raise SkillbenchError(f"student {spec.name!r}: an openai student needs `model` (the served model name)")
        self._client = None

    @property
    def base_url(self) -> str:
        return self._base_url

    def generation_config(self) -> dict:
        cfg = {"do_sample": False, "temperature": 0.0, "max_new_tokens": self.max_new_tokens,
               "thinking": self.spec.thinking}
        if self.spec.repetition_penalty is not None:
            cfg["repetition_penalty"] = float(self.spec.repetition_penalty)
        return cfg

    def client(self):
        if self._client is None:
            with self._lock:
                if self._client is None:
                    import httpx

                    headers = {"authorization": f"Bearer {self.api_key}"} if self.api_key else {}
                    self._client = httpx.Client(timeout=self.timeout, headers=headers,
                                                limits=httpx.Limits(max_connections=self.concurrency,
                                                                    max_keepalive_connections=self.concurrency))
        return self._client

    def close(self) -> None:
        """Close the pooled HTTP connections (an open client leaks sockets until garbage collection)."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def request_body(self, messages: list[dict[str, str]]) -> dict:
        body = {"model": self.served_name, "messages": messages, "max_tokens": self.max_new_tokens,
                "temperature": 0.0}
        if self.spec.repetition_penalty is not None:
            body["repetition_penalty"] = float(self.spec.repetition_penalty)
        if self.spec.thinking == "disable":
            body["chat_template_kwargs"] = {"enable_thinking": False}
        return body

    def _call_once(self, messages):
        import httpx

        try:
            r = self.client().post(f"{self._base_url}/chat/completions", json=self.request_body(messages))
        except httpx.TimeoutException as exc:
            raise TransientError(f"timeout after {self.timeout:g}s ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            raise TransientError(f"connection failed: {type(exc).__name__}: {exc}") from None
        if r.status_code >= 400:
            raise status_error(r.status_code, _error_text(r), r.headers)
        try:
            data = r.json()
            choice = data["choices"][0]
            message = choice.get("message") or {}
            content = message.get("content")
            if isinstance(content, list):  # content parts
                content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
            reasoning = message.get("reasoning_content") or message.get("reasoning")
            usage = data.get("usage") or {}
            tokens = usage.get("completion_tokens")
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            raise TransientError(f"unreadable response body ({type(exc).__name__})") from None
        return with_thinking(content, reasoning if isinstance(reasoning, str) else None), tokens, data.get("model")


def build(spec: StudentSpec, session) -> OpenAIBackend:
    """The ``openai`` entry of ``backends.STUDENT_BACKENDS``."""
    return OpenAIBackend(spec, max_new_tokens=session.settings.max_new_tokens)
