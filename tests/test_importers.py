import json
from pathlib import Path

import pytest

from pytest_skillbench.bench import load_bench, load_catalog
from pytest_skillbench.bench.importers import import_reference_tasks
from pytest_skillbench.errors import SkillbenchError

FIX = Path(__file__).parent / "fixtures"
REF = Path(__file__).resolve().parents[2] / "shared" / "reference" / "skillsbench-holdout"


def test_reference_skills_import_and_render():
    cat = load_catalog(FIX / "ref_skills.json")
    assert cat.names() == ["ad-hominem", "emotional-self-regulation", "modus-ponens"]
    mp = cat["modus-ponens"]
    assert mp.positive.case.startswith("If rain then wet; rain") and mp.negative.why == "affirms the consequent."
    assert cat["emotional-self-regulation"].category == "theory-of-mind"
    # empty sections are left out of the SKILL block
    assert cat["emotional-self-regulation"].render() == ("--- SKILL: emotional-self-regulation ---\nd\n"
                                                         "--- END SKILL ---")


def test_reference_tasks_import_field_mapping():
    b = load_bench(FIX / "ref_tasks.json", FIX / "ref_skills.json")
    tasks = b.split("holdout")
    assert [t.task_uid for t in tasks] == ["aaaa-bbbb-cccc-0001", "aaaa-bbbb-cccc-0002"]
    t = tasks[0]
    assert t.passage.startswith("If the switch is up") and t.answer == "yes" and t.skill == "modus-ponens"
    assert t.must_identify == ("the conditional", "antecedent affirmed")
    assert tasks[1].query_type == "RANKING" and tasks[1].difficulty == "advanced"


def test_reference_task_with_unknown_skill(tmp_path):
    data = json.loads((FIX / "ref_tasks.json").read_text())
    data[1]["acceptance_criteria"]["skill_names"] = ["palmistry"]
    p = tmp_path / "t.json"
    p.write_text(json.dumps(data))
    with pytest.raises(SkillbenchError, match="unknown skill 'palmistry'") as ei:
        import_reference_tasks(p, load_catalog(FIX / "ref_skills.json"))
    assert ei.value.field == "[1].acceptance_criteria.skill_names[0]"


@pytest.mark.skipif(not REF.is_dir(), reason="../shared reference data not present")
def test_real_reference_holdout_imports():
    b = load_bench(REF / "tasks_eval.json", REF / "skills.json")
    tasks = b.split("holdout")
    assert len(tasks) == 200
    assert len(b.catalog) == 40
    assert {t.skill for t in tasks} == set(b.catalog.names())


@pytest.mark.skipif(not REF.is_dir(), reason="../shared reference data not present")
def test_plugin_runs_on_the_reference_bench(pytester, tmp_path):
    tasks = json.loads((REF / "tasks_eval.json").read_text())
    f = tmp_path / "ref.jsonl"
    f.write_text("\n".join(json.dumps({"task_uid": t["task_uid"], "condition": c,
                                       "response": f"ANSWER: {t['output']}"}) for t in tasks
                           for c in ("baseline", "curated")))
    out = tmp_path / "r.json"
    pytester.runpytest_subprocess("--student", f"replay:{f}", "--bench", str(REF / "tasks_eval.json"),
                                  "--catalog", str(REF / "skills.json"), "--skillbench-json", str(out), "-q")
    rep = json.loads(out.read_text())["students"]["ref"]["conditions"]["baseline"]
    # every gold echoed back passes, including non-letter RANKING golds; FREE_FORM stays unscored
    n_ff = sum(t["query_type"] == "FREE_FORM" for t in tasks)
    assert rep["n"] == 200 and rep["failed"] == 0 and rep["unscored"] == n_ff


def test_validate_cli_json(capsys):
    from pytest_skillbench.cli import main

    status = main(["validate", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert status == (1 if out["violations"] else 0)  # the limits themselves: tests/test_bench_v2.py
    assert out["skills"] == 40 and out["splits"] == {"holdout": 200, "train": 200}
    assert set(out["query_types"]) == {"YES_NO", "FREE_FORM", "SINGLE_WORD", "RANKING"}
    assert 0.4 <= out["yes_share"] <= 0.6 and out["errors"] == []


def test_validate_cli_reports_errors(tmp_path, capsys):
    from pytest_skillbench.cli import main

    (tmp_path / "holdout.jsonl").write_text('{"broken": \n')
    assert main(["validate", str(tmp_path), "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert len(out["errors"]) == 1 and "holdout.jsonl:1" in out["errors"][0]
