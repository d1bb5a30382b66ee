"""Served students (backend = "openai" / "anthropic") against the loopback chat server (tests/loopback.py)."""

from __future__ import annotations

import json
import time
import xml.etree.ElementTree as ET

import pytest
from chat_students import BenchStudent
from loopback import Hang, Loopback, Status

from pytest_skillbench.bench import load_bench
from pytest_skillbench.errors import SkillbenchError
from pytest_skillbench.judges import deterministic
from pytest_skillbench.prompts import messages
from pytest_skillbench.students.base import GenRequest
from pytest_skillbench.students.registry import StudentSpec

BENCH = load_bench("bundled")
TASKS = BENCH.split("holdout")
MP = [t for t in TASKS if t.skill == "modus-ponens"]  # 5 tasks -> 10 items


def reqs(tasks, cond="curated"):
    return [GenRequest(t.task_uid, cond, messages(t, cond, BENCH.catalog)) for t in tasks]


def openai_backend(url, **kw):
    from pytest_skillbench.students.openai import OpenAIBackend

    spec = StudentSpec(name=kw.pop("name", "s"), backend="openai", base_url=url + "/v1", model=kw.pop("model", "m"),
                       **kw)
    return OpenAIBackend(spec, max_new_tokens=64)


def project(pytester, url, **entry):
    fields = {"backend": "openai", "base_url": f"{url}/v1", "model": "tiny-base", "adapter": "v2.1",
              "concurrency": 3, "max_retries": 1, **entry}
    body = "\n".join(f"{k} = {json.dumps(v)}" for k, v in fields.items())
    pytester.makepyprojecttoml(f'[tool.skillbench.students."served"]\n{body}\n')


def run(pytester, *args):
    return pytester.runpytest_subprocess("-p", "no:randomly", "--skillbench-cache", str(pytester.path / "cache"),
                                         *args)


def test_bounded_concurrency():
    student = BenchStudent(TASKS, delay=0.1)
    with Loopback(student) as lb:
        be = openai_backend(lb.url, concurrency=3)
        t0 = time.perf_counter()
        results = be.generate(reqs(TASKS[:12]))
        elapsed = time.perf_counter() - t0
        be.close()
    assert all(r.text and "ANSWER:" in r.text or r.text for r in results)
    assert student.max_in_flight == 3
    assert 0.35 < elapsed < 1.5  # 12 requests, 3 at a time, 0.1 s each


def test_retries_transient_permanent_and_exhausted():
    a, b, c = TASKS[:3]
    student = BenchStudent(TASKS, fail={a.task_uid: lambda r: Status(500) if r.attempt == 1 else None,
                                        b.task_uid: lambda r: Status(404, message="no such model"),
                                        c.task_uid: lambda r: Status(429, headers={"retry-after-ms": "10"})})
    with Loopback(student) as lb:
        be = openai_backend(lb.url, max_retries=2)
        seen = []
        ra, rb, rc = be.generate(reqs([a, b, c]), on_result=lambda q, r: seen.append(q.task_uid))
        attempts = dict(lb.attempts)
        be.close()
    assert ra.text and ra.extra["attempts"] == 2
    assert rb.text is None and "rejected: HTTP 404: no such model" in rb.error
    assert rc.text is None and "unavailable after 3 attempt(s): HTTP 429" in rc.error
    assert sorted(attempts.values()) == [1, 2, 3]  # 404 never retried, 429 retried twice
    assert sorted(seen) == sorted([a.task_uid, b.task_uid, c.task_uid])


def test_timeout_is_an_error_result():
    t = TASKS[0]
    with Loopback(BenchStudent(TASKS, fail={t.task_uid: lambda r: Hang(1.0)})) as lb:
        be = openai_backend(lb.url, timeout=0.2, max_retries=0)
        (res,) = be.generate(reqs([t]))
        be.close()
    assert res.text is None and "timeout" in res.error


def test_request_body_adapter_name_and_reasoning_kept():
    t = TASKS[0]
    from loopback import Raw

    body = json.dumps({"model": "v2.1", "choices": [{"message": {"content": "ANSWER: yes",
                                                                 "reasoning_content": "hmm"}}],
                       "usage": {"completion_tokens": 7}}).encode()
    with Loopback(lambda r: Raw(200, body)) as lb:
        be = openai_backend(lb.url, model="Qwen/Qwen3-4B", adapter="v2.1", thinking="disable",
                            repetition_penalty=1.05)
        (res,) = be.generate(reqs([t]))
        sent = lb.log[0].body
        be.close()
    assert sent["model"] == "v2.1" and sent["temperature"] == 0.0 and sent["max_tokens"] == 64
    assert sent["chat_template_kwargs"] == {"enable_thinking": False} and sent["repetition_penalty"] == 1.05
    assert res.text == "<think>\nhmm\n</think>\nANSWER: yes" and res.gen_tokens == 7
    info = be.path_info()
    assert info["backend"] == "openai" and info["adapter"] == "v2.1" and be.served_models == {"v2.1"}


