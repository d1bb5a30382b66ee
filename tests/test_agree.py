"""``skillbench agree RUN_A RUN_B``: agreement, Cohen's kappa, confusion, Δ under each judge, disagreements."""

from __future__ import annotations

import json

import pytest

from conftest import SHARED
from pytest_skillbench import cli
from pytest_skillbench.agree import agree
from pytest_skillbench.episodes import Episode, Verdict, write_episodes

PAPER = SHARED / "reference" / "paper-statistics.json"


def ep(uid: str, cond: str, status: str, *, student: str = "v1", skill: str = "modus-ponens",
       judge: str = "a", response: str | None = None) -> Episode:
    return Episode(student=student, condition=cond, task_uid=uid, skill=skill, query_type="YES_NO",
                   response=response if response is not None else f"response {uid} {cond}",
                   verdict=Verdict(status=status, judge=judge))


def write_run(path, eps):
    path.mkdir(parents=True, exist_ok=True)
    write_episodes(path / "episodes.jsonl", eps)
    (path / "manifest.json").write_text(json.dumps({"students": {}}))
    return path


def run_json(capsys, a, b) -> dict:
    capsys.readouterr()
    assert cli.main(["agree", str(a), str(b), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_reproduces_the_published_kappa(tmp_path, capsys):
    if not PAPER.is_file():
        pytest.skip(f"{PAPER} is absent")
    ref = json.loads(PAPER.read_text())["judge_agreement"][0]
    n, pa, pb, agreements = ref["episodes"], ref["judge_a_passed"], ref["judge_b_passed"], ref["agreements"]
    # both passed x, A only pa - x, B only pb - x with (pa - x) + (pb - x) = n - agreements
    both = (pa + pb - (n - agreements)) // 2
    cells = [("passed", "passed")] * both + [("passed", "failed")] * (pa - both) + \
            [("failed", "passed")] * (pb - both)
    cells += [("failed", "failed")] * (n - len(cells))
    eps_a, eps_b = [], []
    for i, (sa, sb) in enumerate(cells):
        uid, cond = f"{i // 2:04x}-0000-0000-0000", ("baseline", "curated")[i % 2]
        eps_a.append(ep(uid, cond, sa, judge="anthropic:opus"))
        eps_b.append(ep(uid, cond, sb, judge="openai:gpt"))
    res = run_json(capsys, write_run(tmp_path / "a", eps_a), write_run(tmp_path / "b", eps_b))
    assert res["n"] == n and res["agreements"] == agreements
    assert res["agreement"] == pytest.approx(ref["agreement"])
    assert round(res["kappa"], 3) == pytest.approx(ref["cohen_kappa"])
    assert res["confusion"] == {"a_passed_b_passed": both, "a_passed_b_failed": pa - both,
                                "a_failed_b_passed": pb - both, "a_failed_b_failed": n - pa - pb + both}
    for key in ("agreement", "kappa", "confusion", "delta_a", "delta_b", "delta_shift", "n"):
        assert key in res
    assert res["judges"] == {"a": ["anthropic:opus"], "b": ["openai:gpt"]}


def test_delta_shift_per_condition_and_disagreements(tmp_path, capsys):
    # 4 tasks x 2 conditions. Judge A: baseline 1/4, curated 3/4 (Δ +0.5); judge B also passes t1 and t2 in
    # the baseline condition (3/4 and 3/4: Δ 0), so the judge moves Δ by -0.5
    a = {("t0", "baseline"): "passed", ("t1", "baseline"): "failed", ("t2", "baseline"): "failed",
         ("t3", "baseline"): "failed", ("t0", "curated"): "passed", ("t1", "curated"): "passed",
         ("t2", "curated"): "passed", ("t3", "curated"): "failed"}
    b = dict(a)
    b[("t1", "baseline")] = "passed"  # B passes a baseline episode A failed
    b[("t2", "baseline")] = "passed"  # and another
    eps_a = [ep(u, c, s, skill="modus-ponens" if u in ("t0", "t1") else "straw-man") for (u, c), s in a.items()]
    eps_b = [ep(u, c, s, skill="modus-ponens" if u in ("t0", "t1") else "straw-man") for (u, c), s in b.items()]
    eps_a.append(ep("t9", "baseline", "unscored"))  # not scored by A: excluded
    eps_b.append(ep("t9", "baseline", "passed"))
    eps_b.append(ep("t8", "baseline", "passed"))  # only in B
    eps_b[0].response = "a different response"  # the pair (t0, baseline) no longer judges the same text
    res = agree(eps_a, eps_b)
    assert res["n"] == 8 and res["agreements"] == 6 and res["agreement"] == 0.75
    assert res["delta_a"] == pytest.approx(0.5) and res["delta_b"] == pytest.approx(0.0)
    assert res["delta_shift"] == pytest.approx(-0.5) and res["delta_tasks"] == 4
    assert res["per_condition"]["baseline"]["agreement"] == 0.5
    assert res["per_condition"]["curated"]["agreement"] == 1.0 and res["per_condition"]["curated"]["kappa"] == 1.0
    dis = res["disagreements_by_skill"]
    assert list(dis) == ["modus-ponens", "straw-man"]
    assert [(d["task_uid"], d["a"], d["b"]) for d in dis["modus-ponens"]] == [("t1", "failed", "passed")]
    assert res["excluded"] == {"only_in_a": 0, "only_in_b": 1, "not_scored_by_both": 1}
    assert res["response_mismatch"] == 1

    ra, rb = write_run(tmp_path / "ra", eps_a), write_run(tmp_path / "rb", eps_b)
    capsys.readouterr()
    assert cli.main(["agree", str(ra), str(rb)]) == 0
    out = capsys.readouterr().out
    assert "agreement 75.0% (6/8), Cohen's kappa" in out
    assert "judge A +50.0 pts, judge B +0.0 pts, shift -50.0 pts" in out
    assert "modus-ponens (1): t1 baseline A failed / B passed" in out
    assert "WARNING: 1 paired episode(s) have different stored responses" in out


def test_pairs_by_task_when_student_names_differ(tmp_path):
    eps_a = [ep("t0", "baseline", "passed", student="run-a"), ep("t0", "curated", "failed", student="run-a")]
    eps_b = [ep("t0", "baseline", "passed", student="run-b"), ep("t0", "curated", "passed", student="run-b")]
    res = agree(eps_a, eps_b)
    assert res["paired_by"] == "task_uid, condition" and res["n"] == 2 and res["agreements"] == 1


def test_missing_run_is_one_line_error(tmp_path, capsys):
    assert cli.main(["agree", str(tmp_path / "nope"), str(tmp_path / "nope2")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("skillbench: error:") and "Traceback" not in err
