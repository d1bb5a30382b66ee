"""LLM judges against a loopback server: the real anthropic SDK and httpx, scripted faults, exact counts.

Every scenario judges the same 10 responses (6 name the gold conclusion, 4 do not), so a healthy judge
gives 6 passed / 4 failed and every fault must land in ``error`` (infrastructure) or ``unscored`` (judge
output unreadable) - never in ``failed``.
"""

from __future__ import annotations

import json
import time
from collections import Counter

import pytest
from loopback import Drop, Hang, Loopback, Ok, Raw, Status, lenient_judge, verdict_json

from pytest_skillbench.cache import Store
from pytest_skillbench.episodes import Verdict
from pytest_skillbench.judges import llm
from pytest_skillbench.judges.anthropic import AnthropicJudge
from pytest_skillbench.judges.api import RetryPolicy, parse_retry_after
from pytest_skillbench.judges.openai import OpenAIJudge
from pytest_skillbench.judges.runner import JudgeItem, JudgeRunner, build_runner, hook_verdict
from pytest_skillbench.settings import Settings

POLICY = RetryPolicy(max_attempts=3, backoff=0.01, timeout=0.25)
N = 10


@pytest.fixture(scope="module")
def tasks(bundled_bench):
    return bundled_bench.split("holdout")


@pytest.fixture(scope="module")
def items(tasks):
    out = []
    for i, t in enumerate(tasks[:N]):
        text = f"Working through the passage.\nANSWER: {t.answer}" if i < 6 else "Working through it.\nANSWER: zzz"
        out.append(JudgeItem(t, text, "baseline"))
    return out


@pytest.fixture(scope="module", autouse=True)
def warm_clients(items):
    """Pay the one-time costs (anyio backend import, first SDK request) before the short timeouts apply.

    ``gc.freeze()``: this process holds torch / transformers; a full collection of that heap can pause the
    event loop past the 0.25 s test timeout and turn a healthy request into a spurious timeout.
    """
    import gc
    import os

    gc.collect()
    gc.freeze()

    os.environ.setdefault("LOOPBACK_KEY", "secret")
    with Loopback() as lb:
        for be in (AnthropicJudge("w", base_url=lb.url, api_key="k"),
                   OpenAIJudge("w", base_url=lb.url + "/v1", api_key_env="LOOPBACK_KEY")):
            JudgeRunner("llm-only", be).prepare(items[:1])
    yield
    gc.unfreeze()


@pytest.fixture
def server():
    with Loopback() as lb:
        yield lb


def backend(api: str, lb: Loopback, monkeypatch, **kw):
    if api == "anthropic":
        return AnthropicJudge("loopback-judge", base_url=lb.url, api_key="test-key", policy=kw.pop("policy", POLICY),
                              **kw)
    monkeypatch.setenv("LOOPBACK_KEY", "secret")
    return OpenAIJudge("loopback-judge", base_url=lb.url + "/v1", api_key_env="LOOPBACK_KEY",
                       policy=kw.pop("policy", POLICY), **kw)


def judge_all(runner: JudgeRunner, items) -> list[Verdict]:
    runner.prepare(items)
    return [runner.outcome(i.task, i.response, i.condition)[0] for i in items]


def counts(verdicts) -> dict:
    c = Counter(v.status for v in verdicts)
    return {s: c.get(s, 0) for s in ("passed", "failed", "unscored", "error")}


def after(fault, n: int = 1):
    return lambda r: fault if r.attempt <= n else lenient_judge(r)


