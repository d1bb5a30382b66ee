"""The offline judge: the judge prompt on a local transformers model (a tiny random model here).

A random model writes no JSON verdict, so every episode must come out ``unscored`` with reason
``judge_parse_failure`` - the strict reading of the API judges, never ``failed``.
"""

from __future__ import annotations

import dataclasses
import json

import pytest

from conftest import _train_bpe_tokenizer, build_tiny_model
from pytest_skillbench.cache import Store
from pytest_skillbench.judges.hf import HFJudge
from pytest_skillbench.judges.runner import JudgeItem, JudgeRunner


@pytest.fixture(scope="module")
def judge_model(tmp_path_factory):
    tok_dir = tmp_path_factory.mktemp("bpe-tok")
    _train_bpe_tokenizer().save_pretrained(str(tok_dir))
    return build_tiny_model(tok_dir, tmp_path_factory.mktemp("tiny-judge"))


def test_hf_judge_is_strict_and_batched(judge_model, bundled_bench, tmp_path):
    tasks = [dataclasses.replace(t, passage="A short passage.", question="Does it follow?")
             for t in bundled_bench.split("holdout")[:6]]
    judge = HFJudge(str(judge_model), batch_size=4, max_new_tokens=6, cache_dir=tmp_path)
    runner = JudgeRunner("llm-only", judge, store=Store(tmp_path, "judgments"))
    items = [JudgeItem(t, f"ANSWER: {t.answer}", "baseline") for t in tasks]
    runner.prepare(items)
    verdicts = [runner.outcome(i.task, i.response, i.condition)[0] for i in items]
    assert [v.status for v in verdicts] == ["unscored"] * 6
    assert all(v.reason == "judge_parse_failure" and v.judge == f"hf:{judge_model}" for v in verdicts)
    assert judge.backend.forward_batches == 2  # 6 prompts in batches of 4, not one call per item
    assert runner.describe()["backend"] == "hf" and runner.describe()["path"]["weights"]


def test_llm_only_session_runs_offline(pytester, judge_model, bundled_bench, tmp_path):
    skill = bundled_bench.split("holdout")[0].skill
    tasks = [t for t in bundled_bench.split("holdout") if t.skill == skill]
    replay = tmp_path / "offline.jsonl"
    replay.write_text("".join(json.dumps({"task_uid": t.task_uid, "condition": c, "response": f"ANSWER: {t.answer}",
                                          "student": "offline"}) + "\n" for t in tasks for c in ("baseline", "curated")))
    out = tmp_path / "r.json"
    res = pytester.runpytest_inprocess("-p", "no:randomly", "--student", f"replay:{replay}", "--judge", "llm-only",
                                       "--judge-backend", "hf", "--judge-model", str(judge_model), "--judge-max-tokens",
                                       "4", "--skillbench-cache", str(tmp_path / "cache"), "--skillbench-json", str(out),
                                       "-k", skill.replace("-", "_"))
    report = json.loads(out.read_text())
    for cond in ("baseline", "curated"):
        c = report["students"]["offline"]["conditions"][cond]
        assert (c["n"], c["unscored"], c["passed"], c["failed"], c["errors"]) == (len(tasks), len(tasks), 0, 0, 0)
        assert c["judges"] == [f"hf:{judge_model}"]
    assert report["run"]["judge"]["backend"] == "hf" and report["run"]["judge"]["mode"] == "llm-only"
    assert "WARNING" in res.stdout.str()
