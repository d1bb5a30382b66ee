"""Render the report dict as the end-of-session terminal table."""

from __future__ import annotations

from .. import forcing
from ..studies.behaviour import render as render_behaviour
from .judging import render_judging


def _pct(x: float | None) -> str:
    return "   n/a" if x is None else f"{100 * x:5.1f}%"


def _ci(ci) -> str:
    return "" if not ci else f"[{100 * ci[0]:5.1f}, {100 * ci[1]:5.1f}]"


def _judges(student: dict) -> str:
    return ",".join(sorted({j for c in student.get("conditions", {}).values() for j in c.get("judges", [])}))


def render(report: dict) -> list[str]:
    lines = []
    students = report.get("students", {})
    if not students:
        return render_behaviour(report)[1:] or ["no skillbench episodes were recorded"]
    forced = any("strict" in c for st in students.values() for c in st["conditions"].values())
    more = f" {'strict':>6} {'forced':>6} {'gap':>6}" if forced else ""
    lines.append(f"{'student':<28} {'condition':<9} {'n':>4} {'pass':>4} {'rate':>6} {'95% CI (Wilson)':<16} "
                 f"{'unsc':>4} {'err':>4} {'format':>6}{more}  judge")
    for name, st in students.items():
        for cond, c in st["conditions"].items():
            more = ""
            if forced:
                more = (f" {_pct((c.get('strict') or {}).get('pass_rate')):>6} {_pct(c.get('forced_share')):>6} "
                        f"{_pts(c.get('format_gap')):>6}")
            lines.append(f"{name:<28} {cond:<9} {c['n']:>4} {c['passed']:>4} {_pct(c['pass_rate']):>6} "
                         f"{_ci(c['ci95']):<16} {c['unscored']:>4} {c['errors']:>4} "
                         f"{_pct(c['format_compliance']):>6}{more}  {','.join(c.get('judges', []))}")
    if forced:
        lines.append("rate = primary verdicts (strict ANSWER line when scored, else the forced answer); strict = "
                     "ANSWER-line verdicts only, over those scored; forced = share of scored verdicts that were "
                     "forced; gap = rate - strict (pts)")
        for name, st in students.items():
            ag = st.get("forced_vs_strict_agreement")
            if ag:
                share = "n/a" if ag["share"] is None else f"{100 * ag['share']:.1f}%"
                parts = [f"{m} {_pct(a['share']).strip()} of {a['n']}" for m, a in (ag.get("by_method") or {}).items()]
                lines.append(f"forced vs strict agreement {name}: {share} of {ag['n']} episode(s) with a scored "
                             "ANSWER line give the same forced answer (the forcing method's validity check)"
                             + (f"; {', '.join(parts)}" if parts else ""))
                if forcing.agreement_is_low(ag):
                    lines.append(f"note: {name}: the forced answer differs from the model's own ANSWER line in "
                                 f"{100 * (1 - ag['share']):.0f}% of the episodes that have both; the pass rates "
                                 "resting on forced verdicts (see forced) carry that noise: read strict and the "
                                 "strict-only delta beside them")
    lines.append("")
    for name, st in students.items():
        d = st.get("delta")
        if not d:
            continue
        mc = d["mcnemar"]
        stat = "" if mc["statistic"] is None else f" stat={mc['statistic']:.3f}"
        mde = "" if d.get("mde80") is None else f"; MDE80 {100 * d['mde80']:.1f} pts"
        lines.append(f"Δ {name}: {100 * d['value']:+.1f} pts (curated - baseline), paired bootstrap 95% CI "
                     f"[{100 * d['ci95'][0]:+.1f}, {100 * d['ci95'][1]:+.1f}], n_pairs={d['n_pairs']}; "
                     f"McNemar b={mc['b']} c={mc['c']}{stat} p={mc['p']:.4g} ({mc['method']}){mde}"
                     f" [judge: {_judges(st)}]")
        ds = d.get("strict")
        if "strict" in d:
            lines.append(f"  strict-only Δ {name}: " + ("no task strictly scored in both conditions" if not ds else
                         f"{100 * ds['value']:+.1f} pts, 95% CI [{100 * ds['ci95'][0]:+.1f}, "
                         f"{100 * ds['ci95'][1]:+.1f}], n_pairs={ds['n_pairs']}, McNemar "
                         f"p={ds['mcnemar']['p']:.4g}"))
    warn = [(n, cond, c) for n, st in students.items() for cond, c in st["conditions"].items()
            if c["errors"] or c["unscored"]]
    for n, cond, c in warn:
        if c["errors"]:
            lines.append(f"WARNING: {n}/{cond}: {c['errors']} episode(s) in error (infrastructure) - "
                         f"excluded from pass rates, not counted as failures [judge: {','.join(c.get('judges', []))}]")
        if c["unscored"]:
            lines.append(f"note: {n}/{cond}: {c['unscored']} episode(s) unscored (no parseable answer or judge "
                         f"output) - excluded from pass rates [judge: {','.join(c.get('judges', []))}]")
    lines += render_query_types(report)
    lines += render_judging(report)
    lines += render_analysis(report)
    lines += render_behaviour(report)  # trajectory, loss vs quality, pairwise, rubric, probe, drift
    return lines


def render_query_types(report: dict) -> list[str]:
    """The compact per-query-type table: pass rate beside the chance rate of a uniform guess."""
    rows = [(name, cond, qt, q) for name, st in report.get("students", {}).items()
            for cond, c in st.get("conditions", {}).items() for qt, q in (c.get("query_types") or {}).items()]
    if not rows:
        return []
    lines = ["", f"{'student':<28} {'condition':<9} {'query type':<11} {'scored':>6} {'rate':>6} {'chance':>6}"]
    for name, cond, qt, q in rows:
        lines.append(f"{name:<28} {cond:<9} {qt:<11} {q['scored']:>6} {_pct(q['pass_rate']):>6} "
                     f"{_pct(q['chance_rate']):>6}")
    return lines


