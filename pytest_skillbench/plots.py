"""PNG plots of a report (matplotlib's object API on an Agg canvas: no display needed, and the user's pyplot
backend is never switched):

* ``pass_rates.png``: pass rate with its Wilson 95% CI per student and condition;
* ``skill_delta_<student>.png``: Δ per skill (curated - baseline), sorted, coloured lift / flat / regression;
* ``skill_delta_vs_baseline_<student>.png``: per-skill Δ against the per-skill baseline pass rate, with
  Spearman rho;
* ``delta_series.png``: Δ with its paired bootstrap CI across a series of students (sizes or checkpoints),
  the view in which a non-monotone (W) shape shows.
"""

from __future__ import annotations

import re
from pathlib import Path

from .errors import SkillbenchError

GROUP_COLOURS = {"lift": "#2a9d8f", "flat": "#9e9e9e", "regression": "#e76f51"}
COND_COLOURS = {"baseline": "#8da0cb", "curated": "#fc8d62"}


def new_figure(nrows: int = 1, ncols: int = 1, *, figsize=None, **subplot_kw):
    """``(figure, axes)`` drawn on their own Agg canvas, outside pyplot: plotting here neither switches the
    user's backend (``matplotlib.use``) nor leaves figures open in pyplot's registry."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig, fig.subplots(nrows, ncols, **subplot_kw)


def nothing_scored(ax, what: str = "nothing scored") -> None:
    """Say so on the axes instead of drawing an empty chart."""
    ax.text(0.5, 0.5, what, transform=ax.transAxes, ha="center", va="center", fontsize=14, color="#777777")
    ax.set_xticks([])
    ax.set_yticks([])


def slug(name: str) -> str:
    """A student or family name as a file-name part."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "student"


