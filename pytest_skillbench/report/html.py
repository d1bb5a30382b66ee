"""The run viewer: one self-contained HTML page per run (``report.html``).

The page is rendered with jinja2 from the same report dict that is written to ``report.json`` plus the run's
episodes: every statistic shown is read from the report, never recomputed here (the page only groups
episodes for the task browser). CSS, JavaScript and the SVG charts are inline, so the file opens from disk
with no network.

Model output is untrusted input: HTML goes through jinja2's autoescaping, and the episodes travel as JSON in
a ``<script type="application/json">`` block in which ``<``, ``>``, ``&`` and U+2028/U+2029 are written as
``\\uXXXX`` escapes, so no ``</script>`` or ``<!--`` survives; the page's script puts that text into the DOM
with ``textContent`` only.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections import defaultdict
from pathlib import Path

from ..bench import BUNDLED_BENCHES, load_bench
from ..episodes import STATUSES, Episode, Status
from ..errors import SkillbenchError
from ..gates import render_gates
from ..prompts import messages, prompts_hash
from ..studies.probe import load_probe
from ..studies.probe import messages as probe_messages
from .summary import condition_summary

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
TEMPLATE = "run.html.j2"
HTML_NAME = "report.html"
# Characters of responses embedded in one page: past this, each long response keeps its head and tail
# (the final ANSWER line) and says how much was cut; the full text stays in episodes.jsonl.
RESPONSE_BUDGET = 3_000_000
MIN_RESPONSE_CAP = 1_500
COND_COLOURS = {"baseline": "#8da0cb", "curated": "#fc8d62"}
_SKILL_RE = re.compile(r"--- SKILL: (?P<name>[^\n]*?) ---\n.*?--- END SKILL ---", re.DOTALL)
_JSON_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
_JSON_ESCAPE_RE = re.compile("[<>&\u2028\u2029]")


def script_json(data) -> str:
    """JSON that is safe inside a ``<script>`` element: no ``</script>``, ``<!--`` or line separators."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=str)
    return _JSON_ESCAPE_RE.sub(lambda m: _JSON_ESCAPES[m.group(0)], text)


# -- formatting (the page shows the report's numbers; these only choose how many digits) ---------------
def _pct(x) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def _pts(x) -> str:
    return "–" if x is None else f"{100 * x:+.1f}"


def _num(x) -> str:
    if x is None:
        return "–"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return str(x)
    if isinstance(x, float):
        if math.isnan(x):
            return "nan"
        return f"{x:.4g}"
    return str(x)


def _p(x) -> str:
    return "–" if x is None else (f"{x:.3f}" if x >= 0.001 else f"{x:.1e}")


# -- episodes -> the task browser's data ---------------------------------------------------------------
class _Strings:
    """A string table: repeated texts (skills, rationales, prompts) are stored once in the page."""

    def __init__(self) -> None:
        self.items: list[str] = []
        self.index: dict[str, int] = {}

    def __call__(self, text) -> int | None:
        if text is None:
            return None
        text = str(text)
        i = self.index.get(text)
        if i is None:
            i = self.index[text] = len(self.items)
            self.items.append(text)
        return i


def _fold(text: str, cap: int) -> tuple[str, int]:
    """Head and tail of a long text (the tail holds the ANSWER line), and how many characters were cut."""
    if len(text) <= cap:
        return text, 0
    head, tail = int(cap * 0.7), cap - int(cap * 0.7)
    cut = len(text) - head - tail
    return f"{text[:head]}\n[… {cut} characters cut here; the full response is in episodes.jsonl …]\n{text[-tail:]}", cut


def _response_cap(episodes: list[dict]) -> int | None:
    total = sum(len(e.get("response") or "") for e in episodes)
    if total <= RESPONSE_BUDGET:
        return None
    lengths = sorted(len(e.get("response") or "") for e in episodes)
    # the largest cap that keeps the total within the budget
    lo, hi = MIN_RESPONSE_CAP, lengths[-1]
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if sum(min(n, mid) for n in lengths) <= RESPONSE_BUDGET:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _forced(ep: dict) -> dict | None:
    """Answer forcing (when the run has it): ``extra["forced"]`` of the episode or of its verdict."""
    v = ep.get("verdict") or {}
    for src in (ep.get("extra") or {}, v.get("extra") or {}, v.get("detail") or {}):
        f = src.get("forced") if isinstance(src, dict) else None
        if isinstance(f, dict):
            return f
    return None


