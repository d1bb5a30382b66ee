"""Re-judging stored runs: ``skillbench rejudge RUN`` and ``--skillbench-rejudge`` in a session.

Only episodes whose verdict is ``error`` or ``unscored`` are judged again, from their stored responses:
nothing is regenerated, passed / failed episodes are kept as they are. An episode whose *generation*
failed (no stored response) cannot be re-judged and stays ``error``; re-run the session without
``--skillbench-rejudge`` to regenerate it (cached generations are reused, so only the missing ones run).
Each re-judged episode keeps its earlier verdict in ``extra["previous_verdicts"]``.

``skillbench rejudge RUN`` rewrites ``RUN/episodes.jsonl``, ``RUN/report.json`` and ``RUN/manifest.json``
(which gains a ``rejudges`` history entry). The judge defaults to the run's own (mode, backend, model from
its manifest); every ``--judge*`` option overrides it, e.g. ``--judge llm-only`` to send format misses
(``no_answer_line``) to the LLM judge.

``--skillbench-rejudge`` in a pytest session takes the newest stored run (``--skillbench-run-dir DIR`` when
DIR already holds a run, else the newest under ``.skillbench/runs/``) on the same bench and split that holds
every requested student. Its passed / failed episodes are reused, its error / unscored episodes are judged
again with this session's judge options, and items absent from it run normally. The session writes a new
run directory whose manifest names the source (``judge.rejudged_from``).
"""

from __future__ import annotations

import datetime as _dt
import json
from collections import Counter
from pathlib import Path

from .bench import load_bench
from .diagnostics import apply_thinking
from .episodes import STATUSES, Episode, Status, read_episodes
from .errors import SkillbenchError
from .forcing import combine, forced_of
from .judges.runner import JudgeItem, build_runner
from .report.offline import report_from_runs
from .report.summary import build_report
from .runs.store import write_episodes_file, write_json
from .students.base import GenResult

REJUDGE_STATUSES = (Status.ERROR, Status.UNSCORED)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def judged_text(ep: Episode) -> str | None:
    """The text the judge saw: the stored response under the episode's thinking policy."""
    policy = (ep.extra or {}).get("thinking")
    if ep.response is None or policy in (None, "keep"):
        return ep.response
    return apply_thinking(ep.response, policy)[0]


def needs_rejudge(ep: Episode, llm: bool = False) -> bool:
    """Error / unscored episodes with a stored response; with an LLM judge also those scored only by answer
    forcing (their strict verdict is unscored: the LLM judge reads the response itself)."""
    if ep.response is None:
        return False
    return ep.verdict.status in REJUDGE_STATUSES or (llm and ep.verdict.scoring == "forced")


def rejudge_episodes(episodes: list[Episode], tasks: dict, runner) -> dict:
    """Judge again every error / unscored episode with a stored response (in place); returns a summary.
    With the deterministic judge, an episode's stored forced reading (``Verdict.extra["forced"]``) is combined
    with the new strict verdict as in the session (forcing.combine): re-judging never needs the model."""
    llm = runner.mode != "deterministic"
    targets = [e for e in episodes if needs_rejudge(e, llm)]
    missing = sorted({e.task_uid for e in targets if e.task_uid not in tasks})
    if missing:
        raise SkillbenchError(f"{len(missing)} task(s) of the run are not in the bench (first: {missing[0]}); "
                              "pass the run's --bench / --catalog")
    runner.prepare([JudgeItem(tasks[e.task_uid], judged_text(e), e.condition) for e in targets], label="rejudge")
    before = Counter(e.verdict.status for e in targets)
    at = _now()
    for e in targets:
        old = e.verdict
        verdict, extra = runner.outcome(tasks[e.task_uid], judged_text(e), e.condition)
        forced = forced_of(old)
        if not llm and forced is not None and verdict.judge == "deterministic":
            verdict = combine(tasks[e.task_uid], verdict, forced, truncated=bool(forced.get("truncated")))
        e.extra = dict(e.extra or {})
        e.extra.setdefault("previous_verdicts", []).append({**old.to_dict(), "replaced": at})
        e.extra.update(extra)
        e.verdict = verdict
    after = Counter(e.verdict.status for e in targets)
    return {"at": at, "judge": runner.describe(), "episodes": len(targets),
            "before": {s: before.get(s, 0) for s in REJUDGE_STATUSES},
            "after": {s: after.get(s, 0) for s in STATUSES},
            "not_rejudged_generation_errors": sum(e.verdict.status == Status.ERROR and e.response is None
                                                  for e in episodes)}


