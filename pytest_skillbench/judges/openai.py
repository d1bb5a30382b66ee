"""A cross-family judge behind any OpenAI-compatible chat-completions endpoint, through ``httpx``.

``--judge-base-url`` (default ``https://api.openai.com/v1``; a gateway or a local vLLM server, e.g.
``http://localhost:8000/v1``) receives ``POST {base}/chat/completions``. The key is read from the
environment variable named by ``--judge-api-key-env`` (default ``OPENAI_API_KEY``) and sent as
``Authorization: Bearer``; with a non-default base URL a missing key is allowed (local servers need none).
"""

from __future__ import annotations

import json
import os

import httpx

from ..errors import SkillbenchError
from .api import AsyncAPIJudge, RetryPolicy, TransientError, judge_policy, status_error

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_KEY_ENV = "OPENAI_API_KEY"
DEFAULT_MODEL = "gpt-4.1"


class OpenAIJudge(AsyncAPIJudge):
    name = "openai"

    def __init__(self, model: str | None = None, *, base_url: str | None = None, api_key_env: str | None = None,
                 concurrency: int = 8, policy: RetryPolicy | None = None, max_tokens: int = 1024):
        super().__init__(model or DEFAULT_MODEL, concurrency=concurrency, policy=policy, max_tokens=max_tokens)
        self.base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        self.api_key_env = api_key_env or DEFAULT_KEY_ENV
        self.api_key = os.environ.get(self.api_key_env) or None
        if self.api_key is None and (api_key_env or self.base_url == DEFAULT_BASE_URL):
            raise SkillbenchError(f"--judge-backend openai needs an API key in ${self.api_key_env} "
                                  "(name another variable with --judge-api-key-env)")

    def describe(self) -> dict:
        d = super().describe()
        d.update({"base_url": self.base_url, "api_key_env": self.api_key_env})
        return d

    async def _open(self):
        headers = {"content-type": "application/json"}
        if self.api_key:
            headers["authorization"] = f"Bearer {self.api_key}"
        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        return httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=self.policy.timeout, limits=limits)

    async def _close(self, client) -> None:
        await client.aclose()

    async def _call_once(self, client, messages: list[dict[str, str]]) -> str:
        payload = {"model": self.model, "messages": messages, "max_tokens": self.max_tokens, "temperature": 0}
        try:
            resp = await client.post("/chat/completions", json=payload)
        except httpx.TimeoutException:
            raise TransientError(f"timed out after {self.policy.timeout:g}s") from None
        except httpx.TransportError as exc:
            raise TransientError(f"connection failed: {type(exc).__name__}: {exc}") from None
        if resp.status_code != 200:
            raise status_error(resp.status_code, f"HTTP {resp.status_code}: {resp.text[:160]}", resp.headers)
        try:
            data = resp.json()
            content = data["choices"][0]["message"]["content"]
        except (json.JSONDecodeError, KeyError, IndexError, TypeError, ValueError):
            raise TransientError(f"unreadable API response: {resp.text[:80]!r}") from None
        if content is None:
            return ""
        if isinstance(content, list):  # content parts
            return "".join(p.get("text", "") for p in content if isinstance(p, dict))
        return str(content)


def build(settings, *, cache_dir=None, pool=None, root=None) -> OpenAIJudge:
    """The ``openai`` entry of ``backends.JUDGE_BACKENDS`` (``--judge-*`` options)."""
    return OpenAIJudge(settings.judge_model, base_url=settings.judge_base_url,
                       api_key_env=settings.judge_api_key_env, concurrency=settings.judge_concurrency,
                       policy=judge_policy(settings), max_tokens=settings.judge_max_tokens or 1024)
