"""Analysis from stored episodes: SFT contribution, comparisons, multiplicity, per skill, provenance guard,
diagnostics, import, offline report and plots (in-process; the plugin end-to-end is in test_plugin_analysis)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_skillbench import analysis, load_episodes, stats
from pytest_skillbench.cli import main
from pytest_skillbench.diagnostics import apply_thinking, phantom_rate, phantom_skill_mention
from pytest_skillbench.episodes import Episode, Verdict, write_episodes
from pytest_skillbench.errors import SkillbenchError
from pytest_skillbench.provenance import check_paths, inference_path, path_differences, student_provenance
from pytest_skillbench.report.offline import import_run, report_from_runs
from pytest_skillbench.report.summary import build_report
from pytest_skillbench.report.terminal import render, render_analysis, render_per_skill
from pytest_skillbench.runs.importer import convert
from pytest_skillbench.runs.store import COLUMNS

PAPER = Path(__file__).resolve().parents[2] / "shared" / "reference" / "paper-statistics.json"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
R = 2000  # resamples for fast in-process checks


def make_eps(student, base, cur, skills=None, uids=None, responses=None):
    """Episodes of one student from per-task 0/1 outcomes (None = unscored) in both conditions."""
    n = len(base)
    uids = uids or [f"t{i:03d}" for i in range(n)]
    skills = skills or ["s"] * n
    out = []
    for cond, vals in (("baseline", base), ("curated", cur)):
        for i, v in enumerate(vals):
            status = "unscored" if v is None else ("passed" if v else "failed")
            resp = (responses or {}).get((cond, i), "ANSWER: x")
            out.append(Episode(student=student, condition=cond, task_uid=uids[i], skill=skills[i],
                               query_type="YES_NO", response=resp,
                               verdict=Verdict(status=status, format_ok=v is not None)))
    return out


def manifest_for(paths: dict, judge=None, **kw) -> dict:
    return {"students": {n: {"spec": {"name": n, "backend": p.get("backend", "hf")}, "path": p}
                         for n, p in paths.items()},
            "judge": judge or {"mode": "deterministic", "backend": "deterministic"}, **kw}


HF = {"backend": "hf", "dtype": "bfloat16", "quantization": None, "chat_template": "abc",
      "generation": {"do_sample": False, "max_new_tokens": 512, "repetition_penalty": 1.05, "thinking": "keep"}}


# -- statistics: worked numbers and properties not covered in test_stats ----------------------------------------
def test_sft_contribution_worked_example():
    # student: baseline 1,1,0,0 curated 1,1,1,0 ; base: baseline 1,0,0,0 curated 0,1,0,0
    s = make_eps("s", [1, 1, 0, 0], [1, 1, 1, 0])
    b = make_eps("b", [1, 0, 0, 0], [0, 1, 0, 0])
    r = analysis.sft_contribution(s, b, seed=1, resamples=R)
    assert r["baseline_lift"]["value"] == pytest.approx(0.25)   # 0.50 - 0.25
    assert r["curated_lift"]["value"] == pytest.approx(0.5)     # 0.75 - 0.25
    assert r["delta_lift"]["value"] == pytest.approx(0.25)      # Δs 0.25 - Δb 0.0
    assert r["student_delta"] == pytest.approx(0.25) and r["base_delta"] == pytest.approx(0.0)
    for key in ("baseline_lift", "curated_lift", "delta_lift"):
        lo, hi = r[key]["ci95"]
        assert lo <= r[key]["value"] <= hi and r[key]["n"] == 4


def test_sft_contribution_uses_only_tasks_scored_on_both_sides():
    s = make_eps("s", [1, None, 0], [1, 1, 1])
    b = make_eps("b", [0, 0, 0], [0, 0, None])
    r = analysis.sft_contribution(s, b, seed=1, resamples=R)
    assert r["baseline_lift"]["n"] == 2 and r["baseline_lift"]["value"] == pytest.approx(0.5)
    assert r["curated_lift"]["n"] == 2 and r["curated_lift"]["value"] == pytest.approx(1.0)
    assert r["delta_lift"]["n"] == 1  # only t000 is scored in all four cells


@pytest.mark.skipif(not PAPER.is_file(), reason="../shared reference data not present")
def test_reproduces_published_sft_contribution():
    paper = json.loads(PAPER.read_text())
    for row in paper["sft_contribution_llm_only"]:
        n = 200

        def arr(rate, n=n):
            k = round(rate * n)
            return [1] * k + [0] * (n - k)

        # the published table gives rates only: any pairing of tasks yields the same point estimates
        s = make_eps("post", arr(row["post"]["baseline"]), arr(row["post"]["curated"]))
        b = make_eps("pre", arr(row["pre"]["baseline"]), arr(row["pre"]["curated"]))
        r = analysis.sft_contribution(s, b, seed=1, resamples=R)
        assert r["delta_lift"]["value"] == pytest.approx(row["delta_lift"], abs=1e-9)
        assert r["baseline_lift"]["value"] == pytest.approx(row["post"]["baseline"] - row["pre"]["baseline"])
        assert r["curated_lift"]["value"] == pytest.approx(row["post"]["curated"] - row["pre"]["curated"])


def _paper_eps(model, row, uids):
    base, cur = stats.paired_table(row["a"], row["b"], row["c"], row["d"])
    return make_eps(model, list(base), list(cur), uids=uids)


@pytest.mark.skipif(not PAPER.is_file(), reason="../shared reference data not present")
def test_report_reproduces_published_paired_and_cross_model_figures():
    paper = json.loads(PAPER.read_text())
    p1, p2 = paper["paired"]
    uids = [f"t{i:03d}" for i in range(200)]
    eps = _paper_eps("v1.9", p1, uids) + _paper_eps("v2.0", p2, uids)
    rep = build_report(eps, manifest_for({"v1.9": HF, "v2.0": HF}))
    for name, row in (("v1.9", p1), ("v2.0", p2)):
        d = rep["students"][name]["delta"]
        assert d["value"] == pytest.approx(row["delta"])
        assert d["mcnemar"]["method"] == row["mcnemar"]["method"]
        assert d["mcnemar"]["p"] == pytest.approx(row["mcnemar"]["p"], rel=1e-3)
        assert d["ci95"][0] == pytest.approx(row["bootstrap_ci95"][0], abs=0.01)
        assert d["ci95"][1] == pytest.approx(row["bootstrap_ci95"][1], abs=0.01)
    (cmp,) = rep["comparisons"]
    ref = paper["cross_model"][0]
    assert (cmp["a"], cmp["b"]) == ("v1.9", "v2.0")
    assert cmp["difference"] == pytest.approx(ref["difference"])
    assert cmp["ci95"][0] == pytest.approx(ref["bootstrap_ci95"][0], abs=0.01)
    assert cmp["ci95"][1] == pytest.approx(ref["bootstrap_ci95"][1], abs=0.01)
    assert cmp["one_sided_p"] == pytest.approx(ref["one_sided_p"], abs=0.02)
    # two raw p values of 0.018 and 0.049: Holm keeps neither below 0.05 after adjustment (0.036, 0.049)
    mult = rep["multiplicity"]
    holm = {t["student"]: t["holm"] for t in mult["tests"]}
    assert holm["v1.9"] == pytest.approx(2 * p1["mcnemar"]["p"], rel=1e-3)
    assert holm["v2.0"] == pytest.approx(max(2 * p1["mcnemar"]["p"], p2["mcnemar"]["p"]), rel=1e-3)
    assert mult["survive_holm"] == ["v1.9", "v2.0"]
    assert mult["survive_bonferroni"] == ["v1.9"]


def test_multiplicity_worked_example():
    students = {n: {"delta": {"mcnemar": {"p": p}}} for n, p in (("a", 0.01), ("b", 0.04), ("c", 0.03))}
    m = analysis.multiplicity(students)
    by = {t["student"]: t for t in m["tests"]}
    assert by["a"]["holm"] == pytest.approx(0.03) and by["b"]["holm"] == pytest.approx(0.06)
    assert by["c"]["bonferroni"] == pytest.approx(0.09)
    assert m["survive_holm"] == ["a"] and m["survive_bonferroni"] == ["a"]
    assert all(t["significant_raw"] for t in m["tests"])


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=1, max_size=12))
def test_bonferroni_never_below_holm_and_holm_keeps_order(ps):
    h, b = stats.holm(ps), stats.bonferroni(ps)
    assert all(bb >= hh - 1e-12 for bb, hh in zip(b, h))
    order = sorted(range(len(ps)), key=lambda i: ps[i])
    assert all(h[order[i]] <= h[order[i + 1]] + 1e-12 for i in range(len(ps) - 1))


@settings(max_examples=25, deadline=None)
@given(st.lists(st.sampled_from([-1, 0, 1]), min_size=5, max_size=60),
       st.lists(st.sampled_from([-1, 0, 1]), min_size=5, max_size=60))
def test_cross_model_antisymmetric_and_p_in_unit_interval(a, b):
    x, y = np.array(a, float), np.array(b, float)
    ab, ba = stats.cross_model(x, y, resamples=500), stats.cross_model(y, x, resamples=500)
    assert ab["difference"] == pytest.approx(-ba["difference"])
    assert 0.0 <= ab["one_sided_p"] <= 1.0
    assert ab["ci95"][0] <= ab["ci95"][1]


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 2000), st.floats(0.0, 1.0))
def test_mde_within_unit_interval_and_not_increasing_in_n(n, disc):
    m1, m2 = stats.mde_paired(n, disc), stats.mde_paired(n * 4, disc)
    assert 0.0 < m1 <= 1.0 and m2 <= m1 + 1e-9


def test_mde_worked_number():
    # Connor: n = (za sqrt(pd) + zb sqrt(pd - d^2))^2 / d^2 ; for pd = 0.175, d = mde -> n = 200
    d = stats.mde_paired(200, 0.175)
    za, zb = 1.959963984540054, 0.8416212335729143
    assert (za * np.sqrt(0.175) + zb * np.sqrt(0.175 - d * d)) ** 2 / (d * d) == pytest.approx(200, rel=1e-4)
    assert d == pytest.approx(0.0824, abs=5e-4)  # by hand: d^2 = .00679, (.8199 + .3452)^2 / d^2 = 199.9


def test_clustered_se_worked_example():
    # two clusters: A = [1, 1], B = [0, 1]; p = 0.75; residual sums A +0.5, B -0.5; G/(G-1) = 2
    # se = sqrt(2 * (0.25 + 0.25)) / 4 = 0.25
    se = stats.clustered_se(np.array([1, 1, 0, 1]), ["A", "A", "B", "B"])
    assert se == pytest.approx(0.25)
    assert stats.clustered_se(np.array([1, 0]), ["A", "A"]) is None


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("abcde"), st.booleans()), min_size=2, max_size=60))
def test_clustered_se_nonnegative(rows):
    se = stats.clustered_se(np.array([r[1] for r in rows], float), [r[0] for r in rows])
    assert se is None or se >= 0.0


def test_spearman_ties_and_degenerate():
    assert stats.spearman([0.2, 0.2, 0.2], [0.1, 0.0, -0.1])["rho"] is None
    r = stats.spearman([0.0, 0.2, 0.2, 0.4, 0.4, 0.4], [0.5, 0.3, 0.2, 0.0, -0.1, -0.2])
    assert r["tied_x"] == 3 and r["rho"] < 0


@settings(max_examples=30, deadline=None)
@given(st.lists(st.sampled_from([-1, 0, 1]), min_size=1, max_size=40))
def test_paired_bootstrap_ci_ordered_and_within_range(diffs):
    d = np.array(diffs, float)
    lo, hi = stats.paired_bootstrap(d, resamples=500)
    assert d.min() - 1e-12 <= lo <= hi <= d.max() + 1e-12


# -- per skill -------------------------------------------------------------------------------------------------
def test_per_skill_tables_groups_and_spearman():
    skills = ["p"] * 2 + ["q"] * 2 + ["r"] * 2 + ["s"] * 2
    base = [0, 0, 1, 0, 1, 1, 1, 0]
    cur = [1, 1, 1, 0, 0, 1, 1, 0]
    ps = analysis.per_skill(make_eps("x", base, cur, skills=skills))
    sk = ps["skills"]
    assert sk["p"]["baseline"]["pass_rate"] == 0.0 and sk["p"]["curated"]["pass_rate"] == 1.0
    assert sk["p"]["delta"] == pytest.approx(1.0) and sk["p"]["group"] == "lift"
    assert sk["q"]["delta"] == 0 and sk["q"]["group"] == "flat"
    assert sk["r"]["delta"] == pytest.approx(-0.5) and sk["r"]["group"] == "regression"
    assert ps["groups"] == {"lift": ["p"], "flat": ["q", "s"], "regression": ["r"]}
    sp = ps["spearman_baseline_vs_delta"]
    from scipy import stats as sst

    assert sp["rho"] == pytest.approx(sst.spearmanr([0, 0.5, 1, 0.5], [1, 0, -0.5, 0]).statistic)
    assert sp["n"] == 4 and sp["tied_x"] == 1
    assert ps["clustered_se"]["baseline"] == pytest.approx(
        stats.clustered_se(np.array(base, float), skills))


# -- provenance and the matched-path guard ---------------------------------------------------------------------
def test_path_differences_name_each_field():
    other = {**HF, "backend": "llama.cpp", "quantization": "Q4_K_M",
             "generation": {**HF["generation"], "max_new_tokens": 256}}
    diffs = path_differences(inference_path(manifest_for({"a": HF}), "a"),
                             inference_path(manifest_for({"b": other}), "b"))
    assert "backend: hf vs llama.cpp" in diffs
    assert "quantization: unknown vs Q4_K_M" in diffs
    assert "generation.max_new_tokens: 512 vs 256" in diffs
    assert len(diffs) == 3


def test_judge_is_part_of_the_path():
    a = inference_path(manifest_for({"a": HF}), "a")
    b = inference_path(manifest_for({"a": HF}, judge={"mode": "llm-only", "backend": "anthropic", "model": "m"}), "a")
    assert any(d.startswith("judge.mode") for d in path_differences(a, b))
    with pytest.raises(SkillbenchError, match="judge.backend: deterministic vs anthropic"):
        check_paths("cross-model", "a", a, "b", b, allow=False)
    assert check_paths("cross-model", "a", a, "b", b, allow=True)


def test_replay_original_path_is_used():
    prov = student_provenance({"backend": "replay"}, {"backend": "replay", "file": "x.jsonl",
                                                      "original_backend": "hf", "original_dtype": "bfloat16"})
    assert prov["backend"] == "hf" and prov["dtype"] == "bfloat16" and prov["replayed_from"] == "x.jsonl"


def _two_students_mismatched():
    eps = make_eps("s", [1, 0, 0, 1], [1, 1, 1, 1]) + make_eps("b", [1, 0, 0, 0], [1, 0, 1, 0])
    man = manifest_for({"s": HF, "b": {**HF, "dtype": "float32"}}, sft_pairs=["s=b"])
    return eps, man


def test_sft_pair_with_mismatched_paths_is_refused():
    eps, man = _two_students_mismatched()
    with pytest.raises(SkillbenchError) as exc:
        build_report(eps, man, resamples=R)
    assert "dtype: bfloat16 vs float32" in str(exc.value) and "--allow-path-mismatch" in str(exc.value)
    rep = build_report(eps, man, resamples=R, strict=False)
    assert "refused" in rep["sft_contribution"]["s"]
    assert "refused" in rep["comparisons"][0] and "difference" not in rep["comparisons"][0]
    assert any("REFUSED" in line for line in render(rep))


def test_allow_path_mismatch_flags_every_affected_line():
    eps, man = _two_students_mismatched()
    rep = build_report(eps, man, resamples=R, allow_path_mismatch=True)
    sft = rep["sft_contribution"]["s"]
    assert sft["path_mismatch"] == ["dtype: bfloat16 vs float32"]
    assert sft["delta_lift"]["value"] == pytest.approx(0.5 - 0.25)
    assert rep["comparisons"][0]["path_mismatch"] == ["dtype: bfloat16 vs float32"]
    flagged = [line for line in render(rep) if "PATH MISMATCH" in line]
    assert len(flagged) == 2 and all("dtype" in line for line in flagged)


def test_matched_paths_are_not_flagged():
    eps, man = _two_students_mismatched()
    man["students"]["b"]["path"] = dict(HF)
    rep = build_report(eps, man, resamples=R)
    assert "path_mismatch" not in rep["sft_contribution"]["s"] and "path_mismatch" not in rep["comparisons"][0]


def test_base_student_in_registry_declares_the_pair():
    eps, man = _two_students_mismatched()
    del man["sft_pairs"]
    man["students"]["b"]["path"] = dict(HF)
    man["students"]["s"]["spec"]["base_student"] = "b"
    rep = build_report(eps, man, resamples=R)
    assert rep["sft_contribution"]["s"]["base"] == "b"


def test_template_warning_when_adapter_trained_with_another_template():
    eps = make_eps("s", [1, 0], [1, 1])
    man = manifest_for({"s": {**HF, "trained_chat_template": "zzz"}})
    rep = build_report(eps, man, resamples=R)
    (w,) = rep["diagnostics"]["template_warnings"]
    assert w["student"] == "s" and w["trained_chat_template"] == "zzz" and w["chat_template"] == "abc"
    assert any(line.startswith("WARNING: s: adapter was trained with chat template zzz") for line in render(rep))


# -- diagnostics -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("policy,text,expected", [
    ("keep", "<think>x</think>ANSWER: yes", "<think>x</think>ANSWER: yes"),
    ("strip", "<think>ANSWER: no</think>\nANSWER: yes", "ANSWER: yes"),
    ("strip", "<THINK>a</THINK> b <think>c</think> ANSWER: yes", "b  ANSWER: yes"),
    ("strip", "thinking without opening tag</think>\nANSWER: yes", "ANSWER: yes"),
    ("strip", "ANSWER: yes\n<think>unfinished", "ANSWER: yes"),
    ("disable", "<think>\n\n</think>\n\nANSWER: no", "ANSWER: no"),
])
def test_thinking_policy(policy, text, expected):
    out, removed = apply_thinking(text, policy)
    assert out == expected and removed == len(text) - len(expected)


@pytest.mark.parametrize("text,hit", [
    ("Following the SKILL block, step 1: list the premises.\nANSWER: yes", True),
    ("Per the skill's procedure I check each premise.", True),
    ("Step 2 of the procedure: eliminate.", True),
    ("No SKILL block is included, so I reason directly.\nANSWER: yes", False),
    ("The passage says the lawn is wet, so it rained.\nANSWER: yes", False),
])
def test_phantom_skill_mention(text, hit):
    assert (phantom_skill_mention(text) is not None) == hit


def test_phantom_rate_counts_baseline_only_and_verbatim_steps():
    from pytest_skillbench.bench import bundled_dir, load_catalog

    cat = load_catalog(bundled_dir("catalog"))
    step = cat["abductive-reasoning"].procedure[0]
    responses = {("baseline", 0): f"First: {step}\nANSWER: yes", ("baseline", 1): "Plain.\nANSWER: no",
                 ("curated", 1): "Following the SKILL procedure.\nANSWER: no"}
    eps = make_eps("x", [1, 0], [1, 1], skills=["abductive-reasoning"] * 2, responses=responses)
    r = phantom_rate(eps, cat)
    assert r["n"] == 2 and r["count"] == 1 and r["rate"] == 0.5
    assert r["examples"][0]["mention"].startswith("procedure step:")


# -- import, load_episodes, offline report, plots -------------------------------------------------------------
def test_import_reference_fixture(tmp_path):
    out = tmp_path / "run"
    rep = import_run(FIXTURES / "ref_run", out, bench="bundled-v1", resamples=R)  # the fixture holds v1 uids
    assert {p.name for p in out.iterdir()} >= {"episodes.jsonl", "manifest.json", "report.json"}
    c = rep["students"]["qwen-0.8b"]["conditions"]["curated"]
    assert c["errors"] == 1 and c["failed"] == 0 and c["passed"] == 2  # judge failure: error, not failed
    assert rep["run"]["import"]["errors"] == 1
    assert rep["run"]["reference_summary"]["note"] == "hand-written fixture"
    df = load_episodes(out)
    assert len(df) == 12 and set(df["student"]) == {"qwen-0.8b", "qwen-0.8b-sft"}
    err = df[df["status"] == "error"]
    assert len(err) == 1 and err.iloc[0]["rationale"].startswith("judge evaluation failed:")
    assert np.isnan(err.iloc[0]["passed"])
    known = df[df["task_uid"] == "acb6-3b64-5d16-48c1"].iloc[0]
    assert known["query_type"] == "YES_NO" and known["category"] == "logical"
    assert df["gen_tokens"].eq(42).all()


def test_import_errors_are_clear(tmp_path):
    bad = tmp_path / "episodes.json"
    bad.write_text(json.dumps([{"task_uid": "t", "model": "m", "condition": "baseline"}]))
    with pytest.raises(SkillbenchError, match=r"\[0\]\.passed"):
        convert(bad)
    bad.write_text("{}")
    with pytest.raises(SkillbenchError, match="JSON array"):
        convert(bad)


def test_import_several_modes_become_separate_students(tmp_path):
    rows = json.loads((FIXTURES / "ref_run" / "episodes.json").read_text())
    rows += [{**r, "mode": "llm-only"} for r in rows]
    (tmp_path / "episodes.json").write_text(json.dumps(rows))
    eps, man = convert(tmp_path)
    assert {e.student for e in eps} == {f"{m}[{j}]" for m in ("qwen-0.8b", "qwen-0.8b-sft")
                                        for j in ("deterministic-mixed", "llm-only")}
    eps, _ = convert(tmp_path, mode="llm-only")
    assert {e.student for e in eps} == {"qwen-0.8b", "qwen-0.8b-sft"}


def test_report_cli_on_a_run_dir(tmp_path, capsys):
    run = tmp_path / "run"
    import_run(FIXTURES / "ref_run", run, resamples=R)
    out, plots = tmp_path / "r.json", tmp_path / "plots"
    rc = main(["report", str(run), "--json", str(out), "--plots", str(plots), "--resamples", str(R),
               "--sft-pair", "qwen-0.8b-sft=qwen-0.8b", "--per-skill"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "SFT contribution qwen-0.8b-sft over qwen-0.8b" in text and "per skill: qwen-0.8b" in text
    rep = json.loads(out.read_text())
    for key in ("students", "run", "sft_contribution", "comparisons", "multiplicity", "per_skill", "diagnostics",
                "provenance"):
        assert key in rep
    sft = rep["sft_contribution"]["qwen-0.8b-sft"]
    assert sft["base"] == "qwen-0.8b" and set(sft) >= {"baseline_lift", "curated_lift", "delta_lift"}
    assert sft["baseline_lift"]["value"] == pytest.approx(2 / 3 - 1 / 3)
    assert set(sft["delta_lift"]) == {"value", "ci95", "n"}
    (cmp,) = rep["comparisons"]
    assert set(cmp) >= {"a", "b", "difference", "ci95", "one_sided_p"}
    pngs = sorted(p.name for p in plots.glob("*.png"))
    assert "pass_rates.png" in pngs and "delta_series.png" in pngs
    assert "skill_delta_qwen-0.8b.png" in pngs and "skill_delta_vs_baseline_qwen-0.8b-sft.png" in pngs
    for p in plots.glob("*.png"):
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 2000


def test_report_cli_refuses_mismatched_sft_pair(tmp_path, capsys):
    eps, man = _two_students_mismatched()
    run = tmp_path / "run"
    run.mkdir()
    write_episodes(run / "episodes.jsonl", eps)
    (run / "manifest.json").write_text(json.dumps(man))
    assert main(["report", str(run), "--resamples", str(R)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "dtype: bfloat16 vs float32" in err
    assert main(["report", str(run), "--resamples", str(R), "--allow-path-mismatch"]) == 0
    assert "PATH MISMATCH: dtype: bfloat16 vs float32" in capsys.readouterr().out


def test_report_across_runs_finds_the_stored_base_and_renames_duplicates(tmp_path):
    runs = tmp_path / "runs"
    s_eps = make_eps("s", [1, 1, 0, 0], [1, 1, 1, 0])
    b_eps = make_eps("b", [1, 0, 0, 0], [0, 1, 0, 0])
    for name, eps, man in (("r1", b_eps, manifest_for({"b": HF})),
                           ("r2", s_eps, manifest_for({"s": {**HF}}, sft_pairs=["s=b"]))):
        (runs / name).mkdir(parents=True)
        write_episodes(runs / name / "episodes.jsonl", eps)
        (runs / name / "manifest.json").write_text(json.dumps(man))
    # only r2 given: the base comes from the stored run beside it
    rep, _ = report_from_runs([runs / "r2"], resamples=R)
    sft = rep["sft_contribution"]["s"]
    assert sft["base_run"] == str(runs / "r1") and sft["delta_lift"]["value"] == pytest.approx(0.25)
    # both given: one report; a student in two runs is told apart by run
    rep, eps = report_from_runs([runs / "r1", runs / "r2", runs / "r1"], resamples=R)
    assert set(rep["students"]) == {"b@r1", "b@r1'", "s"}
    rep, _ = report_from_runs([runs / "r1", runs / "r2"], resamples=R)
    assert rep["sft_contribution"]["s"]["base"] == "b" and "base_run" not in rep["sft_contribution"]["s"]
    assert rep["comparisons"][0]["a"] == "b"


def test_load_episodes_frame(tmp_path):
    eps = make_eps("x", [1, None, 0], [1, 1, 0])
    f = tmp_path / "e.jsonl"
    write_episodes(f, eps)
    df = load_episodes(f)
    assert list(df.columns) == list(COLUMNS) and len(df) == 6
    assert df["scored"].sum() == 5 and df["passed"].sum() == 3
    both = load_episodes([f, f])
    assert len(both) == 12
    with pytest.raises(SkillbenchError, match="no such run"):
        load_episodes(tmp_path / "missing")


def test_render_per_skill_lists_every_skill():
    rep = build_report(make_eps("x", [1, 0, 0], [1, 1, 0], skills=["a", "b", "c"]), {}, resamples=R)
    lines = render_per_skill(rep)
    assert sum(line.strip().split()[0] in ("a", "b", "c") for line in lines if line.startswith("  ")) == 3


def test_delta_series_follows_run_order_and_rejects_unknown_names(tmp_path):
    from pytest_skillbench.plots import plot_delta_series

    eps = make_eps("z", [1, 0, 0], [1, 1, 0]) + make_eps("a", [1, 1, 0], [1, 0, 0])
    rep = build_report(eps, manifest_for({"z": HF, "a": HF}), resamples=R)
    assert list(rep["students"]) == ["a", "z"]  # the report is alphabetical, the series is not
    assert plot_delta_series(rep, tmp_path / "s.png").stat().st_size > 2000
    with pytest.raises(SkillbenchError, match="unknown student"):
        plot_delta_series(rep, tmp_path / "t.png", series=["z", "nope"])


def test_comparisons_cover_every_pair_up_to_ten_students_then_adjacent_ones():
    uids = [f"t{i:03d}" for i in range(20)]

    def run(k):
        eps, paths = [], {}
        for s in range(k):
            base = [(i + s) % 2 for i in range(20)]
            cur = [(i + s) % 3 > 0 for i in range(20)]
            eps += make_eps(f"s{s:02d}", base, [int(c) for c in cur], uids=uids)
            paths[f"s{s:02d}"] = HF
        return build_report(eps, manifest_for(paths), resamples=200)

    small = run(4)
    assert small["comparisons_scope"] == "all-pairs" and len(small["comparisons"]) == 6
    edge = run(analysis.ALL_PAIRS_MAX)
    assert len(edge["comparisons"]) == analysis.ALL_PAIRS_MAX * (analysis.ALL_PAIRS_MAX - 1) // 2
    big = run(analysis.ALL_PAIRS_MAX + 2)
    assert big["comparisons_scope"] == "adjacent"
    assert [(c["a"], c["b"]) for c in big["comparisons"]] == [(f"s{i:02d}", f"s{i + 1:02d}")
                                                              for i in range(analysis.ALL_PAIRS_MAX + 1)]
    assert "each student with the next one" in "\n".join(render(big) + render_analysis(big))


def test_sft_line_says_why_it_is_empty():
    empty = {"value": None, "ci95": None, "n": 0}
    rep = {"sft_contribution": {"s": {"base": "b", "baseline_lift": empty, "curated_lift": empty,
                                      "delta_lift": empty}}}
    line = next(x for x in render_analysis(rep) if x.startswith("SFT contribution"))
    assert "no task scored for both the student and its base" in line
    some = {"value": 0.1, "ci95": [0.0, 0.2], "n": 5}
    rep["sft_contribution"]["s"].update(baseline_lift=some)
    line = next(x for x in render_analysis(rep) if x.startswith("SFT contribution"))
    assert "no task scored" not in line and "+10.0" in line
