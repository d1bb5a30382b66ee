"""CI gates: ``--gate EXPR`` (repeatable) and non-inferiority ``--gate-against REF --gate-margin M``.

Gate syntax::

    [student:NAME.][skill:SKILL.|category:CATEGORY.]METRIC OP NUMBER

    METRIC := baseline.M | curated.M | delta[.value|.ci95.low|.ci95.high|.p|.n_pairs]
            | against.COND.(diff|ci95.low|ci95.high|n_pairs)          (needs --gate-against)
    M      := pass_rate | ci95.low | ci95.high | format_compliance | error_rate | unscored_rate
            | n | scored | passed | failed | unscored | errors
    OP     := >= | > | <= | < | ==        NUMBER := 0.85 | 85%

Examples: ``curated.pass_rate>=0.85``, ``delta>=0``, ``delta.ci95.low>0``,
``skill:modus-ponens.curated.pass_rate>=0.6``, ``category:logical.delta>=0``,
``student:v2.1.curated.format_compliance>=0.9``.

A gate without ``student:`` applies to every student of the run except the ``--gate-against``
reference (one result line each). Every number is computed from the *selected* items' episodes, so
``-k``/``-m`` narrow the gates too. A metric that cannot be computed (nothing scored, no paired task)
fails its gate.

Non-inferiority (``--gate-against REF``): REF is another student of the run, or a baseline file written
by ``skillbench baseline save`` (``PATH`` or ``PATH::STUDENT`` when it holds several students), or a run
directory. For each student and each condition present on both sides, the paired difference
new - reference in pass rate over the tasks scored on both sides gets a paired bootstrap 95% CI; the gate
fails when the CI's lower bound is below ``-margin``. The matched-path guard (``provenance.check_paths``)
applies: students generated or judged differently are refused (a failed gate naming each difference)
unless ``--allow-path-mismatch``, which flags the line instead.

Exit status (set by the plugin at session end): 3 when any selected episode is in ``error`` (backend or
judge outage: the numbers are incomplete; nothing says the model got worse); otherwise with gates 0 when
every gate holds (even if individual tasks failed) and 1 when one fails; without gates pytest's own
status (0 every item passed or was unscored, 1 some task was answered wrongly).
"""

from __future__ import annotations

import operator
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import stats
from .baseline import Reference, load_reference
from .bench.catalog import CATEGORIES
from .episodes import Episode, Status
from .errors import SkillbenchError
from .forcing import strict_episodes
from .provenance import check_paths, inference_path

EXIT_OK, EXIT_GATE_FAILED, EXIT_INFRASTRUCTURE = 0, 1, 3
OPS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt, "==": operator.eq}
CONDITIONS = ("baseline", "curated")
COND_METRICS = ("pass_rate", "ci95.low", "ci95.high", "format_compliance", "error_rate", "unscored_rate", "n",
                "scored", "passed", "failed", "unscored", "errors",
                # answer forcing (forcing.py): strict = the ANSWER-line verdicts alone
                "strict.pass_rate", "strict.ci95.low", "strict.ci95.high", "strict.scored", "strict.passed",
                "forced_share", "format_gap")
DELTA_METRICS = ("value", "ci95.low", "ci95.high", "p", "n_pairs",
                 # answer forcing: the Δ of the strict (ANSWER-line) verdicts alone
                 "strict.value", "strict.ci95.low", "strict.ci95.high", "strict.p", "strict.n_pairs")
AGAINST_METRICS = ("diff", "ci95.low", "ci95.high", "n_pairs")
_EXPR = re.compile(r"^\s*(?P<lhs>[^<>=]+?)\s*(?P<op>>=|<=|==|>|<)\s*(?P<num>[-+]?(?:\d+(?:\.\d*)?|\.\d+)"
                   r"(?:[eE][-+]?\d+)?)\s*(?P<pct>%)?\s*$")
_NAME = re.compile(r"^[A-Za-z0-9_-]+")
USAGE = ("gate syntax: [student:NAME.][skill:SKILL.|category:CATEGORY.]METRIC OP NUMBER, e.g. "
         "'curated.pass_rate>=0.85', 'delta>=0', 'delta.ci95.low>0', 'skill:modus-ponens.curated.pass_rate>=0.6'; "
         "METRIC is baseline.M, curated.M (M: " + ", ".join(COND_METRICS) + "), delta[.value|.ci95.low|"
         ".ci95.high|.p|.n_pairs] or against.COND.(diff|ci95.low|ci95.high|n_pairs); OP is >=, >, <=, < or ==")


