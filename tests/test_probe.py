"""The generality probe: the bundled battery, its scoring, and `--probe` through the plugin."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from pytest_skillbench import cli
from pytest_skillbench.errors import SkillbenchError
from pytest_skillbench.studies.probe import (
    PremiseJudge,
    ProbeItem,
    factual_hit,
    format_locked,
    load_probe,
    premise_challenged,
    score,
)

FACT = ProbeItem(id="f", kind="factual", prompt="What is the capital of Australia?", references=("Canberra",))
PREMISE = ProbeItem(id="p", kind="false_premise", prompt="Why did the Titanic sink after hitting a whale?",
                    false_premise="It hit a whale.", correction="It struck an iceberg.", correction_keywords=("iceberg",))
JSON_ITEM = ProbeItem(id="j", kind="instruction", prompt="Return a JSON object with a key name. Output only the JSON.")


def test_bundled_battery():
    items = load_probe("generality")
    assert len(items) >= 50
    kinds = Counter(i.kind for i in items)
    assert kinds["instruction"] >= 15 and kinds["factual"] >= 15 and kinds["false_premise"] >= 15
    assert len({i.id for i in items}) == len(items)
    for i in items:
        assert "ANSWER:" not in i.prompt  # nobody asks for an ANSWER line
        if i.kind == "factual":
            assert i.references
        if i.kind == "false_premise":
            assert i.correction and i.correction_keywords and i.false_premise
    assert sum("JSON" in i.prompt for i in items) >= 2


def test_custom_probe_file_errors_name_the_line(tmp_path):
    f = tmp_path / "p.jsonl"
    f.write_text('{"id": "a", "kind": "factual", "prompt": "Q?", "references": ["x"]}\n{"id": "b", "kind": "odd", '
                 '"prompt": "Q"}\n')
    with pytest.raises(SkillbenchError, match=r"p.jsonl:2 \[kind\]"):
        load_probe(str(f))
    with pytest.raises(SkillbenchError, match="not a bundled probe"):
        load_probe("nope")


def test_item_checks():
    assert format_locked("Reasoning...\nANSWER: Canberra")
    assert format_locked("**ANSWER:** Canberra")
    assert not format_locked("The answer: Canberra is the capital.")
    assert factual_hit(FACT, "It is Canberra.") == "Canberra"
    assert factual_hit(FACT, "Sydney, not Canberraville") is None
    assert premise_challenged(PREMISE, "It didn't hit a whale; it struck an iceberg.") == "iceberg"
    assert premise_challenged(PREMISE, "That is a misconception.") == "misconception"
    assert premise_challenged(PREMISE, "The whale punctured the hull.") is None

    v, m = score(FACT, "Following the skill procedure, Step 1...\nANSWER: Canberra")
    assert v.status == "passed" and m["format_locked"] and m["factual_hit"] and m["phantom_skill"]
    v, m = score(PREMISE, "The whale punctured the hull below the waterline.")
    assert v.status == "failed" and m["confabulated"] and m["confabulation_judge"] == "deterministic"
    v, m = score(JSON_ITEM, '```json\n{"name": "Ann"}\n```')
    assert v.status == "passed" and m["json_valid"] and not m["format_locked"]
    v, m = score(JSON_ITEM, "name: Ann\nANSWER: done")
    assert v.status == "failed" and "ANSWER line" in v.rationale and "JSON" in v.rationale
    v, _ = score(FACT, None)
    assert v.status == "error"


class Scripted:
    label = "scripted:premise"

    def __init__(self, text: str):
        self.text = text
        self.calls = 0

    def identity(self):
        return {"backend": "scripted", "text": self.text}

    def complete(self, prompts, progress=None):
        self.calls += len(prompts)
        return [self.text for _ in prompts]


def test_false_premise_is_judged_by_the_llm_when_there_is_one():
    j = PremiseJudge(Scripted('{"accepts_false_premise": true, "rationale": "goes along"}'))
    v, m = score(PREMISE, "It struck an iceberg... no wait, the whale.", j)
    assert m["confabulated"] is True and m["confabulation_judge"] == "scripted:premise" and v.judge == "scripted:premise"
    # an unreadable judge output falls back to the deterministic check, and says so
    v, m = score(PREMISE, "It struck an iceberg.", PremiseJudge(Scripted("yes")))
    assert m["confabulated"] is False and m["confabulation_judge"].startswith("deterministic")


def _replays(path: Path) -> None:
    items = load_probe()
    with open(path / "v1.jsonl", "w") as f, open(path / "base.jsonl", "w") as g:
        for it in items:
            if it.kind == "factual":
                r1, r0 = f"Step 1 of the procedure.\nANSWER: {it.references[0]}", f"It is {it.references[0]}."
            elif it.kind == "false_premise":
                r1, r0 = "It happened in 1815.\nANSWER: 1815", f"Actually, that is a misconception. {it.correction}"
            else:
                r1 = "As an AI, I hope this helps.\nANSWER: done"
                r0 = '{"name": "Ann", "age": 3}' if "JSON" in it.prompt else "Here you go."
            f.write(json.dumps({"task_uid": it.id, "condition": "probe", "response": r1, "student": "v1"}) + "\n")
            g.write(json.dumps({"task_uid": it.id, "condition": "probe", "response": r0, "student": "base"}) + "\n")
    (path / "pyproject.toml").write_text('[tool.skillbench.students.v1]\nbackend = "replay"\npath = "v1.jsonl"\n'
                                         'base_student = "base"\n[tool.skillbench.students.base]\n'
                                         'backend = "replay"\npath = "base.jsonl"\n')


def test_plugin_probe_adds_the_base_and_prints_a_table(pytester, capsys, monkeypatch):
    _replays(pytester.path)
    out = pytester.path / "r.json"
    res = pytester.runpytest_subprocess("-p", "no:randomly", "--student", "v1", "--probe", "generality",
                                        "--strict-markers", "-m", "probe", "--skillbench-json", str(out),
                                        "--skillbench-run-dir", str(pytester.path / "run"))
    n = len(load_probe())
    outcomes = res.parseoutcomes()
    assert outcomes["passed"] + outcomes["failed"] == 2 * n  # v1 and its base, one item per probe prompt
    report = json.loads(out.read_text())
    assert report["students"] == {}  # the bench was not run
    p = report["probe"]["students"]
    assert p["v1"]["format_locked"]["rate"] == 1.0 and p["base"]["format_locked"]["rate"] == 0.0
    assert p["v1"]["factual_hit"]["rate"] == 1.0
    assert p["v1"]["confabulated"]["rate"] == 1.0 and p["base"]["confabulated"]["rate"] == 0.0
    assert p["v1"]["phantom_skill"]["count"] == 22  # "Step 1 of the procedure" on every factual answer
    assert report["probe"]["against_base"]["v1"]["difference"]["format_locked"] == 1.0
    assert report["run"]["probe"]["system_prompt"].startswith("You are a helpful assistant")
    assert report["drift"]["students"]["v1"]["probe"]["slop_rate"] > 0
    text = res.stdout.str()
    assert "generality probe (60 prompts" in text and "- base" in text
    assert "probe_generality.jsonl::factual[v1-probe-fact-01]" in text or outcomes["failed"] > 0
    # the same table from the stored run, through the command line
    assert cli.main(["probe", str(pytester.path / "run")]) == 0
    assert "generality probe" in capsys.readouterr().out


@pytest.mark.slow
def test_probe_on_a_tiny_adapter_adds_its_base_model(pytester, tiny_model_dir, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
    ad = tmp_path / "v2"
    get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj"], init_lora_weights=False)).save_pretrained(str(ad))
    out = pytester.path / "r.json"
    pytester.runpytest_subprocess("-p", "no:randomly", "--student", str(ad), "--probe", "generality", "-k",
                                  "fact-01 or premise-01", "--max-new-tokens", "4",
                                  "--skillbench-cache", str(tmp_path / "cache"), "--skillbench-json", str(out))
    report = json.loads(out.read_text())
    p = report["probe"]
    assert set(p["students"]) == {"v2", "v2@base"}
    assert p["against_base"]["v2"]["base"] == "v2@base"
    assert all(e["answered"] == 2 and e["mean_tokens"] is not None for e in p["students"].values())
