"""Glue between the session and the behaviour studies (trajectory, drift, pairwise / rubric judging,
generality probe): the few calls ``session.py`` and ``report/`` make, kept here so those files only gain
one line each.

* ``session_setup``: loads the probe battery (``--probe``) and, for ``--pairwise`` / ``--rubric`` without an
  LLM ``--judge`` mode, builds the judge backend at session start (credentials checked before any
  generation);
* ``probe_specs`` / ``request_messages`` / ``probe_run``: probe items through the same generation, cache
  and episode path as bench items;
* ``bench_extra``: the drift metrics stored on every bench episode (``Episode.extra["drift"]``), and the
  task's chance rate (``Episode.extra["chance_rate"]``, when defined) for the per-query-type report;
* ``report_sections``: the report keys computed from episodes (``drift``, ``trajectory``,
  ``loss_vs_quality``, ``probe``) - also for ``skillbench report`` on stored runs;
* ``finish_extras``: at session end, pairwise and rubric judging, loss vs quality with the win-rate,
  trajectory plots in the run directory;
* ``render``: the terminal lines of all of the above.
"""

from __future__ import annotations

from pathlib import Path

from .errors import SkillbenchError


# -- session -----------------------------------------------------------------------------------------
def session_setup(session) -> None:
    s = session.settings
    session.probe_items = None
    session.probe_index = {}
    session.behaviour_backend = None
    session._premise_judge = None
    if s.probe:
        from .probe import load_probe, probe_path

        session.probe_items = load_probe(s.probe)
        session.probe_index = {i.id: i for i in session.probe_items}
        session.probe_source = str(probe_path(s.probe))
    if (s.pairwise or s.rubric) and getattr(session.judges, "backend", None) is None:
        from .judges.runner import make_backend

        session.behaviour_backend = make_backend(s, cache_dir=session.cache_dir, pool=lambda: session.pool,
                                                 root=session.root)


def llm_backend(session):
    """The LLM judge of the session (its ``--judge`` backend, else the one built for pairwise / rubric)."""
    return getattr(session.judges, "backend", None) or getattr(session, "behaviour_backend", None)


def probe_specs(session) -> list | None:
    """Probe items (student x probe prompt) in place of the bench items, or None without ``--probe``."""
    if getattr(session, "probe_items", None) is None:
        return None
    from .probe import PROBE_CONDITION
    from .session import ItemSpec

    return [ItemSpec(student, PROBE_CONDITION, item.task) for student in session.specs
            for item in session.probe_items]


def probe_file_name(session) -> str | None:
    src = getattr(session, "probe_source", None)
    return Path(src).name if src else None


def request_messages(session, spec) -> list[dict[str, str]]:
    from .probe import PROBE_CONDITION, messages as probe_messages
    from .prompts import messages

    if spec.condition == PROBE_CONDITION:
        return probe_messages(session.probe_index[spec.task.task_uid])
    return messages(spec.task, spec.condition, session.catalog)


def bench_extra(spec, res) -> dict:
    from .drift import asks_for_json, episode_metrics

    out = {"drift": episode_metrics(res.text, res.gen_tokens, asks_json=asks_for_json(spec.task.question))}
    chance = getattr(spec.task, "chance_rate", None)
    if chance is not None:
        out["chance_rate"] = chance
    return out


def _premise_judge(session):
    if session._premise_judge is None:
        from .cache import Store
        from .probe import PremiseJudge

        backend = llm_backend(session)
        store = Store(session.cache_dir, "judgments") if backend is not None else None
        session._premise_judge = PremiseJudge(backend, store, session.write)
    return session._premise_judge


