"""LLM-judge throughput: concurrent judge calls vs one blocking call at a time, against a loopback server.

    python benchmarks/judge_throughput.py [--n 400] [--latencies 0 50 200] [--concurrency 1 8 32]
        [--reps 3] [--api anthropic|openai] [--json]

A loopback HTTP server (tests/loopback.py) answers every judge request after a fixed latency, speaking the
Anthropic Messages API (the real ``anthropic`` SDK talks to it) or OpenAI chat-completions (httpx). Each
row judges --n distinct episodes (holdout tasks x both conditions) through ``JudgeRunner.prepare`` - the
code path of a session - with no judgment cache. Concurrency 1 is the sequential baseline. Each row is the
median of --reps repetitions (a fresh server and judge each time).

Goal (issue 4): at 200 ms latency, 400 judgments at concurrency 8 take at most 1/6 of the sequential time.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))
from _common import emit, median
from loopback import Loopback

from pytest_skillbench.bench import load_bench
from pytest_skillbench.judges.api import RetryPolicy
from pytest_skillbench.judges.runner import JudgeItem, JudgeRunner


def items(n: int) -> list[JudgeItem]:
    tasks = load_bench("bundled").split("holdout")
    out = []
    for i in range(n):
        t = tasks[(i // 2) % len(tasks)]
        cond = ("baseline", "curated")[i % 2]
        out.append(JudgeItem(t, f"Episode {i} ({cond}).\nANSWER: {t.answer}", cond))
    return out


def judge_once(api: str, lb: Loopback, work: list[JudgeItem], concurrency: int) -> tuple[float, dict]:
    import os

    policy = RetryPolicy(max_attempts=3, backoff=0.05, timeout=60)
    if api == "anthropic":
        from pytest_skillbench.judges.anthropic import AnthropicJudge

        backend = AnthropicJudge("loopback-judge", base_url=lb.url, api_key="bench", concurrency=concurrency,
                                 policy=policy)
    else:
        from pytest_skillbench.judges.openai import OpenAIJudge

        os.environ.setdefault("SKILLBENCH_BENCH_KEY", "bench")
        backend = OpenAIJudge("loopback-judge", base_url=lb.url + "/v1", api_key_env="SKILLBENCH_BENCH_KEY",
                              concurrency=concurrency, policy=policy)
    runner = JudgeRunner("llm-only", backend)
    t0 = time.perf_counter()
    runner.prepare(work)
    elapsed = time.perf_counter() - t0
    statuses: dict[str, int] = {}
    for it in work:
        s = runner.outcome(it.task, it.response, it.condition)[0].status
        statuses[s] = statuses.get(s, 0) + 1
    return elapsed, statuses


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=400, help="judgments per row")
    ap.add_argument("--latencies", type=float, nargs="+", default=[0, 50, 200], help="server latency, ms")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--reps", type=int, default=3, help="repetitions per row (the median is reported)")
    ap.add_argument("--api", choices=("anthropic", "openai"), default="anthropic")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()

    work = items(a.n)
    with Loopback() as warm:  # one-time costs (SDK import, anyio backend) stay out of the first row
        judge_once(a.api, warm, work[:2], 2)
    rows = []
    seq: dict[float, float] = {}
    for lat in a.latencies:
        for c in sorted(set(a.concurrency) | {1}):
            runs = []
            for _ in range(max(1, a.reps)):
                with Loopback(delay=lat / 1000) as lb:
                    elapsed, statuses = judge_once(a.api, lb, work, c)
                    runs.append((elapsed, statuses, lb.calls, lb.max_inflight))
            elapsed = median([r[0] for r in runs])
            statuses = runs[-1][1]
            calls, peak = max(r[2] for r in runs), max(r[3] for r in runs)
            if c == 1:
                seq[lat] = elapsed
            rows.append({"latency_ms": lat, "concurrency": c, "judgments": a.n, "http_calls": calls,
                         "max_in_flight": peak, "seconds": round(elapsed, 2), "per_s": round(a.n / elapsed, 1),
                         "ideal_s": round(a.n * lat / 1000 / c, 2), "vs_sequential": round(elapsed / seq[lat], 3),
                         "passed": statuses.get("passed", 0)})
    extra = {}
    head = [r for r in rows if r["latency_ms"] == 200 and r["concurrency"] == 8]
    if head and a.n == 400:
        ratio = head[0]["vs_sequential"]
        extra["goal"] = (f"400 judgments at 200 ms: concurrency 8 takes {ratio:.3f} of the sequential time "
                         f"({'PASS' if ratio <= 1 / 6 else 'FAIL'}: goal <= {1 / 6:.3f})")
    emit(f"LLM-judge throughput ({a.api} API, loopback server, median of {max(1, a.reps)})", rows,
         ["latency_ms", "concurrency", "judgments", "http_calls", "max_in_flight", "seconds", "per_s", "ideal_s",
          "vs_sequential", "passed"], a.json, extra)


if __name__ == "__main__":
    main()