@dataclass
class Gate:
    text: str
    metric: str  # e.g. "curated.pass_rate", "delta.ci95.low", "against.curated.ci95.low"
    op: str
    threshold: float
    student: str | None = None
    skill: str | None = None
    category: str | None = None

    @property
    def scope(self) -> str:
        return f"skill {self.skill}" if self.skill else f"category {self.category}" if self.category else ""


@dataclass
class GatePlan:
    gates: list[Gate]
    reference: Reference | None = None
    margin: float = 0.0

    @property
    def active(self) -> bool:
        return bool(self.gates) or self.reference is not None


# -- parsing ------------------------------------------------------------------------------------------
def _bad(text: str, why: str) -> SkillbenchError:
    return SkillbenchError(f"--gate {text!r}: {why}. {USAGE}")


def parse_gate(text: str, *, students: list[str] = (), skills: list[str] | None = None,
               categories: list[str] | None = None, conditions: list[str] = CONDITIONS,
               has_reference: bool = True) -> Gate:
    """One gate expression -> Gate; any problem is one SkillbenchError naming it and the syntax."""
    m = _EXPR.match(text or "")
    if not m:
        raise _bad(text, "expected METRIC OP NUMBER")
    lhs, op = m.group("lhs").strip(), m.group("op")
    threshold = float(m.group("num")) / (100.0 if m.group("pct") else 1.0)
    gate = Gate(text=text.strip(), metric="", op=op, threshold=threshold)
    rest = lhs
    while True:
        if rest.startswith("student:"):
            tail = rest[len("student:"):]
            names = sorted((s for s in students if tail.startswith(s + ".")), key=len, reverse=True)
            if not names:
                known = ", ".join(students) or "none"
                raise _bad(text, f"student:{tail.split('.')[0]}... is not a student of this run (students: {known})")
            gate.student, rest = names[0], tail[len(names[0]) + 1:]
        elif rest.startswith(("skill:", "category:")):
            kind, tail = rest.split(":", 1)
            nm = _NAME.match(tail)
            if not nm or tail[nm.end():nm.end() + 1] != ".":
                raise _bad(text, f"{kind}:NAME must be followed by '.' and a metric")
            name = nm.group(0)
            known = skills if kind == "skill" else categories
            if known is not None and name not in known:
                raise _bad(text, f"unknown {kind} {name!r}")
            if gate.skill or gate.category:
                raise _bad(text, "at most one skill: or category: scope")
            setattr(gate, kind, name)
            rest = tail[nm.end() + 1:]
        else:
            break
    parts = rest.split(".")
    head = parts[0]
    if head == "delta":
        sub = ".".join(parts[1:]) or "value"
        if sub not in DELTA_METRICS:
            raise _bad(text, f"unknown delta metric {sub!r}")
        missing = [c for c in CONDITIONS if c not in conditions]
        if missing:
            raise _bad(text, f"delta needs both conditions, but {missing[0]} is not run")
        gate.metric = f"delta.{sub}"
    elif head in CONDITIONS:
        sub = ".".join(parts[1:])
        if sub not in COND_METRICS:
            raise _bad(text, f"unknown {head} metric {sub!r}")
        if head not in conditions:
            raise _bad(text, f"condition {head} is not run")
        gate.metric = f"{head}.{sub}"
    elif head == "against":
        if len(parts) < 3 or parts[1] not in CONDITIONS or ".".join(parts[2:]) not in AGAINST_METRICS:
            raise _bad(text, "against needs a condition and one of " + ", ".join(AGAINST_METRICS))
        if not has_reference:
            raise _bad(text, "against.* metrics need --gate-against REF")
        gate.metric = ".".join(parts)
    else:
        raise _bad(text, f"unknown metric {rest!r}")
    return gate


def resolve_reference(ref: str, students: list[str], root: Path) -> Reference:
    """``--gate-against REF``: a student of the run, or a baseline file / run directory (``::STUDENT``)."""
    if ref in students:
        return Reference(name=ref, source="run")
    return load_reference(ref, root)


