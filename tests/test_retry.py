"""The one retry policy (``pytest_skillbench/retry.py``), sync and async runners, against the loopback server.

Real httpx requests to 127.0.0.1; the client below classifies failures with the project's ``status_error``
exactly as the judges and served students do, so the counts are the server's, not a mock's.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from loopback import Hang, Loopback, Ok, Status

from pytest_skillbench.retry import RetryPolicy, TransientError, status_error

BODY = {"model": "m", "messages": [{"role": "user", "content": "hello"}]}


def _read(resp: httpx.Response) -> str:
    if resp.status_code != 200:
        raise status_error(resp.status_code, f"HTTP {resp.status_code}", resp.headers)
    return resp.json()["choices"][0]["message"]["content"]


def attempt_sync(url: str, timeout: float):
    def call() -> str:
        try:
            with httpx.Client(timeout=timeout) as client:
                return _read(client.post(f"{url}/v1/chat/completions", json=BODY))
        except httpx.TimeoutException:
            raise TransientError("timeout") from None
        except httpx.TransportError as exc:
            raise TransientError(f"connection failed: {type(exc).__name__}") from None
    return call


def attempt_async(url: str, timeout: float):
    async def call() -> str:
        try:
            async with httpx.AsyncClient(timeout=timeout) as client:
                return _read(await client.post(f"{url}/v1/chat/completions", json=BODY))
        except httpx.TimeoutException:
            raise TransientError("timeout") from None
        except httpx.TransportError as exc:
            raise TransientError(f"connection failed: {type(exc).__name__}") from None
    return call


def run(mode: str, policy: RetryPolicy, url: str, waits: list[float] | None = None):
    """One call under the policy with the sync or the async runner; ``waits`` records the sleeps."""
    if mode == "sync":
        sleep = None if waits is None else waits.append
        return policy.run(attempt_sync(url, policy.timeout), sleep=sleep)

    async def record(seconds: float) -> None:
        waits.append(seconds)

    sleep = None if waits is None else record
    return asyncio.run(policy.run_async(attempt_async(url, policy.timeout), sleep=sleep))


MODES = pytest.mark.parametrize("mode", ["sync", "async"])


@MODES
@pytest.mark.parametrize("code", [429, 500, 503, 529])
def test_transient_statuses_are_retried_until_success(mode, code):
    with Loopback(lambda r: Status(code) if r.attempt <= 2 else Ok("fine")) as lb:
        waits: list[float] = []
        out = run(mode, RetryPolicy(max_attempts=4, backoff=0.1, timeout=5), lb.url, waits)
        calls = lb.calls
    assert out.ok and out.value == "fine" and out.attempts == 3 and calls == 3
    assert len(waits) == 2
    assert 0.05 <= waits[0] <= 0.1 and 0.1 <= waits[1] <= 0.2  # 0.1 s doubled, jittered to 50-100 %


@MODES
def test_gives_up_after_the_configured_attempts(mode):
    with Loopback(lambda r: Status(503)) as lb:
        waits: list[float] = []
        out = run(mode, RetryPolicy(max_attempts=4, backoff=0.01, timeout=5), lb.url, waits)
        calls = lb.calls
    assert not out.ok and not out.permanent
    assert out.attempts == 4 and calls == 4 and len(waits) == 3
    assert out.error == "HTTP 503"


@MODES
@pytest.mark.parametrize("code", [400, 401, 403, 404, 501])
def test_permanent_failures_stop_at_once(mode, code):
    with Loopback(lambda r: Status(code)) as lb:
        waits: list[float] = []
        out = run(mode, RetryPolicy(max_attempts=5, backoff=0.01, timeout=5), lb.url, waits)
        calls = lb.calls
    assert out.permanent and out.error == f"HTTP {code}"
    assert out.attempts == 1 and calls == 1 and waits == []


@MODES
@pytest.mark.parametrize("header,wait", [({"retry-after": "0.4"}, 0.4), ({"retry-after-ms": "300"}, 0.3)])
def test_retry_after_is_waited(mode, header, wait):
    """A real sleep: the second request arrives no sooner than the server asked, not after the 1 ms backoff."""
    with Loopback(lambda r: Status(429, header) if r.attempt == 1 else Ok("fine")) as lb:
        out = run(mode, RetryPolicy(max_attempts=3, backoff=0.001, timeout=5, retry_after_jitter=0.0), lb.url)
        times = [r.received for r in lb.log]
    assert out.ok and out.attempts == 2
    assert times[1] - times[0] >= wait - 0.02


@MODES
def test_retry_after_is_capped_and_jittered_as_configured(mode):
    with Loopback(lambda r: Status(503, {"retry-after": "100"}) if r.attempt == 1 else Ok("fine")) as lb:
        waits: list[float] = []
        out = run(mode, RetryPolicy(max_attempts=2, backoff=1.0, retry_after_max=2.0, retry_after_jitter=0.05,
                                    timeout=5), lb.url, waits)
    assert out.ok and len(waits) == 1
    assert 2.0 <= waits[0] <= 2.05  # capped at retry_after_max, plus at most 5 % of the backoff


@MODES
def test_a_timeout_is_transient(mode):
    with Loopback(lambda r: Hang(1.0)) as lb:
        t0 = time.monotonic()
        out = run(mode, RetryPolicy(max_attempts=2, backoff=0.01, timeout=0.2), lb.url, [])
        elapsed = time.monotonic() - t0
        calls = lb.calls
    assert not out.ok and not out.permanent and out.error == "timeout"
    assert out.attempts == 2 and calls == 2
    assert elapsed < 0.9  # the per-request timeout cut each attempt short of the server's 1 s hang


def test_the_async_runner_lets_other_calls_run_while_waiting():
    """Waits are ``asyncio.sleep``: three calls that each wait 1 s take ~1 s together; run one after another
    they would take at least 3 s (the margin keeps the test meaningful on a loaded 2-core CI machine)."""
    async def three(url: str):
        pol = RetryPolicy(max_attempts=2, backoff=0.001, timeout=5, retry_after_jitter=0.0)
        return await asyncio.gather(*(pol.run_async(attempt_async(url, 5)) for _ in range(3)))

    with Loopback(lambda r: Status(429, {"retry-after": "1"}) if r.attempt <= 3 else Ok("fine")) as lb:
        t0 = time.monotonic()
        outs = asyncio.run(three(lb.url))
        elapsed = time.monotonic() - t0
    assert [o.value for o in outs] == ["fine"] * 3
    assert 1.0 <= elapsed < 2.5