def _scoring(ep: dict, forced: dict | None) -> str | None:
    v = ep.get("verdict") or {}
    for src in (v, v.get("extra") or {}, ep.get("extra") or {}, forced or {}, v.get("detail") or {}):
        s = src.get("scoring") if isinstance(src, dict) else None
        if isinstance(s, str):
            return s
    return None


def base_of(report: dict) -> dict[str, str]:
    """student -> its base student (SFT pairs and ``base_student`` as the report records them)."""
    out = {}
    for name, entry in (report.get("sft_contribution") or {}).items():
        if isinstance(entry, dict) and entry.get("base"):
            out[name] = entry["base"]
    for name, entry in ((report.get("run") or {}).get("students") or {}).items():
        base = ((entry or {}).get("provenance") or {}).get("base_student") or ((entry or {}).get("spec") or {}).get(
            "base_student")
        if base and name not in out:
            out[name] = base
    return out


def _outcome(status: str | None) -> int | None:
    return {Status.PASSED: 1, Status.FAILED: 0}.get(status or "")


def browser_data(report: dict, episodes: list[dict], prompts: dict | None = None) -> dict:
    """What the task browser needs, compact: a string table, one record per episode, prompts by task."""
    S = _Strings()
    cap = _response_cap(episodes)
    status_of = {(e["student"], e["condition"], e["task_uid"]): (e.get("verdict") or {}).get("status")
                 for e in episodes}
    bases = base_of(report)
    rows = []
    for e in episodes:
        v = e.get("verdict") or {}
        key = (e["student"], e["condition"], e["task_uid"])
        other = "curated" if e["condition"] == "baseline" else "baseline"
        mine = _outcome(v.get("status"))
        flips = 0
        o = _outcome(status_of.get((e["student"], other, e["task_uid"])))
        if mine is not None and o is not None and o != mine:
            flips |= 1
        base = bases.get(e["student"])
        b = _outcome(status_of.get((base, e["condition"], e["task_uid"]))) if base else None
        if mine is not None and b is not None and b != mine:
            flips |= 2
        resp = e.get("response")
        cut = 0
        if resp is not None and cap is not None:
            resp, cut = _fold(resp, cap)
        row = {"s": S(key[0]), "c": S(key[1]), "u": S(key[2]), "k": S(e.get("skill")), "q": S(e.get("query_type")),
               "t": S(e.get("category")), "st": S(v.get("status")), "g": S(v.get("expected")),
               "x": S(v.get("extracted")), "r": S(v.get("reason")), "ra": S(v.get("rationale")),
               "j": S(v.get("judge")), "f": bool(v.get("format_ok")), "re": S(resp), "fl": flips}
        if cut:
            row["cut"] = cut
        if v.get("score") is not None:
            row["sc"] = v["score"]
        forced = _forced(e)
        if forced:
            row["fo"] = {k: forced.get(k) for k in ("answer", "extracted", "status", "margin", "method", "logprobs",
                                                    "truncated") if k in forced}
        strict = (v.get("extra") or {}).get("strict")
        if isinstance(strict, dict):  # a forced primary verdict keeps the strict one it stands in for
            row["sv"] = {"st": S(strict.get("status")), "x": S(strict.get("extracted")), "r": S(strict.get("reason")),
                         "ra": S(strict.get("rationale"))}
        scoring = _scoring(e, forced)
        if scoring:
            row["sg"] = S(scoring)
        verdicts = (e.get("extra") or {}).get("verdicts")
        if isinstance(verdicts, dict):  # --judge both: each judge's own verdict
            row["v"] = {name: {"st": S(d.get("status")), "x": S(d.get("extracted")), "r": S(d.get("reason")),
                               "ra": S(d.get("rationale")), "j": S(d.get("judge"))}
                        for name, d in verdicts.items() if isinstance(d, dict)}
        rows.append(row)
    task_prompts = {}
    for uid, msgs in (prompts or {}).items():
        task_prompts[S(uid)] = {cond: [[S(m["role"]), _segments(m["content"], S)] for m in ms]
                                for cond, ms in msgs.items()}
    return {"strings": S.items, "episodes": rows, "prompts": task_prompts,
            "bases": {S(k): S(v) for k, v in bases.items()}, "responseCap": cap}


