"""Judge agreement between two judgings of the same responses (``skillbench agree RUN_A RUN_B [--json]``).

Two judgings of the same responses (e.g. a run and its copy re-judged by another judge) are paired by
(student, task_uid, condition); when the runs share no student name but each holds exactly one student,
by (task_uid, condition). Only pairs scored (passed / failed) under both judges count. Reported:

* ``n`` paired scored episodes, ``agreement`` (share of equal verdicts), ``kappa`` (Cohen's kappa from the
  two judges' marginal pass rates, ``stats.cohen_kappa``), ``confusion``
  (``a_passed_b_passed`` / ``a_passed_b_failed`` / ``a_failed_b_passed`` / ``a_failed_b_failed``);
* ``per_condition`` agreement and kappa;
* ``delta_a`` / ``delta_b``: Δ = curated - baseline pass rate under each judge over the (student, task)
  pairs scored in both conditions under both judges, and ``delta_shift`` = ``delta_b - delta_a``;
* ``disagreements_by_skill``: every disagreeing episode, grouped by skill (most disagreements first);
* ``excluded``: pairs left out (only in one run, or unscored / error under a judge), and
  ``response_mismatch``: pairs whose stored responses differ (then these are not two judgings of the
  same responses, and the command says so).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from . import stats
from .episodes import Episode, Status


def _keyed(eps: list[Episode], with_student: bool) -> dict[tuple, Episode]:
    out = {}
    for e in eps:
        out[(e.student, e.task_uid, e.condition) if with_student else (e.task_uid, e.condition)] = e
    return out


def _agreement(a: np.ndarray, b: np.ndarray) -> dict:
    n = int(a.size)
    return {"n": n, "agreement": float(np.mean(a == b)) if n else None,
            "kappa": float(stats.cohen_kappa(a, b)) if n else None,
            "pass_rate_a": float(a.mean()) if n else None, "pass_rate_b": float(b.mean()) if n else None}


def _delta(pairs: dict[tuple, tuple[int, int]], with_student: bool) -> tuple[float | None, float | None, int]:
    """Δ under each judge over the (student, task) scored in both conditions under both judges."""
    by_task: dict[tuple, dict[str, tuple[int, int]]] = defaultdict(dict)
    for key, ab in pairs.items():
        task_key, cond = (key[:2], key[2]) if with_student else (key[:1], key[1])
        by_task[task_key][cond] = ab
    both = [d for d in by_task.values() if "baseline" in d and "curated" in d]
    if not both:
        return None, None, 0
    da = float(np.mean([d["curated"][0] - d["baseline"][0] for d in both]))
    db = float(np.mean([d["curated"][1] - d["baseline"][1] for d in both]))
    return da, db, len(both)


def agree(eps_a: list[Episode], eps_b: list[Episode]) -> dict:
    students_a, students_b = {e.student for e in eps_a}, {e.student for e in eps_b}
    with_student = bool(students_a & students_b) or not (len(students_a) == 1 and len(students_b) == 1)
    ka, kb = _keyed(eps_a, with_student), _keyed(eps_b, with_student)
    common = sorted(set(ka) & set(kb))
    pairs: dict[tuple, tuple[int, int]] = {}
    not_scored = 0
    mismatch = 0
    disagreements: dict[str, list[dict]] = defaultdict(list)
    for key in common:
        ea, eb = ka[key], kb[key]
        if (ea.response or "") != (eb.response or ""):
            mismatch += 1
        if not (ea.verdict.scored and eb.verdict.scored):
            not_scored += 1
            continue
        a, b = int(ea.verdict.status == Status.PASSED), int(eb.verdict.status == Status.PASSED)
        pairs[key] = (a, b)
        if a != b:
            disagreements[ea.skill].append({"student": ea.student, "task_uid": ea.task_uid, "condition": ea.condition,
                                            "query_type": ea.query_type, "a": ea.verdict.status,
                                            "b": eb.verdict.status, "rationale_a": ea.verdict.rationale,
                                            "rationale_b": eb.verdict.rationale})
    a = np.array([v[0] for v in pairs.values()], dtype=np.int8)
    b = np.array([v[1] for v in pairs.values()], dtype=np.int8)
    overall = _agreement(a, b)
    per_condition = {}
    for cond in ("baseline", "curated"):
        sel = [k for k in pairs if k[-1] == cond]
        if sel:
            per_condition[cond] = _agreement(np.array([pairs[k][0] for k in sel]), np.array([pairs[k][1] for k in sel]))
    da, db, n_tasks = _delta(pairs, with_student)
    confusion = {"a_passed_b_passed": int(np.sum((a == 1) & (b == 1))), "a_passed_b_failed": int(np.sum((a == 1) & (b == 0))),
                 "a_failed_b_passed": int(np.sum((a == 0) & (b == 1))), "a_failed_b_failed": int(np.sum((a == 0) & (b == 0)))}
    return {
        "n": overall["n"], "agreement": overall["agreement"], "kappa": overall["kappa"],
        "agreements": int(np.sum(a == b)), "confusion": confusion,
        "pass_rate_a": overall["pass_rate_a"], "pass_rate_b": overall["pass_rate_b"],
        "delta_a": da, "delta_b": db, "delta_shift": (db - da) if da is not None and db is not None else None,
        "delta_tasks": n_tasks, "per_condition": per_condition,
        "disagreements_by_skill": dict(sorted(disagreements.items(), key=lambda kv: (-len(kv[1]), kv[0]))),
        "judges": {"a": sorted({e.verdict.judge for e in eps_a}), "b": sorted({e.verdict.judge for e in eps_b})},
        "paired_by": "student, task_uid, condition" if with_student else "task_uid, condition",
        "excluded": {"only_in_a": len(set(ka) - set(kb)), "only_in_b": len(set(kb) - set(ka)),
                     "not_scored_by_both": not_scored},
        "response_mismatch": mismatch,
    }


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _pts(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:+.1f} pts"


def render(res: dict, name_a: str, name_b: str) -> list[str]:
    c = res["confusion"]
    lines = [f"judge A: {name_a} ({', '.join(res['judges']['a'])})",
             f"judge B: {name_b} ({', '.join(res['judges']['b'])})",
             (f"n = {res['n']} episode(s) scored by both (paired by {res['paired_by']}); excluded: "
              f"{res['excluded']['only_in_a']} only in A, {res['excluded']['only_in_b']} only in B, "
              f"{res['excluded']['not_scored_by_both']} unscored/error under a judge")]
    if not res["n"]:
        return lines + ["no episode is scored by both judges: nothing to compare"]
    kappa = "n/a" if res["kappa"] is None else f"{res['kappa']:.3f}"
    lines += [(f"agreement {_pct(res['agreement'])} ({res['agreements']}/{res['n']}), Cohen's kappa {kappa}; "
               f"pass rate A {_pct(res['pass_rate_a'])}, B {_pct(res['pass_rate_b'])}"),
              f"{'confusion':<12} {'B passed':>9} {'B failed':>9}",
              f"{'A passed':<12} {c['a_passed_b_passed']:>9} {c['a_passed_b_failed']:>9}",
              f"{'A failed':<12} {c['a_failed_b_passed']:>9} {c['a_failed_b_failed']:>9}"]
    for cond, pc in res["per_condition"].items():
        k = "n/a" if pc["kappa"] is None else f"{pc['kappa']:.3f}"
        lines.append(f"{cond:<9} agreement {_pct(pc['agreement'])} (n={pc['n']}), kappa {k}, pass rate A "
                     f"{_pct(pc['pass_rate_a'])}, B {_pct(pc['pass_rate_b'])}")
    if res["delta_a"] is not None:
        lines.append(f"Δ (curated - baseline) over {res['delta_tasks']} task(s): judge A {_pts(res['delta_a'])}, "
                     f"judge B {_pts(res['delta_b'])}, shift {_pts(res['delta_shift'])}")
    if res["disagreements_by_skill"]:
        lines.append("disagreements by skill:")
        for skill, rows in res["disagreements_by_skill"].items():
            shown = "; ".join(f"{r['task_uid']} {r['condition']} A {r['a']} / B {r['b']}" for r in rows[:4])
            more = f"; +{len(rows) - 4} more" if len(rows) > 4 else ""
            lines.append(f"  {skill} ({len(rows)}): {shown}{more}")
    if res["response_mismatch"]:
        lines.append(f"WARNING: {res['response_mismatch']} paired episode(s) have different stored responses: these "
                     "runs are not two judgings of the same responses")
    return lines