JUDGED = {"passed": 6, "failed": 4, "unscored": 0, "error": 0}
ERRORS = {"passed": 0, "failed": 0, "unscored": 0, "error": N}
UNSCORED = {"passed": 0, "failed": 0, "unscored": N, "error": 0}
# name: (behaviour, expected counts, expected HTTP requests)
SCENARIOS = {
    "529_then_success": (after(Status(529)), JUDGED, 2 * N),
    "503_502_then_success": (lambda r: {1: Status(503), 2: Status(502)}.get(r.attempt) or lenient_judge(r), JUDGED, 3 * N),
    "hang_past_timeout_then_success": (after(Hang(1.0)), JUDGED, 2 * N),
    "dropped_connection_then_success": (after(Drop()), JUDGED, 2 * N),
    "500_forever": (lambda r: Status(500), ERRORS, 3 * N),
    "hang_forever": (lambda r: Hang(1.0), ERRORS, 3 * N),
    "empty_body": (lambda r: Raw(200, b""), ERRORS, 3 * N),
    "malformed_api_body": (lambda r: Raw(200, b'{"content": [{"type": "text", '), ERRORS, 3 * N),
    "400_not_retried": (lambda r: Status(400), ERRORS, N),
    "malformed_json": (lambda r: Ok('{"conclusion_reached": true, "passed": true'), UNSCORED, N),
    "prose_not_json": (lambda r: Ok("The student is right. PASSED"), UNSCORED, N),
    "json_without_verdict": (lambda r: Ok('{"score": 0.8, "rationale": "good"}'), UNSCORED, N),
    "verdict_wrong_type": (lambda r: Ok('{"conclusion_reached": "yes", "passed": "yes"}'), UNSCORED, N),
    "json_array": (lambda r: Ok("[true]"), UNSCORED, N),
    "empty_text": (lambda r: Ok(""), UNSCORED, N),
    "first_3_prompts_500_forever": (lambda r: Status(500) if r.rank < 3 else lenient_judge(r),
                                    {"passed": None, "failed": None, "unscored": 0, "error": 3}, 3 * 3 + N - 3),
}


@pytest.mark.parametrize("api", ["anthropic", "openai"])
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_faults_give_exact_counts(api, scenario, server, items, monkeypatch):
    behaviour, expected, requests = SCENARIOS[scenario]
    server.behaviour = behaviour
    be = backend(api, server, monkeypatch, concurrency=N)
    verdicts = judge_all(JudgeRunner("llm-only", be), items)
    got = counts(verdicts)
    if expected["passed"] is None:  # which prompts failed depends on arrival order; the totals do not
        assert got["error"] == 3 and got["unscored"] == 0 and got["passed"] + got["failed"] == N - 3
        assert got["failed"] <= 4
    else:
        assert got == expected, [v.rationale for v in verdicts][:2]
    assert server.calls == requests
    for v in verdicts:
        assert v.judge == f"{api}:loopback-judge"
        if v.status == "error":
            assert v.reason in ("judge_unavailable", "judge_request_rejected") and v.rationale
        if v.status == "unscored":
            assert v.reason == llm.PARSE_FAILURE and v.rationale


@pytest.mark.parametrize("api,header,wait", [("anthropic", {"retry-after": "1"}, 1.0),
                                             ("openai", {"retry-after-ms": "600"}, 0.6)])
def test_429_retry_after_is_honoured(api, header, wait, server, items, monkeypatch):
    server.behaviour = after(Status(429, header))
    be = backend(api, server, monkeypatch, concurrency=N, policy=RetryPolicy(max_attempts=3, backoff=0.01, timeout=2))
    assert counts(judge_all(JudgeRunner("llm-only", be), items[:4])) == {"passed": 4, "failed": 0, "unscored": 0,
                                                                         "error": 0}
    assert server.calls == 8
    by_key: dict[str, list[float]] = {}
    for req in server.log:
        by_key.setdefault(req.key, []).append(req.received)
    for times in by_key.values():
        assert times[1] - times[0] >= wait - 0.02  # waited the server's retry-after, not the 10 ms backoff


def test_retry_after_parsing_and_backoff():
    assert parse_retry_after({"retry-after-ms": "250"}) == 0.25
    assert parse_retry_after({"retry-after": "2"}) == 2.0
    assert parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0  # in the past
    assert parse_retry_after({}) is None
    pol = RetryPolicy(backoff=1.0, backoff_max=8.0)
    for attempt, cap in ((1, 1.0), (2, 2.0), (3, 4.0), (6, 8.0)):
        for _ in range(20):
            assert cap / 2 <= pol.delay(attempt, None) <= cap  # exponential, jittered in [50%, 100%]
    assert 3.0 <= pol.delay(1, 3.0) <= 3.1


def test_requests_carry_prompt_key_and_model(server, items, monkeypatch):
    be = backend("openai", server, monkeypatch)
    judge_all(JudgeRunner("llm-only", be), items[:1])
    req = server.log[0]
    assert req.headers["authorization"] == "Bearer secret"
    assert req.body["model"] == "loopback-judge" and req.body["temperature"] == 0
    assert req.system == llm.JUDGE_SYSTEM
    t = items[0].task
    for part in (t.passage, t.question, t.answer, *t.must_identify, items[0].response):
        assert part in req.prompt
    server.reset()
    judge_all(JudgeRunner("llm-only", backend("anthropic", server, monkeypatch)), items[:1])
    req = server.log[0]
    assert req.api == "anthropic" and "test-key" in (req.headers.get("x-api-key") or req.headers.get("authorization"))
    assert req.system == llm.JUDGE_SYSTEM and t.passage in req.prompt


