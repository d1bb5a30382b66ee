"""The analysis sections through real pytest sessions (pytester, in process) with replay students:
SFT pairs, the matched-path guard at session start, stored base runs, thinking policy, manifest, phantom rate."""

from __future__ import annotations

import json
import sys

import pytest

from conftest import write_replay
from pytest_skillbench.bench.tasks import write_tasks

PATH_BF16 = {"backend": "hf", "dtype": "bfloat16", "chat_template": "t1",
             "generation": {"do_sample": False, "max_new_tokens": 512, "repetition_penalty": 1.05}}


def run(pytester, *args):
    return pytester.runpytest_inprocess("-p", "no:randomly", *args)


@pytest.fixture
def small(pytester, bundled_bench):
    """A 30-task bench file and a fast bootstrap, so each session takes about a second."""
    tasks = bundled_bench.split("holdout")[:30]
    write_tasks(pytester.path / "holdout.jsonl", tasks)
    pytester.makepyprojecttoml('[tool.skillbench]\nresamples = 500\nbench = "holdout.jsonl"\n')
    return tasks


def replay(path, tasks, student, *, seed, p_right=0.6, meta=None, rewrite=None):
    write_replay(path, tasks, student=student, seed=seed, p_right=p_right, p_format=1.0)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    for r in rows:
        if meta is not None:
            r["path"] = meta
        if rewrite is not None:
            r["response"] = rewrite(r)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_sft_pair_with_mismatched_paths_is_refused_at_session_start(pytester, small):
    s = replay(pytester.path / "s.jsonl", small, "s", seed=1, meta=PATH_BF16)
    b = replay(pytester.path / "b.jsonl", small, "b", seed=2, meta={**PATH_BF16, "dtype": "float32",
                                                                   "backend": "llama.cpp"})
    res = run(pytester, "--student", f"replay:{s}", "--student", f"replay:{b}", "--sft-pair", "s=b")
    assert res.ret == 4
    err = res.stderr.str()
    assert "inference paths differ" in err and "backend: hf vs llama.cpp" in err and "dtype: bfloat16 vs float32" in err
    assert "Traceback" not in err

    out = pytester.path / "r.json"
    res = run(pytester, "--student", f"replay:{s}", "--student", f"replay:{b}", "--sft-pair", "s=b",
              "--allow-path-mismatch", "--skillbench-json", str(out))
    rep = json.loads(out.read_text())
    sft = rep["sft_contribution"]["s"]
    assert sft["base"] == "b" and set(sft["path_mismatch"]) == {"backend: hf vs llama.cpp", "dtype: bfloat16 vs float32"}
    assert rep["comparisons"][0]["path_mismatch"] == sft["path_mismatch"]
    text = res.stdout.str()
    assert text.count("[PATH MISMATCH:") == 2 and "SFT contribution s over b" in text
    assert rep["run"]["allow_path_mismatch"] is True


def test_bad_sft_pair_value_is_one_clear_error(pytester, small):
    s = replay(pytester.path / "s.jsonl", small, "s", seed=1)
    res = run(pytester, "--student", f"replay:{s}", "--sft-pair", "s")
    assert res.ret == 4 and "expected STUDENT=BASE_STUDENT" in res.stderr.str()


def test_sft_contribution_with_base_from_a_stored_run(pytester, small):
    b = replay(pytester.path / "b.jsonl", small, "b", seed=2, p_right=0.4)
    s = replay(pytester.path / "s.jsonl", small, "s", seed=1, p_right=0.8)
    run(pytester, "--student", f"replay:{b}", "--skillbench-run-dir", ".skillbench/runs/0-base")
    out = pytester.path / "r.json"
    res = run(pytester, "--student", f"replay:{s}", "--sft-pair", "s=b", "--skillbench-json", str(out))
    rep = json.loads(out.read_text())
    sft = rep["sft_contribution"]["s"]
    assert sft["base_run"].endswith("0-base")
    for key in ("baseline_lift", "curated_lift", "delta_lift"):
        assert set(sft[key]) == {"value", "ci95", "n"} and sft[key]["n"] > 0
        assert sft[key]["ci95"][0] <= sft[key]["value"] <= sft[key]["ci95"][1]
    assert "SFT contribution s over b (base from" in res.stdout.str()


def test_registry_base_student_without_base_anywhere_is_reported_missing(pytester, small):
    s = replay(pytester.path / "s.jsonl", small, "s", seed=1)
    pytester.makepyprojecttoml('[tool.skillbench]\nresamples = 500\nbench = "holdout.jsonl"\n'
                               f'[tool.skillbench.students.s]\nbackend = "replay"\npath = "{s}"\n'
                               'base_student = "nowhere"\n')
    out = pytester.path / "r.json"
    res = run(pytester, "--student", "s", "--skillbench-json", str(out))
    rep = json.loads(out.read_text())
    assert "missing" in rep["sft_contribution"]["s"]
    assert "SFT contribution s over nowhere: not computed" in res.stdout.str()


