"""Render the report dict as the end-of-session terminal table."""

from __future__ import annotations


def _pct(x: float | None) -> str:
    return "   n/a" if x is None else f"{100 * x:5.1f}%"


def _ci(ci) -> str:
    return "" if not ci else f"[{100 * ci[0]:5.1f}, {100 * ci[1]:5.1f}]"


def render(report: dict) -> list[str]:
    lines = []
    students = report.get("students", {})
    if not students:
        return ["no skillbench episodes were recorded"]
    lines.append(f"{'student':<28} {'condition':<9} {'n':>4} {'pass':>4} {'rate':>6} {'95% CI (Wilson)':<16} "
                 f"{'unsc':>4} {'err':>4} {'format':>6}  judge")
    for name, st in students.items():
        for cond, c in st["conditions"].items():
            lines.append(f"{name:<28} {cond:<9} {c['n']:>4} {c['passed']:>4} {_pct(c['pass_rate']):>6} "
                         f"{_ci(c['ci95']):<16} {c['unscored']:>4} {c['errors']:>4} "
                         f"{_pct(c['format_compliance']):>6}  {','.join(c.get('judges', []))}")
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
                     f"McNemar b={mc['b']} c={mc['c']}{stat} p={mc['p']:.4g} ({mc['method']}){mde}")
    warn = [(n, cond, c) for n, st in students.items() for cond, c in st["conditions"].items()
            if c["errors"] or c["unscored"]]
    for n, cond, c in warn:
        if c["errors"]:
            lines.append(f"WARNING: {n}/{cond}: {c['errors']} episode(s) in error (infrastructure) - "
                         "excluded from pass rates, not counted as failures")
        if c["unscored"]:
            lines.append(f"note: {n}/{cond}: {c['unscored']} episode(s) unscored (no parseable answer or judge "
                         "output) - excluded from pass rates")
    return lines
