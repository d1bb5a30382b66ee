"""What the HTTP judge backends share: the retry policy (``retry.py``) applied per call, and bounded
concurrent calls.

Retried (transient): HTTP 408, 409, 429, 500, 502, 503, 504, 529 (and other 5xx but 501), timeouts, dropped /
refused connections and API bodies that cannot be read (empty or malformed), up to ``--judge-max-attempts``
attempts, waiting what ``RetryPolicy.delay`` says. After the last attempt the call is a ``JudgeCallError``
and its episode ``error`` (infrastructure) - never ``failed``. Other HTTP errors (400, 401, 403, 404, ...)
are not retried: ``error`` at once.

The SDK's own retries are switched off (``max_retries=0``), so the policy is the only retry loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ..episodes import Reason
from ..retry import (  # noqa: F401  (re-exported: the judges' public names)
    RETRY_STATUSES,
    PermanentError,
    RetryPolicy,
    TransientError,
    is_retryable_status,
    parse_retry_after,
    status_error,
)


def judge_policy(settings) -> RetryPolicy:
    """The ``--judge-max-attempts`` / ``--judge-backoff`` / ``--judge-timeout`` policy."""
    return RetryPolicy(max_attempts=max(1, int(settings.judge_max_attempts)),
                       backoff=float(settings.judge_backoff), timeout=float(settings.judge_timeout))


@dataclass
class JudgeCallError:
    """The outcome of a judge call that produced no output."""

    message: str
    reason: str
    attempts: int


async def call_with_retries(call: Callable[[], Awaitable[str]], policy: RetryPolicy,
                            sleep: Callable[[float], Awaitable[None]] | None = None) -> str | JudgeCallError:
    """One judge call under the policy: its text, or the ``JudgeCallError`` that makes an ``error`` verdict."""
    out = await policy.run_async(call, sleep=sleep)
    if out.ok:
        return out.value
    if out.permanent:
        return JudgeCallError(f"judge request rejected: {out.error}", Reason.JUDGE_REQUEST_REJECTED,
                              out.attempts)
    n = out.attempts
    return JudgeCallError(f"judge unavailable after {n} attempt(s): {out.error}", Reason.JUDGE_UNAVAILABLE, n)


def run_sync(coro_factory: Callable[[], Awaitable]):
    """Run a coroutine to completion from sync code, also when this thread already runs an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro_factory())
    box: dict = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(coro_factory())
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = exc

    t = threading.Thread(target=target, name="skillbench-judge")
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


Progress = Callable[[int, int], None]


class AsyncAPIJudge:
    """A judge backend behind an HTTP API: subclasses give ``_open``, ``_close`` and ``_call_once``."""

    name = "api"

    def __init__(self, model: str, *, concurrency: int = 8, policy: RetryPolicy | None = None,
                 max_tokens: int = 1024):
        self.model = model
        self.concurrency = max(1, int(concurrency))
        self.policy = policy or RetryPolicy()
        self.max_tokens = max_tokens
        self.requests = 0  # HTTP attempts made by this process (for tests and progress)

    @property
    def label(self) -> str:
        return f"{self.name}:{self.model}"

    def identity(self) -> dict:
        return {"backend": self.name, "model": self.model}

    def describe(self) -> dict:
        return {"backend": self.name, "model": self.model, "concurrency": self.concurrency,
                "max_attempts": self.policy.max_attempts, "timeout": self.policy.timeout}

    async def _open(self):  # pragma: no cover - abstract
        raise NotImplementedError

    async def _close(self, client) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    async def _call_once(self, client, messages: list[dict[str, str]]) -> str:  # pragma: no cover
        raise NotImplementedError

    def complete(self, prompts: list[list[dict[str, str]]], progress: Progress | None = None
                 ) -> list[str | JudgeCallError]:
        """Every prompt's raw judge output (or the error), at most ``concurrency`` requests in flight."""
        if not prompts:
            return []
        return run_sync(lambda: self._complete(prompts, progress))

    async def _complete(self, prompts, progress):
        sem = asyncio.Semaphore(self.concurrency)
        client = await self._open()
        done = 0

        async def one(messages):
            nonlocal done

            async def attempt() -> str:
                self.requests += 1
                return await self._call_once(client, messages)

            async with sem:
                out = await call_with_retries(attempt, self.policy)
            done += 1
            if progress:
                progress(done, len(prompts))
            return out

        try:
            return await asyncio.gather(*(one(m) for m in prompts))
        finally:
            await self._close(client)