def _segments(text: str, S: _Strings) -> list:
    """A message as [plain, [skill name, SKILL block], plain, ...] so the page can fold the SKILL block."""
    out: list = []
    pos = 0
    for m in _SKILL_RE.finditer(text):
        out.append(S(text[pos:m.start()]))
        out.append([S(m.group("name")), S(m.group(0))])
        pos = m.end()
    out.append(S(text[pos:]))
    return out


def _bench_of_run(run: dict, load_bench):
    """The bench the manifest names; for a bundled bench whose files moved on since the run (``bundled`` is
    v2 now), the bundled bench whose content hash is the run's (e.g. ``bundled-v1``)."""
    bench = load_bench(run["bench"])
    split, want = run.get("split"), run.get("bench_hash")
    if not (split and want) or bench.content_hash(split) == want:
        return bench
    if run["bench"] in BUNDLED_BENCHES:
        for name in BUNDLED_BENCHES:
            try:
                other = load_bench(name)
                if other.content_hash(split) == want:
                    return other
            except SkillbenchError:
                continue
    return bench


def run_prompts(report: dict, episodes: list[dict], bench=None) -> tuple[dict, str | None]:
    """The prompts of the run's tasks, rebuilt from its bench and catalog (``{uid: {condition: messages}}``),
    and a note when they cannot be shown or may differ from what the run sent. ``bench``: the session's own
    (at session end); else the one the manifest names is loaded."""
    run = report.get("run") or {}
    bench_src = run.get("bench")
    if not bench_src and bench is None:
        return {}, "prompts not shown: the manifest names no bench"
    try:
        if bench is None:
            bench = _bench_of_run(run, load_bench)
        tasks = {}
        for name in bench.splits:
            for t in bench.split(name):
                tasks[t.task_uid] = t
        wanted = defaultdict(set)
        for e in episodes:
            wanted[e["task_uid"]].add(e["condition"])
        out: dict = {}
        for uid, conds in wanted.items():
            t = tasks.get(uid)
            if t is None:
                continue
            out[uid] = {c: messages(t, c, bench.catalog) for c in sorted(conds) if c in ("baseline", "curated")}
        probe = run.get("probe") or {}
        if probe.get("source"):
            for item in load_probe(probe["source"]):
                if item.uid in wanted:
                    out[item.uid] = {"probe": probe_messages(item)}
    except Exception as exc:
        return {}, f"prompts not shown: {type(exc).__name__}: {exc}"
    notes = []
    split = run.get("split")
    try:
        if run.get("bench_hash") and split and bench.content_hash(split) != run["bench_hash"]:
            notes.append(f"the bench {bench_src} changed since this run (hash {bench.content_hash(split)} now, "
                         f"{run['bench_hash']} in the run): prompts are rebuilt from the current files")
    except SkillbenchError:
        pass
    if run.get("prompts_hash") and run["prompts_hash"] != prompts_hash():
        notes.append("the solver prompts changed since this run: prompts are rebuilt with the current wording")
    missing = sum(1 for uid in wanted if uid not in out)
    if missing:
        notes.append(f"{missing} task(s) of the run are not in {bench_src}: their prompts are not shown")
    return out, "; ".join(notes) or None


# -- the summary tables (numbers read from the report) -------------------------------------------------
def _cell(path: list, value, text: str) -> dict:
    return {"path": path, "value": value, "text": text}


