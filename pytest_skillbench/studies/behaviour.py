"""The behaviour studies as report sections: what ``report/`` asks of drift, trajectory, loss vs quality,
the generality probe and pairwise / rubric judging, kept in one place so the report imports one module.

* ``bench_extra``: the drift metrics stored on every bench episode (``Episode.extra["drift"]``), and the
  task's chance rate (``Episode.extra["chance_rate"]``, when defined) for the per-query-type report;
* ``split_probe`` / ``report_sections``: the report keys computed from episodes (``drift``, ``trajectory``,
  ``loss_vs_quality``, ``probe``) - also for ``skillbench report`` on stored runs;
* ``render``: the terminal lines of all of the above.

The session's side of the studies (probe items, pairwise / rubric judging at session end) is in
``session.py``.
"""

from __future__ import annotations

from .drift import asks_for_json, drift_section, episode_metrics
from .pairwise import render as render_judged
from .probe import PROBE_CONDITION, probe_section
from .probe import render as render_probe
from .trajectory import loss_vs_quality, render_trajectory, trajectory_section


def bench_extra(spec, res) -> dict:
    out = {"drift": episode_metrics(res.text, res.gen_tokens, asks_json=asks_for_json(spec.task.question))}
    chance = getattr(spec.task, "chance_rate", None)
    if chance is not None:
        out["chance_rate"] = chance
    return out


# -- report ------------------------------------------------------------------------------------------
def split_probe(episodes) -> tuple[list, list]:
    bench = [e for e in episodes if e.condition != PROBE_CONDITION]
    probe = [e for e in episodes if e.condition == PROBE_CONDITION]
    return bench, probe


def report_sections(bench_eps, probe_eps, run: dict, students: dict) -> dict:
    out: dict = {"drift": drift_section(list(bench_eps) + list(probe_eps), run)}
    traj = trajectory_section(bench_eps, run, students)
    if traj:
        out["trajectory"] = traj
    lq = loss_vs_quality(run, students)
    if lq:
        out["loss_vs_quality"] = lq
    probe = probe_section(probe_eps, run)
    if probe:
        out["probe"] = probe
    return out


# -- terminal ----------------------------------------------------------------------------------------
def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def render_drift(report: dict) -> list[str]:
    d = report.get("drift") or {}
    studs = d.get("students") or {}
    if not studs:
        return []
    lines = ["", "drift (per answered response): tokens = mean length; slop = share with a slop phrase; rep4 = "
                 "repeated 4-gram share; loops = >1 </think>"]
    lines.append(f"  {'student':<30} {'condition':<9} {'tokens':>7} {'slop':>6} {'rep4':>6} {'loops':>6} "
                 f"{'refusal':>7} {'JSON ok':>8}")
    for name, conds in studs.items():
        for cond, a in conds.items():
            if not a.get("answered"):
                continue
            js = "" if a.get("json_valid_rate") is None else f"{_pct(a['json_valid_rate'])}"
            lines.append(f"  {name:<30} {cond:<9} {a['mean_tokens']:>7.0f} {_pct(a['slop_rate']):>6} "
                         f"{_pct(a['repeated_ngram_rate']):>6} {_pct(a['think_loop_rate']):>6} "
                         f"{_pct(a['refusal_rate']):>7} {js:>8}")
    for name, a in (d.get("against_base") or {}).items():
        parts = []
        for cond, x in a["conditions"].items():
            ratio = "" if x.get("length_ratio") is None else f"length x{x['length_ratio']:.2f}"
            parts.append(f"{cond} {ratio}")
        lines.append(f"  drift {name} vs {a['base']}: " + "; ".join(parts)
                     + ("" if not a["flags"] else " - " + "; ".join(a["flags"])))
    return lines


def render(report: dict) -> list[str]:
    lines = render_trajectory(report) + render_judged(report) + render_probe(report) + render_drift(report)
    for w in report.get("warnings") or []:
        if "pairwise/rubric" in w or "trajectory plot" in w:
            lines.append(f"WARNING: {w}")
    return lines