# -- skillbench rejudge RUN -----------------------------------------------------------------------------
def _report_for(run_dir: Path, episodes: list[Episode], manifest: dict) -> dict:
    try:
        return report_from_runs([run_dir])[0]
    except SkillbenchError:
        pass
    return build_report(episodes, manifest, seed=int(manifest.get("seed") or 20251122),
                        resamples=int(manifest.get("resamples") or 10_000))


def rejudge_run(run_dir: str | Path, settings, *, bench: str | None = None, catalog: str | None = None,
                write=print) -> tuple[dict, dict]:
    """Re-judge a run directory in place; returns (summary, report)."""
    run_dir = Path(run_dir)
    eps_file, man_file = run_dir / "episodes.jsonl", run_dir / "manifest.json"
    if not eps_file.is_file():
        raise SkillbenchError("not a run directory (no episodes.jsonl)", path=run_dir)
    try:
        manifest = json.loads(man_file.read_text(encoding="utf-8")) if man_file.is_file() else {}
    except json.JSONDecodeError as exc:
        raise SkillbenchError(f"malformed manifest: {exc.msg}", path=man_file, line=exc.lineno) from None
    episodes = read_episodes(eps_file)
    split = manifest.get("split") or "holdout"
    source = bench or manifest.get("bench") or "bundled"
    b = load_bench(source, catalog)
    if not bench and manifest.get("bench_hash") and b.content_hash(split) != manifest["bench_hash"]:
        raise SkillbenchError(f"the bench {source} changed since this run (hash {b.content_hash(split)} vs "
                              f"{manifest['bench_hash']}); pass --bench with the run's tasks")
    tasks = {t.task_uid: t for t in b.split(split)}
    runner = build_runner(settings, root=Path.cwd(), write=write)
    summary = rejudge_episodes(episodes, tasks, runner)
    write_episodes_file(eps_file, episodes)
    if manifest:
        manifest.setdefault("rejudges", []).append(summary)
        write_json(man_file, manifest)
    report = _report_for(run_dir, episodes, manifest)
    write_json(run_dir / "report.json", report)
    return summary, report


# -- --skillbench-rejudge in a session ------------------------------------------------------------------
def find_source_run(session) -> Path:
    s = session.settings
    if s.run_dir and (Path(s.run_dir) / "episodes.jsonl").is_file():
        return Path(s.run_dir)
    runs_dir = session.root / ".skillbench" / "runs"
    cands = sorted((p for p in runs_dir.glob("*") if (p / "manifest.json").is_file() and (p / "episodes.jsonl").is_file()),
                   key=lambda p: (p / "manifest.json").stat().st_mtime, reverse=True) if runs_dir.is_dir() else []
    want = set(session.specs)
    bench_hash = session.bench.content_hash(s.split)
    for cand in cands:
        if cand.resolve() == Path(session.run_dir).resolve():
            continue
        try:
            man = json.loads((cand / "manifest.json").read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        if man.get("bench_hash") not in (None, bench_hash) or man.get("split", s.split) != s.split:
            continue
        if want <= set(man.get("students") or {}):
            return cand
    raise SkillbenchError(f"--skillbench-rejudge: no stored run under {runs_dir} holds {', '.join(sorted(want))} "
                          f"on this bench ({s.split}); run the session once without it")


def stored_responses(src: Path, students) -> tuple[dict, dict, int]:
    """The stored run's episodes of ``students`` as (scored episodes reused as they are, responses keyed
    like the session's, how many episodes will be judged again): responses are never regenerated."""
    stored = {(e.student, e.condition, e.task_uid): e for e in read_episodes(src / "episodes.jsonl")
              if e.student in students}
    reuse: dict = {}
    responses: dict = {}
    for key, ep in stored.items():
        if ep.verdict.scored:
            reuse[key] = ep
        if ep.response is not None:
            responses[key] = GenResult(text=ep.response, gen_tokens=ep.gen_tokens, cached=True)
        else:
            responses[key] = GenResult(text=None, error=ep.verdict.rationale or "generation failed "
                                       "in the stored run (not regenerated by --skillbench-rejudge)")
    return reuse, responses, sum(needs_rejudge(e) for e in stored.values())