def test_anthropic_reads_base_url_and_key_from_env(server, items, monkeypatch, tmp_path):
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "env-key")
    s = Settings(judge="llm-only", judge_backend="anthropic", judge_model="m", cache=str(tmp_path),
                 judge_timeout=2, judge_backoff=0.01)
    runner = build_runner(s)
    assert counts(judge_all(runner, items)) == JUDGED
    hdrs = server.log[0].headers
    assert server.calls == N and "env-key" in (hdrs.get("x-api-key") or hdrs.get("authorization"))
    assert runner.describe()["base_url"] == server.url and runner.describe()["prompt_version"] == llm.JUDGE_PROMPT_VERSION


def test_missing_key_is_one_clear_error(monkeypatch, tmp_path):
    from pytest_skillbench.errors import SkillbenchError

    for var in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_PROFILE", "OPENAI_API_KEY", "NOPE"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(SkillbenchError, match="ANTHROPIC_API_KEY"):
        build_runner(Settings(judge="llm-only", cache=str(tmp_path)))
    with pytest.raises(SkillbenchError, match="OPENAI_API_KEY"):
        build_runner(Settings(judge="both", judge_backend="openai", cache=str(tmp_path)))
    with pytest.raises(SkillbenchError, match=r"\$NOPE"):
        build_runner(Settings(judge="llm-only", judge_backend="openai", judge_base_url="http://127.0.0.1:1/v1",
                              judge_api_key_env="NOPE", cache=str(tmp_path)))
    # a local OpenAI-compatible server without a key is fine
    build_runner(Settings(judge="llm-only", judge_backend="openai", judge_base_url="http://127.0.0.1:1/v1",
                          cache=str(tmp_path)))
    assert build_runner(Settings(judge="deterministic", cache=str(tmp_path))).backend is None


def test_cache_makes_a_repeated_run_free(server, items, monkeypatch, tmp_path):
    store = Store(tmp_path, "judgments")
    first = judge_all(JudgeRunner("llm-only", backend("anthropic", server, monkeypatch), store=store), items)
    assert server.calls == N
    again = JudgeRunner("llm-only", backend("anthropic", server, monkeypatch), store=Store(tmp_path, "judgments"))
    second = judge_all(again, items)
    assert server.calls == N and again.cache_hits == N  # zero HTTP calls the second time
    assert [v.to_dict() for v in first] == [v.to_dict() for v in second]
    # another model, prompt-version or response is another key
    other = JudgeRunner("llm-only", AnthropicJudge("other-model", base_url=server.url, api_key="k", policy=POLICY),
                        store=store)
    judge_all(other, items[:2])
    assert server.calls == N + 2
    changed = [JudgeItem(i.task, i.response + " ", i.condition) for i in items[:3]]
    judge_all(JudgeRunner("llm-only", backend("anthropic", server, monkeypatch), store=store), changed)
    assert server.calls == N + 5


def test_unscored_and_error_are_never_cached(server, items, monkeypatch, tmp_path):
    server.behaviour = lambda r: Ok("not json") if r.rank < 3 else (Status(500) if r.rank < 5 else lenient_judge(r))
    store = Store(tmp_path, "judgments")
    c = counts(judge_all(JudgeRunner("llm-only", backend("anthropic", server, monkeypatch), store=store), items))
    assert c["unscored"] == 3 and c["error"] == 2
    calls = server.calls
    server.behaviour = lenient_judge
    again = JudgeRunner("llm-only", backend("anthropic", server, monkeypatch), store=store)
    assert counts(judge_all(again, items)) == JUDGED
    assert server.calls == calls + 5 and again.cache_hits == 5


def test_concurrency_is_bounded_and_fast(items, monkeypatch, tasks):
    many = [JudgeItem(t, f"In the {c} condition.\nANSWER: {t.answer}", c) for t in tasks[:24]
            for c in ("baseline", "curated")]
    with Loopback(delay=0.1) as lb:
        be = backend("anthropic", lb, monkeypatch, concurrency=8)
        t0 = time.perf_counter()
        verdicts = judge_all(JudgeRunner("llm-only", be), many)
        elapsed = time.perf_counter() - t0
        assert len(verdicts) == 48 and lb.calls == 48
        assert lb.max_inflight <= 8
    sequential = 48 * 0.1
    assert elapsed < sequential / 4, f"{elapsed:.2f}s vs sequential {sequential:.1f}s"