def probe_run(session, spec, nodeid: str):
    """One probe item: generate (batched and cached with the student's other items), score, record."""
    from .diagnostics import apply_thinking
    from .drift import asks_for_json, episode_metrics
    from .episodes import Episode
    from .probe import score

    res = session.response_for(spec)
    item = session.probe_index[spec.task.task_uid]
    policy = session.specs[spec.student].thinking if spec.student in session.specs else "keep"
    pj = _premise_judge(session)
    if pj.caller is not None:  # judge this student's false-premise answers in one batch
        pairs = []
        for s in session.selected.get(spec.student, []):
            it = session.probe_index.get(s.task.task_uid)
            r = session.responses.get(s.key)
            if it is not None and it.kind == "false_premise" and r is not None and r.text is not None:
                pairs.append((it, apply_thinking(r.text, policy)[0]))
        pj.prepare(pairs)
    text = apply_thinking(res.text, policy)[0] if res.text is not None else None
    verdict, metrics = score(item, text, pj)
    if res.text is None:
        verdict.rationale = res.error or verdict.rationale
    ep = Episode(student=spec.student, condition=spec.condition, task_uid=item.id, skill=spec.task.skill,
                 query_type=spec.task.query_type, response=res.text, verdict=verdict, category="", nodeid=nodeid,
                 gen_tokens=res.gen_tokens,
                 extra={"probe": metrics,
                        "drift": episode_metrics(res.text, res.gen_tokens, asks_json=asks_for_json(item.prompt))})
    session.append_shard(ep)
    return ep


# -- report ------------------------------------------------------------------------------------------
def split_probe(episodes) -> tuple[list, list]:
    from .probe import PROBE_CONDITION

    bench = [e for e in episodes if e.condition != PROBE_CONDITION]
    probe = [e for e in episodes if e.condition == PROBE_CONDITION]
    return bench, probe


def report_sections(bench_eps, probe_eps, run: dict, students: dict) -> dict:
    from .drift import drift_section
    from .probe import probe_section
    from .trajectory import loss_vs_quality, trajectory_section

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


def finish_extras(session, report: dict, episodes) -> None:
    """Session end (controller): pairwise / rubric judging, loss vs quality with win-rates, plots."""
    from .trajectory import base_map, loss_vs_quality, write_plots

    s = session.settings
    if getattr(session, "probe_items", None) is not None:
        from .probe import PROBE_SYSTEM, PROBE_VERSION

        report["run"]["probe"] = {"source": session.probe_source, "version": PROBE_VERSION,
                                  "system_prompt": PROBE_SYSTEM, "items": len(session.probe_items)}
        if report.get("probe"):
            report["probe"]["source"] = session.probe_source
    if s.pairwise or s.rubric:
        from .cache import Store
        from .judges.pairwise import pairwise_against_base, prompt_index, rubric_scores

        backend = llm_backend(session)
        prompts = prompt_index(session.tasks, session.probe_items or [])
        store = Store(session.cache_dir, "judgments")
        try:
            if s.pairwise:
                bases = base_map(sorted({e.student for e in episodes}), report.get("run") or {})
                report["pairwise"] = pairwise_against_base(episodes, bases, prompts, backend, store=store,
                                                           seed=s.seed, write=session.write)
                if not bases:
                    report["pairwise"]["note"] = ("no student has its base in this run (base_student, --sft-pair "
                                                  "or NAME@base)")
            if s.rubric:
                report["rubric"] = rubric_scores(episodes, prompts, backend, store=store, write=session.write)
        except SkillbenchError as exc:  # the bench report must survive a judge failure
            report.setdefault("warnings", []).append(f"pairwise/rubric judging failed: {exc}")
        lq = loss_vs_quality(report.get("run") or {}, report.get("students") or {},
                             (report.get("pairwise") or {}).get("students"))
        if lq:
            report["loss_vs_quality"] = lq
    if report.get("trajectory"):
        try:
            write_plots(report, session.run_dir)
        except Exception as exc:  # noqa: BLE001 - a plot must never lose the report
            report.setdefault("warnings", []).append(f"trajectory plot failed: {type(exc).__name__}: {exc}")


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
    from .judges.pairwise import render as render_judged
    from .probe import render as render_probe
    from .trajectory import render_trajectory

    lines = render_trajectory(report) + render_judged(report) + render_probe(report) + render_drift(report)
    for w in report.get("warnings") or []:
        if "pairwise/rubric" in w or "trajectory plot" in w:
            lines.append(f"WARNING: {w}")
    return lines
