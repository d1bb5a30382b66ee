"""Build the JSON report from episodes: every number is computed here from stored verdicts.

Pass rates are over *scored* episodes (passed + failed); ``unscored`` and ``error`` episodes are counted
and shown, never folded into failures.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from .. import forcing, stats
from ..analysis import analyse
from ..bench.tasks import QUERY_TYPES
from ..episodes import Episode, Status
from ..forcing import strict_episodes
from ..prompts import CONDITIONS
from ..studies.behaviour import report_sections, split_probe
from .judging import judge_disagreements, judging_totals


def _rates(eps: list[Episode]) -> dict:
    passed = sum(e.verdict.status == Status.PASSED for e in eps)
    scored = sum(e.verdict.scored for e in eps)
    lo, hi = stats.wilson(passed, scored)
    return {"scored": scored, "passed": passed, "pass_rate": passed / scored if scored else None,
            "ci95": [lo, hi] if scored else None}


def forcing_summary(eps: list[Episode]) -> dict:
    """Strict pass rate (over strictly scored episodes), forced share (of scored primary verdicts) and the
    format gap = primary - strict pass rate."""
    primary = _rates(eps)
    strict = _rates(strict_episodes(eps))
    forced = sum(e.verdict.scored and e.verdict.scoring == "forced" for e in eps)
    gap = None
    if primary["pass_rate"] is not None and strict["pass_rate"] is not None:
        gap = primary["pass_rate"] - strict["pass_rate"]
    return {"strict": strict, "forced": forced,
            "forced_share": forced / primary["scored"] if primary["scored"] else None, "format_gap": gap}


def condition_summary(eps: list[Episode]) -> dict:
    passed = sum(e.verdict.status == Status.PASSED for e in eps)
    failed = sum(e.verdict.status == Status.FAILED for e in eps)
    unscored = sum(e.verdict.status == Status.UNSCORED for e in eps)
    errors = sum(e.verdict.status == Status.ERROR for e in eps)
    scored = passed + failed
    answered = [e for e in eps if e.verdict.status != Status.ERROR]
    fmt = sum(bool(e.verdict.format_ok) for e in answered)
    lo, hi = stats.wilson(passed, scored)
    return {"n": len(eps), "scored": scored, "passed": passed, "failed": failed,
            "pass_rate": passed / scored if scored else None, "ci95": [lo, hi] if scored else None,
            "unscored": unscored, "errors": errors,
            "format_compliance": fmt / len(answered) if answered else None,
            "judges": sorted({e.verdict.judge for e in eps})}


def query_type_summary(eps: list[Episode]) -> dict:
    """Per query type: episodes, scored, passed, pass rate and the chance rate beside it (the mean over the
    scored episodes of their task's chance rate, ``Episode.extra["chance_rate"]``; YES_NO is 1/2 by
    definition; None where no scored episode has one, e.g. FREE_FORM)."""
    out = {}
    for qt in QUERY_TYPES:
        qe = [e for e in eps if e.query_type == qt]
        if not qe:
            continue
        scored = [e for e in qe if e.verdict.scored]
        passed = sum(e.verdict.status == Status.PASSED for e in scored)
        rates = [e.extra.get("chance_rate", 0.5 if qt == "YES_NO" else None) for e in scored]
        rates = [r for r in rates if r is not None]
        out[qt] = {"n": len(qe), "scored": len(scored), "passed": passed,
                   "pass_rate": passed / len(scored) if scored else None,
                   "chance_rate": sum(rates) / len(rates) if rates else None, "chance_n": len(rates)}
    return out


def paired_outcomes(eps: list[Episode], cond_a: str = "baseline", cond_b: str = "curated"
                    ) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Tasks scored in both conditions, with 0/1 outcomes (sorted by task_uid, so order is stable)."""
    by = defaultdict(dict)
    for e in eps:
        if e.verdict.scored:
            by[e.task_uid][e.condition] = 1 if e.verdict.status == Status.PASSED else 0
    uids = sorted(u for u, d in by.items() if cond_a in d and cond_b in d)
    a = np.array([by[u][cond_a] for u in uids], dtype=np.int8)
    b = np.array([by[u][cond_b] for u in uids], dtype=np.int8)
    return uids, a, b


def delta_summary(eps: list[Episode], seed: int = stats.DEFAULT_SEED,
                  resamples: int = stats.DEFAULT_RESAMPLES) -> dict | None:
    uids, base, cur = paired_outcomes(eps)
    if not uids:
        return None
    value, ci = stats.delta_ci(base, cur, resamples=resamples, seed=seed)
    b = int(np.sum((base == 1) & (cur == 0)))
    c = int(np.sum((base == 0) & (cur == 1)))
    mc = stats.mcnemar(b, c)
    return {"value": value, "ci95": list(ci), "n_pairs": len(uids), "mcnemar": mc.to_dict(),
            "mde80": stats.mde_paired(len(uids), (b + c) / len(uids))}


def build_report(episodes: list[Episode], run: dict | None = None, *, seed: int = stats.DEFAULT_SEED,
                 resamples: int = stats.DEFAULT_RESAMPLES, **analysis_options) -> dict:
    """Per-student summaries plus the analysis sections (``analysis.analyse``; its options pass through:
    sft_pairs, allow_path_mismatch, extra_students, strict, catalog)."""
    episodes, probe_episodes = split_probe(episodes)  # generality-probe episodes get their own section
    by_student: dict[str, list[Episode]] = defaultdict(list)
    for e in episodes:
        by_student[e.student].append(e)
    students = {}
    for name in sorted(by_student):
        eps = by_student[name]
        forced = forcing.has_forcing(eps)  # answer forcing: the strict figures stay beside the primary ones
        conds = {}
        for cond in CONDITIONS:
            ce = [e for e in eps if e.condition == cond]
            if ce:
                conds[cond] = condition_summary(ce)
                conds[cond]["query_types"] = query_type_summary(ce)  # pass rate beside chance, per type
                if forced:
                    conds[cond].update(forcing_summary(ce))
        entry = {"conditions": conds}
        if "baseline" in conds and "curated" in conds:
            entry["delta"] = delta_summary(eps, seed=seed, resamples=resamples)
            if forced and entry["delta"] is not None:
                entry["delta"]["strict"] = delta_summary(strict_episodes(eps), seed=seed, resamples=resamples)
        if forced:
            entry["forced_vs_strict_agreement"] = forcing.agreement(eps)
        disagreements = judge_disagreements(eps)  # --judge both: LLM vs deterministic verdicts
        if disagreements:
            entry["judge_disagreements"] = disagreements
        students[name] = entry
    report = {"students": students, "run": run or {}, "judging": judging_totals(students)}
    report.update(analyse(episodes, run or {}, students, seed=seed, resamples=resamples, **analysis_options))
    # drift, checkpoint trajectory, loss vs quality, generality probe (behaviour.report_sections)
    report.update(report_sections(episodes, probe_episodes, run or {}, students))
    return report