def summary_rows(report: dict) -> list[dict]:
    """One row per student x condition; each number with its path in the report (the browser test reads it)."""
    rows = []
    sft = report.get("sft_contribution") or {}
    for name, st in (report.get("students") or {}).items():
        conds = st.get("conditions") or {}
        d = st.get("delta") or None
        for i, (cond, c) in enumerate(conds.items()):
            p = ["students", name, "conditions", cond]
            ci = c.get("ci95")
            strict = c.get("strict") if isinstance(c.get("strict"), dict) else None
            row = {"student": name, "condition": cond, "first": i == 0, "span": len(conds),
                   "n": _cell(p + ["n"], c.get("n"), _num(c.get("n"))),
                   "scored": _cell(p + ["scored"], c.get("scored"), _num(c.get("scored"))),
                   "pass_rate": _cell(p + ["pass_rate"], c.get("pass_rate"), _pct(c.get("pass_rate"))),
                   "ci": "" if not ci else f"[{_pct(ci[0])}, {_pct(ci[1])}]",
                   "unscored": _cell(p + ["unscored"], c.get("unscored"), _num(c.get("unscored"))),
                   "errors": _cell(p + ["errors"], c.get("errors"), _num(c.get("errors"))),
                   "format": _cell(p + ["format_compliance"], c.get("format_compliance"),
                                   _pct(c.get("format_compliance")))}
            if strict is not None:
                row["strict"] = _cell(p + ["strict", "pass_rate"], strict.get("pass_rate"), _pct(strict.get("pass_rate")))
            for key in ("forced_share", "format_gap"):
                if key in c:
                    row[key] = _cell(p + [key], c[key], _pct(c[key]) if key == "forced_share" else _pts(c[key]))
            if i == 0 and d:
                dp = ["students", name, "delta"]
                mc = d.get("mcnemar") or {}
                row["delta"] = _cell(dp + ["value"], d.get("value"), _pts(d.get("value")))
                row["delta_ci"] = "" if not d.get("ci95") else f"[{_pts(d['ci95'][0])}, {_pts(d['ci95'][1])}]"
                row["mcnemar_p"] = _cell(dp + ["mcnemar", "p"], mc.get("p"), _p(mc.get("p")))
                row["n_pairs"] = _cell(dp + ["n_pairs"], d.get("n_pairs"), _num(d.get("n_pairs")))
                row["flips"] = f"{mc.get('c', '–')} up / {mc.get('b', '–')} down"
            s = sft.get(name) if i == 0 else None
            if isinstance(s, dict):
                dl = s.get("delta_lift") or {}
                if dl.get("value") is not None:
                    row["sft"] = _cell(["sft_contribution", name, "delta_lift", "value"], dl["value"],
                                       _pts(dl["value"]))
                    row["sft_ci"] = "" if not dl.get("ci95") else f"[{_pts(dl['ci95'][0])}, {_pts(dl['ci95'][1])}]"
                row["sft_base"] = s.get("base")
                row["sft_note"] = s.get("refused") or s.get("missing") or ""
            rows.append(row)
    return rows


def summary_columns(rows: list[dict]) -> dict[str, bool]:
    """Optional columns shown only when some row has them (strict / forced / SFT)."""
    return {k: any(k in r for r in rows) for k in ("strict", "forced_share", "format_gap", "sft")}


def gate_lines(report: dict) -> list[dict]:
    gates = report.get("gates") or {}
    lines = render_gates(gates)
    return [{"text": line, "state": "pass" if "PASS" in line[:8] else "fail" if "FAIL" in line[:8] else ""}
            for line in lines]


def _heat_colour(delta) -> str:
    if delta is None:
        return "#f3f3f3"
    x = max(-1.0, min(1.0, float(delta)))
    if x >= 0:  # white -> teal
        r, g, b = (int(255 + (42 - 255) * x), int(255 + (157 - 255) * x), int(255 + (143 - 255) * x))
    else:  # white -> coral
        r, g, b = (int(255 + (231 - 255) * -x), int(255 + (111 - 255) * -x), int(255 + (81 - 255) * -x))
    return f"#{r:02x}{g:02x}{b:02x}"


def _rate_colour(rate) -> str:
    if rate is None:
        return "#f3f3f3"
    x = max(0.0, min(1.0, float(rate)))
    return f"#{int(255 - 180 * x):02x}{int(255 - 95 * x):02x}{int(255 - 40 * x):02x}"


def heatmap(report: dict) -> dict | None:
    per = report.get("per_skill") or {}
    if not per:
        return None
    students = list(per)
    skills = sorted({s for p in per.values() for s in (p.get("skills") or {})})
    rows = []
    for skill in skills:
        cells = []
        for name in students:
            e = (per[name].get("skills") or {}).get(skill)
            if not e:
                cells.append(None)
                continue
            b, c = (e.get("baseline") or {}).get("pass_rate"), (e.get("curated") or {}).get("pass_rate")
            d = e.get("delta")
            cells.append({"delta": d, "baseline": b, "curated": c, "text": _pts(d) if d is not None else "–",
                          "colour": _heat_colour(d), "bcolour": _rate_colour(b), "ccolour": _rate_colour(c),
                          "btext": _pct(b), "ctext": _pct(c), "group": e.get("group", ""),
                          "title": f"{name} / {skill}: baseline {_pct(b)} (n={(e.get('baseline') or {}).get('n', 0)}), "
                                   f"curated {_pct(c)} (n={(e.get('curated') or {}).get('n', 0)}), "
                                   f"Δ {_pts(d)} over {e.get('n_pairs', 0)} pairs"})
        rows.append({"skill": skill, "cells": cells})
    return {"students": students, "rows": rows}


