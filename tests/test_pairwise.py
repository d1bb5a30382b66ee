"""Blind pairwise judging (both orders, consistency) and pointwise rubric scores, through judge backends."""

from __future__ import annotations

import json
import re

import pytest
from loopback import Loopback, Ok

from pytest_skillbench import cli
from pytest_skillbench.cache import Store
from pytest_skillbench.episodes import Episode, Verdict
from pytest_skillbench.judges.api import JudgeCallError
from pytest_skillbench.studies.pairwise import (
    CRITERIA,
    ParseError,
    PromptInfo,
    combine,
    pairwise_against_base,
    parse_pairwise,
    parse_rubric,
    render,
    rubric_scores,
)


class ScriptedJudge:
    """A judge backend with the seam's shape: ``complete(prompts) -> [text | JudgeCallError]``."""

    name = "scripted"
    label = "scripted:test"
    concurrency = 1

    def __init__(self, fn):
        self.fn = fn
        self.calls = 0

    def identity(self) -> dict:
        return {"backend": "scripted", "model": "test"}

    def describe(self) -> dict:
        return self.identity()

    def complete(self, prompts, progress=None):
        self.calls += len(prompts)
        return [self.fn(m[-1]["content"]) for m in prompts]


def _tag(text: str, name: str) -> str:
    m = re.search(rf"<{name}>\n(.*?)\n</{name}>", text, re.S)
    return m.group(1) if m else ""


def prefers_good(user: str) -> str:
    a, b = _tag(user, "response_A"), _tag(user, "response_B")
    if ("GOOD" in a) == ("GOOD" in b):
        return json.dumps({"winner": "tie", "rationale": "same"})
    return json.dumps({"winner": "A" if "GOOD" in a else "B", "rationale": "names it"})


def ep(student: str, uid: str, response: str | None, cond: str = "baseline", category: str = "logical") -> Episode:
    return Episode(student=student, condition=cond, task_uid=uid, skill="modus-ponens", query_type="YES_NO",
                   response=response, verdict=Verdict(status="passed"), category=category)


PROMPTS = {f"t{i}": PromptInfo(f"prompt {i}", "yes") for i in range(10)}


def test_readers_are_strict():
    assert parse_pairwise('{"winner": "A", "rationale": "x"}') == "A"
    assert parse_pairwise('```json\n{"winner": "tie"}\n```') == "tie"
    assert parse_pairwise('{"winner": "b"}') == "B"
    for bad in ("A is better", '{"winner": "C"}', '{"winner": true}', "[1]", "", None, '{"rationale": "x"}'):
        with pytest.raises(ParseError):
            parse_pairwise(bad)
    good = {c: 3 for c in CRITERIA}
    assert parse_rubric(json.dumps({**good, "rationale": "ok"})) == good
    for over in ({"format": 6}, {"format": 0}, {"format": 3.5}, {"format": True}, {"format": "3"}):
        with pytest.raises(ParseError):
            parse_rubric(json.dumps({**good, **over}))
    with pytest.raises(ParseError):
        parse_rubric(json.dumps({c: 3 for c in CRITERIA[:-1]}))


def test_only_consistent_verdicts_count():
    # first order: student is A; second order: student is B
    assert combine("A", "B") == ("win", True)
    assert combine("B", "A") == ("loss", True)
    assert combine("tie", "tie") == ("tie", True)
    assert combine("A", "A") == ("tie", False)  # position bias: an inconsistent pair is a tie
    assert combine("A", "tie") == ("tie", False)