def build_plan(session) -> GatePlan:
    """Parse and check the session's gates (one usage error for the first bad one)."""
    s = session.settings
    students = list(session.specs)
    reference = resolve_reference(s.gate_against, students, session.root) if s.gate_against else None
    margin = float(s.gate_margin or 0.0)
    if margin < 0:
        raise SkillbenchError(f"--gate-margin {margin:g}: the margin is a non-negative pass-rate difference "
                              "(e.g. 0.02 for 2 points)")
    if s.gate_margin and not s.gate_against:
        raise SkillbenchError("--gate-margin needs --gate-against REF (a student of the run or a baseline file)")
    gates = [parse_gate(g, students=students, skills=list(session.catalog.names()), categories=list(CATEGORIES),
                        conditions=list(s.condition), has_reference=reference is not None) for g in s.gate]
    if reference is not None and reference.in_run and len(students) < 2:
        raise SkillbenchError(f"--gate-against {reference.name}: the reference is the only student of the run")
    return GatePlan(gates=gates, reference=reference, margin=margin)


# -- evaluation ---------------------------------------------------------------------------------------
def _outcomes(eps: list[Episode], condition: str) -> dict[str, int]:
    return {e.task_uid: int(e.verdict.status == Status.PASSED) for e in eps
            if e.condition == condition and e.verdict.scored}


def _strict(eps: list[Episode]) -> list[Episode]:
    return strict_episodes(eps)


def _cond_metrics(eps: list[Episode], with_strict: bool = True) -> dict:
    """Metrics of one condition on primary verdicts; ``strict.*`` on the strict verdicts alone, with the forced
    share (of scored verdicts) and the format gap (primary - strict pass rate)."""
    m = _cond_metrics_of(eps)
    if with_strict:
        s = _cond_metrics_of(_strict(eps))
        m.update({f"strict.{k}": v for k, v in s.items() if k in ("pass_rate", "ci95.low", "ci95.high", "scored",
                                                                  "passed")})
        forced = sum(e.verdict.scored and e.verdict.scoring == "forced" for e in eps)
        m["forced_share"] = forced / m["scored"] if m["scored"] else None
        m["format_gap"] = (m["pass_rate"] - s["pass_rate"]
                           if m["pass_rate"] is not None and s["pass_rate"] is not None else None)
    return m


def _cond_metrics_of(eps: list[Episode]) -> dict:
    n = len(eps)
    passed = sum(e.verdict.status == Status.PASSED for e in eps)
    failed = sum(e.verdict.status == Status.FAILED for e in eps)
    unscored = sum(e.verdict.status == Status.UNSCORED for e in eps)
    errors = sum(e.verdict.status == Status.ERROR for e in eps)
    scored = passed + failed
    answered = n - errors
    lo, hi = stats.wilson(passed, scored) if scored else (None, None)
    return {"n": n, "scored": scored, "passed": passed, "failed": failed, "unscored": unscored, "errors": errors,
            "pass_rate": passed / scored if scored else None, "ci95.low": lo, "ci95.high": hi,
            "format_compliance": (sum(bool(e.verdict.format_ok) for e in eps
                                      if e.verdict.status != Status.ERROR)
                                  / answered) if answered else None,
            "error_rate": errors / n if n else None, "unscored_rate": unscored / n if n else None}


def _delta_metrics(eps: list[Episode], seed: int, resamples: int) -> dict:
    m = _delta_metrics_of(eps, seed, resamples)
    m.update({f"strict.{k}": v for k, v in _delta_metrics_of(_strict(eps), seed, resamples).items()})
    return m


def _delta_metrics_of(eps: list[Episode], seed: int, resamples: int) -> dict:
    a, b = _outcomes(eps, "baseline"), _outcomes(eps, "curated")
    uids = sorted(set(a) & set(b))
    if not uids:
        return {"n_pairs": 0, "value": None, "ci95.low": None, "ci95.high": None, "p": None}
    base = np.array([a[u] for u in uids], dtype=np.int8)
    cur = np.array([b[u] for u in uids], dtype=np.int8)
    value, (lo, hi) = stats.delta_ci(base, cur, resamples=resamples, seed=seed)
    mc = stats.mcnemar(int(np.sum((base == 1) & (cur == 0))), int(np.sum((base == 0) & (cur == 1))))
    return {"n_pairs": len(uids), "value": value, "ci95.low": lo, "ci95.high": hi, "p": mc.p}


