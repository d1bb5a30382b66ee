"""The Anthropic judge: the official ``anthropic`` SDK (``AsyncAnthropic``), the project's retry policy.

Credentials and endpoint are read the way the SDK reads them: the key from ``ANTHROPIC_API_KEY`` (or
``ANTHROPIC_AUTH_TOKEN``), the base URL from ``ANTHROPIC_BASE_URL`` unless ``--judge-base-url`` is given.
The SDK's retries are off (``max_retries=0``); ``retry.RetryPolicy`` (via ``api.call_with_retries``) retries
instead.
"""

from __future__ import annotations

import importlib.util
import json
import os

from ..errors import SkillbenchError
from .api import AsyncAPIJudge, RetryPolicy, TransientError, judge_policy, status_error

DEFAULT_MODEL = "claude-sonnet-4-5"


class AnthropicJudge(AsyncAPIJudge):
    name = "anthropic"

    def __init__(self, model: str | None = None, *, base_url: str | None = None, api_key: str | None = None,
                 concurrency: int = 8, policy: RetryPolicy | None = None, max_tokens: int = 1024):
        super().__init__(model or DEFAULT_MODEL, concurrency=concurrency, policy=policy, max_tokens=max_tokens)
        self.base_url = base_url
        self.api_key = api_key
        if api_key is None and not (os.environ.get("ANTHROPIC_API_KEY") or os.environ.get("ANTHROPIC_AUTH_TOKEN")
                                    or os.environ.get("ANTHROPIC_PROFILE")):
            raise SkillbenchError("--judge-backend anthropic needs an API key: set ANTHROPIC_API_KEY "
                                  "(and ANTHROPIC_BASE_URL for a gateway)")
        if importlib.util.find_spec("anthropic") is None:  # pragma: no cover - a declared dependency
            raise SkillbenchError("the anthropic judge needs the anthropic package: pip install anthropic")

    def describe(self) -> dict:
        d = super().describe()
        d["base_url"] = self.base_url or os.environ.get("ANTHROPIC_BASE_URL") or "https://api.anthropic.com"
        return d

    async def _open(self):
        import anthropic

        kwargs = {"max_retries": 0, "timeout": self.policy.timeout}
        if self.base_url:
            kwargs["base_url"] = self.base_url
        if self.api_key is not None:
            kwargs["api_key"] = self.api_key
        return anthropic.AsyncAnthropic(**kwargs)

    async def _close(self, client) -> None:
        await client.close()

    async def _call_once(self, client, messages: list[dict[str, str]]) -> str:
        import anthropic

        system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
        chat = [m for m in messages if m["role"] != "system"]
        try:
            msg = await client.messages.create(model=self.model, max_tokens=self.max_tokens, system=system,
                                               messages=chat)
        except anthropic.APIStatusError as exc:
            raise status_error(exc.status_code, f"HTTP {exc.status_code}: {_short(exc.message)}",
                               exc.response.headers) from None
        except anthropic.APITimeoutError:
            raise TransientError(f"timed out after {self.policy.timeout:g}s") from None
        except anthropic.APIConnectionError as exc:
            raise TransientError(f"connection failed: {_short(str(exc.__cause__ or exc))}") from None
        except (json.JSONDecodeError, anthropic.APIResponseValidationError, AttributeError, TypeError) as exc:
            raise TransientError(f"unreadable API response: {type(exc).__name__}") from None
        content = getattr(msg, "content", None)
        if not isinstance(content, list):
            raise TransientError("unreadable API response: no content list")
        return "".join(getattr(block, "text", "") or "" for block in content if getattr(block, "type", "") == "text")


def _short(text: str, n: int = 160) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[:n] + "..."


def build(settings, *, cache_dir=None, pool=None, root=None) -> AnthropicJudge:
    """The ``anthropic`` entry of ``backends.JUDGE_BACKENDS`` (``--judge-*`` options)."""
    return AnthropicJudge(settings.judge_model, base_url=settings.judge_base_url,
                          concurrency=settings.judge_concurrency, policy=judge_policy(settings),
                          max_tokens=settings.judge_max_tokens or 1024)