def test_pairwise_win_tie_loss_with_ci_and_cache(tmp_path):
    eps = []
    for i in range(10):
        eps.append(ep("v1", f"t{i}", "GOOD answer" if i < 6 else f"meh {i}"))
        eps.append(ep("base", f"t{i}", "GOOD answer base" if i in (6, 7) else f"poor {i}"))
    eps.append(ep("v1", "t9", "same", cond="curated"))
    eps.append(ep("base", "t9", "same", cond="curated"))  # identical: a tie without a call
    judge = ScriptedJudge(prefers_good)
    store = Store(tmp_path, "judgments")
    out = pairwise_against_base(eps, {"v1": "base"}, PROMPTS, judge, store=store)
    e = out["students"]["v1"]
    assert (e["wins"], e["ties"], e["losses"]) == (6, 3, 2)
    assert e["identical"] == 1 and e["inconsistent"] == 0 and e["unjudged"] == 0
    assert e["win_rate"] == pytest.approx((6 + 1.5) / 11)
    lo, hi = e["ci95"]
    assert lo < e["win_rate"] < hi
    assert e["decisive_win_rate"] == pytest.approx(0.75)
    assert judge.calls == 20  # 10 pairs x both orders; the identical pair needs none
    assert set(e["conditions"]) == {"baseline", "curated"}
    again = ScriptedJudge(prefers_good)
    out2 = pairwise_against_base(eps, {"v1": "base"}, PROMPTS, again, store=store)
    assert again.calls == 0 and out2["students"]["v1"]["wins"] == 6  # every verdict from the judgment cache
    assert "6 win / 3 tie / 2 loss" in "\n".join(render({"pairwise": out}))


def test_position_bias_becomes_ties_and_bad_outputs_are_unjudged():
    eps = [ep("v1", f"t{i}", f"a{i}") for i in range(4)] + [ep("base", f"t{i}", f"b{i}") for i in range(4)]
    always_a = ScriptedJudge(lambda u: '{"winner": "A", "rationale": "first"}')
    e = pairwise_against_base(eps, {"v1": "base"}, PROMPTS, always_a)["students"]["v1"]
    assert (e["wins"], e["ties"], e["losses"], e["inconsistent"]) == (0, 4, 0, 4)
    assert e["win_rate"] == 0.5

    def flaky(user: str):
        if "a0" in user:
            return "I prefer A."  # prose: unreadable
        if "a1" in user:
            return JudgeCallError("judge unavailable after 3 attempt(s)", "judge_unavailable", 3)
        return prefers_good(user)

    class Flaky(ScriptedJudge):
        def complete(self, prompts, progress=None):
            return [flaky(m[-1]["content"]) for m in prompts]

    e = pairwise_against_base(eps, {"v1": "base"}, PROMPTS, Flaky(None))["students"]["v1"]
    assert e["unjudged"] == 2 and e["n"] == 2 and len(e["examples"]) == 2


def test_rubric_means_per_student_condition_and_category():
    def scores(user: str) -> str:
        good = "GOOD" in _tag(user, "response")
        if "broken" in user:
            return '{"correctness": 9}'
        return json.dumps({**{c: (5 if good else 2) for c in CRITERIA}, "hallucination_risk": 1 if good else 4,
                           "rationale": "r"})

    eps = [ep("v1", "t0", "GOOD", category="logical"), ep("v1", "t1", "bad", category="rhetorical"),
           ep("v1", "t2", "GOOD", cond="curated", category="logical"), ep("v1", "t3", "broken"),
           ep("v1", "t4", None)]
    out = rubric_scores(eps, PROMPTS, ScriptedJudge(scores))
    s = out["students"]["v1"]
    assert s["overall"]["n"] == 3 and s["unparsed"] == 1 and s["errors"] == 0
    assert s["overall"]["correctness"] == pytest.approx(4.0)
    assert s["categories"]["logical"]["correctness"] == 5.0 and s["categories"]["rhetorical"]["usefulness"] == 2.0
    assert s["conditions"]["curated"]["hallucination_risk"] == 1.0
    assert eps[0].extra["rubric"]["correctness"] == 5
    assert out["lower_is_better"] == ["hallucination_risk"]
    assert "rubric 1-5" in "\n".join(render({"rubric": out}))


def loopback_judge(req) -> Ok:
    if "<response_A>" in req.prompt:
        return Ok(prefers_good(req.prompt))
    good = "GOOD" in _tag(req.prompt, "response")
    return Ok(json.dumps({**{c: 4 if good else 2 for c in CRITERIA}, "rationale": "r"}))


