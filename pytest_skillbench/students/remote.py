"""What the served students (``backend = "openai"`` and ``backend = "anthropic"``) share.

* **Bounded concurrency**: at most ``concurrency`` requests of one student are in flight per process
  (threads; default 4). Under pytest-xdist every worker has its own bound, so ``-n 4`` with
  ``concurrency = 2`` keeps up to 8 requests in flight against the server.
* **Retries** (``retry.RetryPolicy``, the judges' policy with the students' numbers): a transient failure
  -- HTTP 408, 409, 429, 5xx except 501, 529, a timeout, a dropped or refused connection, an unreadable
  body -- is retried up to ``max_retries`` times (default 4), waiting ``Retry-After`` when the server sends
  one (capped at 120 s), otherwise ``0.5 s * 2**(attempt-1)`` with jitter (capped at 30 s). After the last attempt, or at once for a permanent failure (400, 401, 403, 404, ...), the request
  has no response: its episode is ``error`` (infrastructure), never ``failed``, and nothing is cached, so
  the next run asks again.
* **Same prompts** as every other backend: the rendered system + user messages are sent as they are;
  the server applies its own chat template (recorded as ``chat_template: "server"``).
* A reasoning model's separate reasoning text (``reasoning_content`` from vLLM, ``thinking`` blocks from
  Anthropic) is kept in front of the answer as ``<think>...</think>``, so ``--thinking`` applies to it as
  to a local model.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor, as_completed

from ..retry import PermanentError, RetryPolicy, TransientError, status_error  # noqa: F401  (for the backends)
from .base import Backend, GenRequest, GenResult
from .registry import StudentSpec

DEFAULT_CONCURRENCY = 4
DEFAULT_TIMEOUT = 120.0
DEFAULT_MAX_RETRIES = 4
BACKOFF = 0.5
BACKOFF_MAX = 30.0
RETRY_AFTER_MAX = 120.0



def with_thinking(text: str | None, reasoning: str | None) -> str:
    text = text or ""
    if reasoning:
        return f"<think>\n{reasoning}\n</think>\n{text}"
    return text


class RemoteBackend(Backend):
    """A student answered by a server: subclasses give ``_call_once`` and the identity fields."""

    backend_name = "remote"

    def __init__(self, spec: StudentSpec, *, max_new_tokens: int):
        self.spec = spec
        self.max_new_tokens = int(spec.max_new_tokens or max_new_tokens)
        self.concurrency = max(1, int(spec.concurrency or DEFAULT_CONCURRENCY))
        self.timeout = float(spec.timeout or DEFAULT_TIMEOUT)
        self.max_retries = max(0, int(DEFAULT_MAX_RETRIES if spec.max_retries is None else spec.max_retries))
        # a server's Retry-After is waited exactly (no jitter on top), as before the policy was shared
        self.policy = RetryPolicy(max_attempts=self.max_retries + 1, backoff=BACKOFF, backoff_max=BACKOFF_MAX,
                                  retry_after_max=RETRY_AFTER_MAX, timeout=self.timeout, retry_after_jitter=0.0)
        self.requests = 0  # HTTP attempts made by this process
        self.served_models: set[str] = set()
        self._lock = threading.Lock()

    # -- identity ------------------------------------------------------------------------------------
    @property
    def base_url(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def generation_config(self) -> dict:
        """What the request asks for (the server's own sampling defaults apply to anything not listed)."""
        raise NotImplementedError  # pragma: no cover

    def fingerprint(self) -> dict:
        return {"backend": self.backend_name, "base_url": self.base_url, "model": self.spec.model,
                "adapter": self.spec.adapter, "chat_template": "server", "generation": self.generation_config()}

    def path_info(self) -> dict:
        info = dict(self.fingerprint())
        # (the model names the server reported, ``served_models``, are per process: not in the manifest, which
        # must be the same for any number of xdist workers)
        info.update({"concurrency": self.concurrency, "timeout": self.timeout, "max_retries": self.max_retries})
        return info

    def chunk_size(self) -> int:
        """How many prompts one generation round asks for (the rest follow as items run)."""
        return max(16, 4 * self.concurrency)

    # -- calls ---------------------------------------------------------------------------------------
    def _call_once(self, messages: list[dict[str, str]]) -> tuple[str, int | None, str | None]:
        """(text, generated tokens, served model name); raises TransientError or PermanentError."""
        raise NotImplementedError  # pragma: no cover

    def answer(self, req: GenRequest) -> GenResult:
        def attempt() -> tuple[str, int | None, str | None]:
            with self._lock:
                self.requests += 1
            return self._call_once(req.messages)

        out = self.policy.run(attempt)
        who = f"{self.backend_name} student {self.spec.name!r}"
        if out.permanent:
            return GenResult(text=None, error=f"{who}: request rejected: {out.error}")
        if not out.ok:
            return GenResult(text=None, error=f"{who}: server unavailable after {out.attempts} attempt(s): {out.error}")
        text, tokens, served = out.value
        if served:
            with self._lock:
                self.served_models.add(served)
        return GenResult(text=text, gen_tokens=tokens, extra={"attempts": out.attempts})

    def generate(self, requests: list[GenRequest], progress=None, on_result=None) -> list[GenResult]:
        """Every request answered, at most ``concurrency`` in flight; ``on_result`` runs in this thread."""
        results: list[GenResult | None] = [None] * len(requests)
        if not requests:
            return []
        done, tokens = 0, 0
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(requests)),
                                thread_name_prefix=f"skillbench-{self.backend_name}") as pool:
            futures = {pool.submit(self.answer, r): i for i, r in enumerate(requests)}
            for fut in as_completed(futures):
                i = futures[fut]
                try:
                    res = fut.result()
                except Exception as exc:  # noqa: BLE001 - a bug in a client library must not lose the item
                    res = GenResult(text=None, error=f"{type(exc).__name__}: {exc}")
                results[i] = res
                done += 1
                tokens += res.gen_tokens or 0
                if on_result:
                    on_result(requests[i], res)
                if progress:
                    progress(done, len(requests), tokens)
        return results  # type: ignore[return-value]
