"""Report sections about judging: where two judges disagree (``--judge both``) and the error / unscored
counts that must never pass unnoticed.

``judge_disagreements`` compares, per condition, the episode's verdict (the LLM judge's under
``--judge both``) with the deterministic verdict kept in ``Episode.extra["verdicts"]``. The category that
matters most is ``format_artifact``: the LLM judge passed the conclusion but the deterministic judge found
no parseable ANSWER line (``no_answer_line`` / ``answer_not_in_expected_form``) - the format-compliance
artifact that under-counts correct prose conclusions.
"""

from __future__ import annotations

from collections import Counter

from ..episodes import FORMAT_REASONS, SCORED, Episode, Status

MAX_EXAMPLES = 10


def _category(primary: str, det: str, det_reason: str) -> str:
    if primary == det:
        return "agree"
    if primary == Status.PASSED and det == Status.UNSCORED:
        return "format_artifact" if det_reason in FORMAT_REASONS else "llm_passed_det_not_applicable"
    if primary == Status.FAILED and det == Status.UNSCORED:
        return "llm_failed_det_unscored"
    if primary == Status.PASSED and det == Status.FAILED:
        return "llm_passed_det_failed"
    if primary == Status.FAILED and det == Status.PASSED:
        return "llm_failed_det_passed"
    return "llm_not_scored"  # the LLM verdict is unscored / error


def _rate(statuses: list[str]) -> float | None:
    scored = [s for s in statuses if s in SCORED]
    return sum(s == Status.PASSED for s in scored) / len(scored) if scored else None


def condition_disagreements(eps: list[Episode]) -> dict | None:
    rows = [e for e in eps if isinstance((e.extra or {}).get("verdicts"), dict)
            and "deterministic" in e.extra["verdicts"]]
    if not rows:
        return None
    cats: Counter = Counter()
    examples = []
    prim, dets = [], []
    judges = set()
    for e in rows:
        det = e.extra["verdicts"]["deterministic"]
        cat = _category(e.verdict.status, det.get("status", ""), det.get("reason", ""))
        cats[cat] += 1
        prim.append(e.verdict.status)
        dets.append(det.get("status", ""))
        judges.add(e.verdict.judge)
        if cat != "agree" and len(examples) < MAX_EXAMPLES:
            examples.append({"task_uid": e.task_uid, "skill": e.skill, "query_type": e.query_type,
                             "llm": e.verdict.status, "deterministic": det.get("status"),
                             "deterministic_reason": det.get("reason", "")})
    keys = ("agree", "format_artifact", "llm_passed_det_failed", "llm_failed_det_passed", "llm_failed_det_unscored",
            "llm_passed_det_not_applicable", "llm_not_scored")
    out = {"n": len(rows), "judges": sorted(judges) + ["deterministic"], **{k: cats.get(k, 0) for k in keys}}
    out["disagree"] = len(rows) - out["agree"]
    out["pass_rate_llm"] = _rate(prim)
    out["pass_rate_deterministic"] = _rate(dets)
    out["examples"] = examples
    return out


def judge_disagreements(eps: list[Episode]) -> dict | None:
    """Per condition for one student, or None when no episode carries two verdicts."""
    out = {}
    for cond in ("baseline", "curated"):
        d = condition_disagreements([e for e in eps if e.condition == cond])
        if d:
            out[cond] = d
    return out or None


def judging_totals(students: dict) -> dict:
    """Error / unscored counts per student x condition (with their judges) and one warning line."""
    rows = []
    for name, st in students.items():
        for cond, c in st.get("conditions", {}).items():
            if c.get("errors") or c.get("unscored"):
                rows.append({"student": name, "condition": cond, "errors": c.get("errors", 0),
                             "unscored": c.get("unscored", 0), "judges": c.get("judges", [])})
    errors = sum(r["errors"] for r in rows)
    unscored = sum(r["unscored"] for r in rows)
    warning = None
    if errors or unscored:
        warning = (f"{errors} episode(s) in error (infrastructure) and {unscored} unscored: excluded from pass "
                   "rates, never counted as failures; to score them from the stored responses without generating "
                   "again, judge with an LLM: `skillbench rejudge RUN --judge llm-only --judge-backend "
                   "anthropic|openai` (or this command with --skillbench-rejudge --judge llm-only)")
    return {"errors": errors, "unscored": unscored, "by_student_condition": rows, "warning": warning}


def render_judging(report: dict) -> list[str]:
    lines: list[str] = []
    for name, st in (report.get("students") or {}).items():
        for cond, d in (st.get("judge_disagreements") or {}).items():
            lines.append(f"judges {' vs '.join(d['judges'])}, {name}/{cond}: {d['agree']}/{d['n']} agree; "
                         f"right conclusion but no parseable ANSWER line (format artifact) {d['format_artifact']}; "
                         f"LLM passed / deterministic failed {d['llm_passed_det_failed']}; LLM failed / "
                         f"deterministic passed {d['llm_failed_det_passed']}; LLM not scored {d['llm_not_scored']}")
    totals = report.get("judging") or {}
    if totals.get("warning"):
        bar = "!" * 100
        lines += [bar, f"WARNING: {totals['warning']}", bar]
    return lines
