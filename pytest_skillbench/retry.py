"""The one HTTP retry policy of every network client (the LLM judges and the served students).

Why one: a judge call and a served student's request fail the same ways (rate limits, overloaded or
restarting servers, dropped connections) and must be classified the same way, so that an outage lands in
``error`` (infrastructure) and never in ``failed``. The clients only *classify* a failure, by raising
``TransientError`` (worth retrying; HTTP 408, 409, 429, 5xx except 501, 529, a timeout, a dropped or
refused connection, an unreadable body) or ``PermanentError`` (400, 401, 403, 404, ...: retrying will not
help). ``RetryPolicy.run`` / ``RetryPolicy.run_async`` (built on ``tenacity``) decide when to try again:

* at most ``max_attempts`` attempts; a ``PermanentError`` stops at once;
* between attempts, the wait the server asked for (``retry-after-ms`` / ``retry-after``, capped at
  ``retry_after_max``, plus ``retry_after_jitter * backoff * U(0, 1)``), otherwise
  ``min(backoff_max, backoff * 2**(attempt-1))`` scaled by a uniform jitter of 50-100 %;
* ``timeout`` is the per-request timeout the client hands to its HTTP library.

Both runners return an ``Attempted``: the value and the attempts it took, or the last failure's message
and whether it was permanent. What that becomes (an ``error`` verdict, an ``error`` episode) and its
wording stay with the caller.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504, 529})


def is_retryable_status(code: int) -> bool:
    """The statuses above, and any other 5xx except 501 (gateways invent their own, e.g. 520-524)."""
    return code in RETRY_STATUSES or (code >= 500 and code != 501)


def parse_retry_after(headers) -> float | None:
    """``retry-after-ms`` (milliseconds) or ``retry-after`` (seconds or an HTTP date), else None."""
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    parsed = email.utils.parsedate_tz(value)
    if parsed is None:
        return None
    return max(0.0, email.utils.mktime_tz(parsed) - time.time())


class TransientError(Exception):
    """A failure worth retrying; ``retry_after`` (seconds) when the server asked for a wait."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(Exception):
    """A failure retrying will not fix (bad request, authentication, unknown model)."""


def status_error(code: int, message: str, headers=None) -> TransientError | PermanentError:
    """The exception an HTTP error status maps to (the one classification every client shares)."""
    if is_retryable_status(code):
        return TransientError(message, parse_retry_after(headers))
    return PermanentError(message)


@dataclass(frozen=True)
class Attempted(Generic[T]):
    """What a run of the policy ended with: ``value`` (``ok``), else the last failure's ``error`` text."""

    attempts: int
    value: T | None = None
    error: str | None = None
    permanent: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class RetryPolicy:
    """Attempts, backoff and timeout of one client; the defaults are the LLM judges' (``--judge-*``)."""

    max_attempts: int = 6
    backoff: float = 1.0
    backoff_max: float = 30.0
    retry_after_max: float = 120.0
    timeout: float = 60.0
    retry_after_jitter: float = 0.05  # x backoff, added to a server's wait so clients do not return in step

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        r = (rng or random).random()
        if retry_after is not None and retry_after >= 0:
            return min(retry_after, self.retry_after_max) + self.retry_after_jitter * self.backoff * r
        base = min(self.backoff_max, self.backoff * 2 ** (attempt - 1))
        return base * (0.5 + 0.5 * r)

    def _tenacity_args(self) -> dict:
        import tenacity

        def wait(state: tenacity.RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            return self.delay(state.attempt_number, getattr(exc, "retry_after", None))

        return {"stop": tenacity.stop_after_attempt(max(1, self.max_attempts)), "wait": wait,
                "retry": tenacity.retry_if_exception_type(TransientError), "reraise": True}

    def run(self, call: Callable[[], T], sleep: Callable[[float], None] | None = None) -> Attempted[T]:
        """``call()`` until it returns, raises ``PermanentError`` or the attempts are used up (sync)."""
        import tenacity

        count = [0]

        def attempt() -> T:
            count[0] += 1
            return call()

        kwargs = self._tenacity_args()
        if sleep is not None:
            kwargs["sleep"] = sleep
        try:
            value = tenacity.Retrying(**kwargs)(attempt)
        except PermanentError as exc:
            return Attempted(count[0], error=str(exc), permanent=True)
        except TransientError as exc:
            return Attempted(count[0], error=str(exc))
        return Attempted(count[0], value=value)

    async def run_async(self, call: Callable[[], Awaitable[T]],
                        sleep: Callable[[float], Awaitable[None]] | None = None) -> Attempted[T]:
        """As ``run``, for a coroutine function; waits with ``asyncio.sleep`` (other calls go on meanwhile)."""
        import tenacity

        count = [0]

        async def attempt() -> T:
            count[0] += 1
            return await call()

        kwargs = self._tenacity_args()
        if sleep is not None:
            kwargs["sleep"] = sleep
        try:
            value = await tenacity.AsyncRetrying(**kwargs)(attempt)
        except PermanentError as exc:
            return Attempted(count[0], error=str(exc), permanent=True)
        except TransientError as exc:
            return Attempted(count[0], error=str(exc))
        return Attempted(count[0], value=value)