def test_modes_route_tasks(server, monkeypatch, tasks):
    mixed_items = [JudgeItem(t, f"Prose only: {t.answer}.", "curated") for t in tasks[:20]]
    n_free = sum(i.task.query_type == "FREE_FORM" for i in mixed_items)
    assert 0 < n_free < 20
    runner = JudgeRunner("deterministic-mixed", backend("anthropic", server, monkeypatch))
    verdicts = judge_all(runner, mixed_items)
    assert server.calls == n_free
    for i, v in zip(mixed_items, verdicts):
        assert v.judge == ("anthropic:loopback-judge" if i.task.query_type == "FREE_FORM" else "deterministic")
    server.reset()
    both = JudgeRunner("both", backend("anthropic", server, monkeypatch))
    both.prepare(mixed_items)
    assert server.calls == 20
    v, extra = both.outcome(mixed_items[0].task, mixed_items[0].response, "curated")
    assert v.judge == "anthropic:loopback-judge" and v.status == "passed"
    assert extra["verdicts"]["deterministic"]["status"] == "unscored"  # prose, no ANSWER line
    assert extra["verdicts"]["deterministic"]["reason"] == "no_answer_line"
    assert extra["verdicts"]["llm"]["status"] == "passed"


def test_parse_rules(tasks):
    t = tasks[0]
    ok = llm.verdict_from_output(t, "ANSWER: yes", verdict_json(True, score=1.7, criteria_met=2), "j")
    assert ok.status == "passed" and ok.score == 1.0 and ok.detail["criteria_met"] == 2 and ok.judge == "j"
    fenced = llm.verdict_from_output(t, "x", "```json\n" + verdict_json(False) + "\n```", "j")
    assert fenced.status == "failed" and fenced.rationale
    # passed = conclusion_reached: a judge contradicting itself is read by conclusion_reached
    odd = llm.verdict_from_output(t, "x", json.dumps({"conclusion_reached": True, "passed": False}), "j")
    assert odd.status == "passed" and odd.detail["inconsistent_passed"] is False
    only_passed = llm.verdict_from_output(t, "x", json.dumps({"passed": False}), "j")
    assert only_passed.status == "failed" and only_passed.score is None
    for bad in ("", "   ", "Sure! " + verdict_json(True), '{"passed": 1}', '{"passed": null}', '"passed"', "{}",
                '{"conclusion_reached": "true"}', "```\nnot json\n```"):
        v = llm.verdict_from_output(t, "x", bad, "j")
        assert v.status == "unscored" and v.reason == "judge_parse_failure", bad


def test_prompt_is_versioned_and_names_the_rules():
    assert llm.JUDGE_PROMPT_VERSION and len(llm.judge_prompt_hash()) == 16
    for phrase in ("phrased differently", "lowers the score", "`passed` must equal `conclusion_reached`",
                   "exactly one JSON object"):
        assert phrase in llm.JUDGE_SYSTEM


def test_hook_verdicts(tasks, server, monkeypatch):
    t = tasks[0]
    assert hook_verdict(None, t) is None
    v = hook_verdict({"passed": True}, t)
    assert v.status == "passed" and v.judge == "hook" and v.expected == t.answer
    assert hook_verdict(Verdict(status="failed", judge="mine"), t).judge == "mine"
    assert hook_verdict({"status": "maybe"}, t).reason == "judge_hook_invalid"
    assert hook_verdict(42, t).status == "error"
    seen = []

    def hook(task, response, condition):
        seen.append(condition)
        return {"status": "failed", "judge": "proj"} if task.query_type == "YES_NO" else None

    items = [JudgeItem(x, f"ANSWER: {x.answer}", "curated") for x in tasks[:N]]
    runner = JudgeRunner("llm-only", backend("anthropic", server, monkeypatch), hook=hook)
    verdicts = judge_all(runner, items)
    n_yes_no = sum(i.task.query_type == "YES_NO" for i in items)
    assert server.calls == N - n_yes_no  # the hook's verdicts never reach the LLM
    assert sum(v.judge == "proj" and v.status == "failed" for v in verdicts) == n_yes_no
    assert len(seen) == N  # called once per item, memoised between prepare and outcome
