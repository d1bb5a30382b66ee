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

from .episodes import STATUSES, Episode, Status, read_episodes
from .errors import SkillbenchError

REJUDGE_STATUSES = (Status.ERROR, Status.UNSCORED)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def judged_text(ep: Episode) -> str | None:
    """The text the judge saw: the stored response under the episode's thinking policy."""
    policy = (ep.extra or {}).get("thinking")
    if ep.response is None or policy in (None, "keep"):
        return ep.response
    try:
        from .diagnostics import apply_thinking
    except ImportError:  # pragma: no cover
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
    from .forcing import combine, forced_of

    llm = runner.mode != "deterministic"
    targets = [e for e in episodes if needs_rejudge(e, llm)]
    missing = sorted({e.task_uid for e in targets if e.task_uid not in tasks})
    if missing:
        raise SkillbenchError(f"{len(missing)} task(s) of the run are not in the bench (first: {missing[0]}); "
                              "pass the run's --bench / --catalog")
    from .judges.runner import JudgeItem

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
def _settings_for(manifest: dict, args):
    from .settings import JUDGE_BACKENDS, JUDGES, Settings

    judge = manifest.get("judge") or {}
    s = Settings()
    s.judge = args.judge or judge.get("mode") or "deterministic"
    if s.judge not in JUDGES:
        raise SkillbenchError(f"judge mode {s.judge!r} is not one of {', '.join(JUDGES)}")
    stored_backend = judge.get("backend") if judge.get("backend") in JUDGE_BACKENDS else None
    s.judge_backend = args.judge_backend or stored_backend or "anthropic"
    same = s.judge_backend == stored_backend
    s.judge_model = args.judge_model or (judge.get("model") if same else None)
    s.judge_base_url = args.judge_base_url or (judge.get("base_url") if same and s.judge_backend == "openai" else None)
    s.judge_api_key_env = args.judge_api_key_env or (judge.get("api_key_env") if same else None)
    for name in ("judge_concurrency", "judge_timeout", "judge_max_attempts", "judge_backoff", "judge_max_tokens"):
        if getattr(args, name) is not None:
            setattr(s, name, getattr(args, name))
    if args.cache:
        s.cache = args.cache
    return s


def _write_json(path: Path, data: dict) -> None:
    import os

    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _report_for(run_dir: Path, episodes: list[Episode], manifest: dict) -> dict:
    try:
        from .analysis import report_from_runs
    except ImportError:  # pragma: no cover - analysis is optional here
        report_from_runs = None
    if report_from_runs is not None:
        try:
            return report_from_runs([run_dir])[0]
        except SkillbenchError:
            pass
    from .report.summary import build_report

    return build_report(episodes, manifest, seed=int(manifest.get("seed") or 20251122),
                        resamples=int(manifest.get("resamples") or 10_000))


def rejudge_run(run_dir: str | Path, settings, *, bench: str | None = None, catalog: str | None = None,
                write=print) -> tuple[dict, dict]:
    """Re-judge a run directory in place; returns (summary, report)."""
    from .bench import load_bench
    from .judges.runner import build_runner

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
    from .session import write_episodes_file

    write_episodes_file(eps_file, episodes)
    if manifest:
        manifest.setdefault("rejudges", []).append(summary)
        _write_json(man_file, manifest)
    report = _report_for(run_dir, episodes, manifest)
    _write_json(run_dir / "report.json", report)
    return summary, report


def _cmd_rejudge(args) -> int:
    run_dir = Path(args.run)
    man_file = run_dir / "manifest.json"
    manifest = json.loads(man_file.read_text(encoding="utf-8")) if man_file.is_file() else {}
    settings = _settings_for(manifest, args)
    summary, report = rejudge_run(run_dir, settings, bench=args.bench, catalog=args.catalog,
                                  write=(lambda s: None) if args.json else print)
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
        return 0
    label = summary["judge"].get("backend")
    if summary["judge"].get("model"):
        label = f"{label}:{summary['judge']['model']}"
    print(f"re-judged {summary['episodes']} episode(s) of {run_dir} with --judge {summary['judge']['mode']} "
          f"({label}): before {summary['before']}, after {summary['after']}")
    if summary["judge"]["mode"] == "deterministic" and summary["episodes"]:
        print("note: the deterministic judge reads the same ANSWER lines again, so nothing it left unscored can "
              "change; to score them, re-judge with an LLM: --judge llm-only --judge-backend anthropic|openai "
              "(or --judge deterministic-mixed for FREE_FORM only)")
    if summary["not_rejudged_generation_errors"]:
        print(f"note: {summary['not_rejudged_generation_errors']} episode(s) have no stored response (generation "
              "error) and were not re-judged; re-run the session to regenerate them")
    from .report.terminal import render

    for line in render(report):
        print(line)
    print(f"rewrote {run_dir / 'episodes.jsonl'} and {run_dir / 'report.json'}")
    return 0


def add_judge_arguments(p, *, with_mode: bool = True) -> None:
    from .settings import JUDGE_BACKENDS, JUDGES

    if with_mode:
        p.add_argument("--judge", choices=JUDGES, default=None, help="judge mode (default: the run's)")
    p.add_argument("--judge-backend", choices=JUDGE_BACKENDS, default=None, help="default: the run's")
    p.add_argument("--judge-model", default=None)
    p.add_argument("--judge-concurrency", type=int, default=None)
    p.add_argument("--judge-base-url", default=None)
    p.add_argument("--judge-api-key-env", default=None, metavar="VAR")
    p.add_argument("--judge-timeout", type=float, default=None, metavar="SECONDS")
    p.add_argument("--judge-max-attempts", type=int, default=None)
    p.add_argument("--judge-backoff", type=float, default=None, metavar="SECONDS")
    p.add_argument("--judge-max-tokens", type=int, default=None, metavar="N")


def register(sub) -> None:
    p = sub.add_parser("rejudge", help="re-judge the error / unscored episodes of a run from stored responses")
    p.add_argument("run", metavar="RUN", help="a run directory (episodes.jsonl + manifest.json)")
    add_judge_arguments(p)
    p.add_argument("--bench", default=None, help="the run's bench (default: the one in its manifest)")
    p.add_argument("--catalog", default=None)
    p.add_argument("--cache", "--skillbench-cache", dest="cache", default=None, metavar="DIR",
                   help="judgment cache (default $SKILLBENCH_CACHE or ~/.cache/pytest-skillbench)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=_cmd_rejudge)


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


def attach_rejudge(session) -> None:
    """Load the source run's episodes into the session: responses are never regenerated."""
    from .students.base import GenResult

    src = find_source_run(session)
    stored = {(e.student, e.condition, e.task_uid): e for e in read_episodes(src / "episodes.jsonl")
              if e.student in session.specs}
    session.rejudge_from = src
    session.judges.rejudged_from = str(src)
    for key, ep in stored.items():
        if ep.verdict.scored:
            session.rejudge_reuse[key] = ep
        if ep.response is not None:
            session.responses[key] = GenResult(text=ep.response, gen_tokens=ep.gen_tokens, cached=True)
        else:
            session.responses[key] = GenResult(text=None, error=ep.verdict.rationale or "generation failed "
                                               "in the stored run (not regenerated by --skillbench-rejudge)")
    n = sum(needs_rejudge(e) for e in stored.values())
    session.write(f"[skillbench] --skillbench-rejudge: {src}: reusing {len(session.rejudge_reuse)} scored "
                  f"episode(s), re-judging {n} error/unscored episode(s)")