@pytest.mark.parametrize("api", ["anthropic", "openai"])
def test_through_the_real_judge_backends(api, monkeypatch):
    from pytest_skillbench.judges.anthropic import AnthropicJudge
    from pytest_skillbench.judges.openai import OpenAIJudge

    eps = [ep("v1", f"t{i}", "GOOD" if i % 2 else f"x{i}") for i in range(4)] + \
          [ep("base", f"t{i}", f"y{i}") for i in range(4)]
    with Loopback(loopback_judge) as lb:
        if api == "anthropic":
            be = AnthropicJudge("lb", base_url=lb.url, api_key="k")
        else:
            monkeypatch.setenv("LB_KEY", "k")
            be = OpenAIJudge("lb", base_url=lb.url + "/v1", api_key_env="LB_KEY")
        pw = pairwise_against_base(eps, {"v1": "base"}, PROMPTS, be)["students"]["v1"]
        rb = rubric_scores([e for e in eps if e.student == "v1"], PROMPTS, be)["students"]["v1"]
    assert (pw["wins"], pw["ties"], pw["losses"]) == (2, 2, 0)
    assert rb["overall"]["correctness"] == pytest.approx(3.0)


def test_plugin_pairwise_and_rubric_at_session_end(pytester, bundled_bench, tmp_path, monkeypatch):
    tasks = [t for t in bundled_bench.split("holdout") if t.skill == "modus-ponens"]
    for name, word in (("v1", "GOOD"), ("base", "plain")):
        with open(pytester.path / f"{name}.jsonl", "w") as fh:
            for t in tasks:
                for cond in ("baseline", "curated"):
                    fh.write(json.dumps({"task_uid": t.task_uid, "condition": cond, "student": name,
                                         "response": f"{word} {t.task_uid}\nANSWER: {t.answer}"}) + "\n")
    pytester.makefile(".toml", pyproject='[tool.skillbench.students.v1]\nbackend = "replay"\npath = "v1.jsonl"\n'
                                         'base_student = "base"\n[tool.skillbench.students.base]\n'
                                         'backend = "replay"\npath = "base.jsonl"\n')
    monkeypatch.setenv("LB_KEY", "k")
    out = pytester.path / "r.json"
    with Loopback(loopback_judge) as lb:
        res = pytester.runpytest_subprocess(
            "-p", "no:randomly", "--student", "v1", "--student", "base", "-k", "modus_ponens", "--pairwise",
            "--rubric", "--judge-backend", "openai", "--judge-base-url", lb.url + "/v1", "--judge-api-key-env",
            "LB_KEY", "--judge-model", "lb", "--skillbench-cache", str(tmp_path / "cache"),
            "--skillbench-json", str(out), "--skillbench-run-dir", str(pytester.path / "run"))
        calls = lb.calls
        # `skillbench pairwise RUN` on the stored run: every verdict comes from the judgment cache
        assert cli.main(["pairwise", str(pytester.path / "run"), "--judge-backend", "openai", "--judge-model", "lb",
                         "--judge-base-url", lb.url + "/v1", "--judge-api-key-env", "LB_KEY",
                         "--cache", str(tmp_path / "cache"), "--json", str(tmp_path / "pw.json")]) == 0
        assert lb.calls == calls
    assert json.loads((tmp_path / "pw.json").read_text())["pairwise"]["students"]["v1"]["wins"] == 10
    report = json.loads(out.read_text())
    pw = report["pairwise"]["students"]["v1"]
    assert (pw["wins"], pw["ties"], pw["losses"]) == (10, 0, 0) and pw["base"] == "base"
    assert report["rubric"]["students"]["v1"]["overall"]["correctness"] == 4.0
    assert report["rubric"]["students"]["base"]["overall"]["n"] == 10
    text = res.stdout.str()
    assert "pairwise vs base" in text and "v1 vs base: 10 win / 0 tie / 0 loss" in text and "rubric 1-5" in text