def test_thinking_strip_is_applied_before_judging_and_recorded(pytester, small):
    def think(row):  # the final answer outside the think block is right; the one inside is wrong
        t = next(t for t in small if t.task_uid == row["task_uid"])
        wrong = "no" if t.answer == "yes" else ("yes" if t.answer == "no" else "zzz")
        return f"ANSWER: {t.answer}\n<think>on reflection\nANSWER: {wrong}</think>"

    f = replay(pytester.path / "t.jsonl", small, "t", seed=3, rewrite=think)
    outs = {}
    for policy in ("keep", "strip"):
        out = pytester.path / f"{policy}.json"
        eps = pytester.path / f"{policy}.jsonl"
        run(pytester, "--student", f"replay:{f}", "--thinking", policy, "--skillbench-json", str(out),
            "--skillbench-episodes", str(eps))
        outs[policy] = (json.loads(out.read_text()), [json.loads(x) for x in eps.read_text().splitlines()])
    keep, strip = outs["keep"][0]["students"]["t"], outs["strip"][0]["students"]["t"]
    scored = sum(t.query_type != "FREE_FORM" for t in small)  # FREE_FORM needs the LLM judge: unscored
    assert strip["conditions"]["baseline"]["passed"] == scored and keep["conditions"]["baseline"]["passed"] == 0
    ep = outs["strip"][1][0]
    assert ep["response"].endswith("</think>")  # stored as generated
    assert ep["extra"]["thinking"] == "strip" and ep["extra"]["thinking_removed_chars"] > 0
    man = outs["strip"][0]["run"]
    assert man["thinking"] == "strip" and man["students"]["t"]["provenance"]["thinking"] == "strip"
    assert outs["strip"][0]["diagnostics"]["students"]["t"]["thinking"]["episodes_with_thinking_removed"] == 60


def test_manifest_is_complete(pytester, small):
    f = replay(pytester.path / "m.jsonl", small, "m", seed=1, meta=PATH_BF16)
    run(pytester, "--student", f"replay:{f}", "--skillbench-run-dir", "rd", "--skillbench-seed", "7")
    man = json.loads((pytester.path / "rd" / "manifest.json").read_text())
    prov = man["students"]["m"]["provenance"]
    for key in ("backend", "base", "revision", "weights", "adapter", "dtype", "device", "quantization",
                "chat_template", "thinking", "generation"):
        assert key in prov
    assert prov["backend"] == "hf" and prov["dtype"] == "bfloat16" and prov["replayed_from"].endswith("m.jsonl")
    for key in ("prompts_hash", "bench_hash", "catalog_hash", "packages", "seed", "started", "finished", "sft_pairs",
                "allow_path_mismatch", "thinking"):
        assert key in man
    assert set(man["judge"]) >= {"mode", "backend", "model", "prompt_version"}
    assert man["seed"] == 7 and man["packages"]["numpy"] and "pandas" in man["packages"]
    rep = json.loads((pytester.path / "rd" / "report.json").read_text())
    assert rep["provenance"]["paths"]["m"]["dtype"] == "bfloat16"


def test_phantom_skill_block_rate_in_a_run(pytester, small):
    def phantom(row):
        if row["condition"] == "baseline" and small.index(next(t for t in small if t.task_uid == row["task_uid"])) < 6:
            return "Following the SKILL procedure, step 1.\n" + row["response"]
        return row["response"]

    f = replay(pytester.path / "p.jsonl", small, "p", seed=1, rewrite=phantom)
    out = pytester.path / "r.json"
    res = run(pytester, "--student", f"replay:{f}", "--skillbench-json", str(out))
    ph = json.loads(out.read_text())["diagnostics"]["students"]["p"]["phantom_skill_block"]
    assert ph["count"] == 6 and ph["n"] == 30 and ph["rate"] == pytest.approx(0.2)
    assert "phantom skill block in 6/30 baseline responses" in res.stdout.str()


def test_report_cli_recomputes_a_plugin_run(pytester, small):
    a = replay(pytester.path / "a.jsonl", small, "a", seed=1)
    b = replay(pytester.path / "b.jsonl", small, "b", seed=2)
    run(pytester, "--student", f"replay:{a}", "--student", f"replay:{b}", "--skillbench-run-dir", "rd")
    stored = json.loads((pytester.path / "rd" / "report.json").read_text())
    res = pytester.run(sys.executable, "-m", "pytest_skillbench", "report", str(pytester.path / "rd"),
                       "--json", "again.json", "--plots", "plots")
    assert res.ret == 0
    again = json.loads((pytester.path / "again.json").read_text())
    for key in ("students", "comparisons", "multiplicity", "per_skill", "sft_contribution"):
        assert again[key] == stored[key]
    assert len(list((pytester.path / "plots").glob("*.png"))) == 6