def plot_pass_rates(report: dict, path: Path) -> Path:
    students = list(report.get("students", {}))
    conds = ["baseline", "curated"]
    fig, ax = new_figure(figsize=(max(5.0, 1.6 * len(students) + 2), 4.2))
    width = 0.38
    drawn = 0
    for j, cond in enumerate(conds):
        xs, ys, lo, hi = [], [], [], []
        for i, name in enumerate(students):
            c = report["students"][name]["conditions"].get(cond)
            if not c or c.get("pass_rate") is None:
                continue
            xs.append(i + (j - 0.5) * width)
            ys.append(c["pass_rate"])
            lo.append(c["pass_rate"] - c["ci95"][0])
            hi.append(c["ci95"][1] - c["pass_rate"])
        if not xs:
            continue
        drawn += len(xs)
        ax.bar(xs, ys, width, yerr=[lo, hi], capsize=4, label=cond, color=COND_COLOURS[cond])  # one colour each
        for x, y in zip(xs, ys):
            ax.text(x, 0.02, f"{100 * y:.0f}%", ha="center", va="bottom", fontsize=8)
    ax.set_title("Pass rate per student and condition (Wilson 95% CI)")
    if not drawn:
        nothing_scored(ax)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        return path
    ax.set_xticks(range(len(students)))
    ax.set_xticklabels(students, rotation=20 if len(students) > 3 else 0, ha="right" if len(students) > 3 else "center")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("pass rate (scored episodes)")
    ax.legend(loc="upper left", frameon=False)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def plot_skill_delta(report: dict, student: str, path: Path) -> Path | None:
    ps = (report.get("per_skill") or {}).get(student)
    if not ps:
        return None
    rows = [(s, e["delta"], e.get("group", "flat")) for s, e in ps["skills"].items() if e.get("delta") is not None]
    if not rows:
        return None
    rows.sort(key=lambda r: r[1])
    fig, ax = new_figure(figsize=(7.5, max(3.0, 0.22 * len(rows) + 1.2)))
    ax.barh(range(len(rows)), [100 * r[1] for r in rows], color=[GROUP_COLOURS[r[2]] for r in rows])
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([r[0] for r in rows], fontsize=7)
    ax.axvline(0, color="black", linewidth=0.8)
    d = (report["students"].get(student) or {}).get("delta")
    if d:
        ax.axvline(100 * d["value"], color="black", linestyle="--", linewidth=0.8, label=f"overall Δ {100 * d['value']:+.1f}")
        ax.legend(loc="lower right", frameon=False, fontsize=8)
    g = ps["groups"]
    ax.set_xlabel("Δ pass rate, curated - baseline (points)")
    ax.set_title(f"{student}: Δ per skill ({len(g['lift'])} lift, {len(g['flat'])} flat, "
                 f"{len(g['regression'])} regression)", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def plot_skill_delta_vs_baseline(report: dict, student: str, path: Path) -> Path | None:
    ps = (report.get("per_skill") or {}).get(student)
    if not ps:
        return None
    pts = [(e["baseline"]["pass_rate"], e["delta"], e.get("group", "flat")) for e in ps["skills"].values()
           if e.get("delta") is not None and (e.get("baseline") or {}).get("pass_rate") is not None]
    if not pts:
        return None
    fig, ax = new_figure(figsize=(5.5, 4.2))
    from collections import Counter

    counts = Counter((round(p[0], 6), round(p[1], 6)) for p in pts)  # coinciding skills: one bigger marker
    uniq = {(round(p[0], 6), round(p[1], 6)): p for p in pts}
    ax.scatter([100 * p[0] for p in uniq.values()], [100 * p[1] for p in uniq.values()],
               s=[36 * counts[k] for k in uniq], c=[GROUP_COLOURS[p[2]] for p in uniq.values()],
               alpha=0.75, edgecolors="black", linewidths=0.4)
    if max(counts.values()) > 1:
        ax.text(0.99, 0.98, "marker area = number of skills", transform=ax.transAxes, ha="right", va="top",
                fontsize=7, color="#555555")
    ax.axhline(0, color="black", linewidth=0.8)
    sp = ps["spearman_baseline_vs_delta"]
    rho = "n/a" if sp["rho"] is None else f"{sp['rho']:+.2f} (p={sp['p']:.2g})"
    ax.set_title(f"{student}: per-skill Δ vs baseline\nSpearman rho {rho}, {sp['n']} skills, {sp['tied_x']} tied",
                 fontsize=10)
    ax.set_xlabel("per-skill baseline pass rate (%)")
    ax.set_ylabel("per-skill Δ (points)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def plot_delta_series(report: dict, path: Path, series: list[str] | None = None) -> Path | None:
    students = report.get("students", {})
    if not series:  # run order (the order the students were given), not the report's alphabetical order
        run_order = [n for n in (report.get("run") or {}).get("students") or {} if n in students]
        series = run_order + [n for n in students if n not in run_order]
    missing = [n for n in series if n not in students]
    if missing:
        raise SkillbenchError(f"--series names unknown student(s): {', '.join(missing)} "
                              f"(known: {', '.join(students)})")
    names = [n for n in series if (students.get(n) or {}).get("delta")]
    if not names:
        return None
    vals = [100 * students[n]["delta"]["value"] for n in names]
    lo = [v - 100 * students[n]["delta"]["ci95"][0] for v, n in zip(vals, names)]
    hi = [100 * students[n]["delta"]["ci95"][1] - v for v, n in zip(vals, names)]
    fig, ax = new_figure(figsize=(max(5.0, 1.1 * len(names) + 2), 4.0))
    ax.errorbar(range(len(names)), vals, yerr=[lo, hi], fmt="o-", capsize=4, color="#264653")
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=20 if len(names) > 3 else 0, ha="right" if len(names) > 3 else "center")
    ax.set_ylabel("Δ curated - baseline (points)")
    ax.set_title("Δ across the series (paired bootstrap 95% CI)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def make_plots(report: dict, outdir: str | Path, series: list[str] | None = None) -> list[Path]:
    """Write every plot the report supports into ``outdir``; returns the files written."""
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    files = [plot_pass_rates(report, out / "pass_rates.png")]
    for name in report.get("students", {}):
        files.append(plot_skill_delta(report, name, out / f"skill_delta_{slug(name)}.png"))
        files.append(plot_skill_delta_vs_baseline(report, name, out / f"skill_delta_vs_baseline_{slug(name)}.png"))
    files.append(plot_delta_series(report, out / "delta_series.png", series))
    return [f for f in files if f is not None]