def _pts(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:+.1f}"


def _ci_pts(ci) -> str:
    return "" if not ci else f"[{100 * ci[0]:+.1f}, {100 * ci[1]:+.1f}]"


def _flag(entry: dict) -> str:
    mm = entry.get("path_mismatch")
    return f"  [PATH MISMATCH: {'; '.join(mm)}]" if mm else ""


def render_analysis(report: dict) -> list[str]:
    """Lines for the analysis sections: multiplicity, comparisons, SFT contribution, per skill, diagnostics."""
    lines: list[str] = []
    mult = report.get("multiplicity") or {}
    if mult.get("m", 0) > 1:
        lines.append("")
        lines.append(f"multiplicity: {mult['m']} McNemar tests, alpha {mult['alpha']}: survive Holm: "
                     f"{', '.join(mult['survive_holm']) or 'none'}; survive Bonferroni: "
                     f"{', '.join(mult['survive_bonferroni']) or 'none'}")
        for t in mult["tests"]:
            lines.append(f"  {t['student']:<28} p={t['p']:.4g}  Holm={t['holm']:.4g}  Bonferroni={t['bonferroni']:.4g}"
                         f"  {'survives' if t['survives_holm'] else 'does not survive'} Holm")
    comps = report.get("comparisons") or []
    if comps:
        lines.append("")
        if report.get("comparisons_scope") == "adjacent":
            lines.append("comparisons: each student with the next one in run order (more than 10 students; "
                         "every pair up to 10)")
        for c in comps:
            if "refused" in c:
                lines.append(f"Δ {c['a']} - Δ {c['b']}: REFUSED, {c['refused']} (--allow-path-mismatch to "
                             "report it flagged)")
                continue
            lines.append(f"Δ {c['a']} - Δ {c['b']}: {_pts(c['difference'])} pts, bootstrap 95% CI "
                         f"{_ci_pts(c['ci95'])}, one-sided p={c['one_sided_p']:.3g}, n_tasks={c['n_tasks']}"
                         f"{_flag(c)}")
    sft = report.get("sft_contribution") or {}
    if sft:
        lines.append("")
        for name, e in sft.items():
            if "missing" in e or "refused" in e:
                lines.append(f"SFT contribution {name} over {e['base']}: not computed ({e.get('missing') or e['refused']})")
                continue
            parts = []
            for key, label in (("baseline_lift", "ΔBL"), ("curated_lift", "ΔCU"), ("delta_lift", "Δ-lift")):
                v = e[key]
                parts.append(f"{label} {_pts(v['value'])} {_ci_pts(v['ci95'])}")
            where = f" (base from {e['base_run']})" if e.get("base_run") else ""
            why = ""
            if all(e[k]["n"] == 0 for k in ("baseline_lift", "curated_lift")):
                why = " - no task scored for both the student and its base in any condition (see unscored above)"
            lines.append(f"SFT contribution {name} over {e['base']}{where}: " + ", ".join(parts) + " pts" + why
                         + _flag(e))
    per = report.get("per_skill") or {}
    if per:
        lines.append("")
        for name, ps in per.items():
            g = ps["groups"]
            sp = ps["spearman_baseline_vs_delta"]
            rho = "n/a" if sp["rho"] is None else f"{sp['rho']:+.2f} (p={sp['p']:.3g})"
            se = ", ".join(f"{c} {100 * v:.1f} pts" for c, v in ps["clustered_se"].items() if v is not None)
            lines.append(f"per skill {name}: {len(g['lift'])} lift, {len(g['flat'])} flat, {len(g['regression'])} "
                         f"regression; Spearman rho(baseline rate, Δ) {rho}, {sp['n']} skills, {sp['tied_x']} tied"
                         + (f"; SE clustered by skill: {se}" if se else ""))
    diag = report.get("diagnostics") or {}
    for name, d in (diag.get("students") or {}).items():
        ph = d.get("phantom_skill_block") or {}
        th = d.get("thinking") or {}
        bits = []
        if ph.get("n"):
            bits.append(f"phantom skill block in {ph['count']}/{ph['n']} baseline responses ({_pct(ph['rate']).strip()})")
        if th.get("policy") and th["policy"] != "keep":
            bits.append(f"thinking {th['policy']} ({th.get('episodes_with_thinking_removed', 0)} responses trimmed)")
        if bits:
            lines.append(f"diagnostics {name}: " + "; ".join(bits))
    for w in diag.get("template_warnings") or []:
        lines.append(f"WARNING: {w['message']}")
    return lines


def render_per_skill(report: dict) -> list[str]:
    """The per-skill tables: pass rate by skill and condition, Δ and group."""
    lines = []
    for name, ps in (report.get("per_skill") or {}).items():
        lines.append("")
        lines.append(f"per skill: {name}")
        lines.append(f"  {'skill':<32} {'baseline':>9} {'curated':>9} {'Δ pts':>7}  group")
        for skill, e in ps["skills"].items():
            bl = e.get("baseline", {}).get("pass_rate")
            cu = e.get("curated", {}).get("pass_rate")
            lines.append(f"  {skill:<32} {_pct(bl):>9} {_pct(cu):>9} {_pts(e.get('delta')):>7}  {e.get('group', '')}")
    return lines
