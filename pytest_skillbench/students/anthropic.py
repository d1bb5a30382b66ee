"""``backend = "anthropic"``: a frontier reference student (e.g. a Haiku model) through the official SDK.

Registry fields: ``model`` (e.g. ``claude-haiku-4-5``), ``api_key_env`` (default ``ANTHROPIC_API_KEY``),
``base_url`` (default: whatever the SDK reads, i.e. ``$ANTHROPIC_BASE_URL`` or the public API),
``concurrency``, ``timeout``, ``max_retries``, ``max_new_tokens``. The same prompts as every student:
the system message becomes ``system``, the user message the single user turn. The SDK's own retries
are switched off (``max_retries=0``) so the shared retry policy (``retry.py``) is the only retry loop.

The SDK (2.x) sends no temperature: the API's default sampling applies, recorded in the manifest as
``temperature: "api default"`` - an Anthropic student is a reference point, not a greedy decode.
"""

from __future__ import annotations

import os

from ..errors import SkillbenchError
from .registry import StudentSpec
from .remote import RemoteBackend, TransientError, status_error, with_thinking


class AnthropicBackend(RemoteBackend):
    backend_name = "anthropic"

    def __init__(self, spec: StudentSpec, *, max_new_tokens: int):
        super().__init__(spec, max_new_tokens=max_new_tokens)
        env = spec.api_key_env or "ANTHROPIC_API_KEY"
        key = os.environ.get(env)
        if not key:
            raise SkillbenchError(f"student {spec.name!r}: environment variable {env} is not set (the Anthropic "
                                  "API key)")
        if not spec.model:
            raise SkillbenchError(f"student {spec.name!r}: an anthropic student needs `model`")
        import anthropic

        self._sdk = anthropic
        kwargs = {"api_key": key, "max_retries": 0, "timeout": self.timeout}
        if spec.base_url:
            kwargs["base_url"] = spec.base_url
        self._client = anthropic.Anthropic(**kwargs)

    @property
    def base_url(self) -> str:
        return str(self._client.base_url).rstrip("/")

    def close(self) -> None:
        """Close the SDK's HTTP connections (an open client leaks sockets until garbage collection)."""
        self._client.close()

    def generation_config(self) -> dict:
        return {"do_sample": "api default", "temperature": "api default", "max_new_tokens": self.max_new_tokens,
                "thinking": self.spec.thinking}

    def _call_once(self, messages):
        sdk = self._sdk
        system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
        turns = [{"role": m["role"], "content": m["content"]} for m in messages if m["role"] != "system"]
        kwargs = {"model": self.spec.model, "max_tokens": self.max_new_tokens, "messages": turns}
        if system:
            kwargs["system"] = system
        try:
            resp = self._client.messages.create(**kwargs)
        except sdk.APIStatusError as exc:
            raise status_error(exc.status_code, f"HTTP {exc.status_code}: {getattr(exc, 'message', exc)}",
                               getattr(exc.response, "headers", None)) from None
        except sdk.APIConnectionError as exc:  # includes APITimeoutError
            raise TransientError(f"connection failed: {type(exc).__name__}: {exc}") from None
        except sdk.APIResponseValidationError as exc:
            raise TransientError(f"unreadable response body: {exc}") from None
        try:
            text = "".join(b.text for b in resp.content if getattr(b, "type", "") == "text")
            reasoning = "".join(getattr(b, "thinking", "") or "" for b in resp.content
                                if getattr(b, "type", "") == "thinking")
            tokens = getattr(resp.usage, "output_tokens", None)
        except (AttributeError, TypeError) as exc:
            raise TransientError(f"unreadable response body ({type(exc).__name__})") from None
        return with_thinking(text, reasoning or None), tokens, getattr(resp, "model", None)


def build(spec: StudentSpec, session) -> AnthropicBackend:
    """The ``anthropic`` entry of ``backends.STUDENT_BACKENDS``."""
    return AnthropicBackend(spec, max_new_tokens=session.settings.max_new_tokens)