def paired_against(new: list[Episode], ref: list[Episode], condition: str, *, seed: int, resamples: int) -> dict:
    """new - reference pass rate over tasks scored on both sides, with a paired bootstrap 95% CI."""
    a, b = _outcomes(new, condition), _outcomes(ref, condition)
    uids = sorted(set(a) & set(b))
    if not uids:
        return {"n_pairs": 0, "diff": None, "ci95.low": None, "ci95.high": None, "new_rate": None, "ref_rate": None}
    diff = np.array([a[u] - b[u] for u in uids], dtype=np.float64)
    lo, hi = stats.paired_bootstrap(diff, resamples=resamples, seed=seed)
    return {"n_pairs": len(uids), "diff": float(diff.mean()), "ci95.low": lo, "ci95.high": hi,
            "new_rate": float(np.mean([a[u] for u in uids])), "ref_rate": float(np.mean([b[u] for u in uids]))}


def _path_check(plan: GatePlan, run: dict, student: str, allow: bool) -> tuple[list[str], str | None]:
    """(differences to flag, refusal message) of the matched-path guard for ``student`` vs the reference."""
    ref = plan.reference
    ref_run = run if ref.in_run else ref.manifest
    try:
        diffs = check_paths("non-inferiority gate", student, inference_path(run, student), ref.name,
                            inference_path(ref_run, ref.name), allow=allow)
    except SkillbenchError as exc:
        return [], str(exc)
    return diffs, None


def check_reference_paths(session, plan: GatePlan) -> None:
    """At session start: refuse a reference generated or judged differently (one usage error)."""
    if plan.reference is None:
        return
    try:
        run = session.manifest()
    except Exception:
        return
    for student in session.specs:
        if student == plan.reference.name and plan.reference.in_run:
            continue
        _, refused = _path_check(plan, run, student, bool(session.settings.allow_path_mismatch))
        if refused:
            raise SkillbenchError(refused)


def evaluate(plan: GatePlan, episodes: list[Episode], run: dict, *, seed: int = stats.DEFAULT_SEED,
             resamples: int = stats.DEFAULT_RESAMPLES, allow_path_mismatch: bool = False,
             students: list[str] | None = None) -> dict:
    """The report's ``gates`` section: one result per (gate, student) and per (student, condition) for
    non-inferiority, the count of episodes in error, and the exit code CI should see."""
    by_student: dict[str, list[Episode]] = defaultdict(list)
    for e in episodes:
        by_student[e.student].append(e)
    names = list(students) if students is not None else sorted(by_student)
    ref = plan.reference
    targets = [n for n in names if not (ref is not None and ref.in_run and n == ref.name)]
    ref_eps = (by_student.get(ref.name, []) if ref.in_run else ref.episodes) if ref is not None else []
    results: list[dict] = []
    against_cache: dict[tuple[str, str], dict] = {}

    def against(student: str, cond: str, eps: list[Episode], scope_key: str) -> dict:
        key = (student, cond, scope_key)
        if key not in against_cache:
            ref_scope = ref_eps
            if scope_key:
                kind, name = scope_key.split(":", 1)
                ref_scope = [e for e in ref_eps if getattr(e, kind) == name]
            against_cache[key] = paired_against(eps, ref_scope, cond, seed=seed, resamples=resamples)
        return against_cache[key]

    for gate in plan.gates:
        for student in ([gate.student] if gate.student else targets):
            eps = by_student.get(student, [])
            scope_key = ""
            if gate.skill:
                eps, scope_key = [e for e in eps if e.skill == gate.skill], f"skill:{gate.skill}"
            elif gate.category:
                eps, scope_key = [e for e in eps if e.category == gate.category], f"category:{gate.category}"
            head, _, sub = gate.metric.partition(".")
            if head == "delta":
                m = _delta_metrics(eps, seed, resamples)
                value, numbers = m[sub], m
            elif head == "against":
                cond, _, sub2 = sub.partition(".")
                m = against(student, cond, [e for e in eps if e.condition == cond], scope_key)
                value, numbers = m[sub2], m
            else:
                m = _cond_metrics([e for e in eps if e.condition == head])
                value, numbers = m[sub], m
            ok = value is not None and bool(OPS[gate.op](value, gate.threshold))
            results.append({"gate": gate.text, "kind": "expression", "student": student, "scope": gate.scope or None,
                            "metric": gate.metric, "op": gate.op, "threshold": gate.threshold, "value": value,
                            "passed": ok, "numbers": numbers,
                            "detail": None if value is not None else "not computable (nothing scored / no pairs)"})

    if ref is not None:
        for student in targets:
            diffs, refused = _path_check(plan, run, student, allow_path_mismatch)
            eps = by_student.get(student, [])
            for cond in CONDITIONS:
                new_c = [e for e in eps if e.condition == cond]
                if not new_c or not any(e.condition == cond for e in ref_eps):
                    continue
                m = paired_against(new_c, [e for e in ref_eps if e.condition == cond], cond, seed=seed,
                                   resamples=resamples)
                low = m["ci95.low"]
                ok = refused is None and low is not None and low >= -plan.margin
                entry = {"gate": f"non-inferiority vs {ref.name} (margin {plan.margin:g})", "kind": "non_inferiority",
                         "student": student, "reference": ref.name, "reference_source": ref.source,
                         "condition": cond, "metric": f"against.{cond}.ci95.low", "op": ">=",
                         "threshold": -plan.margin, "value": low, "passed": ok, "margin": plan.margin,
                         "numbers": m, "detail": None}
                if refused:
                    entry["detail"] = f"refused: {refused}"
                elif low is None:
                    entry["detail"] = "no task scored on both sides"
                if diffs:
                    entry["path_mismatch"] = diffs
                if not ref.in_run:
                    rh, bh = (ref.manifest or {}).get("bench_hash"), run.get("bench_hash")
                    if rh and bh and rh != bh:
                        entry["bench_hash_differs"] = True
                results.append(entry)

    errors = sum(e.verdict.status == Status.ERROR for e in episodes)
    all_pass = all(r["passed"] for r in results) if results else None
    if errors:
        code = EXIT_INFRASTRUCTURE
    elif plan.active:
        code = EXIT_OK if all_pass in (True, None) else EXIT_GATE_FAILED
    else:
        code = None
    return {"results": results, "passed": all_pass, "errors": errors, "exit_code": code,
            "reference": None if ref is None else {"name": ref.name, "source": ref.source},
            "margin": plan.margin if ref is not None else None}