def query_type_table(report: dict, episodes: list[dict]) -> dict | None:
    """Pass rate and chance rate per student x query type x condition, read from the report
    (``conditions.<cond>.query_types``). A report written before that section existed gets the pass rates
    from the report's own ``condition_summary`` over the stored episodes, without chance rates."""
    data: dict = {}
    from_report = False
    for name, st in (report.get("students") or {}).items():
        for cond, c in (st.get("conditions") or {}).items():
            for qt, q in (c.get("query_types") or {}).items():
                from_report = True
                data.setdefault(name, {}).setdefault(qt, {})[cond] = (
                    q, ["students", name, "conditions", cond, "query_types", qt])
    if not from_report:
        groups = defaultdict(list)
        for e in episodes:
            if e.get("condition") in ("baseline", "curated"):
                groups[(e["student"], e.get("query_type") or "", e["condition"])].append(e)
        for (st, qt, cond), eps in sorted(groups.items()):
            data.setdefault(st, {}).setdefault(qt, {})[cond] = (
                condition_summary([Episode.from_dict(x) for x in eps]), None)
    if not data:
        return None
    qts = sorted({qt for st in data.values() for qt in st})
    rows = []
    for qt in qts:
        cells = []
        for by_qt in data.values():
            for cond in ("baseline", "curated"):
                q, path = (by_qt.get(qt) or {}).get(cond) or ({}, None)
                cell = {"pass": _cell(path + ["pass_rate"], q.get("pass_rate"), _pct(q.get("pass_rate")))
                        if path else {"text": _pct(q.get("pass_rate"))},
                        "n": q.get("scored")}
                if path and "chance_rate" in q:
                    cell["chance"] = _cell(path + ["chance_rate"], q["chance_rate"], _pct(q["chance_rate"]))
                cells.append(cell)
        rows.append({"qt": qt, "cells": cells})
    return {"students": list(data), "rows": rows, "from_report": from_report}


# -- inline SVG charts ---------------------------------------------------------------------------------
def _esc(text) -> str:
    from markupsafe import escape

    return str(escape(str(text)))


def svg_pass_rates(report: dict) -> str:
    """Pass rate with its Wilson CI per student and condition (one colour per condition)."""
    students = list(report.get("students") or {})
    bars = []
    for i, name in enumerate(students):
        for j, cond in enumerate(("baseline", "curated")):
            c = (report["students"][name].get("conditions") or {}).get(cond) or {}
            if c.get("pass_rate") is not None:
                bars.append((i, j, cond, c["pass_rate"], c.get("ci95") or [c["pass_rate"]] * 2))
    w = max(360, 120 * len(students) + 80)
    h, top, bottom, left = 240, 24, 44, 44
    ph = h - top - bottom
    out = [(f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{w}" height="{h}" role="img" '
            f'aria-label="pass rate per student and condition">')]
    if not bars:
        out.append(f'<text x="{w / 2}" y="{h / 2}" text-anchor="middle" class="nothing">nothing scored</text></svg>')
        return "".join(out)
    for k in range(0, 101, 25):
        y = top + ph * (1 - k / 100)
        out.append(f'<line x1="{left}" x2="{w - 10}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
                   f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" class="tick">{k}%</text>')
    gw = (w - left - 10) / max(1, len(students))
    bw = min(36.0, gw / 3)
    for i, j, cond, rate, ci in bars:
        x = left + gw * i + gw / 2 + (j - 1) * bw + (2 if j else -2)
        y = top + ph * (1 - rate)
        y0, y1 = top + ph * (1 - ci[1]), top + ph * (1 - ci[0])
        cx = x + bw / 2
        out.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bw:.1f}" height="{top + ph - y:.1f}" '
                   f'fill="{COND_COLOURS.get(cond, "#999")}" class="bar-{_esc(cond)}"><title>'
                   f'{_esc(students[i])} {cond}: {_pct(rate)} [{_pct(ci[0])}, {_pct(ci[1])}]</title></rect>'
                   f'<line x1="{cx:.1f}" x2="{cx:.1f}" y1="{y0:.1f}" y2="{y1:.1f}" class="whisker"/>'
                   f'<text x="{cx:.1f}" y="{top + ph - 4:.1f}" text-anchor="middle" class="barlabel">'
                   f'{100 * rate:.0f}</text>')
    for i, name in enumerate(students):
        label = name if len(name) <= 22 else name[:21] + "…"
        out.append(f'<text x="{left + gw * i + gw / 2:.1f}" y="{h - bottom + 16}" text-anchor="middle" '
                   f'class="tick">{_esc(label)}</text>')
    lx = left
    for cond, colour in COND_COLOURS.items():
        out.append(f'<rect x="{lx}" y="{h - 16}" width="10" height="10" fill="{colour}"/>'
                   f'<text x="{lx + 14}" y="{h - 7}" class="tick">{cond}</text>')
        lx += 90
    out.append("</svg>")
    return "".join(out)