def test_anthropic_student_through_the_sdk(monkeypatch, tmp_path):
    from pytest_skillbench.session import SkillbenchSession
    from pytest_skillbench.settings import Settings

    student = BenchStudent(TASKS, fail={MP[0].task_uid: lambda r: Status(529) if r.attempt == 1 else None})
    with Loopback(student) as lb:
        monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
        monkeypatch.setenv("ANTHROPIC_BASE_URL", lb.url)
        s = Settings(student=["haiku"], cache=str(tmp_path / "cache"), run_dir=str(tmp_path / "run"),
                     students={"haiku": {"backend": "anthropic", "model": "claude-haiku-4-5", "max_retries": 2}})
        sb = SkillbenchSession(s, tmp_path)
        specs = [sp for sp in sb.item_specs() if sp.task in MP]
        sb.set_selected(specs)
        eps = [sb.run(sp, "x") for sp in specs]
        log = list(lb.log)
    assert all(r.api == "anthropic" for r in log)
    assert any("--- SKILL: modus-ponens ---" in r.system for r in log)  # system prompt sent as `system`
    assert all(e.verdict.status != "error" for e in eps)
    for e, sp in zip(eps, specs):
        want = student.answer_text("claude-haiku-4-5", sp.condition == "curated", sp.task)
        assert e.response == want
    path = sb.backend("haiku").path_info()
    sb.close()
    assert path["backend"] == "anthropic" and path["base_url"] == lb.url and path["model"] == "claude-haiku-4-5"


def test_anthropic_without_key_is_one_clear_error(monkeypatch, tmp_path):
    from pytest_skillbench.session import SkillbenchSession
    from pytest_skillbench.settings import Settings

    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    s = Settings(student=["haiku"], cache=str(tmp_path / "c"), students={"haiku": {"backend": "anthropic",
                                                                                   "model": "claude-haiku-4-5"}})
    with pytest.raises(SkillbenchError, match="ANTHROPIC_API_KEY is not set"):
        SkillbenchSession(s, tmp_path)


def test_openai_student_end_to_end_cached_and_junit(pytester):
    student = BenchStudent(TASKS)
    with Loopback(student) as lb:
        project(pytester, lb.url)
        out, junit = pytester.path / "r.json", pytester.path / "junit.xml"
        res = run(pytester, "--student", "served", "-k", "modus_ponens", "--skillbench-json", str(out),
                  "--junitxml", str(junit), "--max-new-tokens", "96")
        first_calls = lb.calls
        assert first_calls == 10
        assert {r.body["model"] for r in lb.log} == {"v2.1"}
        assert {r.body["max_tokens"] for r in lb.log} == {96}
        rep = json.loads(out.read_text())
        # the same command again: every generation comes from the cache
        res2 = run(pytester, "--student", "served", "-k", "modus_ponens", "--skillbench-json",
                   str(pytester.path / "r2.json"), "--max-new-tokens", "96")
        assert lb.calls == first_calls
    conds = rep["students"]["served"]["conditions"]
    for cond in ("baseline", "curated"):
        texts = [student.answer_text("v2.1", cond == "curated", t) for t in MP]
        n_pass = sum(deterministic.judge(t, txt).status == "passed" for t, txt in zip(MP, texts))
        assert conds[cond]["n"] == 5 and conds[cond]["errors"] == 0
        assert conds[cond]["passed"] == n_pass
    path = rep["run"]["students"]["served"]["path"]
    assert path["backend"] == "openai" and path["adapter"] == "v2.1" and path["model"] == "tiny-base"
    assert path["base_url"] == f"{lb.url}/v1" and path["chat_template"] == "server"
    assert json.loads((pytester.path / "r2.json").read_text())["students"] == rep["students"]
    assert res.ret in (0, 1) and res2.ret == res.ret
    # JUnit XML: per-item properties
    cases = ET.parse(junit).getroot().iter("testcase")
    props = [{p.get("name"): p.get("value") for p in c.iter("property")} for c in cases]
    assert len(props) == 10
    assert all(set(p) >= {"student", "condition", "skill", "status", "expected", "extracted"} for p in props)
    assert {p["student"] for p in props} == {"served"} and {p["skill"] for p in props} == {"modus-ponens"}
    assert {p["condition"] for p in props} == {"baseline", "curated"}


def test_outage_is_exit_3_not_failure_and_rerun_retries_only_errors(pytester):
    down = {MP[0].task_uid: lambda r: Status(503), MP[1].task_uid: lambda r: Status(503)}
    student = BenchStudent(TASKS, fail=dict(down))
    with Loopback(student) as lb:
        project(pytester, lb.url, max_retries=0)
        out = pytester.path / "r.json"
        res = run(pytester, "--student", "served", "-k", "modus_ponens", "--condition", "curated",
                  "--skillbench-json", str(out), "--gate", "curated.pass_rate>=0")
        assert res.ret == 3
        rep = json.loads(out.read_text())
        c = rep["students"]["served"]["conditions"]["curated"]
        assert c["errors"] == 2 and c["n"] == 5
        assert rep["gates"]["exit_code"] == 3 and rep["gates"]["errors"] == 2
        text = res.stdout.str()
        assert "skillbench exit status 3" in text and "gate PASS  curated.pass_rate>=0 [served]" in text
        section = text.split("= skillbench =", 1)[1].split("\n=")[0].rstrip().splitlines()
        assert section[-1].startswith("gate PASS") and section[-2].startswith("skillbench exit status 3")
        # the server is back: only the two errored prompts are asked again
        student.fail.clear()
        lb.reset()
        res2 = run(pytester, "--student", "served", "-k", "modus_ponens", "--condition", "curated",
                   "--skillbench-json", str(out), "--gate", "curated.pass_rate>=0")
        assert lb.calls == 2
    assert res2.ret == 0
    assert json.loads(out.read_text())["students"]["served"]["conditions"]["curated"]["errors"] == 0


def test_missing_key_env_is_usage_error(pytester, monkeypatch):
    monkeypatch.delenv("SKILLBENCH_TEST_NO_KEY", raising=False)
    project(pytester, "http://127.0.0.1:9", api_key_env="SKILLBENCH_TEST_NO_KEY")
    res = run(pytester, "--student", "served")
    assert res.ret == 4
    err = res.stderr.str()
    assert "SKILLBENCH_TEST_NO_KEY (api_key_env) is not set" in err and "Traceback" not in err
