"""CI gates: syntax, evaluation, non-inferiority against a student or a committed baseline, exit codes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import write_replay
from pytest_skillbench.baseline import read_baseline
from pytest_skillbench.bench import load_bench
from pytest_skillbench.cli import main as cli_main
from pytest_skillbench.episodes import Episode, Verdict
from pytest_skillbench.errors import SkillbenchError
from pytest_skillbench.gates import GatePlan, Reference, evaluate, parse_gate, render_gates

TASKS = load_bench("bundled").split("holdout")
SKILLS = sorted({t.skill for t in TASKS})
KW = {"students": ["v2.0", "v2.1"], "skills": SKILLS, "categories": ["logical", "rhetorical"]}


# -- syntax -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text,metric,op,thr,scope", [
    ("curated.pass_rate>=0.85", "curated.pass_rate", ">=", 0.85, {}),
    ("delta>=0", "delta.value", ">=", 0.0, {}),
    ("delta.ci95.low>0", "delta.ci95.low", ">", 0.0, {}),
    (" baseline.format_compliance >= 90% ", "baseline.format_compliance", ">=", 0.9, {}),
    ("skill:modus-ponens.curated.pass_rate>=0.6", "curated.pass_rate", ">=", 0.6, {"skill": "modus-ponens"}),
    ("category:logical.delta>=0", "delta.value", ">=", 0.0, {"category": "logical"}),
    ("student:v2.1.curated.errors==0", "curated.errors", "==", 0.0, {"student": "v2.1"}),
    ("student:v2.1.skill:modus-ponens.delta.p<0.05", "delta.p", "<", 0.05,
     {"student": "v2.1", "skill": "modus-ponens"}),
    ("against.curated.ci95.low>=-0.02", "against.curated.ci95.low", ">=", -0.02, {}),
])
def test_gate_syntax(text, metric, op, thr, scope):
    g = parse_gate(text, **KW)
    assert (g.metric, g.op) == (metric, op) and g.threshold == pytest.approx(thr)
    for k, v in scope.items():
        assert getattr(g, k) == v


@pytest.mark.parametrize("text,why", [
    ("curated.passrate>=0.8", "unknown curated metric 'passrate'"),
    ("curated.pass_rate=>0.8", "expected METRIC OP NUMBER"),
    ("curated.pass_rate>=high", "expected METRIC OP NUMBER"),
    ("skill:no-such-skill.curated.pass_rate>=0.5", "unknown skill 'no-such-skill'"),
    ("student:v3.delta>=0", "not a student of this run"),
    ("accuracy>=0.5", "unknown metric 'accuracy'"),
    ("skill:modus-ponens>=0.5", "must be followed by '.'"),
])
def test_bad_gate_is_one_clear_error(text, why):
    with pytest.raises(SkillbenchError) as exc:
        parse_gate(text, **KW)
    msg = str(exc.value)
    assert why in msg and "gate syntax:" in msg and "\n" not in msg


def test_gate_needs_what_it_measures():
    with pytest.raises(SkillbenchError, match="delta needs both conditions"):
        parse_gate("delta>=0", conditions=["curated"])
    with pytest.raises(SkillbenchError, match="condition baseline is not run"):
        parse_gate("baseline.pass_rate>=0.5", conditions=["curated"])
    with pytest.raises(SkillbenchError, match="need --gate-against"):
        parse_gate("against.curated.diff>=0", has_reference=False)


# -- evaluation ---------------------------------------------------------------------------------------
def ep(student, cond, uid, status, skill="modus-ponens", category="logical"):
    return Episode(student=student, condition=cond, task_uid=uid, skill=skill, query_type="YES_NO",
                   response="x", category=category,
                   verdict=Verdict(status=status, format_ok=status in ("passed", "failed")))


def outcomes_eps(student, cond, values):
    return [ep(student, cond, f"t{i:03d}", "passed" if v else "failed") for i, v in enumerate(values)]


def test_evaluate_numbers_and_exit_codes():
    """Worked numbers: 60 tasks, baseline passes the first 24 (0.40), curated the first 45 (0.75), so 21 tasks
    pass curated only and none baseline only: delta 0.35, and the percentile-bootstrap lower bound is the
    2.5% quantile of Binomial(60, 0.35) / 60 = 14/60 (scipy's binom.ppf gives 14)."""
    from scipy.stats import binom

    base = np.arange(60) < 24
    cur = np.arange(60) < 45
    eps = outcomes_eps("s", "baseline", base) + outcomes_eps("s", "curated", cur)
    eps.append(ep("s", "curated", "t900", "unscored"))
    gates = ("curated.pass_rate>=0.6", "delta.ci95.low>0", "curated.unscored==1", "delta>=0.35")
    plan = GatePlan([parse_gate(g) for g in gates])
    sec = evaluate(plan, eps, {}, seed=7, resamples=2000)
    r = {x["gate"]: x for x in sec["results"]}
    assert r["curated.pass_rate>=0.6"]["value"] == pytest.approx(0.75) and r["curated.pass_rate>=0.6"]["passed"]
    assert r["delta>=0.35"]["value"] == pytest.approx(0.35) and r["delta>=0.35"]["passed"]
    assert binom.ppf(0.025, 60, 0.35) == 14
    assert r["delta.ci95.low>0"]["value"] == pytest.approx(14 / 60, abs=1 / 60)
    assert r["delta.ci95.low>0"]["passed"] is True
    assert r["curated.unscored==1"]["value"] == 1 and r["curated.unscored==1"]["passed"]
    assert sec["exit_code"] == 0
    sec = evaluate(GatePlan([parse_gate("curated.pass_rate>=0.8")]), eps, {}, seed=7, resamples=2000)
    assert sec["results"][0]["passed"] is False and sec["exit_code"] == 1
    # an episode in error: exit 3 whatever the gates say
    sec = evaluate(plan, eps + [ep("s", "baseline", "t901", "error")], {}, seed=7, resamples=2000)
    assert sec["exit_code"] == 3 and sec["errors"] == 1
    # no gates: the status is pytest's own unless something is in error
    assert evaluate(GatePlan([]), eps, {})["exit_code"] is None
    # a gate that cannot be computed fails
    sec = evaluate(GatePlan([parse_gate("skill:modus-ponens.delta>=0")]), [ep("s", "curated", "a", "passed")], {})
    assert sec["results"][0]["passed"] is False and "not computable" in sec["results"][0]["detail"]


def test_non_inferiority_per_condition_and_margin():
    """Worked numbers: the reference passes 70 of 100 curated tasks, the new adapter loses 8 of them: diff
    -0.08, lower bound -(97.5% quantile of Binomial(100, 0.08)) / 100 = -0.14; so margins 0 and 0.02 fail
    and 0.2 passes. Baseline is identical on both sides: CI [0, 0], always passes."""
    from scipy.stats import binom

    ref_b, ref_c = np.arange(100) < 60, np.arange(100) < 70
    new_b = ref_b.copy()
    new_c = ref_c.copy()
    new_c[:8] = False  # the new adapter loses 8 curated tasks
    assert binom.ppf(0.975, 100, 0.08) == 14
    expected = {0.0: False, 0.02: False, 0.2: True}
    eps = (outcomes_eps("new", "baseline", new_b) + outcomes_eps("new", "curated", new_c)
           + outcomes_eps("ref", "baseline", ref_b) + outcomes_eps("ref", "curated", ref_c))
    for margin in (0.0, 0.02, 0.2):
        plan = GatePlan([], Reference("ref", "run"), margin=margin)
        sec = evaluate(plan, eps, {}, seed=3, resamples=4000, students=["new", "ref"])
        res = {r["condition"]: r for r in sec["results"]}
        assert set(res) == {"baseline", "curated"} and all(r["student"] == "new" for r in res.values())
        assert res["curated"]["numbers"]["diff"] == pytest.approx(-0.08)
        assert res["curated"]["value"] == pytest.approx(-0.14, abs=0.015)
        assert res["curated"]["passed"] is expected[margin]
        assert res["baseline"]["passed"] and res["baseline"]["value"] == 0  # identical on baseline: CI [0, 0]
        assert sec["exit_code"] == (0 if expected[margin] else 1)
    lines = render_gates(sec)
    assert lines[0].startswith("skillbench exit status 0")
    assert lines[-1].startswith("gate PASS  non-inferiority new vs ref, curated: Δ -0.0")
    assert "margin 0.2" in lines[-1] and "n_pairs=100" in lines[-1]


# -- end to end -----------------------------------------------------------------------------------------
def run(pytester, *args):
    # in-process: these sessions only replay stored responses, and the imports are already paid for
    return pytester.runpytest_inprocess("-p", "no:randomly", "--skillbench-cache", str(pytester.path / "cache"),
                                        *args)


def section(res) -> list[str]:
    return res.stdout.str().split("= skillbench =", 1)[1].split("\n=")[0].rstrip().splitlines()


@pytest.fixture
def two_students(tmp_path):
    old = write_replay(tmp_path / "v2.0.jsonl", TASKS, student="v2.0", seed=11, p_right=0.6)
    new = write_replay(tmp_path / "v2.1.jsonl", TASKS, student="v2.1", seed=12, p_right=0.62)
    worse = write_replay(tmp_path / "v2.2.jsonl", TASKS, student="v2.2", seed=13, p_right=0.35)
    return old, new, worse


def test_bad_gate_on_the_command_line_is_a_usage_error(pytester, replay_file):
    res = run(pytester, "--student", f"replay:{replay_file}", "--gate", "curated.pass_rate>=lots")
    assert res.ret == 4
    err = res.stderr.str()
    assert err.count("skillbench:") == 1 and "--gate 'curated.pass_rate>=lots'" in err and "Traceback" not in err
    res = run(pytester, "--student", f"replay:{replay_file}", "--gate-against", "nowhere.json")
    assert res.ret == 4 and "--gate-against nowhere.json: not a student of this run" in res.stderr.str()


def test_gates_pass_despite_failed_tasks_then_fail(pytester, replay_file):
    out = pytester.path / "r.json"
    res = run(pytester, "--student", f"replay:{replay_file}", "--gate", "curated.pass_rate>=0.3",
              "--gate", "skill:modus-ponens.baseline.n==5", "--skillbench-json", str(out), "-q")
    assert res.parseoutcomes()["failed"] > 0 and res.ret == 0  # tasks failed, every gate holds
    lines = section(res)
    assert lines[-3] == "skillbench exit status 0: every gate holds"
    assert lines[-2].startswith("gate PASS  curated.pass_rate>=0.3 [toy]: 0.")
    assert lines[-1].startswith("gate PASS  skill:modus-ponens.baseline.n==5 [toy]: 5")
    rep = json.loads(out.read_text())
    assert rep["gates"]["passed"] is True and len(rep["gates"]["results"]) == 2
    # -k narrows the gates: with one skill selected the same gate sees 5 baseline items
    res = run(pytester, "--student", f"replay:{replay_file}", "--gate", "baseline.n==5", "-k", "modus_ponens", "-q")
    assert res.ret == 0
    res = run(pytester, "--student", f"replay:{replay_file}", "--gate", "curated.pass_rate>=0.99", "-q")
    assert res.ret == 1 and section(res)[-1].startswith("gate FAIL  curated.pass_rate>=0.99 [toy]")


def test_non_inferiority_against_student_and_committed_baseline(pytester, two_students, monkeypatch, capsys):
    old, new, worse = two_students
    run_dir = pytester.path / "runs" / "v2.0"
    run(pytester, "--student", f"replay:{old}", "--skillbench-run-dir", str(run_dir), "-q")
    base = pytester.path / "baselines" / "v2.0.json"
    assert cli_main(["baseline", "save", str(run_dir), "--out", str(base)]) == 0
    assert "baseline written to" in capsys.readouterr().out
    data = read_baseline(base)
    assert data["students"] == ["v2.0"] and len(data["items"]) == 400 and data["manifest"]["bench_hash"]
    assert set(data["items"][0]) >= {"task_uid", "condition", "status", "expected", "extracted"}
    assert cli_main(["baseline", "show", str(base)]) == 0

    # reference in the run vs reference from the committed file: the same paired numbers
    out_a, out_b = pytester.path / "a.json", pytester.path / "b.json"
    ra = run(pytester, "--student", f"replay:{old}", "--student", f"replay:{new}", "--gate-against", "v2.0",
             "--gate-margin", "0.1", "--skillbench-json", str(out_a), "-q")
    rb = run(pytester, "--student", f"replay:{new}", "--gate-against", str(base), "--gate-margin", "0.1",
             "--skillbench-json", str(out_b), "-q")
    ga = json.loads(out_a.read_text())["gates"]["results"]
    gb = json.loads(out_b.read_text())["gates"]["results"]
    assert [r["student"] for r in ga] == ["v2.1", "v2.1"] and [r["condition"] for r in ga] == ["baseline", "curated"]
    assert [r["numbers"] for r in ga] == [r["numbers"] for r in gb]
    assert [r["passed"] for r in ga] == [r["passed"] for r in gb] and ra.ret == rb.ret
    assert ra.ret == (0 if all(r["passed"] for r in ga) else 1)
    assert section(rb)[-1].startswith(f"gate {'PASS' if gb[-1]['passed'] else 'FAIL'}  non-inferiority v2.1 vs "
                                      f"v2.0 ({base}), curated:")

    # a clearly worse adapter fails non-inferiority
    rw = run(pytester, "--student", f"replay:{worse}", "--gate-against", str(base), "--gate-margin", "0.02", "-q")
    assert rw.ret == 1
    assert any(line.startswith("gate FAIL  non-inferiority v2.2 vs v2.0") for line in section(rw))


def test_matched_path_guard_applies_to_the_reference(pytester, tmp_path):
    tasks = TASKS[:20]

    def replay(name, dtype):
        p = tmp_path / f"{name}.jsonl"
        with open(p, "w") as fh:
            fh.writelines(json.dumps({"task_uid": t.task_uid, "condition": cond, "student": name,
                                      "response": f"ANSWER: {t.answer}",
                                      "path": {"backend": "hf", "dtype": dtype}}) + "\n"
                          for t in tasks for cond in ("baseline", "curated"))
        return p

    a, b = replay("ref", "float32"), replay("new", "bfloat16")
    res = run(pytester, "--student", f"replay:{a}", "--student", f"replay:{b}", "--gate-against", "ref")
    assert res.ret == 4
    assert "dtype: bfloat16 vs float32" in res.stderr.str() or "dtype: float32 vs bfloat16" in res.stderr.str()
    res = run(pytester, "--student", f"replay:{a}", "--student", f"replay:{b}", "--gate-against", "ref",
              "--allow-path-mismatch", "-k", " or ".join(t.task_uid for t in tasks))
    assert res.ret == 0
    assert "[PATH MISMATCH: dtype" in section(res)[-1]