def svg_deltas(report: dict) -> str | None:
    """Δ (curated - baseline) with its paired bootstrap CI per student: a forest plot."""
    rows = [(n, st["delta"]) for n, st in (report.get("students") or {}).items() if st.get("delta")]
    if not rows:
        return None
    lo = min([-0.1] + [d["ci95"][0] for _, d in rows if d.get("ci95")])
    hi = max([0.1] + [d["ci95"][1] for _, d in rows if d.get("ci95")])
    w, left, right, rh = 560, 170, 20, 26
    h = 30 + rh * len(rows)

    def X(v):
        return left + (w - left - right) * (v - lo) / (hi - lo)

    out = [(f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{w}" height="{h}" role="img" '
            f'aria-label="delta per student"><line x1="{X(0):.1f}" x2="{X(0):.1f}" y1="4" y2="{h - 22}" '
            'class="zero"/>')]
    for k, (name, d) in enumerate(rows):
        y = 16 + rh * k
        label = name if len(name) <= 24 else name[:23] + "…"
        out.append(f'<text x="{left - 8}" y="{y + 4}" text-anchor="end" class="tick">{_esc(label)}</text>')
        if d.get("ci95"):
            out.append(f'<line x1="{X(d["ci95"][0]):.1f}" x2="{X(d["ci95"][1]):.1f}" y1="{y}" y2="{y}" '
                       f'class="whisker"/>')
        if d.get("value") is not None:
            out.append(f'<circle cx="{X(d["value"]):.1f}" cy="{y}" r="5" class="dot"><title>{_esc(name)}: '
                       f'Δ {_pts(d["value"])}</title></circle>')
    out.append(f'<text x="{X(lo):.1f}" y="{h - 6}" class="tick">{_pts(lo)}</text>'
               f'<text x="{X(hi):.1f}" y="{h - 6}" text-anchor="end" class="tick">{_pts(hi)}</text>'
               f'<text x="{X(0):.1f}" y="{h - 6}" text-anchor="middle" class="tick">0</text></svg>')
    return "".join(out)


# -- sections ----------------------------------------------------------------------------------------
OPTIONAL_SECTIONS = (("sft_contribution", "SFT contribution"), ("comparisons", "Comparisons between students"),
                     ("multiplicity", "Multiplicity"), ("trajectory", "Trajectory over training"),
                     ("loss_vs_quality", "Training loss vs quality"), ("drift", "Drift"),
                     ("probe", "Generality probe"), ("pairwise", "Pairwise judging against the base"),
                     ("rubric", "Rubric scores"), ("diagnostics", "Diagnostics"), ("provenance", "Inference paths"))


def _present(value) -> bool:
    if isinstance(value, dict):
        return any(_present(v) for v in value.values())
    if isinstance(value, list):
        return bool(value)
    return value is not None


def optional_sections(report: dict) -> list[dict]:
    out = []
    for key, title in OPTIONAL_SECTIONS:
        val = report.get(key)
        if key == "drift" and isinstance(val, dict):
            val = val.get("students") and val  # the drift section is always written; shown when it has data
        if _present(val):
            out.append({"id": key, "title": title, "data": val})
    return out


