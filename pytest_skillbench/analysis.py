"""Analysis from stored episodes: SFT contribution, cross-model comparisons, multiplicity, per-skill tables
and diagnostics (the offline ``skillbench report`` recomputes them through ``report.offline``).

Everything here is recomputed from episodes (and the run manifests beside them): no model is loaded.
``analyse`` returns the report sections added to ``build_report``'s output:

* ``sft_contribution``: for STUDENT fine-tuned from BASE (``--sft-pair STUDENT=BASE`` or ``base_student``
  in the registry), ΔBL = mean(S_baseline - B_baseline), ΔCU = mean(S_curated - B_curated) and
  Δ-lift = Δ_S - Δ_B = mean((S_cu - S_bl) - (B_cu - B_bl)), each over the tasks scored on both sides with
  a paired bootstrap 95% CI over tasks;
* ``comparisons``: for every two students on the same tasks (up to ``ALL_PAIRS_MAX`` students; beyond, each
  student with the next in run order, ``comparisons_scope`` says which), Δ_A - Δ_B with a bootstrap CI (each model
  resampled independently, as the reference study's saturation test) and one-sided p = share of
  resamples with Δ_A - Δ_B <= 0;
* ``multiplicity``: Holm and Bonferroni adjusted p across the per-student McNemar tests, and which
  survive at alpha = 0.05;
* ``per_skill``: pass rate by skill and condition, Δ per skill, lift / flat / regression groups, Spearman
  rho between per-skill baseline pass rate and per-skill Δ (with the number of tied skills), and each
  pass rate's standard error clustered by skill;
* ``diagnostics``: format compliance, phantom skill block rate, thinking policy, chat-template warnings;
* ``provenance``: each student's inference path, as compared by the matched-path guard.

Comparisons across students whose inference paths differ are refused (see ``provenance``); with
``allow_path_mismatch`` they are computed and every affected entry carries ``path_mismatch``.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from pathlib import Path

import numpy as np

from . import stats
from .bench import BUNDLED_BENCHES, bundled_dir, load_catalog
from .diagnostics import phantom_rate
from .episodes import Episode, Status, read_episodes
from .errors import SkillbenchError
from .lineage import declared_sft_pairs
from .provenance import check_paths, find_stored_student, inference_path, path_differences, template_warnings

ALPHA = 0.05


# -- per-task outcomes --------------------------------------------------------------------------------
def outcomes(eps: list[Episode]) -> dict[str, dict[str, int]]:
    """{condition: {task_uid: 1 | 0}} over scored episodes."""
    out: dict[str, dict[str, int]] = defaultdict(dict)
    for e in eps:
        if e.verdict.scored:
            out[e.condition][e.task_uid] = 1 if e.verdict.status == Status.PASSED else 0
    return out


def _paired(o: dict[str, dict[str, int]]) -> dict[str, int]:
    """{task_uid: curated - baseline} over tasks scored in both conditions."""
    bl, cu = o.get("baseline", {}), o.get("curated", {})
    return {u: cu[u] - bl[u] for u in bl if u in cu}


def _estimate(diff: list[float], seed: int, resamples: int) -> dict:
    d = np.asarray(diff, dtype=float)
    if d.size == 0:
        return {"value": None, "ci95": None, "n": 0}
    lo, hi = stats.paired_bootstrap(d, resamples=resamples, seed=seed)
    return {"value": float(d.mean()), "ci95": [lo, hi], "n": int(d.size)}


# -- SFT contribution ---------------------------------------------------------------------------------
def sft_contribution(student_eps: list[Episode], base_eps: list[Episode], *, seed: int, resamples: int) -> dict:
    s, b = outcomes(student_eps), outcomes(base_eps)

    def lift(cond: str) -> dict:
        sc, bc = s.get(cond, {}), b.get(cond, {})
        uids = sorted(u for u in sc if u in bc)
        return _estimate([sc[u] - bc[u] for u in uids], seed, resamples)

    ds, db = _paired(s), _paired(b)
    uids = sorted(u for u in ds if u in db)
    dl = _estimate([ds[u] - db[u] for u in uids], seed, resamples)
    def rate(o: dict, c: str) -> float | None:
        return float(np.mean(list(o[c].values()))) if o.get(c) else None

    return {"baseline_lift": lift("baseline"), "curated_lift": lift("curated"), "delta_lift": dl,
            "student_delta": float(np.mean([ds[u] for u in uids])) if uids else None,
            "base_delta": float(np.mean([db[u] for u in uids])) if uids else None,
            "pass_rates": {"student": {c: rate(s, c) for c in ("baseline", "curated")},
                           "base": {c: rate(b, c) for c in ("baseline", "curated")}}}


# -- per skill ----------------------------------------------------------------------------------------
def per_skill(eps: list[Episode], flat_band: float = 0.0) -> dict:
    by_skill: dict[str, list[Episode]] = defaultdict(list)
    for e in eps:
        by_skill[e.skill].append(e)
    skills = {}
    groups = {"lift": [], "flat": [], "regression": []}
    xs, ys = [], []
    for skill in sorted(by_skill):
        o = outcomes(by_skill[skill])
        entry: dict = {}
        for cond in ("baseline", "curated"):
            vals = list(o.get(cond, {}).values())
            if vals or any(e.condition == cond for e in by_skill[skill]):
                entry[cond] = {"n": len(vals), "passed": int(sum(vals)),
                               "pass_rate": float(np.mean(vals)) if vals else None}
        d = _paired(o)
        entry["n_pairs"] = len(d)
        entry["delta"] = float(np.mean(list(d.values()))) if d else None
        if entry["delta"] is not None:
            g = "lift" if entry["delta"] > flat_band else "regression" if entry["delta"] < -flat_band else "flat"
            entry["group"] = g
            groups[g].append(skill)
            bl = entry.get("baseline", {}).get("pass_rate")
            if bl is not None:
                xs.append(bl)
                ys.append(entry["delta"])
        skills[skill] = entry
    se = {}
    for cond in ("baseline", "curated"):
        rows = [e for e in eps if e.condition == cond and e.verdict.scored]
        if rows:
            won = np.array([e.verdict.status == Status.PASSED for e in rows], dtype=float)
            se[cond] = stats.clustered_se(won, [e.skill for e in rows])
    return {"skills": skills, "groups": groups, "flat_band": flat_band,
            "spearman_baseline_vs_delta": stats.spearman(xs, ys), "clustered_se": se}


# -- the sections -------------------------------------------------------------------------------------
def multiplicity(students: dict, alpha: float = ALPHA) -> dict:
    names = [n for n, st in students.items() if st.get("delta")]
    ps = [students[n]["delta"]["mcnemar"]["p"] for n in names]
    holm, bonf = stats.holm(ps), stats.bonferroni(ps)
    tests = [{"student": n, "p": p, "holm": h, "bonferroni": b, "significant_raw": p < alpha,
              "survives_holm": h < alpha, "survives_bonferroni": b < alpha}
             for n, p, h, b in zip(names, ps, holm, bonf)]
    return {"family": "per-student McNemar (baseline vs curated)", "m": len(names), "alpha": alpha,
            "tests": tests, "survive_holm": [t["student"] for t in tests if t["survives_holm"]],
            "survive_bonferroni": [t["student"] for t in tests if t["survives_bonferroni"]]}


ALL_PAIRS_MAX = 10  # up to this many students every pair is compared; beyond it, each with the next one


def comparison_pairs(names: list[str]) -> tuple[str, list[tuple[str, str]]]:
    """Which students the report compares: every pair for up to ``ALL_PAIRS_MAX`` students, else each
    student with the next in run order (a series such as v1, v2, v3), so the report stays linear in students."""
    if len(names) <= ALL_PAIRS_MAX:
        return "all-pairs", [(a, b) for i, a in enumerate(names) for b in names[i + 1:]]
    return "adjacent", list(zip(names, names[1:]))


def comparisons(by_student: dict[str, list[Episode]], paths: dict[str, dict], *, allow: bool, seed: int,
                resamples: int) -> tuple[str, list[dict]]:
    """The comparison scope (see ``comparison_pairs``) and one entry per compared pair."""
    diffs = {n: d for n in by_student if (d := _paired(outcomes(by_student[n])))}
    scope, pairs = comparison_pairs(list(diffs))
    out = []
    for a, b in pairs:
        uids = sorted(u for u in diffs[a] if u in diffs[b])
        if not uids:
            continue
        entry: dict = {"a": a, "b": b, "n_tasks": len(uids)}
        mismatch = path_differences(paths.get(a, {}), paths.get(b, {}))
        if mismatch and not allow:
            entry.update({"refused": "inference paths differ: " + "; ".join(mismatch),
                          "path_differences": mismatch})
            out.append(entry)
            continue
        cm = stats.cross_model(np.array([diffs[a][u] for u in uids], dtype=float),
                               np.array([diffs[b][u] for u in uids], dtype=float),
                               resamples=resamples, seed=seed)
        entry.update({"difference": cm["difference"], "ci95": cm["ci95"], "one_sided_p": cm["one_sided_p"]})
        if mismatch:
            entry["path_mismatch"] = mismatch
        out.append(entry)
    return scope, out


def diagnostics(by_student: dict[str, list[Episode]], students: dict, run: dict, catalog=None) -> dict:
    out: dict = {"students": {}, "template_warnings": template_warnings(run)}
    for name, eps in by_student.items():
        conds = (students.get(name) or {}).get("conditions", {})
        entry = (run.get("students") or {}).get(name) or {}
        prov = entry.get("provenance") or {}
        thinking = prov.get("thinking") or ((entry.get("spec") or {}).get("thinking")) or "keep"
        stripped = sum(1 for e in eps if (e.extra or {}).get("thinking_removed_chars"))
        out["students"][name] = {
            "format_compliance": {c: v.get("format_compliance") for c, v in conds.items()},
            "phantom_skill_block": phantom_rate(eps, catalog),
            "thinking": {"policy": thinking, "episodes_with_thinking_removed": stripped}}
    return out


def _catalog_for(run: dict):
    """The run's catalog for verbatim procedure-step matching: the bundled one unless the manifest's
    catalog hash says otherwise (then only the phrase patterns are used)."""
    cats = _bundled_catalogs()
    if not cats:
        return None
    wanted = run.get("catalog_hash")
    if not wanted:
        return cats[0]
    return next((c for c in cats if c.content_hash() == wanted), None)


@functools.lru_cache(maxsize=1)
def _bundled_catalogs() -> tuple:
    """The bundled catalogs, current first (a run of ``--bench bundled-v1`` matches the v1 copy)."""
    out = []
    for name in BUNDLED_BENCHES:
        try:
            out.append(load_catalog(bundled_dir("catalog", name)))
        except (SkillbenchError, OSError):
            pass
    return tuple(out)


def analyse(episodes: list[Episode], run: dict, students: dict, *, seed: int = stats.DEFAULT_SEED,
            resamples: int = stats.DEFAULT_RESAMPLES, sft_pairs: list[str] | None = None,
            allow_path_mismatch: bool | None = None, extra_students: dict | None = None,
            strict: bool = True, catalog=None) -> dict:
    """The analysis sections of a report (see the module docstring).

    ``students`` is the report's per-student section (for the McNemar p values and format compliance);
    ``extra_students`` maps a base student found only in a stored run to ``(episodes, manifest)``.
    With ``strict`` a declared SFT pair whose paths differ raises; otherwise the entry is ``refused``.
    """
    allow = bool(run.get("allow_path_mismatch")) if allow_path_mismatch is None else bool(allow_path_mismatch)
    by_student: dict[str, list[Episode]] = defaultdict(list)
    for e in episodes:
        by_student[e.student].append(e)
    order = [n for n in (run.get("students") or {}) if n in by_student]
    order += sorted(n for n in by_student if n not in order)
    by_student = {n: by_student[n] for n in order}
    paths = {n: inference_path(run, n) for n in by_student}
    extra = dict(extra_students or {})
    for n, (_, man) in extra.items():
        paths[n] = inference_path(man, n)

    sft: dict = {}
    for s, b in declared_sft_pairs(run, sft_pairs):
        if s not in by_student:
            continue
        entry: dict = {"base": b}
        if b in by_student:
            base_eps = by_student[b]
        elif b in extra:
            base_eps = extra[b][0]
            entry["base_run"] = extra[b][1].get("run_dir") or extra[b][1].get("source")
        else:
            entry["missing"] = f"no episodes of {b} in this run or a stored run"
            sft[s] = entry
            continue
        try:
            mismatch = check_paths("SFT contribution", s, paths[s], b, paths.get(b, {}), allow=allow)
        except SkillbenchError as exc:
            if strict:
                raise
            entry["refused"] = str(exc)
            sft[s] = entry
            continue
        entry.update(sft_contribution(by_student[s], base_eps, seed=seed, resamples=resamples))
        if mismatch:
            entry["path_mismatch"] = mismatch
        sft[s] = entry

    if catalog is None:
        catalog = _catalog_for(run)
    scope, comps = comparisons(by_student, paths, allow=allow, seed=seed, resamples=resamples)
    return {
        "sft_contribution": sft,
        "comparisons": comps,
        "comparisons_scope": scope,
        "multiplicity": multiplicity(students),
        "per_skill": {n: per_skill(eps) for n, eps in by_student.items()},
        "diagnostics": diagnostics(by_student, students, run, catalog),
        "provenance": {"paths": paths, "allow_path_mismatch": allow},
    }


# -- bases stored in earlier runs ---------------------------------------------------------------------
def stored_base_students(session_run: dict, sft_pairs: list[str] | None, present: set[str], dirs: list[Path],
                         exclude: Path | None = None) -> dict:
    """For the session: bases of declared SFT pairs that are not in this run, from the newest stored run."""
    out = {}
    for s, b in declared_sft_pairs(session_run, sft_pairs):
        if s in present and b not in present and b not in out:
            hit = find_stored_student(dirs, b, session_run.get("bench_hash"), exclude=exclude)
            if hit is not None:
                run_dir, man = hit
                eps = [e for e in read_episodes(run_dir / "episodes.jsonl") if e.student == b]
                out[b] = (eps, {**man, "run_dir": str(run_dir)})
    return out


def check_declared_pairs(run: dict, sft_pairs: list[str] | None, extra: dict, *, allow: bool) -> None:
    """Refuse at session start an SFT pair whose inference paths differ (names each difference)."""
    present = set(run.get("students") or {})
    for s, b in declared_sft_pairs(run, sft_pairs):
        if s not in present:
            continue
        if b in present:
            bpath = inference_path(run, b)
        elif b in extra:
            bpath = inference_path(extra[b][1], b)
        else:
            continue
        check_paths("SFT contribution", s, inference_path(run, s), b, bpath, allow=allow)
