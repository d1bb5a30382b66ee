"""Drift metrics per episode, their aggregation per student x condition, and drift against the base."""

from __future__ import annotations

import json

import pytest

from conftest import write_replay
from pytest_skillbench.episodes import Episode, Verdict
from pytest_skillbench.report.summary import build_report
from pytest_skillbench.report.terminal import render
from pytest_skillbench.studies.drift import (
    aggregate,
    drift_against,
    episode_metrics,
    is_refusal,
    json_valid,
    load_slop_phrases,
    repeated_ngram_rate,
    slop_hits,
)


def test_slop_phrases_file_and_matching():
    phrases = load_slop_phrases()
    assert "as an ai" in phrases and "i apologize" in phrases and len(phrases) >= 30
    assert slop_hits("As an AI language model, I apologize. I hope this helps!") == [
        "as an ai language model", "i apologize", "i hope this helps"]
    assert slop_hits("As an AIrline pilot I delved.") == []  # word boundaries
    assert slop_hits("It\u2019s important to note that x") == ["it's important to note that"]  # curly apostrophe


@pytest.mark.parametrize("text,ok", [
    ('{"a": 1}', True),
    ('Here it is:\n```json\n{"a": [1, 2]}\n```\nDone.', True),
    ('Sure! {"name": "Ann", "age": 3} hope that works', True),
    ('<think>{"draft": </think>["x", "y"]', True),
    ("name: Ann", False),
    ('{"a": 1,}', False),
    ("42", False),  # a bare scalar is not the object / array a JSON request means
])
def test_json_validity(text, ok):
    assert json_valid(text) is ok


def test_repetition_loops_and_refusals():
    assert repeated_ngram_rate("one two three four five six") == 0.0
    assert repeated_ngram_rate("step a b c " * 10) > 0.8
    m = episode_metrics("<think>a</think> x </think> y </think>", 12)
    assert m["think_closes"] == 3 and m["think_loop"] and m["tokens"] == 12 and m["tokens_source"] == "generated"
    assert episode_metrics("short answer", None)["tokens_source"] == "approx"
    for text in ("I'm sorry, but I can't help with that.", "I cannot assist with this request.",
                 "As an AI, I cannot give medical advice.", "I must decline."):
        assert is_refusal(text), text
    for text in ("I cannot determine this from the passage alone, so ANSWER: no", "The law can't help him.",
                 "Sorry for the delay; here is the answer."):
        assert not is_refusal(text), text
    assert episode_metrics(None) == {"answered": False}


def ep(student, cond, uid, response, tokens=None, drift=None):
    e = Episode(student=student, condition=cond, task_uid=uid, skill="modus-ponens", query_type="YES_NO",
                response=response, verdict=Verdict(status="passed", format_ok=True), gen_tokens=tokens)
    if drift is not None:
        e.extra["drift"] = drift
    return e


def test_aggregate_and_drift_against_base_in_the_report():
    base = [ep("base", "baseline", f"t{i}", "Yes.\nANSWER: yes", tokens=20) for i in range(10)]
    v1 = [ep("v1", "baseline", f"t{i}", ("I apologize. " if i < 5 else "") + "loop loop loop loop " * 8
             + "</think></think>\nANSWER: yes", tokens=80) for i in range(10)]
    v1.append(ep("v1", "baseline", "tj", "no json", tokens=5,
                 drift=episode_metrics("no json", 5, asks_json=True)))
    a = aggregate(v1)
    assert a["answered"] == 11 and a["json_asked"] == 1 and a["json_valid_rate"] == 0.0
    assert a["slop_rate"] == pytest.approx(5 / 11) and a["think_loop_rate"] == pytest.approx(10 / 11)
    run = {"students": {"v1": {"spec": {"base_student": "base"}}, "base": {"spec": {}}}}
    report = build_report(base + v1, run, resamples=100)
    d = report["drift"]
    assert set(d["students"]) == {"v1", "base"}
    ab = d["against_base"]["v1"]
    assert ab["base"] == "base"
    c = ab["conditions"]["baseline"]
    assert c["length_ratio"] == pytest.approx((800 + 5) / 11 / 20)
    assert c["slop_rate"] == pytest.approx(5 / 11)
    flags = " ".join(ab["flags"])
    assert "x the base's length" in flags and "slop phrases up" in flags and "repeated </think> blocks up" in flags
    assert "repeated 4-gram share up" in flags
    assert d["slop_list"]["phrases"] == len(load_slop_phrases())
    text = "\n".join(render(report))
    assert "drift v1 vs base" in text


def test_drift_against_skips_missing_conditions():
    s = {"baseline": aggregate([ep("s", "baseline", "t", "abc", 10)])}
    assert drift_against(s, {"curated": s["baseline"]}) == {"conditions": {}, "flags": []}


def test_session_stores_drift_on_every_episode(pytester, bundled_bench):
    f = write_replay(pytester.path / "toy.jsonl", bundled_bench.split("holdout")[:6])
    eps = pytester.path / "eps.jsonl"
    pytester.runpytest_subprocess("-p", "no:randomly", "--student", f"replay:{f}", "--skillbench-episodes", str(eps),
                                  "-k", " or ".join(t.task_uid for t in bundled_bench.split("holdout")[:6]))
    rows = [json.loads(line) for line in eps.read_text().splitlines()]
    assert len(rows) == 12
    for r in rows:
        d = r["extra"]["drift"]
        assert d["answered"] and d["tokens"] > 0 and d["asks_json"] is False and d["json_valid"] is None