def render_html(report: dict, episodes: list[dict], *, prompts: dict | None = None,
                prompt_note: str | None = None, source: str = "") -> str:
    """The page for one run: ``report`` as in report.json, ``episodes`` as dicts (episodes.jsonl lines)."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)), autoescape=True,
                             trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.do"])
    env.filters.update(pct=_pct, pts=_pts, num=_num, pval=_p)
    rows = summary_rows(report)
    data = browser_data(report, episodes, prompts)
    run = report.get("run") or {}
    students = list(dict.fromkeys([e["student"] for e in episodes] + list(report.get("students") or {})))
    facets = {"student": students,
              "condition": sorted({e["condition"] for e in episodes}),
              "status": [s for s in STATUSES
                         if any((e.get("verdict") or {}).get("status") == s for e in episodes)],
              "skill": sorted({e.get("skill") or "" for e in episodes}),
              "query_type": sorted({e.get("query_type") or "" for e in episodes})}
    ctx = {"report": report, "run": run, "rows": rows, "cols": summary_columns(rows),
           "gates": gate_lines(report), "gate_exit": (report.get("gates") or {}).get("exit_code"),
           "heatmap": heatmap(report), "qtypes": query_type_table(report, episodes),
           "chart_pass": svg_pass_rates(report), "chart_delta": svg_deltas(report),
           "sections": optional_sections(report), "facets": facets, "has_bases": bool(base_of(report)),
           "data_json": script_json(data), "warnings": list(report.get("warnings") or []),
           "judging_warning": (report.get("judging") or {}).get("warning"), "prompt_note": prompt_note,
           "n_episodes": len(episodes), "source": source,
           "disagreements": {n: st["judge_disagreements"] for n, st in (report.get("students") or {}).items()
                             if st.get("judge_disagreements")}}
    from markupsafe import Markup

    ctx["chart_pass"] = Markup(ctx["chart_pass"])
    ctx["chart_delta"] = Markup(ctx["chart_delta"]) if ctx["chart_delta"] else None
    ctx["data_json"] = Markup(ctx["data_json"])
    return env.get_template(TEMPLATE).render(**ctx)


def _read_run(run_dir: Path) -> tuple[dict, list[dict]]:
    rep = run_dir / "report.json"
    eps_file = run_dir / "episodes.jsonl"
    if not rep.is_file():
        raise SkillbenchError("not a finished run directory (no report.json)", path=run_dir)
    if not eps_file.is_file():
        raise SkillbenchError("not a run directory (no episodes.jsonl)", path=run_dir)
    try:
        report = json.loads(rep.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise SkillbenchError(f"unreadable report: {exc}", path=rep) from None
    episodes = []
    # split on "\n" only: str.splitlines() also breaks at U+2028/U+2029, which a response may contain
    for n, line in enumerate(eps_file.read_text(encoding="utf-8").split("\n"), 1):
        if line.strip():
            try:
                ep = json.loads(line)
            except json.JSONDecodeError as exc:
                raise SkillbenchError(f"malformed episode: {exc}", path=eps_file, line=n) from None
            if not isinstance(ep, dict) or not all(k in ep for k in ("student", "condition", "task_uid")):
                raise SkillbenchError("episode without student / condition / task_uid", path=eps_file, line=n)
            episodes.append(ep)
    return report, episodes


def write_html(out: Path, report: dict, episodes: list[dict], *, source: str = "", bench=None) -> Path:
    """Render and write the page atomically; returns its path. ``report`` is taken as report.json holds it
    (a JSON round trip), so the page and the file show the same values."""
    report = json.loads(json.dumps(report, ensure_ascii=False, default=str))
    prompts, note = run_prompts(report, episodes, bench)
    html = render_html(report, episodes, prompts=prompts, prompt_note=note, source=source)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(html, encoding="utf-8")
    os.replace(tmp, out)
    return out


def write_run_html(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """``skillbench view``: the page of a stored run (no model, no judge)."""
    run_dir = Path(run_dir)
    report, episodes = _read_run(run_dir)
    return write_html(Path(out) if out else run_dir / HTML_NAME, report, episodes, source=str(run_dir))


def session_html_path(setting: str | None, run_dir: Path) -> Path | None:
    """``--skillbench-html``: a path, ``none`` (no page), or unset (``RUN_DIR/report.html``)."""
    if setting is not None and str(setting).strip().lower() == "none":
        return None
    return Path(setting) if setting else run_dir / HTML_NAME
