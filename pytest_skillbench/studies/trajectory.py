"""Checkpoint trajectories and loss versus quality.

``pytest --student v1@all-checkpoints`` runs the base (``v1@base``, step 0) and every ``v1@checkpoint-N`` of
v1's training run as students of one session (``students.registry.resolve_students``); ``skillbench
trajectory TRAIN_DIR`` does the same from the command line (or recomputes it from a stored run).

``trajectory_section`` groups students named ``FAMILY@base`` / ``FAMILY@checkpoint-N`` and reports per step:
pass rate per condition (over scored episodes), Δ = curated - baseline (paired, the students section's
number), mean response length in tokens, format compliance and the training loss logged at that step.
For each condition and for the pooled pass rate (all scored episodes of the step) it marks:

* ``dip``: the checkpoint (step > 0) with the lowest pass rate, and whether it is below the base;
* ``recovered_above_base``: whether the last checkpoint's pass rate is above the base's;
* ``best``: the checkpoint with the highest pass rate (earliest on ties) and whether it beats the base.

``plot_trajectory`` draws pass rate and response length against step (PNG, matplotlib Agg) with the base,
the dip and the best checkpoint marked.

``loss_vs_quality`` reads each student's final training loss (the last logged loss of its run:
``trainer_state.json`` ``log_history`` of a checkpoint, else ``steps`` / ``train_loss`` of
``training_manifest.json``) and reports Spearman rho between final loss and judged pass rate (and the
pairwise win-rate against the base when the run judged pairwise), with a plain-words warning when lower
loss goes with worse quality.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from .. import stats
from ..episodes import Status
from ..lineage import base_map, step_of
from ..plots import COND_COLOURS, new_figure, slug
from ..students.registry import checkpoint_dirs
from .drift import aggregate

CONDS = ("baseline", "curated")


# -- names ----------------------------------------------------------------------------------------------
def families(names: list[str]) -> dict[str, list[tuple[int, str]]]:
    """Families with at least one checkpoint: {family: [(step, student), ...] in step order}."""
    fams: dict[str, list[tuple[int, str]]] = {}
    for n in names:
        s = step_of(n)
        if s:
            fams.setdefault(s[0], []).append((s[1], n))
    return {f: sorted(v) for f, v in fams.items() if any(step > 0 for step, _ in v)}


# -- training loss --------------------------------------------------------------------------------------
def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _last_loss(rows, upto: int | None = None) -> tuple[float, int | None] | None:
    found = None
    for r in rows or []:
        if not isinstance(r, dict) or r.get("loss") is None:
            continue
        step = r.get("step")
        if upto is not None and step is not None and step > upto:
            continue
        found = (float(r["loss"]), step)
    return found


def training_loss(path: str | Path | None) -> dict | None:
    """The final training loss of the adapter / model at ``path``: ``{"loss", "step", "source"}`` or None.

    A ``checkpoint-N`` directory: the last ``loss`` in its ``trainer_state.json`` ``log_history`` (else the
    run's ``training_manifest.json`` ``steps`` up to N). A run directory: the last of
    ``training_manifest.json`` ``steps`` (else its ``train_loss``, the run's mean), else ``trainer_state.json``
    in it, else the last checkpoint's.
    """
    if not path:
        return None
    p = Path(path)
    if not p.is_dir():
        return None
    m = re.match(r"^checkpoint-(\d+)$", p.name)
    if m:
        n = int(m.group(1))
        state = _read_json(p / "trainer_state.json")
        hit = _last_loss((state or {}).get("log_history"), upto=n)
        if hit:
            return {"loss": hit[0], "step": hit[1] if hit[1] is not None else n, "source": str(p / "trainer_state.json")}
        man = _read_json(p.parent / "training_manifest.json")
        hit = _last_loss((man or {}).get("steps"), upto=n)
        if hit:
            return {"loss": hit[0], "step": hit[1], "source": str(p.parent / "training_manifest.json")}
        return None
    man = _read_json(p / "training_manifest.json")
    if man:
        hit = _last_loss(man.get("steps"))
        if hit:
            return {"loss": hit[0], "step": hit[1], "source": str(p / "training_manifest.json")}
        if man.get("train_loss") is not None:
            return {"loss": float(man["train_loss"]), "step": man.get("global_steps"),
                    "source": str(p / "training_manifest.json") + " (train_loss, mean over the run)"}
    state = _read_json(p / "trainer_state.json")
    hit = _last_loss((state or {}).get("log_history"))
    if hit:
        return {"loss": hit[0], "step": hit[1], "source": str(p / "trainer_state.json")}
    cks = checkpoint_dirs(p)
    if cks:
        return training_loss(cks[-1][1])
    return None


def student_weights_path(run: dict, name: str) -> str | None:
    spec = (((run or {}).get("students") or {}).get(name) or {}).get("spec") or {}
    return spec.get("adapter") or spec.get("base")


# -- per-step table -------------------------------------------------------------------------------------
def _pooled(conds: dict) -> float | None:
    passed = sum(c.get("passed", 0) for k, c in conds.items() if k in CONDS)
    scored = sum(c.get("scored", 0) for k, c in conds.items() if k in CONDS)
    return passed / scored if scored else None


def _marks(points: list[tuple[int, str, float | None]]) -> dict:
    """Dip, best and recovery over (step, student, value) points; step 0 is the base."""
    base = next((v for s, _, v in points if s == 0), None)
    cks = [(s, n, v) for s, n, v in points if s > 0 and v is not None]
    if not cks:
        return {"base": base, "dip": None, "best": None, "last": None, "recovered_above_base": None}
    dip = min(cks, key=lambda t: (t[2], t[0]))
    best = max(cks, key=lambda t: (t[2], -t[0]))
    last = cks[-1]
    cmp = (lambda v: None) if base is None else (lambda v: v > base)
    return {"base": base,
            "dip": {"step": dip[0], "student": dip[1], "pass_rate": dip[2],
                    "below_base": None if base is None else dip[2] < base},
            "best": {"step": best[0], "student": best[1], "pass_rate": best[2], "beats_base": cmp(best[2])},
            "last": {"step": last[0], "student": last[1], "pass_rate": last[2]},
            "recovered_above_base": cmp(last[2])}


def trajectory_section(episodes, run: dict, students: dict) -> dict:
    """{family: {"steps": [...], "marks": {condition | "pooled": {...}}, "length": {...}}}."""
    by: dict[str, list] = {}
    for e in episodes:
        by.setdefault(e.student, []).append(e)
    out = {}
    for family, pts in families(list(students)).items():
        rows = []
        for step, name in pts:
            st = students.get(name) or {}
            conds = st.get("conditions", {})
            eps = by.get(name, [])
            row = {"step": step, "student": name, "conditions": {}, "pooled_pass_rate": _pooled(conds),
                   "delta": (st.get("delta") or {}).get("value")}
            for cond in CONDS:
                if cond not in conds:
                    continue
                c = conds[cond]
                agg = aggregate([e for e in eps if e.condition == cond])
                row["conditions"][cond] = {"pass_rate": c.get("pass_rate"), "scored": c.get("scored"),
                                           "n": c.get("n"), "format_compliance": c.get("format_compliance"),
                                           "mean_tokens": agg.get("mean_tokens")}
            agg = aggregate([e for e in eps if e.condition in CONDS])
            row["mean_tokens"] = agg.get("mean_tokens")
            row["tokens_source"] = agg.get("tokens_source")
            answered = [e for e in eps if e.condition in CONDS and e.verdict.status != Status.ERROR]
            row["format_compliance"] = (sum(bool(e.verdict.format_ok) for e in answered) / len(answered)
                                        if answered else None)
            loss = training_loss(student_weights_path(run, name)) if step > 0 else None
            row["train_loss"] = loss["loss"] if loss else None
            rows.append(row)
        marks = {cond: _marks([(r["step"], r["student"], r["conditions"].get(cond, {}).get("pass_rate"))
                               for r in rows]) for cond in CONDS if any(cond in r["conditions"] for r in rows)}
        marks["pooled"] = _marks([(r["step"], r["student"], r["pooled_pass_rate"]) for r in rows])
        lengths = [(r["step"], r["mean_tokens"]) for r in rows if r["mean_tokens"] is not None]
        length = None
        if lengths:
            peak = max(lengths, key=lambda t: (t[1], -t[0]))
            length = {"base": next((v for s, v in lengths if s == 0), None), "peak_step": peak[0],
                      "peak_tokens": peak[1], "last_tokens": lengths[-1][1]}
        out[family] = {"steps": rows, "marks": marks, "length": length,
                       "has_base": any(r["step"] == 0 for r in rows)}
    return out


# -- loss versus quality -------------------------------------------------------------------------------
def loss_vs_quality(run: dict, students: dict, pairwise: dict | None = None) -> dict | None:
    """Spearman rho between final training loss and judged quality across the students with a loss.

    None when fewer than two students of the run have a readable training loss.
    """
    rows = []
    for name, st in students.items():
        loss = training_loss(student_weights_path(run, name))
        if loss is None:
            continue
        conds = st.get("conditions", {})
        win = ((pairwise or {}).get(name) or {}).get("win_rate")
        rows.append({"student": name, "final_loss": loss["loss"], "loss_step": loss["step"],
                     "loss_source": loss["source"], "pass_rate": _pooled(conds),
                     "pass_rates": {c: conds[c].get("pass_rate") for c in CONDS if c in conds},
                     "win_rate": win})
    if len(rows) < 2:
        return None
    rows.sort(key=lambda r: r["final_loss"])
    q = [r for r in rows if r["pass_rate"] is not None]
    rho = stats.spearman([r["final_loss"] for r in q], [r["pass_rate"] for r in q])
    w = [r for r in rows if r["win_rate"] is not None]
    rho_w = stats.spearman([r["final_loss"] for r in w], [r["win_rate"] for r in w]) if len(w) >= 2 else None
    warnings = []
    if rho["rho"] is not None and rho["rho"] > 0:
        warnings.append(f"lower training loss went with WORSE judged quality: Spearman rho(final loss, pass rate) "
                        f"= {rho['rho']:+.2f} over {rho['n']} students (p={rho['p']:.3g}); a lower loss did not "
                        "mean a better student - choose by evaluation, not by loss")
    if rho_w and rho_w["rho"] is not None and rho_w["rho"] > 0:
        warnings.append(f"lower training loss went with a LOWER pairwise win-rate against the base: Spearman rho "
                        f"= {rho_w['rho']:+.2f} over {rho_w['n']} students")
    lowest = rows[0]
    worst = min(q, key=lambda r: r["pass_rate"]) if q else None
    best = max(q, key=lambda r: r["pass_rate"]) if q else None
    if (len(q) >= 2 and worst is not None and lowest["pass_rate"] is not None
            and lowest["pass_rate"] <= worst["pass_rate"] and best["pass_rate"] > worst["pass_rate"]):
        warnings.append(f"the student with the lowest training loss ({lowest['student']}, loss "
                        f"{lowest['final_loss']:.4f}) has the lowest judged pass rate "
                        f"({100 * lowest['pass_rate']:.1f}%)")
    bases = base_map(list(students), run)
    beat, compared = [], 0
    for r in q:
        b = bases.get(r["student"])
        bq = _pooled((students.get(b) or {}).get("conditions", {})) if b else None
        if bq is not None:
            compared += 1
            if r["pass_rate"] > bq:
                beat.append(r["student"])
    if compared >= 2 and not beat:
        warnings.append(f"none of the {compared} trained students beat its base on judged pass rate")
    return {"students": rows, "spearman_pass_rate": rho, "spearman_win_rate": rho_w,
            "lowest_loss": lowest["student"], "best_quality": best["student"] if best else None,
            "warnings": warnings}


# -- plot -----------------------------------------------------------------------------------------------
def plot_trajectory(family: str, entry: dict, path: str | Path) -> Path:
    """Pass rate (per condition) and mean response length against step, base / dip / best marked."""
    path = Path(path)
    rows = entry["steps"]
    steps = [r["step"] for r in rows]
    fig, (ax1, ax2) = new_figure(2, 1, figsize=(7.5, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    for cond in CONDS:
        ys = [r["conditions"].get(cond, {}).get("pass_rate") for r in rows]
        if all(y is None for y in ys):
            continue
        colour = COND_COLOURS.get(cond)
        xs = [s for s, y in zip(steps, ys) if y is not None]
        vals = [100 * y for y in ys if y is not None]
        ax1.plot(xs, vals, marker="o", color=colour, label=cond)
        mk = entry["marks"].get(cond) or {}
        if mk.get("base") is not None:
            ax1.axhline(100 * mk["base"], color=colour, linestyle=":", linewidth=1)
        if mk.get("dip"):
            ax1.plot([mk["dip"]["step"]], [100 * mk["dip"]["pass_rate"]], marker="v", markersize=11,
                     color="#d62728", linestyle="none")
            ax1.annotate("dip", (mk["dip"]["step"], 100 * mk["dip"]["pass_rate"]), textcoords="offset points",
                         xytext=(0, -16), ha="center", fontsize=8, color="#d62728")
        if mk.get("best"):
            ax1.plot([mk["best"]["step"]], [100 * mk["best"]["pass_rate"]], marker="*", markersize=14,
                     color="#e6ab02", linestyle="none")
    ax1.set_ylabel("pass rate (%)")
    ax1.set_title(f"{family}: trajectory over training (step 0 = base; dotted = base; v dip, * best)")
    if ax1.get_legend_handles_labels()[0]:
        ax1.legend(loc="best", fontsize=8)
    else:
        ax1.text(0.5, 0.5, "no scored episodes", transform=ax1.transAxes, ha="center", va="center", color="grey")
    ax1.grid(alpha=0.3)
    for cond in CONDS:
        ys = [r["conditions"].get(cond, {}).get("mean_tokens") for r in rows]
        if all(y is None for y in ys):
            continue
        ax2.plot([s for s, y in zip(steps, ys) if y is not None], [y for y in ys if y is not None], marker="s",
                 color=COND_COLOURS.get(cond), label=cond)
    if ax2.get_legend_handles_labels()[0]:
        ax2.legend(loc="best", fontsize=8)
    ax2.set_ylabel("mean response length (tokens)")
    ax2.set_xlabel("training step")
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def write_plots(report: dict, outdir: str | Path) -> list[Path]:
    """One ``trajectory-<family>.png`` per family; the path is recorded in the report entry."""
    files = []
    for family, entry in (report.get("trajectory") or {}).items():
        p = plot_trajectory(family, entry, Path(outdir) / f"trajectory-{slug(family)}.png")
        entry["plot"] = str(p)
        files.append(p)
    return files


# -- report sections and rendering ---------------------------------------------------------------------
def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def render_trajectory(report: dict) -> list[str]:
    lines: list[str] = []
    for family, entry in (report.get("trajectory") or {}).items():
        rows = entry["steps"]
        n_ck = sum(r["step"] > 0 for r in rows)
        lines.append("")
        lines.append(f"trajectory {family}: {'base + ' if entry['has_base'] else ''}{n_ck} checkpoint(s) "
                     "(pass rate over scored; tokens = mean response length)")
        lines.append(f"  {'step':>6} {'student':<30} {'baseline':>8} {'curated':>8} {'Δ pts':>6} {'tokens':>7} "
                     f"{'format':>7} {'loss':>7}")
        for r in rows:
            c = r["conditions"]
            d = "" if r["delta"] is None else f"{100 * r['delta']:+.1f}"
            tok = "" if r["mean_tokens"] is None else f"{r['mean_tokens']:.0f}"
            loss = "" if r["train_loss"] is None else f"{r['train_loss']:.4f}"
            lines.append(f"  {r['step']:>6} {r['student']:<30} {_pct(c.get('baseline', {}).get('pass_rate')):>8} "
                         f"{_pct(c.get('curated', {}).get('pass_rate')):>8} {d:>6} {tok:>7} "
                         f"{_pct(r['format_compliance']):>7} {loss:>7}")
        for key, mk in entry["marks"].items():
            if not mk.get("dip"):
                continue
            dip, best, last = mk["dip"], mk["best"], mk["last"]
            below = "" if dip["below_base"] is None else (" below base" if dip["below_base"] else " not below base")
            rec = mk["recovered_above_base"]
            rec_s = ("no base to compare" if rec is None else
                     "recovered above base" if rec else "did NOT recover above base")
            beats = "" if best["beats_base"] is None else (" beats base" if best["beats_base"] else
                                                           " does not beat base")
            lines.append(f"  {key}: base {_pct(mk['base'])}; dip step {dip['step']} ({_pct(dip['pass_rate'])}{below}); "
                         f"last step {last['step']} {_pct(last['pass_rate'])} {rec_s}; best step {best['step']} "
                         f"({_pct(best['pass_rate'])}{beats})")
        ln = entry.get("length")
        if ln:
            base = "" if ln["base"] is None else f"base {ln['base']:.0f}, "
            lines.append(f"  length: {base}peak {ln['peak_tokens']:.0f} tokens at step {ln['peak_step']}, "
                         f"last {ln['last_tokens']:.0f}")
        if entry.get("plot"):
            lines.append(f"  plot: {entry['plot']}")
    lq = report.get("loss_vs_quality")
    if lq:
        lines.append("")
        sp = lq["spearman_pass_rate"]
        rho = "n/a" if sp["rho"] is None else f"{sp['rho']:+.2f} (p={sp['p']:.3g})"
        lines.append(f"loss vs quality over {len(lq['students'])} students: Spearman rho(final loss, pass rate) {rho}; "
                     f"lowest loss {lq['lowest_loss']}, best judged {lq['best_quality']}")
        for r in lq["students"]:
            win = "" if r["win_rate"] is None else f"  win-rate {_pct(r['win_rate'])}"
            lines.append(f"  {r['student']:<30} loss {r['final_loss']:.4f}  pass rate {_pct(r['pass_rate'])}{win}")
        for w in lq["warnings"]:
            lines.append(f"WARNING: {w}")
    return lines