# -- rendering ----------------------------------------------------------------------------------------
def _num(x, pts: bool = False) -> str:
    if x is None:
        return "n/a"
    if pts:
        return f"{x:+.3f}"
    return f"{x:.3f}" if isinstance(x, float) and not float(x).is_integer() else f"{x:g}"


def render_gates(section: dict | None) -> list[str]:
    """The last lines of the terminal report: the exit status, then one line per gate, PASS or FAIL."""
    if not section:
        return []
    lines = []
    code, errors = section.get("exit_code"), section.get("errors", 0)
    if code == EXIT_INFRASTRUCTURE:
        lines.append(f"skillbench exit status 3: {errors} episode(s) in error (infrastructure: backend, judge or "
                     "worker outage) - the numbers are incomplete; rerun (finished work is reused)")
    elif code is not None:
        lines.append(f"skillbench exit status {code}: "
                     + ("every gate holds" if code == EXIT_OK else "a gate failed"))
    for r in section.get("results", []):
        tag = "PASS" if r["passed"] else "FAIL"
        n = r["numbers"]
        if r["kind"] == "non_inferiority":
            where = "" if r["reference_source"] == "run" else f" ({r['reference_source']})"
            body = (f"non-inferiority {r['student']} vs {r['reference']}{where}, {r['condition']}: "
                    f"Δ {_num(n['diff'], True)}, paired bootstrap 95% CI [{_num(n['ci95.low'], True)}, "
                    f"{_num(n['ci95.high'], True)}], lower bound {'>=' if r['passed'] else '<'} "
                    f"{-r['margin']:+.3f} (margin {r['margin']:g}), n_pairs={n['n_pairs']}")
        else:
            body = f"{r['gate']} [{r['student']}]: {_num(r['value'])}"
            if r["metric"].startswith("delta"):
                body += (f" (Δ {_num(n['value'], True)}, paired bootstrap 95% CI [{_num(n['ci95.low'], True)}, "
                         f"{_num(n['ci95.high'], True)}], McNemar p={_num(n['p'])}, n_pairs={n['n_pairs']})")
            elif r["metric"].startswith("against"):
                body += f" (Δ {_num(n['diff'], True)}, n_pairs={n['n_pairs']})"
            else:
                body += f" ({n['passed']}/{n['scored']} scored, {n['unscored']} unscored, {n['errors']} errors)"
        if r.get("detail"):
            body += f" - {r['detail']}"
        if r.get("path_mismatch"):
            body += f" [PATH MISMATCH: {'; '.join(r['path_mismatch'])}]"
        if r.get("bench_hash_differs"):
            body += " [baseline made on another bench version: paired on shared tasks only]"
        lines.append(f"gate {tag}  {body}")
    return lines
